//! The authorization endpoint (OAU-1, OAU-2, OAU-6, OAU-7): a validated request ([`request`]),
//! pushed or not ([`par`]); the user signs in on the identity pages, then consents
//! ([`consent`]) — remembered consent skips the page unless `prompt=consent` — and the code
//! issued is bound to the approving browser session.

pub(crate) mod consent;
pub(crate) mod par;
mod request;

use crate::OAuth;
use crate::QUERY_VALUE;
use crate::codes::{self, CODE_LIFETIME_MS, CodeGrant};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use palisade_audit::{Action, Outcome};
use palisade_http::AppError;
use palisade_identity::assurance::Acr;
use palisade_identity::csrf::Csrf;
use palisade_identity::{RequestContext, SignedIn};
use palisade_store::now_ms;
use percent_encoding::utf8_percent_encode;
use request::{Params, Request, parse, validate};

/// The sign-in page, coming back to this request afterwards (without `prompt=login`, which the
/// fresh sign-in satisfies), with a notice saying why when there is one.
fn sign_in(params: &Params, notice: Option<&str>) -> Response {
    let query: Vec<String> = params
        .iter()
        .filter(|(k, _)| k.as_str() != "prompt")
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)))
        .collect();
    let back = format!("/oauth/authorize?{}", query.join("&"));
    let mut login = format!(
        "/login?return_to={}",
        utf8_percent_encode(&back, QUERY_VALUE)
    );
    if let Some(hint) = params.get("login_hint") {
        login.push_str(&format!(
            "&login_hint={}",
            utf8_percent_encode(hint, QUERY_VALUE)
        ));
    }
    if let Some(notice) = notice {
        login.push_str(&format!("&notice={notice}"));
    }
    Redirect::to(&login).into_response()
}

pub(crate) async fn get(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    csrf: Csrf,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let params = parse(query.unwrap_or_default().as_bytes())?;
    authorize(&oauth, &ctx, csrf, &headers, params).await
}

pub(crate) async fn post(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    csrf: Csrf,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    authorize(&oauth, &ctx, csrf, &headers, parse(&body)?).await
}

async fn authorize(
    oauth: &OAuth,
    ctx: &RequestContext,
    csrf: Csrf,
    headers: &HeaderMap,
    params: Params,
) -> Result<Response, AppError> {
    let pushed_uri = params
        .get("request_uri")
        .is_some_and(|u| u.starts_with(par::REQUEST_URI_PREFIX));
    let params = if pushed_uri {
        par::take(oauth, &params).await?
    } else {
        params
    };
    let issuer = &oauth.config().issuer;
    let request = match validate(oauth, &params).await {
        Ok(r) => r,
        Err(rejection) => return Ok(rejection.answer(issuer)),
    };
    let signed_in = SignedIn::from_headers(&oauth.0.identity, headers).await?;
    let none = request.prompts("none");
    let Some(signed_in) = signed_in else {
        if none {
            return Ok(request
                .known
                .error(issuer, "login_required", "The user is not signed in."));
        }
        return Ok(sign_in(&params, None));
    };
    let too_old = request
        .max_age
        .is_some_and(|max| now_ms() - signed_in.session.auth_time > max * 1000);
    // An ID token hint names who the client expects: anyone else must sign in as them.
    let someone_else = match params.get("id_token_hint") {
        Some(hint) => {
            let Some(claims) = oauth.verify_id_token_hint(hint) else {
                return Ok(request.known.error(
                    issuer,
                    "invalid_request",
                    "The id_token_hint is not an ID token issued here.",
                ));
            };
            claims.get("sub").and_then(|s| s.as_str()) != Some(signed_in.user.id.as_str())
        }
        None => false,
    };
    // A client signs in accounts of its own organisation only (IDN-8): anyone else must sign
    // in as one of them.
    let other_tenant = signed_in.user.tenant_id != request.known.client.tenant_id;
    if request.prompts("login") || too_old || someone_else || other_tenant {
        if none {
            return Ok(request.known.error(
                issuer,
                "login_required",
                "A fresh sign-in is required.",
            ));
        }
        return Ok(sign_in(&params, None));
    }
    let reached = Acr::of(&signed_in.session.amr);
    let wanted = &request.acr_values;
    if !wanted.is_empty() && wanted.iter().all(|w| reached < *w) {
        // Unmet means multi-factor was asked for (anything satisfies a password request): step
        // up when the account has a second factor, say so when it has none.
        let has_second_factor = signed_in.user.has_totp()
            || !palisade_identity::passkeys::list(&oauth.0.db, &signed_in.user.id)
                .await?
                .is_empty();
        if !has_second_factor {
            return Ok(request.known.error(
                issuer,
                "unmet_authentication_requirements",
                "The application asks for a second factor and this account has none.",
            ));
        }
        if none {
            return Ok(request.known.error(
                issuer,
                "interaction_required",
                "The application asks for a second factor.",
            ));
        }
        return Ok(sign_in(&params, Some("second_factor")));
    }
    let granted = codes::consented(
        &oauth.0.db,
        &signed_in.user.id,
        &request.known.client.client_id,
    )
    .await?;
    let covered = request.scopes.iter().all(|s| granted.contains(s));
    if covered && !request.prompts("consent") {
        return issue_code(oauth, ctx, &request, &signed_in).await;
    }
    if none {
        return Ok(request
            .known
            .error(issuer, "consent_required", "The user has not consented."));
    }
    Ok(consent::page(&request, &params, &csrf))
}

async fn issue_code(
    oauth: &OAuth,
    ctx: &RequestContext,
    request: &Request,
    signed_in: &SignedIn,
) -> Result<Response, AppError> {
    if signed_in.user.tenant_id != request.known.client.tenant_id {
        return Ok(request.known.error(
            &oauth.config().issuer,
            "access_denied",
            "This application belongs to another organisation.",
        ));
    }
    let now = now_ms();
    let grant = CodeGrant {
        grant_id: palisade_store::new_id(),
        client_id: request.known.client.client_id.clone(),
        user_id: signed_in.user.id.clone(),
        session_id: signed_in.session.id_hash.clone(),
        redirect_uri: request.known.redirect_uri.clone(),
        scope: request.scopes.join(" "),
        resource: request.resource.clone(),
        nonce: request.nonce.clone(),
        code_challenge: request.challenge.clone(),
        auth_time: signed_in.session.auth_time,
        amr: signed_in.session.amr.clone(),
        expires_at: now + CODE_LIFETIME_MS,
        dpop_jkt: request.dpop_jkt.clone(),
    };
    let code = codes::issue(&oauth.0.db, &grant).await?;
    oauth
        .0
        .auditor
        .record(
            ctx.event(
                Action::CodeIssued,
                Outcome::Success,
                &signed_in.user.tenant_id,
            )
            .actor(signed_in.user.id.clone())
            .client(grant.client_id.clone())
            .detail("scope", grant.scope.as_str()),
        )
        .await?;
    Ok(request
        .known
        .redirect(&oauth.config().issuer, &[("code", &code)]))
}
