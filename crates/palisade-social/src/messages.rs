//! Direct messages (SOC-3): conversations between accounts of one tenant, messages numbered
//! per conversation, history newest first by that number, and a read marker per member. Only
//! participants read or write, and a block between the sender and any other participant stops
//! the conversation for them (the policies decide both).

use crate::Social;
use crate::decide::{refused, store, within_reach};
use crate::graph;
use crate::realtime::notifications_of;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use palisade_authz::{Action, Object};
use palisade_http::AppError;
use palisade_http::input::{Json, Query, Text};
use palisade_http::routes::ErrorBody;
use palisade_principal::Principal;
use palisade_realtime::Event;
use palisade_realtime::streams::{self, DURABLE_EPOCH};
use palisade_store::{StoreError, new_id, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

const MAX_PARTICIPANTS: usize = 50;
const MAX_MESSAGE: usize = 5_000;
const PAGE_DEFAULT: i64 = 50;
const PAGE_MAX: i64 = 200;

pub(crate) struct Conversation {
    pub(crate) id: String,
    tenant_id: String,
    pub(crate) participants: Vec<String>,
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

    pub(crate) async fn authorized_conversation(
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
    let conversation = social.start_conversation(&principal, new.with).await?;
    Ok((
        StatusCode::CREATED,
        Json(Started {
            id: conversation.id,
            participants: conversation.participants,
        }),
    )
        .into_response())
}

impl Social {
    /// Starts a conversation between the principal and `with`, all accounts of its tenant.
    pub(crate) async fn start_conversation(
        &self,
        principal: &Principal,
        with: Vec<String>,
    ) -> Result<Conversation, AppError> {
        let mut participants = with;
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
            let same_tenant = graph::profile(&self.db, p)
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
        if !self
            .may_converse(principal, Action::SendMessage, &conversation)
            .await?
        {
            return Err(refused());
        }
        let mut tx = self.db.begin().await.map_err(store)?;
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
        Ok(conversation)
    }
}

/// One of the principal's conversations.
#[derive(Serialize, ToSchema)]
pub(crate) struct Summary {
    pub(crate) id: String,
    /// The number of its last message; 0 when it has none.
    last_seq: i64,
    /// Others' messages after the principal's read marker.
    pub(crate) unread: i64,
    /// How far the principal's devices have received it (their acknowledgements).
    delivered_seq: i64,
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
    let conversations = social.summaries(&principal).await?;
    Ok(Json(Conversations { conversations }).into_response())
}

impl Social {
    /// The principal's conversations with their unread counts.
    pub(crate) async fn summaries(&self, principal: &Principal) -> Result<Vec<Summary>, AppError> {
        // Unread: others' messages after the marker; what one sent oneself has been read.
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT m.conversation_id, m.delivered_seq, \
             (SELECT COUNT(*) FROM messages WHERE conversation_id = m.conversation_id \
              AND seq > m.read_seq AND sender_id <> m.user_id), \
             COALESCE((SELECT MAX(seq) FROM messages WHERE conversation_id = m.conversation_id), 0) \
             FROM conversation_members m WHERE m.user_id = $1 ORDER BY m.conversation_id",
        )
        .bind(&principal.subject)
        .fetch_all(self.db.pool())
        .await
        .map_err(store)?;
        Ok(rows
            .into_iter()
            .map(|(id, delivered_seq, unread, last)| Summary {
                id,
                last_seq: last,
                unread,
                delivered_seq,
            })
            .collect())
    }
}

/// A new message.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewMessage {
    /// Not blank; line breaks and tabs are the only control characters allowed.
    #[schema(value_type = String, min_length = 1, max_length = 5000)]
    body: Text<1, MAX_MESSAGE>,
}

impl NewMessage {
    /// A message sent over a socket: the same fields and rules as over REST.
    pub(crate) fn from_raw(data: &RawValue) -> Result<Self, String> {
        let mut reader = serde_json::Deserializer::from_str(data.get());
        serde_path_to_error::deserialize(&mut reader)
            .map_err(|e| format!("{}: {}", e.path(), e.inner()))
    }
}

/// A message just sent.
#[derive(Serialize, ToSchema)]
pub(crate) struct Sent {
    /// Its number in the conversation.
    seq: i64,
    /// The `Idempotency-Key` had been used: this is the message it sent then.
    duplicate: bool,
}

/// The header that makes a send safe to retry.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Sends a message to a conversation the principal takes part in. With an `Idempotency-Key`
/// (1 to 64 letters, digits, `-`, `_`, `.`, `:`), a retry — over REST or a socket — answers with
/// the message the first attempt stored instead of storing it again.
#[utoipa::path(post, path = "/api/conversations/{id}/messages", tag = "messages",
    params(("id" = String, Path, description = "The conversation's id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes the send safe to retry")),
    request_body = NewMessage,
    responses((status = 201, description = "Sent", body = Sent),
              (status = 200, description = "Sent before with this key", body = Sent),
              (status = 409, description = "Too many concurrent senders; send again", body = ErrorBody)))]
pub(crate) async fn send(
    State(social): State<Social>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(message): Json<NewMessage>,
) -> Result<Response, AppError> {
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .filter(|k| palisade_realtime_client::protocol::valid_key(k))
                .ok_or_else(|| {
                    AppError::bad_request(
                        "invalid_idempotency_key",
                        "Idempotency-Key is 1 to 64 letters, digits, '-', '_', '.' or ':'.",
                    )
                })?,
        ),
    };
    let conversation = social
        .authorized_conversation(&principal, Action::SendMessage, &id)
        .await?;
    let (seq, duplicate) = social
        .send_message(&conversation, &principal.subject, &message, key)
        .await?;
    let status = if duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(Sent { seq, duplicate })).into_response())
}

/// The notification of a new message.
fn notice(conversation: &str, seq: i64, sender: &str) -> Result<Box<RawValue>, serde_json::Error> {
    serde_json::value::to_raw_value(&serde_json::json!({
        "kind": "message", "conversation": conversation, "seq": seq, "sender": sender,
    }))
}

/// A message as its channel delivers it (its number is the event's offset).
fn event_data(sender: &str, body: &str, created_at: i64) -> Result<Box<RawValue>, AppError> {
    serde_json::value::to_raw_value(
        &serde_json::json!({"sender": sender, "body": body, "created_at": created_at}),
    )
    .map_err(AppError::internal)
}

/// A message as committed: its number, and its notice in each other participant's
/// notifications (the stream and the offset there).
pub(crate) struct Stored {
    seq: i64,
    notice: Box<RawValue>,
    notes: Vec<(String, u64)>,
}

impl Social {
    /// Stores a message from `sender` — once per idempotency key — and tells the
    /// conversation's subscribers and the other participants' notifications. The number and
    /// whether the key had been used.
    pub(crate) async fn send_message(
        &self,
        conversation: &Conversation,
        sender: &str,
        message: &NewMessage,
        key: Option<&str>,
    ) -> Result<(i64, bool), AppError> {
        let body = message.body.as_str();
        // The next number in the conversation and in each other participant's notifications,
        // in one transaction, whose commit other senders' messages share (group commit). Of two
        // concurrent senders (on two nodes; one writer's batch runs in turn) the primary
        // keys let one through, and the other retries with the numbers after it. Of two sends
        // with one key, the unique index lets one through, and the other finds it.
        let others: Vec<String> = conversation
            .participants
            .iter()
            .filter(|p| *p != sender)
            .cloned()
            .collect();
        for _ in 0..5 {
            if let Some(seq) = self.sent_with(conversation, sender, key).await? {
                return Ok((seq, true));
            }
            let created_at = now_ms();
            let (id, from, text) = (conversation.id.clone(), sender.to_owned(), body.to_owned());
            let (client_key, others) = (key.map(str::to_owned), others.clone());
            let stored = self
                .messages
                .run(move |conn| {
                    Box::pin(async move {
                        let (seq,): (i64,) = sqlx::query_as(
                            "INSERT INTO messages (conversation_id, seq, sender_id, body, created_at, client_key) \
                             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM messages \
                             WHERE conversation_id = $1 RETURNING seq",
                        )
                        .bind(&id)
                        .bind(&from)
                        .bind(&text)
                        .bind(created_at)
                        .bind(&client_key)
                        .fetch_one(&mut *conn)
                        .await?;
                        let notice = notice(&id, seq, &from)
                            .map_err(|e| StoreError::Database(sqlx::Error::Encode(e.into())))?;
                        let mut notes = Vec::new();
                        for other in &others {
                            let stream = notifications_of(other);
                            let offset = streams::append_in(conn, &stream, None, &notice).await?;
                            notes.push((stream, offset));
                        }
                        Ok(Stored { seq, notice, notes })
                    })
                })
                .await;
            match stored {
                Ok(Stored { seq, notice, notes }) => {
                    self.delivered(conversation, sender, seq, body, created_at, notice, notes)
                        .await?;
                    return Ok((seq, false));
                }
                Err(e) if e.is_unique_violation() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Conflict {
            code: "busy",
            message: "The conversation is busy; send again.".into(),
        })
    }

    async fn sent_with(
        &self,
        conversation: &Conversation,
        sender: &str,
        key: Option<&str>,
    ) -> Result<Option<i64>, AppError> {
        let Some(key) = key else { return Ok(None) };
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT seq FROM messages WHERE conversation_id = $1 AND sender_id = $2 AND client_key = $3",
        )
        .bind(&conversation.id)
        .bind(sender)
        .bind(key)
        .fetch_optional(self.db.pool())
        .await
        .map_err(store)?;
        Ok(row.map(|(seq,)| seq))
    }

    /// Once a message and its notifications are committed: every node's subscribers.
    #[allow(clippy::too_many_arguments)] // the one place all of a send's results meet
    async fn delivered(
        &self,
        conversation: &Conversation,
        sender: &str,
        seq: i64,
        body: &str,
        created_at: i64,
        notice: Box<RawValue>,
        notes: Vec<(String, u64)>,
    ) -> Result<(), AppError> {
        let stream = format!("conversation:{}", conversation.id);
        let event = Event {
            offset: seq as u64,
            audience: None,
            data: event_data(sender, body, created_at)?,
        };
        self.fanout
            .publish(&stream, &stream, DURABLE_EPOCH, &event)
            .await;
        for (stream, offset) in notes {
            let event = Event {
                offset,
                audience: None,
                data: notice.clone(),
            };
            self.publish_notification(&stream, &event).await;
        }
        Ok(())
    }

    /// The number of the conversation's last message; 0 when it has none.
    pub(crate) async fn last_seq(&self, id: &str) -> Result<u64, AppError> {
        let (last,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = $1")
                .bind(id)
                .fetch_one(self.db.pool())
                .await
                .map_err(store)?;
        Ok(last as u64)
    }

    /// Up to `limit` messages after number `after`, oldest first, as channel events.
    pub(crate) async fn messages_after(
        &self,
        id: &str,
        after: u64,
        limit: u64,
    ) -> Result<Vec<Event>, AppError> {
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT seq, sender_id, body, created_at FROM messages \
             WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(id)
        .bind(after as i64)
        .bind(limit as i64)
        .fetch_all(self.db.pool())
        .await
        .map_err(store)?;
        rows.into_iter()
            .map(|(seq, sender, body, created_at)| {
                Ok(Event {
                    offset: seq as u64,
                    audience: None,
                    data: event_data(&sender, &body, created_at)?,
                })
            })
            .collect()
    }

    /// Moves `user`'s delivered marker forward to `seq` (never back, never past the last).
    pub(crate) async fn mark_delivered(
        &self,
        id: &str,
        user: &str,
        seq: u64,
    ) -> Result<(), AppError> {
        sqlx::query(
            "UPDATE conversation_members SET delivered_seq = $1 \
             WHERE conversation_id = $2 AND user_id = $3 AND delivered_seq < $1 \
             AND $1 <= (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = $2)",
        )
        .bind(seq as i64)
        .bind(id)
        .bind(user)
        .execute(self.db.pool())
        .await
        .map_err(store)?;
        Ok(())
    }
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
