//! OpenID Connect RP-initiated logout (OAU-8). A client sends the browser here, usually with
//! the ID token it holds as a hint; the user confirms (so that a foreign page cannot sign
//! anyone out), the session ends, and the browser goes back to the client — only to one of the
//! client's registered redirect URIs, never to an address the request alone chose.

use crate::OAuth;
use crate::QUERY_VALUE;
use crate::clients;
use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;
use palisade_http::AppError;
use palisade_http::input::Query;
use palisade_identity::csrf::{Csrf, CsrfForm};
use palisade_identity::{RequestContext, SignedIn};
use percent_encoding::utf8_percent_encode;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    csrf: &'a str,
    signed_in: bool,
    /// The request's parameters, carried to the confirmation.
    hidden: Vec<(&'static str, &'a str)>,
}

/// Other parameters (`ui_locales`, …) are accepted and ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct LogoutParams {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

/// Where to send the browser afterwards, if anywhere: checked against the client's registered
/// redirect URIs.
async fn destination(oauth: &OAuth, p: &LogoutParams) -> Result<Option<String>, AppError> {
    let refuse = |m: &str| AppError::bad_request("invalid_request", m.to_owned());
    let hinted = match &p.id_token_hint {
        Some(hint) => Some(
            oauth
                .verify_id_token_hint(hint)
                .and_then(|claims| claims.get("aud")?.as_str().map(str::to_owned))
                .ok_or_else(|| refuse("The id_token_hint is not an ID token issued here."))?,
        ),
        None => None,
    };
    let client_id = match (&p.client_id, hinted) {
        (Some(c), Some(h)) if *c != h => {
            return Err(refuse("The client_id does not match the id_token_hint."));
        }
        (Some(c), _) => Some(c.clone()),
        (None, h) => h,
    };
    let Some(uri) = &p.post_logout_redirect_uri else {
        return Ok(None);
    };
    let client = match &client_id {
        Some(id) => clients::find(&oauth.0.db, id).await?,
        None => None,
    };
    let registered = client.is_some_and(|c| c.redirect_uris.iter().any(|r| r.as_str() == uri));
    if !registered {
        return Err(refuse(
            "The post_logout_redirect_uri is not registered for this application.",
        ));
    }
    let mut target = uri.clone();
    if let Some(state) = &p.state {
        let sep = if target.contains('?') { '&' } else { '?' };
        target.push_str(&format!(
            "{sep}state={}",
            utf8_percent_encode(state, QUERY_VALUE)
        ));
    }
    Ok(Some(target))
}

fn signed_out(target: Option<String>) -> Response {
    match target {
        Some(t) => Redirect::to(&t).into_response(),
        None => Redirect::to("/login?notice=signed_out").into_response(),
    }
}

pub(crate) async fn page(
    State(oauth): State<OAuth>,
    csrf: Csrf,
    headers: HeaderMap,
    Query(p): Query<LogoutParams>,
) -> Result<Response, AppError> {
    let target = destination(&oauth, &p).await?;
    if SignedIn::from_headers(&oauth.0.identity, &headers)
        .await?
        .is_none()
    {
        return Ok(signed_out(target));
    }
    let hidden = [
        ("id_token_hint", &p.id_token_hint),
        ("client_id", &p.client_id),
        ("post_logout_redirect_uri", &p.post_logout_redirect_uri),
        ("state", &p.state),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    .collect();
    let rendered = palisade_identity::pages::render(
        StatusCode::OK,
        &LogoutPage {
            csrf: &csrf.token,
            signed_in: true,
            hidden,
        },
    );
    let mut page = (csrf, rendered).into_response();
    if let Some(target) = &target {
        palisade_http::headers::allow_form_target(&mut page, target);
    }
    Ok(page)
}

pub(crate) async fn confirm(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    headers: HeaderMap,
    CsrfForm(mut form): CsrfForm<std::collections::BTreeMap<String, String>>,
) -> Result<Response, AppError> {
    let p = LogoutParams {
        id_token_hint: form.remove("id_token_hint"),
        client_id: form.remove("client_id"),
        post_logout_redirect_uri: form.remove("post_logout_redirect_uri"),
        state: form.remove("state"),
    };
    let target = destination(&oauth, &p).await?;
    let mut response = signed_out(target);
    if let Some(signed_in) = SignedIn::from_headers(&oauth.0.identity, &headers).await? {
        let clear = palisade_identity::end_session(&oauth.0.identity, &ctx, &signed_in).await?;
        response
            .headers_mut()
            .append(http::header::SET_COOKIE, clear);
    }
    Ok(response)
}
