//! The account's messages pages (SOC-3, RTM-7), for a signed-in user of Palisade's own site:
//! the conversations with their unread counts, a form to start one, and a conversation shown
//! live over the real-time gateway (`/static/messages.js` with the browser client). The session
//! acts as its principal, decided by the same policies as the API.

use crate::Social;
use crate::messages::Summary;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;
use palisade_authz::Action;
use palisade_http::AppError;
use palisade_identity::SignedIn;
use palisade_identity::csrf::{Csrf, CsrfForm};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "messages.html")]
struct MessagesPage<'a> {
    csrf: &'a str,
    signed_in: bool,
    account_id: &'a str,
    conversations: Vec<Summary>,
}

#[derive(Template)]
#[template(path = "conversation.html")]
struct ConversationPage<'a> {
    csrf: &'a str,
    signed_in: bool,
    account_id: &'a str,
    id: &'a str,
}

pub(crate) async fn list(
    State(social): State<Social>,
    csrf: Csrf,
    me: SignedIn,
) -> Result<Response, AppError> {
    let conversations = social.summaries(&me.principal()).await?;
    let page = MessagesPage {
        csrf: &csrf.token,
        signed_in: true,
        account_id: &me.user.id,
        conversations,
    };
    Ok((
        csrf.clone(),
        palisade_identity::pages::render(StatusCode::OK, &page),
    )
        .into_response())
}

#[derive(Deserialize)]
pub(crate) struct StartForm {
    with: String,
}

pub(crate) async fn start(
    State(social): State<Social>,
    me: SignedIn,
    CsrfForm(form): CsrfForm<StartForm>,
) -> Result<Response, AppError> {
    let conversation = social
        .start_conversation(&me.principal(), vec![form.with.trim().to_owned()])
        .await?;
    Ok(Redirect::to(&format!("/account/messages/{}", conversation.id)).into_response())
}

pub(crate) async fn conversation(
    State(social): State<Social>,
    csrf: Csrf,
    me: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let conversation = social
        .authorized_conversation(&me.principal(), Action::ReadConversation, &id)
        .await?;
    let page = ConversationPage {
        csrf: &csrf.token,
        signed_in: true,
        account_id: &me.user.id,
        id: &conversation.id,
    };
    Ok((
        csrf.clone(),
        palisade_identity::pages::render(StatusCode::OK, &page),
    )
        .into_response())
}
