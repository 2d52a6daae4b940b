//! One connection, from its welcome to its close: the client's commands, deliveries in stream
//! order without gaps or duplicates (RTM-4), heartbeats (RTM-3), the credential's lifetime
//! (RTM-2), and the limits it is held to (RTM-5, RTM-6).
//!
//! Deliveries: each subscription remembers the last offset it delivered. An event at the next
//! offset is sent; one at or before it is a duplicate and dropped; one past it means the bus
//! lost something (it delivers at most once), so the missing events are read from the store
//! first. Subscribing joins the fan-out *before* reading the store, so nothing published
//! in between is missed.

use crate::admission::{Admitted, USER_SLOTS};
use crate::channels::{ChannelError, Grant};
use crate::fanout::message_frame;
use crate::gateway::{Credential, Gateway, Registration};
use crate::hub::{Hub, Membership};
use crate::outbox::{self, Inbox, Outgoing, Stop};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use palisade_audit::{Action, Outcome, SecurityEvent};
use palisade_cluster::Rate;
use palisade_principal::{AuthError, Credentials, Principal};
use palisade_realtime_client::protocol::{self, ClientFrame, Limits, Position, ServerFrame, close};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a closing connection waits for the client's close reply.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Events read from the store per round when replaying.
const PAGE: u64 = 500;
/// Queued deliveries written per flush.
const BATCH: usize = 64;
/// Frames refused in a row (over the allowance, or not of the protocol) before the
/// connection is closed.
const REFUSALS_BEFORE_CLOSE: u32 = 20;

/// Why the connection ends.
struct Ending {
    code: Option<u16>,
    reason: &'static str,
}

impl Ending {
    fn close(code: u16, reason: &'static str) -> Self {
        Self {
            code: Some(code),
            reason,
        }
    }

    /// The connection is gone: nothing to send.
    fn gone(reason: &'static str) -> Self {
        Self { code: None, reason }
    }
}

struct Subscription {
    grant: Grant,
    last: u64,
    _membership: Membership,
}

/// A GCRA allowance of frames: `per_minute`, in bursts of as many.
struct Allowance {
    interval: Duration,
    tolerance: Duration,
    tat: Instant,
}

impl Allowance {
    fn new(per_minute: u32) -> Self {
        let interval = Duration::from_secs(60) / per_minute.max(1);
        Self {
            interval,
            tolerance: interval * per_minute.max(1),
            tat: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let after = self.tat.max(now) + self.interval;
        if after > now + self.tolerance {
            return false;
        }
        self.tat = after;
        true
    }
}

struct Connection {
    gateway: Gateway,
    admitted: Arc<Admitted>,
    principal: Principal,
    credential: Credential,
    stop: Stop,
    outbox: outbox::Outbox,
    subscriptions: HashMap<String, Subscription>,
    /// The channel each stream is subscribed as.
    channels_by_stream: HashMap<Arc<str>, String>,
    last_seq: u64,
    allowance: Allowance,
    refusals: u32,
    last_heard: Instant,
    expires: tokio::time::Instant,
    _registration: Registration,
}

pub(crate) async fn serve(gateway: Gateway, mut socket: WebSocket, admitted: Arc<Admitted>) {
    let inner = gateway.inner();
    let settings = &inner.settings;
    let stop = Stop::default();
    let (outbox, mut inbox) = outbox::bounded(
        settings.queue_messages,
        settings.queue_bytes,
        stop.clone(),
        inner.metrics.clone(),
    );
    let registration = gateway.register(
        admitted.id,
        admitted.principal.clone(),
        admitted.credential.clone(),
        stop.clone(),
        outbox.clone(),
    );
    inner.metrics.connections.inc();
    let mut connection = Connection {
        principal: admitted.principal.clone(),
        credential: admitted.credential.clone(),
        expires: deadline(admitted.principal.expires_at),
        gateway: gateway.clone(),
        admitted,
        stop,
        outbox,
        subscriptions: HashMap::new(),
        channels_by_stream: HashMap::new(),
        last_seq: 0,
        allowance: Allowance::new(settings.messages_per_minute),
        refusals: 0,
        last_heard: Instant::now(),
        _registration: registration,
    };
    let ending = connection.run(&mut socket, &mut inbox).await;
    drop(inbox);
    connection.subscriptions.clear();
    inner.metrics.connections.dec();
    inner.metrics.disconnected(ending.reason);
    if let Some(code) = ending.code {
        finish(&mut socket, code, ending.reason).await;
    }
    // Security closes are audited: revocations and limits.
    if matches!(
        ending.code,
        Some(
            close::REVOKED
                | close::RATE_LIMITED
                | close::SLOW_CONSUMER
                | close::PROTOCOL_ERRORS
                | close::TOO_BIG
        )
    ) {
        connection.audit_close(ending.reason).await;
    }
}

/// When a credential expiring at `expires_at` (Unix seconds) ends the connection.
fn deadline(expires_at: i64) -> tokio::time::Instant {
    let left = expires_at.saturating_mul(1000) - palisade_store::now_ms();
    tokio::time::Instant::now() + Duration::from_millis(left.max(0) as u64)
}

/// Sends the close frame and keeps reading until the client's reply (RFC 6455 §7.1.1: the
/// close handshake completes only once both sides sent one), or gives up after a while.
pub(crate) async fn finish(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    if tokio::time::timeout(CLOSE_WAIT, socket.send(Message::Close(Some(frame))))
        .await
        .is_err()
    {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
}

/// A frame the protocol sends, encoded.
fn text(frame: &ServerFrame) -> Message {
    Message::Text(
        serde_json::to_string(frame)
            .expect("server frames serialize")
            .into(),
    )
}

fn error(code: &str, message: impl Into<String>) -> ServerFrame {
    ServerFrame::Error {
        code: code.to_owned(),
        message: message.into(),
        seq: None,
        channel: None,
    }
}

impl Connection {
    async fn run(&mut self, socket: &mut WebSocket, inbox: &mut Inbox) -> Ending {
        let gateway = self.gateway.clone();
        let inner = gateway.inner();
        let settings = &inner.settings;
        let welcome = ServerFrame::Welcome {
            protocol: protocol::SUBPROTOCOL.to_owned(),
            connection: self.admitted.id.to_string(),
            subject: self.principal.subject.clone(),
            expires_at: self.principal.expires_at,
            limits: Limits {
                max_message_bytes: settings.max_message_bytes,
                max_subscriptions: settings.max_subscriptions,
                messages_per_minute: settings.messages_per_minute,
            },
        };
        if let Err(ending) = self.send(socket, text(&welcome)).await {
            return ending;
        }
        let mut heartbeat = tokio::time::interval(settings.ping_interval());
        heartbeat.reset();
        // The waits that end the connection are made once, not on every turn of the loop: each
        // would register with the timer or the shared shutdown token, per delivery.
        let shutdown = inner.shutdown.cancelled();
        let stop = self.stop.clone();
        let stopped = stop.stopped();
        let expiry = tokio::time::sleep_until(self.expires);
        tokio::pin!(shutdown, stopped, expiry);
        loop {
            let step = tokio::select! {
                biased;
                _ = &mut shutdown => {
                    Err(Ending::close(close::GOING_AWAY, "server shutting down"))
                }
                (code, reason) = &mut stopped => Err(Ending::close(code, reason)),
                _ = &mut expiry => {
                    Err(Ending::close(close::TOKEN_EXPIRED, "token expired"))
                }
                _ = heartbeat.tick() => self.heartbeat(socket).await,
                message = socket.recv() => self.received(socket, message).await,
                item = inbox.recv() => match item {
                    Some(item) => self.deliver_queued(socket, inbox, item).await,
                    None => Err(Ending::gone("queue closed")),
                },
            };
            if let Err(ending) = step {
                return ending;
            }
            // A credential refreshed in band moved the expiry.
            if expiry.deadline() != self.expires {
                expiry.as_mut().reset(self.expires);
            }
        }
    }

    async fn heartbeat(&mut self, socket: &mut WebSocket) -> Result<(), Ending> {
        let inner = self.gateway.inner();
        if self.last_heard.elapsed() > inner.settings.silence_limit() {
            return Err(Ending::close(close::HEARTBEAT_TIMEOUT, "heartbeat timeout"));
        }
        // Renew the user's connection slot, so that it lapses only if this node dies.
        inner
            .slots
            .acquire(
                USER_SLOTS,
                &self.principal.subject,
                &self.admitted.id.to_string(),
                u32::MAX,
                self.gateway.slot_lifetime(),
            )
            .await;
        self.send(socket, Message::Ping(Default::default())).await
    }

    /// Writes one message and flushes it, within the write timeout.
    async fn send(&self, socket: &mut WebSocket, message: Message) -> Result<(), Ending> {
        self.feed(socket, message).await?;
        self.flush(socket).await
    }

    async fn feed(&self, socket: &mut WebSocket, message: Message) -> Result<(), Ending> {
        let inner = self.gateway.inner();
        match tokio::time::timeout(inner.settings.write_timeout(), socket.feed(message)).await {
            Ok(Ok(())) => {
                inner.metrics.frames_out.inc();
                Ok(())
            }
            Ok(Err(_)) => Err(Ending::gone("write failed")),
            Err(_) => Err(Ending::gone("slow consumer")),
        }
    }

    async fn flush(&self, socket: &mut WebSocket) -> Result<(), Ending> {
        let timeout = self.gateway.inner().settings.write_timeout();
        match tokio::time::timeout(timeout, socket.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Ending::gone("write failed")),
            Err(_) => Err(Ending::gone("slow consumer")),
        }
    }

    async fn received(
        &mut self,
        socket: &mut WebSocket,
        message: Option<Result<Message, axum::Error>>,
    ) -> Result<(), Ending> {
        let message = match message {
            None => return Err(Ending::gone("client gone")),
            Some(Err(e)) => return Err(read_failure(&e)),
            Some(Ok(message)) => message,
        };
        self.last_heard = Instant::now();
        self.gateway.inner().metrics.frames_in.inc();
        match message {
            Message::Text(text) => self.command(socket, text.as_str()).await,
            Message::Binary(_) => {
                self.refused(socket, error("bad_frame", "Frames are JSON text."))
                    .await
            }
            Message::Close(_) => {
                // Keep reading: the close reply is sent while the socket is polled, and the
                // stream ends once it went out.
                while let Some(Ok(_)) = socket.recv().await {}
                Err(Ending::gone("client closed"))
            }
            Message::Ping(_) | Message::Pong(_) => Ok(()),
        }
    }

    /// Answers a refused frame; a client that keeps sending refused frames is closed.
    async fn refused(&mut self, socket: &mut WebSocket, frame: ServerFrame) -> Result<(), Ending> {
        self.refusals += 1;
        if self.refusals > REFUSALS_BEFORE_CLOSE {
            let limited =
                matches!(&frame, ServerFrame::Error { code, .. } if code == "rate_limited");
            return Err(if limited {
                Ending::close(close::RATE_LIMITED, "rate limited")
            } else {
                Ending::close(close::PROTOCOL_ERRORS, "protocol errors")
            });
        }
        self.send(socket, text(&frame)).await
    }

    async fn command(&mut self, socket: &mut WebSocket, raw: &str) -> Result<(), Ending> {
        if !self.allowance.take() {
            let frame = error(
                "rate_limited",
                "Too many frames on this connection; slow down.",
            );
            return self.refused(socket, frame).await;
        }
        let frame: ClientFrame = match serde_json::from_str(raw) {
            Ok(frame) => frame,
            Err(e) => {
                let frame = error(
                    "bad_frame",
                    format!("The frame is not of the palisade.v1 protocol: {e}."),
                );
                return self.refused(socket, frame).await;
            }
        };
        let answer = match frame {
            ClientFrame::Subscribe { channel, since } => {
                return self.subscribe(socket, channel, since).await;
            }
            ClientFrame::Unsubscribe { channel } => {
                if let Some(subscription) = self.subscriptions.remove(&channel) {
                    self.channels_by_stream
                        .remove(Hub::stream_of(&subscription._membership));
                }
                None
            }
            ClientFrame::Publish {
                channel,
                seq,
                key,
                data,
            } => Some(self.publish(channel, seq, key, data).await),
            ClientFrame::Ack { channel, offset } => self.acknowledge(channel, offset).await,
            ClientFrame::Refresh { token, ticket } => Some(self.refresh(token, ticket).await),
        };
        self.refusals = 0;
        match answer {
            Some(frame) => self.send(socket, text(&frame)).await,
            None => Ok(()),
        }
    }

    /// Counts a publish or a subscription against the user's allowance on every node; past it,
    /// the message of the refusal.
    async fn user_allowance(&self) -> Result<(), String> {
        let inner = self.gateway.inner();
        let rate = Rate {
            per_minute: inner.settings.user_messages_per_minute,
        };
        inner
            .counter
            .check("realtime.user", &self.principal.subject, rate)
            .await
            .map_err(|wait| {
                format!(
                    "Too many messages from this account; wait {} ms.",
                    wait.as_millis()
                )
            })
    }

    async fn subscribe(
        &mut self,
        socket: &mut WebSocket,
        channel: String,
        since: Option<Position>,
    ) -> Result<(), Ending> {
        let inner = self.gateway.inner();
        let on_channel = |code: &str, message: String| ServerFrame::Error {
            code: code.to_owned(),
            message,
            seq: None,
            channel: Some(channel.clone()),
        };
        if !self.subscriptions.contains_key(&channel)
            && self.subscriptions.len() >= inner.settings.max_subscriptions
        {
            let message = format!(
                "A connection has {} subscriptions at most.",
                inner.settings.max_subscriptions
            );
            let frame = on_channel("too_many_subscriptions", message);
            return self.send(socket, text(&frame)).await;
        }
        if let Err(message) = self.user_allowance().await {
            let frame = on_channel("rate_limited", message);
            return self.refused(socket, frame).await;
        }
        self.refusals = 0;
        let grant = match inner.channels.subscribe(&self.principal, &channel).await {
            Ok(grant) => grant,
            Err(e) => {
                let frame = channel_error(&e, None, &channel);
                return self.send(socket, text(&frame)).await;
            }
        };
        // Join the fan-out first: what is published from here on is queued, and the store
        // holds everything before.
        if let Some(old) = self.subscriptions.remove(&channel) {
            self.channels_by_stream
                .remove(Hub::stream_of(&old._membership));
        }
        let membership = inner
            .hub
            .join(&grant.stream, self.admitted.id, self.outbox.clone());
        self.channels_by_stream
            .insert(Hub::stream_of(&membership).clone(), channel.clone());
        let head = grant.head;
        let limit = inner.settings.history_limit;
        let (start, recovered, reason) = match since {
            None => (head, true, None),
            Some(p) if p.epoch != grant.epoch => (head, false, Some("epoch changed")),
            Some(p) if p.offset > head => (head, false, Some("position ahead of the stream")),
            Some(p) if head - p.offset > limit => {
                (head, false, Some("too far behind: reload the history"))
            }
            Some(p) => (p.offset, true, None),
        };
        let subscribed = ServerFrame::Subscribed {
            channel: channel.clone(),
            epoch: grant.epoch.clone(),
            offset: head,
            recovered,
            reason: reason.map(str::to_owned),
        };
        self.subscriptions.insert(
            channel.clone(),
            Subscription {
                grant,
                last: start,
                _membership: membership,
            },
        );
        self.send(socket, text(&subscribed)).await?;
        // What came after the start: the missed events of a recovery, and anything published
        // while subscribing.
        self.replay(socket, &channel, None).await?;
        self.flush(socket).await
    }

    /// Sends `channel`'s stored events after its last offset (up to `until`), in order.
    async fn replay(
        &mut self,
        socket: &mut WebSocket,
        channel: &str,
        until: Option<u64>,
    ) -> Result<(), Ending> {
        let inner = self.gateway.inner();
        loop {
            let Some(subscription) = self.subscriptions.get(channel) else {
                return Ok(());
            };
            let (last, grant) = (subscription.last, subscription.grant.clone());
            if until.is_some_and(|u| last >= u) {
                return Ok(());
            }
            let events = match inner.channels.history(&grant, last, PAGE).await {
                Ok(events) => events,
                Err(e) => {
                    // The store is away: the subscriber is told it may have missed something
                    // rather than silently skipping it.
                    tracing::warn!(error = %e, "real-time replay failed");
                    let frame = ServerFrame::Unsubscribed {
                        channel: channel.to_owned(),
                        reason: "store unavailable: subscribe again".into(),
                    };
                    self.subscriptions.remove(channel);
                    return self.send(socket, text(&frame)).await;
                }
            };
            let full_page = events.len() as u64 == PAGE;
            for event in events {
                if until.is_some_and(|u| event.offset > u) {
                    return Ok(());
                }
                if grant.admits(event.audience.as_deref()) {
                    let frame = message_frame(channel, &grant.epoch, event.offset, &event.data);
                    self.feed(socket, Message::Text(frame.into())).await?;
                }
                if let Some(subscription) = self.subscriptions.get_mut(channel) {
                    subscription.last = event.offset;
                }
            }
            if !full_page {
                return Ok(());
            }
        }
    }

    /// Delivers a queued item and whatever else is queued (up to a batch), in one flush.
    async fn deliver_queued(
        &mut self,
        socket: &mut WebSocket,
        inbox: &mut Inbox,
        first: Outgoing,
    ) -> Result<(), Ending> {
        self.deliver(socket, first).await?;
        for _ in 1..BATCH {
            match inbox.try_recv() {
                Some(item) => self.deliver(socket, item).await?,
                None => break,
            }
        }
        self.flush(socket).await
    }

    async fn deliver(&mut self, socket: &mut WebSocket, item: Outgoing) -> Result<(), Ending> {
        match item {
            Outgoing::Resync => {
                let channels: Vec<String> = self.subscriptions.keys().cloned().collect();
                for channel in channels {
                    self.replay(socket, &channel, None).await?;
                }
                Ok(())
            }
            Outgoing::Reauthorize => self.reauthorize(socket).await,
            Outgoing::Event { stream, delivered } => {
                let Some(channel) = self.channels_by_stream.get(&stream) else {
                    return Ok(());
                };
                let Some(last) = self.subscriptions.get(channel).map(|s| s.last) else {
                    return Ok(());
                };
                if delivered.offset <= last {
                    return Ok(());
                }
                if delivered.offset > last + 1 {
                    let channel = channel.clone();
                    self.replay(socket, &channel, Some(delivered.offset - 1))
                        .await?;
                }
                let Some(subscription) = self
                    .channels_by_stream
                    .get(&stream)
                    .and_then(|channel| self.subscriptions.get_mut(channel))
                else {
                    return Ok(());
                };
                if delivered.offset != subscription.last + 1 {
                    // The store did not have what the bus skipped (it cannot, since events are
                    // published after they are committed): the next resync reads it again.
                    return Ok(());
                }
                subscription.last = delivered.offset;
                if subscription.grant.admits(delivered.audience.as_deref()) {
                    self.feed(socket, Message::Text(delivered.frame.clone()))
                        .await?;
                }
                Ok(())
            }
        }
    }

    /// Decides every subscription again: one now refused ends with `unsubscribed`; one still
    /// allowed takes its new audiences (a follower no more sees followers' posts no more).
    async fn reauthorize(&mut self, socket: &mut WebSocket) -> Result<(), Ending> {
        let inner = self.gateway.inner();
        let channels: Vec<String> = self.subscriptions.keys().cloned().collect();
        for channel in channels {
            match inner.channels.subscribe(&self.principal, &channel).await {
                Ok(grant) => {
                    if let Some(subscription) = self.subscriptions.get_mut(&channel) {
                        subscription.grant.audiences = grant.audiences;
                    }
                }
                // The store did not answer: the subscription stands until the next decision.
                Err(ChannelError::Unavailable) => {}
                Err(_) => {
                    if let Some(old) = self.subscriptions.remove(&channel) {
                        self.channels_by_stream
                            .remove(Hub::stream_of(&old._membership));
                    }
                    let frame = ServerFrame::Unsubscribed {
                        channel,
                        reason: "the policies no longer allow it".into(),
                    };
                    self.feed(socket, text(&frame)).await?;
                }
            }
        }
        Ok(())
    }

    async fn publish(
        &mut self,
        channel: String,
        seq: u64,
        key: String,
        data: serde_json::Value,
    ) -> ServerFrame {
        let refused = |code: &str, message: &str| ServerFrame::Error {
            code: code.to_owned(),
            message: message.to_owned(),
            seq: Some(seq),
            channel: Some(channel.clone()),
        };
        if seq <= self.last_seq {
            return refused(
                "replayed_seq",
                "This sequence number was used already on this connection.",
            );
        }
        self.last_seq = seq;
        if !protocol::valid_key(&key) {
            return refused(
                "invalid_key",
                "The idempotency key is 1 to 64 letters, digits, '-', '_', '.' or ':'.",
            );
        }
        if let Err(message) = self.user_allowance().await {
            return refused("rate_limited", &message);
        }
        let Ok(data) = serde_json::value::to_raw_value(&data) else {
            return refused("bad_frame", "The data is not JSON.");
        };
        let inner = self.gateway.inner();
        match inner
            .channels
            .publish(&self.principal, &channel, &key, &data)
            .await
        {
            Ok(accepted) => ServerFrame::Published {
                seq,
                channel,
                offset: accepted.offset,
                duplicate: accepted.duplicate,
            },
            Err(e) => channel_error(&e, Some(seq), &channel),
        }
    }

    async fn acknowledge(&self, channel: String, offset: u64) -> Option<ServerFrame> {
        let Some(subscription) = self.subscriptions.get(&channel) else {
            return Some(channel_error(&ChannelError::NotFound, None, &channel));
        };
        if offset > subscription.last {
            return Some(channel_error(
                &ChannelError::Invalid {
                    code: "invalid_offset",
                    message: "Acknowledge only what was delivered.".into(),
                },
                None,
                &channel,
            ));
        }
        let inner = self.gateway.inner();
        inner
            .channels
            .acknowledge(&self.principal, &subscription.grant, offset)
            .await
            .err()
            .map(|e| channel_error(&e, None, &channel))
    }

    /// A fresh credential in band (RTM-2): for the same subject, it replaces the expiring one.
    async fn refresh(&mut self, token: Option<String>, ticket: Option<String>) -> ServerFrame {
        let inner = self.gateway.inner();
        let credentials = match (&token, &ticket) {
            (Some(token), None) => Credentials::Bearer { token },
            (None, Some(ticket)) => Credentials::Ticket {
                ticket,
                origin: self.admitted.origin.as_deref(),
            },
            _ => return error("bad_frame", "Refresh with one token or one ticket."),
        };
        let live = match inner.authenticator.authenticate_live(credentials).await {
            Ok(live) => live,
            Err(e) => {
                let code = match e {
                    AuthError::InvalidTicket(_) => "invalid_ticket",
                    AuthError::Unavailable => "unavailable",
                    _ => "invalid_token",
                };
                return error(code, e.to_string());
            }
        };
        let claims = live.claims.clone();
        let principal = Principal::from_live(live);
        if principal.subject != self.principal.subject || principal.tenant != self.principal.tenant
        {
            return error(
                "other_subject",
                "The new credential must be the same account's.",
            );
        }
        self.expires = deadline(principal.expires_at);
        self.credential = Credential::Token(Box::new(claims));
        self.principal = principal;
        self.gateway.reauthenticated(
            self.admitted.id,
            self.principal.clone(),
            self.credential.clone(),
        );
        ServerFrame::Refreshed {
            expires_at: self.principal.expires_at,
        }
    }

    async fn audit_close(&self, reason: &'static str) {
        let inner = self.gateway.inner();
        let event = SecurityEvent::new(
            Action::RealtimeClosed,
            Outcome::Failure,
            self.principal.tenant.as_str(),
        )
        .actor(self.principal.subject.clone())
        .client(self.principal.client_id.clone())
        .ip(self.admitted.ip)
        .detail("reason", reason);
        if let Err(e) = inner.auditor.record(event).await {
            tracing::error!(error = %e, "closed connection not audited");
        }
    }
}

fn channel_error(e: &ChannelError, seq: Option<u64>, channel: &str) -> ServerFrame {
    ServerFrame::Error {
        code: e.code().to_owned(),
        message: match e {
            ChannelError::NotFound => "No such channel.".to_owned(),
            ChannelError::Forbidden(message) => (*message).to_owned(),
            ChannelError::Invalid { message, .. } => message.clone(),
            ChannelError::Unavailable => "Temporarily unavailable; try again.".to_owned(),
        },
        seq,
        channel: Some(channel.to_owned()),
    }
}

/// Why reading failed: a frame over the size limit is closed with 1009, invalid UTF-8 with
/// 1007, another protocol violation with 1002; anything else means the connection is gone.
fn read_failure(e: &axum::Error) -> Ending {
    match close_for(e) {
        Some((code, reason)) => Ending::close(code, reason),
        None => Ending::gone("read failed"),
    }
}

/// The close code a read error calls for, if the connection can still be closed.
pub(crate) fn close_for(e: &axum::Error) -> Option<(u16, &'static str)> {
    use tokio_tungstenite::tungstenite::Error;
    let inner = std::error::Error::source(e);
    match inner.and_then(|s| s.downcast_ref::<Error>()) {
        Some(Error::Capacity(_)) => Some((close::TOO_BIG, "message too big")),
        Some(Error::Utf8(_)) => Some((1007, "invalid UTF-8")),
        Some(Error::Protocol(_)) => Some((1002, "protocol error")),
        _ => None,
    }
}
