//! The account's connected apps (OAU-6): the clients the user consented to, with the scopes
//! granted, and a button that withdraws the consent and revokes every token of that client.

use crate::OAuth;
use crate::clients;
use crate::codes;
use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;
use palisade_audit::{Action, Outcome};
use palisade_http::AppError;
use palisade_identity::csrf::{Csrf, CsrfForm};
use palisade_identity::{RequestContext, SignedIn};
use serde::Deserialize;

struct App {
    client_id: String,
    name: String,
    scope: String,
}

#[derive(Template)]
#[template(path = "apps.html")]
struct AppsPage<'a> {
    csrf: &'a str,
    signed_in: bool,
    apps: Vec<App>,
}

pub(crate) async fn page(
    State(oauth): State<OAuth>,
    csrf: Csrf,
    me: SignedIn,
) -> Result<Response, AppError> {
    let mut apps = Vec::new();
    for (client_id, scope, _) in codes::consents_of(&oauth.0.db, &me.user.id).await? {
        let name = clients::find(&oauth.0.db, &client_id)
            .await?
            .map_or_else(|| "A removed application".to_owned(), |c| c.name);
        apps.push(App {
            client_id,
            name,
            scope,
        });
    }
    let page = AppsPage {
        csrf: &csrf.token,
        signed_in: true,
        apps,
    };
    Ok((
        csrf.clone(),
        palisade_identity::pages::render(StatusCode::OK, &page),
    )
        .into_response())
}

#[derive(Deserialize)]
pub(crate) struct RevokeForm {
    client_id: String,
}

pub(crate) async fn revoke(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    me: SignedIn,
    CsrfForm(form): CsrfForm<RevokeForm>,
) -> Result<Response, AppError> {
    let (consented, grants) =
        codes::withdraw_consent(&oauth.0.db, &me.user.id, &form.client_id).await?;
    for grant in &grants {
        oauth.0.auth.revocations().grant_revoked(grant).await;
    }
    if consented {
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
