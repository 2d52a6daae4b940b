//! What a channel is, who may use it, and where its messages are kept: the gateway's questions
//! to the domain that owns the channels ([`Channels`], implemented by the social API, whose
//! policies decide subscribe and publish exactly as they decide its REST calls). The gateway
//! only moves what the domain stored.
//!
//! Every channel is a view of a durable stream numbered 1, 2, 3, … without gaps (a
//! conversation's messages, a user's notifications, an author's posts): that numbering is the
//! offset a client resumes from, and what lets the gateway see a gap and fill it from the
//! store instead of losing a message.

use futures_util::future::BoxFuture;
use palisade_principal::Principal;
use serde_json::value::RawValue;

/// A subscription the domain allowed.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The durable stream behind the channel (the same for every subscriber of a shared
    /// channel; the user's own for `notifications`).
    pub stream: String,
    /// Changes when the stream's numbering starts over: positions of another epoch are void.
    pub epoch: String,
    /// The last offset now (0: empty).
    pub head: u64,
    /// The audiences this subscriber belongs to, beyond everyone (`followers`).
    pub audiences: Vec<String>,
}

impl Grant {
    /// Whether this subscriber may see an event for `audience` (`None`: everyone).
    pub fn admits(&self, audience: Option<&str>) -> bool {
        audience.is_none_or(|a| self.audiences.iter().any(|mine| mine == a))
    }
}

/// An event of a stream, as stored.
#[derive(Debug, Clone)]
pub struct Event {
    pub offset: u64,
    pub audience: Option<String>,
    pub data: Box<RawValue>,
}

/// A publish the domain accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub offset: u64,
    /// The idempotency key had been used: nothing new was stored or delivered.
    pub duplicate: bool,
}

/// Why the domain refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// No such channel, or not one this principal may know exists.
    #[error("no such channel")]
    NotFound,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The store did not answer: try again shortly.
    #[error("temporarily unavailable")]
    Unavailable,
}

impl ChannelError {
    /// The stable code of the error frame.
    pub fn code(&self) -> &'static str {
        match self {
            ChannelError::NotFound => "not_found",
            ChannelError::Forbidden(_) => "forbidden",
            ChannelError::Invalid { code, .. } => code,
            ChannelError::Unavailable => "unavailable",
        }
    }
}

/// The domain's side of the gateway.
pub trait Channels: Send + Sync + 'static {
    /// Whether `principal` may subscribe to `channel`, and to what.
    fn subscribe<'a>(
        &'a self,
        principal: &'a Principal,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Grant, ChannelError>>;

    /// Up to `limit` events of `grant`'s stream after `after`, in order (all of them, whatever
    /// their audience: the gateway filters).
    fn history<'a>(
        &'a self,
        grant: &'a Grant,
        after: u64,
        limit: u64,
    ) -> BoxFuture<'a, Result<Vec<Event>, ChannelError>>;

    /// Stores `data` on `channel` as `principal`, once per idempotency `key`, and publishes it
    /// (see [`crate::Fanout`]).
    fn publish<'a>(
        &'a self,
        principal: &'a Principal,
        channel: &'a str,
        key: &'a str,
        data: &'a RawValue,
    ) -> BoxFuture<'a, Result<Accepted, ChannelError>>;

    /// Records that `principal`'s device has received `grant`'s stream up to `offset`.
    fn acknowledge<'a>(
        &'a self,
        principal: &'a Principal,
        grant: &'a Grant,
        offset: u64,
    ) -> BoxFuture<'a, Result<(), ChannelError>>;
}
