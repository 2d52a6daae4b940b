//! The account's connected apps (OAU-6): the clients the user consented to, with the scopes
//! granted, and a button that withdraws the consent and revokes every token of that client.

use crate::OAuth;
use crate::clients;
use crate::codes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use palisade_audit::{Action, Outcome};
use palisade_http::AppError;
use palisade_http::error::escape_html;
use palisade_identity::csrf::{Csrf, CsrfForm};
use palisade_identity::{RequestContext, SignedIn};
use serde::Deserialize;

async fn signed_in(
    oauth: &OAuth,
    headers: &HeaderMap,
) -> Result<Result<SignedIn, Response>, AppError> {
    Ok(
        match SignedIn::from_headers(&oauth.0.identity, headers).await? {
            Some(s) => Ok(s),
            None => Err(Redirect::to("/login?return_to=%2Faccount%2Fapps").into_response()),
        },
    )
}

pub async fn page(
    State(oauth): State<OAuth>,
    csrf: Csrf,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let me = match signed_in(&oauth, &headers).await? {
        Ok(s) => s,
        Err(to_login) => return Ok(to_login),
    };
    let mut rows = String::new();
    for (client_id, scope, _) in codes::consents_of(&oauth.0.db, &me.user.id).await? {
        let name = clients::find(&oauth.0.db, &client_id)
            .await?
            .map_or_else(|| "A removed application".to_owned(), |c| c.name);
        rows.push_str(&format!(
            r#"<tr><td>{}</td><td>{}</td><td><form class="inline" method="post" action="/account/apps/revoke"><input type="hidden" name="csrf" value="{}"><input type="hidden" name="client_id" value="{}"><button type="submit" class="secondary">Revoke access</button></form></td></tr>"#,
            escape_html(&name),
            escape_html(if scope.is_empty() { "(no scopes)" } else { &scope }),
            escape_html(&csrf.token),
            escape_html(&client_id),
        ));
    }
    let body = if rows.is_empty() {
        r#"<p id="no-apps">No application has access to your account.</p>"#.to_owned()
    } else {
        format!(
            r#"<table id="apps"><thead><tr><th>Application</th><th>Access</th><th></th></tr></thead><tbody>{rows}</tbody></table>"#
        )
    };
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Connected apps</title><link rel="stylesheet" href="/static/palisade.css"></head>
<body><main><h1>Connected apps</h1>{body}<p><a href="/account">Back to your account</a></p></main></body></html>"#
    );
    Ok((csrf, Html(html)).into_response())
}

#[derive(Deserialize)]
pub struct RevokeForm {
    client_id: String,
}

pub async fn revoke(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<RevokeForm>,
) -> Result<Response, AppError> {
    let me = match signed_in(&oauth, &headers).await? {
        Ok(s) => s,
        Err(_) => return Err(AppError::Unauthenticated),
    };
    if codes::withdraw_consent(&oauth.0.db, &me.user.id, &form.client_id).await? {
        oauth
            .0
            .auditor
            .record(
                ctx.event(Action::ConsentRevoked, Outcome::Success, &me.user.tenant_id)
                    .actor(me.user.id.clone())
                    .client(form.client_id),
            )
            .await?;
    }
    Ok(Redirect::to("/account/apps").into_response())
}
