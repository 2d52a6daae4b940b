//! Consent (OAU-6): a page listing exactly the requested scopes, remembered once given; the
//! page's answer is validated again from scratch (nothing the page carried is trusted more than
//! the original request was).

use super::request::{KNOWN, Params, Request, validate};
use crate::OAuth;
use crate::codes;
use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use palisade_audit::{Action, Outcome};
use palisade_http::AppError;
use palisade_identity::csrf::{Csrf, CsrfForm};
use palisade_identity::{RequestContext, SignedIn};

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    csrf: &'a str,
    signed_in: bool,
    client: &'a str,
    scopes: Vec<String>,
    /// The request's parameters, carried to the decision.
    params: &'a Params,
}

fn describe(scope: &str) -> String {
    let known = match scope {
        "openid" => "Confirm who you are (your account identifier)",
        "profile" => "See your profile",
        "email" => "See your email address",
        "address" => "See your postal address",
        "phone" => "See your phone number",
        "offline_access" => "Stay connected when you are not using it",
        "social:read" => "Read profiles, posts and your timeline",
        "social:write" => "Change your profile, follows, blocks, mutes and posts",
        "messages" => "Read and send your direct messages",
        "moderation" => "Hide posts, as a moderator",
        other => return other.to_owned(),
    };
    known.to_owned()
}

/// The consent page for `request`, whose form ends at the application (so the page's
/// `form-action` allows exactly its origin).
pub(crate) fn page(request: &Request, params: &Params, csrf: &Csrf) -> Response {
    let page = ConsentPage {
        csrf: &csrf.token,
        signed_in: true,
        client: &request.known.client.name,
        scopes: request.scopes.iter().map(|s| describe(s)).collect(),
        params,
    };
    let mut page = (
        csrf.clone(),
        palisade_identity::pages::render(StatusCode::OK, &page),
    )
        .into_response();
    palisade_http::headers::allow_form_target(&mut page, &request.known.redirect_uri);
    page
}

pub(crate) async fn decision(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    signed_in: SignedIn,
    CsrfForm(mut form): CsrfForm<Params>,
) -> Result<Response, AppError> {
    let decision = form.remove("decision").unwrap_or_default();
    form.retain(|k, _| KNOWN.contains(&k.as_str()));
    let issuer = &oauth.config().issuer;
    let request = match validate(&oauth, &form).await {
        Ok(r) => r,
        Err(rejection) => return Ok(rejection.answer(issuer)),
    };
    let client_id = request.known.client.client_id.clone();
    let event = |action, outcome| {
        ctx.event(action, outcome, &signed_in.user.tenant_id)
            .actor(signed_in.user.id.clone())
            .client(client_id.clone())
    };
    if decision != "allow" {
        oauth
            .0
            .auditor
            .record(event(Action::ConsentDenied, Outcome::Failure))
            .await?;
        return Ok(request
            .known
            .error(issuer, "access_denied", "The user denied the request."));
    }
    codes::remember_consent(&oauth.0.db, &signed_in.user.id, &client_id, &request.scopes).await?;
    oauth
        .0
        .auditor
        .record(
            event(Action::ConsentGranted, Outcome::Success)
                .detail("scope", request.scopes.join(" ")),
        )
        .await?;
    super::issue_code(&oauth, &ctx, &request, &signed_in).await
}
