//! OpenID Connect RP-initiated logout (OAU-8). A client sends the browser here, usually with
//! the ID token it holds as a hint; the user confirms (so that a foreign page cannot sign
//! anyone out), the session ends, and the browser goes back to the client — only to one of the
//! client's registered redirect URIs, never to an address the request alone chose.

use crate::OAuth;
use crate::QUERY_VALUE;
use crate::clients;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use palisade_http::AppError;
use palisade_http::error::escape_html;
use palisade_identity::csrf::{Csrf, CsrfForm};
use palisade_identity::{RequestContext, SignedIn};
use percent_encoding::utf8_percent_encode;
use serde::Deserialize;

/// Other parameters (`ui_locales`, …) are accepted and ignored.
#[derive(Debug, Deserialize)]
pub struct LogoutParams {
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
    let registered = client.is_some_and(|c| c.redirect_uris.iter().any(|r| r == uri));
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

pub async fn page(
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
    let hidden: String = [
        ("id_token_hint", &p.id_token_hint),
        ("client_id", &p.client_id),
        ("post_logout_redirect_uri", &p.post_logout_redirect_uri),
        ("state", &p.state),
    ]
    .iter()
    .filter_map(|(k, v)| {
        v.as_ref().map(|v| {
            format!(
                r#"<input type="hidden" name="{k}" value="{}">"#,
                escape_html(v)
            )
        })
    })
    .collect();
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign out?</title><link rel="stylesheet" href="/static/palisade.css"></head>
<body><main class="card"><h1>Sign out?</h1><p>An application asks to end your session here.</p>
<form method="post" action="/oauth/logout"><input type="hidden" name="csrf" value="{}">{hidden}
<button type="submit" id="logout">Sign out</button></form>
<p><a href="/account">Stay signed in</a></p></main></body></html>"#,
        escape_html(&csrf.token)
    );
    let mut page = (csrf, Html(html)).into_response();
    if let Some(target) = &target {
        palisade_http::headers::allow_form_target(&mut page, target);
    }
    Ok(page)
}

pub async fn confirm(
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
