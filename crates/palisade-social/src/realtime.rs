//! The social API's channels (RTM-7), decided by the same policies as its REST calls:
//!
//! - `conversation:<id>` — a conversation's messages (SOC-3), the very rows REST reads and
//!   writes, numbered as REST numbers them; participants read (`messages` scope), and send
//!   unless a block stands between them and another participant.
//! - `notifications` — the principal's own stream: a new follower, a new message.
//! - `posts:<account>` — an account's new and deleted posts, for whoever may read its profile;
//!   followers-only posts reach its followers only.

use crate::Social;
use crate::decide::within_reach;
use crate::graph;
use futures_util::future::BoxFuture;
use palisade_authz::{Action, Object};
use palisade_http::AppError;
use palisade_principal::Principal;
use palisade_realtime::streams::{self, DURABLE_EPOCH};
use palisade_realtime::{Accepted, ChannelError, Channels, Event, Grant};
use serde_json::value::RawValue;

const CONVERSATION: &str = "conversation:";
const NOTIFICATIONS: &str = "notifications";
const POSTS: &str = "posts:";
const FOLLOWERS: &str = "followers";

/// The channels of the social API, for the gateway.
pub struct SocialChannels(pub(crate) Social);

/// The stream of `user`'s notifications.
pub(crate) fn notifications_of(user: &str) -> String {
    format!("{NOTIFICATIONS}:{user}")
}

fn posts_of(author: &str) -> String {
    format!("{POSTS}{author}")
}

/// The one error type, as the gateway's.
fn refusal(e: AppError) -> ChannelError {
    match e {
        AppError::NotFound => ChannelError::NotFound,
        AppError::Forbidden { .. } => ChannelError::Forbidden("The policies do not allow this."),
        AppError::BadRequest { code, message } => ChannelError::Invalid { code, message },
        AppError::Internal(detail) => {
            tracing::error!(%detail, "real-time channel failed");
            ChannelError::Unavailable
        }
        _ => ChannelError::Unavailable,
    }
}

fn store_refusal(e: palisade_store::StoreError) -> ChannelError {
    refusal(e.into())
}

fn needs(principal: &Principal, scope: &'static str) -> Result<(), ChannelError> {
    if principal.has_scope(scope) {
        Ok(())
    } else {
        Err(ChannelError::Forbidden(
            "The token lacks the channel's scope.",
        ))
    }
}

impl Social {
    /// Appends to `user`'s notifications and tells their connections.
    pub(crate) async fn notify(
        &self,
        user: &str,
        data: &serde_json::Value,
    ) -> Result<(), AppError> {
        let raw = serde_json::value::to_raw_value(data).map_err(AppError::internal)?;
        let stream = notifications_of(user);
        let event = streams::append(&self.db, &stream, None, raw).await?;
        self.publish_notification(&stream, &event).await;
        Ok(())
    }

    /// Tells the connections of a notification stream about an event committed to it.
    pub(crate) async fn publish_notification(&self, stream: &str, event: &Event) {
        self.fanout
            .publish(stream, NOTIFICATIONS, DURABLE_EPOCH, event)
            .await;
    }

    /// Tells the subscribers of `author`'s posts; a private post reaches nobody.
    pub(crate) async fn post_event(
        &self,
        author: &str,
        visibility: &str,
        data: &serde_json::Value,
    ) -> Result<(), AppError> {
        let audience = match visibility {
            "public" => None,
            "followers" => Some(FOLLOWERS),
            _ => return Ok(()),
        };
        let raw = serde_json::value::to_raw_value(data).map_err(AppError::internal)?;
        let stream = posts_of(author);
        let event = streams::append(&self.db, &stream, audience, raw).await?;
        self.fanout
            .publish(&stream, &stream, DURABLE_EPOCH, &event)
            .await;
        Ok(())
    }

    async fn grant(&self, principal: &Principal, channel: &str) -> Result<Grant, ChannelError> {
        if let Some(id) = channel.strip_prefix(CONVERSATION) {
            needs(principal, "messages")?;
            let conversation = self
                .authorized_conversation(principal, Action::ReadConversation, id)
                .await
                .map_err(refusal)?;
            let head = self.last_seq(&conversation.id).await.map_err(refusal)?;
            return Ok(Grant {
                stream: channel.to_owned(),
                epoch: DURABLE_EPOCH.to_owned(),
                head,
                audiences: Vec::new(),
            });
        }
        if channel == NOTIFICATIONS {
            needs(principal, "social:read")?;
            return self
                .durable_grant(notifications_of(&principal.subject), Vec::new())
                .await;
        }
        if let Some(author) = channel.strip_prefix(POSTS) {
            needs(principal, "social:read")?;
            let profile = graph::profile(&self.db, author)
                .await
                .map_err(store_refusal)?
                .ok_or(ChannelError::NotFound)?;
            within_reach(principal, &profile.tenant_id).map_err(refusal)?;
            let object = Object::Profile {
                owner: &profile.user_id,
                tenant: &profile.tenant_id,
                public: profile.is_public == 1,
            };
            let owner = profile.user_id.as_str();
            self.require(
                principal,
                Action::ReadProfile,
                &object,
                Some(owner),
                &[owner],
            )
            .await
            .map_err(refusal)?;
            let follower = principal.subject == owner
                || graph::follows(&self.db, &principal.subject, owner)
                    .await
                    .map_err(store_refusal)?;
            let audiences = if follower {
                vec![FOLLOWERS.to_owned()]
            } else {
                Vec::new()
            };
            return self.durable_grant(posts_of(owner), audiences).await;
        }
        Err(ChannelError::NotFound)
    }

    /// A subscription to a stream of `realtime_events`, from its last offset now.
    async fn durable_grant(
        &self,
        stream: String,
        audiences: Vec<String>,
    ) -> Result<Grant, ChannelError> {
        let head = streams::head(&self.db, &stream)
            .await
            .map_err(store_refusal)?;
        Ok(Grant {
            stream,
            epoch: DURABLE_EPOCH.to_owned(),
            head,
            audiences,
        })
    }
}

impl Channels for SocialChannels {
    fn subscribe<'a>(
        &'a self,
        principal: &'a Principal,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Grant, ChannelError>> {
        Box::pin(self.0.grant(principal, channel))
    }

    fn history<'a>(
        &'a self,
        grant: &'a Grant,
        after: u64,
        limit: u64,
    ) -> BoxFuture<'a, Result<Vec<Event>, ChannelError>> {
        Box::pin(async move {
            match grant.stream.strip_prefix(CONVERSATION) {
                Some(id) => self
                    .0
                    .messages_after(id, after, limit)
                    .await
                    .map_err(refusal),
                None => streams::after(&self.0.db, &grant.stream, after, limit)
                    .await
                    .map_err(store_refusal),
            }
        })
    }

    fn publish<'a>(
        &'a self,
        principal: &'a Principal,
        channel: &'a str,
        key: &'a str,
        data: &'a RawValue,
    ) -> BoxFuture<'a, Result<Accepted, ChannelError>> {
        Box::pin(async move {
            let Some(id) = channel.strip_prefix(CONVERSATION) else {
                return Err(match self.0.grant(principal, channel).await {
                    Ok(_) => ChannelError::Forbidden("Only the server writes to this channel."),
                    Err(e) => e,
                });
            };
            needs(principal, "messages")?;
            let message = crate::messages::NewMessage::from_raw(data).map_err(|message| {
                ChannelError::Invalid {
                    code: "invalid_message",
                    message,
                }
            })?;
            let conversation = self
                .0
                .authorized_conversation(principal, Action::SendMessage, id)
                .await
                .map_err(refusal)?;
            let (offset, duplicate) = self
                .0
                .send_message(&conversation, &principal.subject, &message, Some(key))
                .await
                .map_err(refusal)?;
            Ok(Accepted {
                offset: offset as u64,
                duplicate,
            })
        })
    }

    fn acknowledge<'a>(
        &'a self,
        principal: &'a Principal,
        grant: &'a Grant,
        offset: u64,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            if let Some(id) = grant.stream.strip_prefix(CONVERSATION) {
                self.0
                    .mark_delivered(id, &principal.subject, offset)
                    .await
                    .map_err(refusal)?;
            }
            Ok(())
        })
    }
}
