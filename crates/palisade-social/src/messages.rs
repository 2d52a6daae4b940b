//! Direct messages (SOC-3): conversations between accounts of one tenant, messages numbered
//! per conversation, history newest first by that number, and a read marker per member. Only
//! participants read or write, and a block between the sender and any other participant stops
//! the conversation for them (the policies decide both).

use crate::Social;
use crate::decide::{refused, store, within_reach};
use crate::graph;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use palisade_authz::{Action, Object};
use palisade_http::AppError;
use palisade_http::input::{Json, Query, Text};
use palisade_http::routes::ErrorBody;
use palisade_principal::Principal;
use palisade_store::{StoreError, new_id, now_ms};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

const MAX_PARTICIPANTS: usize = 50;
const MAX_MESSAGE: usize = 5_000;
const PAGE_DEFAULT: i64 = 50;
const PAGE_MAX: i64 = 200;

struct Conversation {
    id: String,
    tenant_id: String,
    participants: Vec<String>,
}

impl Social {
    async fn conversation(&self, id: &str) -> Result<Option<Conversation>, AppError> {
        let tenant: Option<(String,)> =
            sqlx::query_as("SELECT tenant_id FROM conversations WHERE id = $1")
                .bind(id)
                .fetch_optional(self.db.pool())
                .await
                .map_err(store)?;
        let Some((tenant_id,)) = tenant else {
            return Ok(None);
        };
        let members: Vec<(String,)> = sqlx::query_as(
            "SELECT user_id FROM conversation_members WHERE conversation_id = $1 ORDER BY user_id",
        )
        .bind(id)
        .fetch_all(self.db.pool())
        .await
        .map_err(store)?;
        Ok(Some(Conversation {
            id: id.to_owned(),
            tenant_id,
            participants: members.into_iter().map(|(u,)| u).collect(),
        }))
    }

    /// Whether the principal may do `action` in `conversation`: a block between the principal
    /// and any other participant counts.
    async fn may_converse(
        &self,
        principal: &Principal,
        action: Action,
        conversation: &Conversation,
    ) -> Result<bool, AppError> {
        let participants: Vec<&str> = conversation
            .participants
            .iter()
            .map(String::as_str)
            .collect();
        let object = Object::Conversation {
            id: &conversation.id,
            participants: &participants,
            tenant: &conversation.tenant_id,
        };
        self.allows(principal, action, &object, None, &participants)
            .await
    }

    async fn authorized_conversation(
        &self,
        principal: &Principal,
        action: Action,
        id: &str,
    ) -> Result<Conversation, AppError> {
        let conversation = self.conversation(id).await?.ok_or(AppError::NotFound)?;
        within_reach(principal, &conversation.tenant_id)?;
        if !self.may_converse(principal, action, &conversation).await? {
            return Err(refused());
        }
        Ok(conversation)
    }
}

/// A new conversation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewConversation {
    /// The other participants' account ids.
    #[schema(min_items = 1, max_items = 49)]
    with: Vec<String>,
}

/// A conversation just started.
#[derive(Serialize, ToSchema)]
pub(crate) struct Started {
    id: String,
    /// Every participant's account id, the principal's included.
    participants: Vec<String>,
}

/// Starts a conversation between the principal and `with`, all accounts of its tenant.
#[utoipa::path(post, path = "/api/conversations", tag = "messages", request_body = NewConversation,
    responses((status = 201, description = "The conversation", body = Started)))]
pub(crate) async fn start(
    State(social): State<Social>,
    principal: Principal,
    Json(new): Json<NewConversation>,
) -> Result<Response, AppError> {
    let mut participants = new.with;
    participants.push(principal.subject.clone());
    participants.sort();
    participants.dedup();
    if participants.len() < 2 || participants.len() > MAX_PARTICIPANTS {
        return Err(AppError::bad_request(
            "invalid_conversation",
            format!("A conversation has 2 to {MAX_PARTICIPANTS} participants."),
        ));
    }
    for p in &participants {
        let same_tenant = graph::profile(&social.db, p)
            .await?
            .is_some_and(|profile| profile.tenant_id == principal.tenant.as_str());
        if !same_tenant {
            return Err(AppError::bad_request(
                "invalid_conversation",
                "Every participant must be an account of your organisation.",
            ));
        }
    }
    let conversation = Conversation {
        id: new_id(),
        tenant_id: principal.tenant.to_string(),
        participants,
    };
    if !social
        .may_converse(&principal, Action::SendMessage, &conversation)
        .await?
    {
        return Err(refused());
    }
    let mut tx = social.db.begin().await.map_err(store)?;
    sqlx::query("INSERT INTO conversations (id, tenant_id, created_at) VALUES ($1, $2, $3)")
        .bind(&conversation.id)
        .bind(&conversation.tenant_id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(store)?;
    for p in &conversation.participants {
        sqlx::query(
            "INSERT INTO conversation_members (conversation_id, user_id, read_seq) VALUES ($1, $2, 0)",
        )
        .bind(&conversation.id)
        .bind(p)
        .execute(&mut *tx)
        .await
        .map_err(store)?;
    }
    tx.commit().await.map_err(store)?;
    Ok((
        StatusCode::CREATED,
        Json(Started {
            id: conversation.id,
            participants: conversation.participants,
        }),
    )
        .into_response())
}

/// One of the principal's conversations.
#[derive(Serialize, ToSchema)]
pub(crate) struct Summary {
    id: String,
    /// The number of its last message; 0 when it has none.
    last_seq: i64,
    /// Others' messages after the principal's read marker.
    unread: i64,
}

/// The principal's conversations.
#[derive(Serialize, ToSchema)]
pub(crate) struct Conversations {
    conversations: Vec<Summary>,
}

/// The principal's conversations with their unread counts.
#[utoipa::path(get, path = "/api/conversations", tag = "messages",
    responses((status = 200, description = "The conversations", body = Conversations)))]
pub(crate) async fn list(
    State(social): State<Social>,
    principal: Principal,
) -> Result<Response, AppError> {
    // Unread: others' messages after the marker; what one sent oneself has been read.
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT m.conversation_id, \
         (SELECT COUNT(*) FROM messages WHERE conversation_id = m.conversation_id \
          AND seq > m.read_seq AND sender_id <> m.user_id), \
         COALESCE((SELECT MAX(seq) FROM messages WHERE conversation_id = m.conversation_id), 0) \
         FROM conversation_members m WHERE m.user_id = $1 ORDER BY m.conversation_id",
    )
    .bind(&principal.subject)
    .fetch_all(social.db.pool())
    .await
    .map_err(store)?;
    let conversations = rows
        .into_iter()
        .map(|(id, unread, last)| Summary {
            id,
            last_seq: last,
            unread,
        })
        .collect();
    Ok(Json(Conversations { conversations }).into_response())
}

/// A new message.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewMessage {
    /// Not blank; line breaks and tabs are the only control characters allowed.
    #[schema(value_type = String, min_length = 1, max_length = 5000)]
    body: Text<1, MAX_MESSAGE>,
}

/// A message just sent.
#[derive(Serialize, ToSchema)]
pub(crate) struct Sent {
    /// Its number in the conversation.
    seq: i64,
}

/// Sends a message to a conversation the principal takes part in.
#[utoipa::path(post, path = "/api/conversations/{id}/messages", tag = "messages",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = NewMessage,
    responses((status = 201, description = "Sent", body = Sent),
              (status = 409, description = "Too many concurrent senders; send again", body = ErrorBody)))]
pub(crate) async fn send(
    State(social): State<Social>,
    principal: Principal,
    Path(id): Path<String>,
    Json(message): Json<NewMessage>,
) -> Result<Response, AppError> {
    let conversation = social
        .authorized_conversation(&principal, Action::SendMessage, &id)
        .await?;
    // The next number in the conversation; of two concurrent senders the primary key lets one
    // through, and the other takes the number after it.
    for _ in 0..5 {
        let (seq,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation_id = $1",
        )
        .bind(&conversation.id)
        .fetch_one(social.db.pool())
        .await
        .map_err(store)?;
        let inserted = sqlx::query(
            "INSERT INTO messages (conversation_id, seq, sender_id, body, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&conversation.id)
        .bind(seq)
        .bind(&principal.subject)
        .bind(message.body.as_str())
        .bind(now_ms())
        .execute(social.db.pool())
        .await;
        match inserted {
            Ok(_) => return Ok((StatusCode::CREATED, Json(Sent { seq })).into_response()),
            Err(e) => {
                let e = StoreError::from(e);
                if !e.is_unique_violation() {
                    return Err(e.into());
                }
            }
        }
    }
    Err(AppError::Conflict {
        code: "busy",
        message: "The conversation is busy; send again.".into(),
    })
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryPage {
    /// Messages numbered below this (the previous page's `next`).
    before: Option<i64>,
    /// Messages per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// A message.
#[derive(Serialize, ToSchema)]
pub(crate) struct MessageView {
    seq: i64,
    /// The sender's account id.
    sender: String,
    body: String,
    /// Unix milliseconds.
    created_at: i64,
}

/// A page of a conversation's history.
#[derive(Serialize, ToSchema)]
pub(crate) struct History {
    messages: Vec<MessageView>,
    /// The `before` of the next page; null at the end.
    next: Option<i64>,
}

/// The conversation's messages, newest first.
#[utoipa::path(get, path = "/api/conversations/{id}/messages", tag = "messages",
    params(("id" = String, Path, description = "The conversation's id"), HistoryPage),
    responses((status = 200, description = "A page of messages", body = History)))]
pub(crate) async fn history(
    State(social): State<Social>,
    principal: Principal,
    Path(id): Path<String>,
    Query(page): Query<HistoryPage>,
) -> Result<Response, AppError> {
    let conversation = social
        .authorized_conversation(&principal, Action::ReadConversation, &id)
        .await?;
    let limit = crate::page_size(page.limit, PAGE_DEFAULT, PAGE_MAX)?;
    let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
        "SELECT seq, sender_id, body, created_at FROM messages \
         WHERE conversation_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
    )
    .bind(&conversation.id)
    .bind(page.before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(social.db.pool())
    .await
    .map_err(store)?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.0))
        .flatten();
    let messages = rows
        .into_iter()
        .map(|(seq, sender, body, created_at)| MessageView {
            seq,
            sender,
            body,
            created_at,
        })
        .collect();
    Ok(Json(History { messages, next }).into_response())
}

/// How far the principal has read.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadMarker {
    /// The number of the last message read.
    seq: i64,
}

/// Moves the principal's read marker forward to `seq` (never back, never past the last).
#[utoipa::path(put, path = "/api/conversations/{id}/read", tag = "messages",
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = ReadMarker,
    responses((status = 204, description = "Marked")))]
pub(crate) async fn mark_read(
    State(social): State<Social>,
    principal: Principal,
    Path(id): Path<String>,
    Json(marker): Json<ReadMarker>,
) -> Result<Response, AppError> {
    let conversation = social
        .authorized_conversation(&principal, Action::ReadConversation, &id)
        .await?;
    sqlx::query(
        "UPDATE conversation_members SET read_seq = $1 \
         WHERE conversation_id = $2 AND user_id = $3 AND read_seq < $1 \
         AND $1 <= (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = $2)",
    )
    .bind(marker.seq)
    .bind(&conversation.id)
    .bind(&principal.subject)
    .execute(social.db.pool())
    .await
    .map_err(store)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
