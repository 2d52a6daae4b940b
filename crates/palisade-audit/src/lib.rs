//! Security events (AUD-1, AUD-2). Every sensitive operation calls [`Auditor::record`] and
//! awaits it before answering, so an event is stored before the user sees the outcome. An event
//! becomes one entry of the tamper-evident Merkle log ([`log`]) — accounts as keyed pseudonyms,
//! everything personal sealed under the subject's own key ([`subject_keys`]) — and one row of
//! the searchable `security_events` table that points at that entry.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

pub mod admin;
pub mod cosign;
pub mod ingest;
pub mod log;
pub mod routes;
pub mod search;
mod sequencer;
pub mod subject_keys;
pub mod verify;

pub use sequencer::SEQUENCER_LEASE;

use palisade_crypto::Secret;
use palisade_store::{Backend, Db, StoreError, now_ms};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// `[audit]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// The first line of every checkpoint: names this log (conventionally a URL without scheme).
    pub origin: String,
    /// The checkpoint signer (`PRIVATE+KEY+…`); generated into `data_dir` when absent. Every
    /// node of a deployment must have the same.
    pub signing_key: Option<Secret<String>>,
    /// Base64 of 32 bytes keying the pseudonyms of accounts in the log; generated when absent.
    pub pseudonym_key: Option<Secret<String>>,
    /// Hex SHA-256 digests of the API keys allowed to `POST /audit/events`; empty refuses all.
    pub ingest_key_sha256: Vec<String>,
    /// Witnesses asked to cosign each new checkpoint (AUD-4).
    pub witnesses: Vec<LogWitness>,
}

/// A witness the audit log asks to cosign its checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogWitness {
    /// The witness's base URL (`http://…`); `add-checkpoint` is appended.
    pub url: String,
    /// The witness's cosignature key (`name+hash+key`).
    pub vkey: String,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            origin: "localhost/palisade/audit".into(),
            signing_key: None,
            pseudonym_key: None,
            ingest_key_sha256: Vec::new(),
            witnesses: Vec::new(),
        }
    }
}

impl AuditSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.origin.is_empty() || self.origin.contains(['+', ' ', '\n']) {
            return Err(
                "audit.origin must be a non-empty name without '+', spaces or newlines".into(),
            );
        }
        palisade_http::ApiKeys::from_hex_digests(&self.ingest_key_sha256)
            .map_err(|e| format!("audit.ingest_key_sha256: {e}"))?;
        for w in &self.witnesses {
            cosign::WitnessEndpoint::new(&w.url, &w.vkey)
                .map_err(|e| format!("audit.witnesses: {e}"))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Action {
    SignUp,
    LoginSucceeded,
    LoginFailed,
    LoginThrottled,
    Logout,
    PasswordChanged,
    SessionRevoked,
    MfaEnabled,
    MfaDisabled,
    MfaFailed,
    RecoveryCodeUsed,
    RecoveryCodesRegenerated,
    PasskeyRegistered,
    PasskeyRemoved,
    AccountLocked,
    AccountUnlocked,
    SigningKeyCreated,
    SigningKeyRotated,
    SigningKeyRevoked,
    TlsCaCreated,
    TlsCertificateIssued,
    /// A certificate request refused: a bad, used or expired join token, or an unsound request.
    TlsCertificateRefused,
    CaJoinTokenCreated,
    /// An ACME order failed; the certificate in service stays.
    TlsCertificateRenewalFailed,
    /// An account's part of the trail erased (AUD-6); the event names no account.
    SubjectErased,
    TokenIssued,
    ClientAuthenticationFailed,
    ClientRegistered,
    PoliciesReplaced,
    RoleChanged,
    TenantCreated,
    ClientUpdated,
    ClientDeleted,
    ConsentGranted,
    ConsentDenied,
    ConsentRevoked,
    CodeIssued,
    CodeReplayed,
    TokenRefreshed,
    RefreshReused,
    TokenRevoked,
    /// A WebSocket upgrade refused for its credential or Origin.
    RealtimeRefused,
    /// A WebSocket closed by the server for a security reason (revoked, limits).
    RealtimeClosed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::SignUp => "identity.sign_up",
            Action::LoginSucceeded => "identity.login.succeeded",
            Action::LoginFailed => "identity.login.failed",
            Action::LoginThrottled => "identity.login.throttled",
            Action::Logout => "identity.logout",
            Action::PasswordChanged => "identity.password.changed",
            Action::SessionRevoked => "identity.session.revoked",
            Action::MfaEnabled => "identity.mfa.enabled",
            Action::MfaDisabled => "identity.mfa.disabled",
            Action::MfaFailed => "identity.mfa.failed",
            Action::RecoveryCodeUsed => "identity.recovery_code.used",
            Action::RecoveryCodesRegenerated => "identity.recovery_codes.regenerated",
            Action::PasskeyRegistered => "identity.passkey.registered",
            Action::PasskeyRemoved => "identity.passkey.removed",
            Action::AccountLocked => "admin.account.locked",
            Action::AccountUnlocked => "admin.account.unlocked",
            Action::SigningKeyCreated => "keys.signing.created",
            Action::SigningKeyRotated => "keys.signing.rotated",
            Action::SigningKeyRevoked => "keys.signing.revoked",
            Action::TlsCaCreated => "tls.ca.created",
            Action::TlsCertificateIssued => "tls.certificate.issued",
            Action::TlsCertificateRefused => "tls.certificate.refused",
            Action::CaJoinTokenCreated => "tls.ca.join_token.created",
            Action::TlsCertificateRenewalFailed => "tls.certificate.renewal_failed",
            Action::SubjectErased => "audit.subject.erased",
            Action::TokenIssued => "oauth.token.issued",
            Action::ClientAuthenticationFailed => "oauth.client.authentication_failed",
            Action::ClientRegistered => "oauth.client.registered",
            Action::ClientUpdated => "oauth.client.updated",
            Action::PoliciesReplaced => "authz.policies.replaced",
            Action::RoleChanged => "authz.role.changed",
            Action::TenantCreated => "tenant.created",
            Action::ClientDeleted => "oauth.client.deleted",
            Action::ConsentGranted => "oauth.consent.granted",
            Action::ConsentDenied => "oauth.consent.denied",
            Action::ConsentRevoked => "oauth.consent.revoked",
            Action::CodeIssued => "oauth.code.issued",
            Action::CodeReplayed => "oauth.code.replayed",
            Action::TokenRefreshed => "oauth.token.refreshed",
            Action::RefreshReused => "oauth.refresh.reused",
            Action::TokenRevoked => "oauth.token.revoked",
            Action::RealtimeRefused => "realtime.connection.refused",
            Action::RealtimeClosed => "realtime.connection.closed",
        }
    }
}

/// Who wrote an event into the log: Palisade itself, or a service through the ingest API — a
/// service client holding `audit:write`, or an ingest API key (by its digest's prefix). The
/// origin is part of the leaf, so a service's events can never pass for Palisade's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Palisade,
    Client(String),
    Key(String),
    /// A workload authenticated by its X.509-SVID: its SPIFFE ID.
    Workload(String),
}

impl Origin {
    pub fn as_leaf_value(&self) -> String {
        match self {
            Origin::Palisade => "palisade".to_owned(),
            Origin::Client(id) => format!("client:{id}"),
            Origin::Key(id) => format!("key:{id}"),
            Origin::Workload(id) => format!("workload:{id}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// One security event. `details` must never hold a secret: callers put only identifiers,
/// counts and reasons there.
#[derive(Debug, Clone)]
pub struct SecurityEvent {
    /// `Action::as_str` for Palisade's own events; a validated name for ingested ones.
    pub action: std::borrow::Cow<'static, str>,
    pub outcome: Outcome,
    /// The account that acted (a user id), when known.
    pub actor: Option<String>,
    /// What the action was applied to (a session, a credential), when not the actor itself.
    pub target: Option<String>,
    pub tenant_id: String,
    pub ip: Option<IpAddr>,
    pub trace_id: Option<String>,
    /// The OAuth client the action came through, when there is one.
    pub client: Option<String>,
    /// A hash of the device's user agent: enough to tell devices apart, not to identify one.
    pub device: Option<String>,
    pub details: serde_json::Value,
    /// Who wrote it: Palisade, or the service that ingested it.
    pub origin: Origin,
}

impl SecurityEvent {
    pub fn new(action: Action, outcome: Outcome, tenant_id: &str) -> Self {
        Self::named(
            std::borrow::Cow::Borrowed(action.as_str()),
            outcome,
            tenant_id,
        )
    }

    /// An event reported by another service through the ingest API; `action` must already be
    /// validated by the caller.
    pub fn external(action: String, outcome: Outcome, tenant_id: &str) -> Self {
        Self::named(std::borrow::Cow::Owned(action), outcome, tenant_id)
    }

    fn named(action: std::borrow::Cow<'static, str>, outcome: Outcome, tenant_id: &str) -> Self {
        Self {
            action,
            outcome,
            actor: None,
            target: None,
            tenant_id: tenant_id.to_owned(),
            ip: None,
            trace_id: None,
            client: None,
            device: None,
            details: serde_json::Value::Object(Default::default()),
            origin: Origin::Palisade,
        }
    }

    /// The writer of an ingested event.
    pub fn origin(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }

    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    pub fn trace_id(mut self, trace_id: impl Into<String>) -> Self {
        self.trace_id = Some(trace_id.into());
        self
    }

    pub fn client(mut self, client_id: impl Into<String>) -> Self {
        self.client = Some(client_id.into());
        self
    }

    /// Records the device by a hash of its user agent string.
    pub fn device(mut self, user_agent: &str) -> Self {
        self.device = Some(palisade_crypto::sha256_hex(user_agent.as_bytes())[..16].to_owned());
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        if let serde_json::Value::Object(map) = &mut self.details {
            map.insert(key.to_owned(), value.into());
        }
        self
    }
}

/// Truncates an address before it is stored (AUD-2): IPv4 to /24, IPv6 to /48. Enough to see
/// where an attack comes from, not enough to identify a household.
pub fn truncate_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

/// Why an event could not be recorded. A sensitive operation whose event was not recorded
/// must not report success: callers surface this (as a 503 when the store is away).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit store: {0}")]
    Store(#[from] StoreError),
    #[error("audit log is corrupt: {0}")]
    Corrupt(String),
    #[error("audit log writer stopped")]
    Stopped,
    #[error("checkpoint signing failed: {0}")]
    Signing(String),
    /// No sequencer integrated the events in time; they are durable and will be integrated.
    #[error("audit events queued but not yet integrated into the log")]
    NotIntegrated,
}

impl AuditError {
    /// The store is away for a moment, or no sequencer is there yet: retry shortly.
    pub fn is_unavailable(&self) -> bool {
        match self {
            AuditError::Store(e) => e.is_unavailable(),
            AuditError::NotIntegrated => true,
            _ => false,
        }
    }
}

impl From<sqlx::Error> for AuditError {
    fn from(e: sqlx::Error) -> Self {
        AuditError::Store(e.into())
    }
}

impl From<AuditError> for palisade_http::AppError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Store(e) => e.into(),
            e if e.is_unavailable() => palisade_http::AppError::Unavailable {
                retry_after: std::time::Duration::from_secs(1),
            },
            e => palisade_http::AppError::internal(e),
        }
    }
}

/// The one way a security event is written (AUD-1): [`Auditor::record`].
#[derive(Clone, Debug)]
pub struct Auditor {
    db: Db,
    chain: Chain,
}

/// The tamper-evident side of the auditor: the Merkle log, the key that turns account ids into
/// pseudonyms before they enter it, and the per-subject keys that seal everything personal
/// (AUD-6: leaves carry no personal data in the clear).
#[derive(Clone)]
struct Chain {
    /// `None` for tools beside a running server: their events are queued for the sequencer.
    log: Option<log::AuditLog>,
    pseudonym_key: [u8; 32],
    keys: subject_keys::SubjectKeys,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("size", &self.log.as_ref().map(log::AuditLog::size))
            .finish_non_exhaustive()
    }
}

impl Auditor {
    /// Appends every event to `log`; `sealing` wraps the per-subject keys, `bus` tells every
    /// node when a subject is erased.
    pub fn with_log(
        db: Db,
        log: log::AuditLog,
        pseudonym_key: [u8; 32],
        sealing: palisade_crypto::SealingKey,
        bus: palisade_cluster::Bus,
    ) -> Self {
        Self::chained(db, Some(log), pseudonym_key, sealing, bus)
    }

    /// For tools that run beside a live server (`palisade admin`): entries are finished here
    /// (pseudonyms, sealed payload) and queued for whichever server sequences the log, which
    /// appends them within moments, or at its next start.
    pub fn deferred(
        db: Db,
        pseudonym_key: [u8; 32],
        sealing: palisade_crypto::SealingKey,
        bus: palisade_cluster::Bus,
    ) -> Self {
        Self::chained(db, None, pseudonym_key, sealing, bus)
    }

    fn chained(
        db: Db,
        log: Option<log::AuditLog>,
        pseudonym_key: [u8; 32],
        sealing: palisade_crypto::SealingKey,
        bus: palisade_cluster::Bus,
    ) -> Self {
        let keys = subject_keys::SubjectKeys::new(db.clone(), sealing, bus);
        Self {
            db,
            chain: Chain {
                log,
                pseudonym_key,
                keys,
            },
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn log(&self) -> Option<&log::AuditLog> {
        self.chain.log.as_ref()
    }

    /// Forgets erased subjects' keys when another node erases them, until `shutdown`.
    pub async fn follow_erasures(self, shutdown: tokio_util::sync::CancellationToken) {
        self.chain.keys.follow(shutdown).await;
    }

    /// Records an event durably before returning, then logs it.
    pub async fn record(&self, event: SecurityEvent) -> Result<(), AuditError> {
        self.record_events(vec![event], false).await.map(|_| ())
    }

    /// Records events, in order, sharing the log's batches, and returns their indexes once the
    /// log includes them (for answers that carry inclusion proofs).
    pub async fn record_proven(&self, events: Vec<SecurityEvent>) -> Result<Vec<u64>, AuditError> {
        let indexes = self.record_events(events, true).await?;
        indexes
            .into_iter()
            .map(|i| i.ok_or(AuditError::NotIntegrated))
            .collect()
    }

    async fn record_events(
        &self,
        events: Vec<SecurityEvent>,
        proven: bool,
    ) -> Result<Vec<Option<u64>>, AuditError> {
        let chain = &self.chain;
        let mut entries = Vec::with_capacity(events.len());
        for event in &events {
            let ip = event.ip.map(truncate_ip);
            let row = EventRow::of(event, ip.clone());
            // The searchable rows are written in the same transaction as the leaves.
            entries.push((chain.leaf(event, &row).await?, row));
        }
        let indexes = match &chain.log {
            Some(log) => log.append_events(entries, proven).await?,
            None => {
                log::queue(&self.db, &entries).await?;
                vec![None; entries.len()]
            }
        };
        for event in &events {
            tracing::info!(
                target: "palisade::security",
                action = %event.action,
                outcome = event.outcome.as_str(),
                actor = event.actor.as_deref(),
                target_id = event.target.as_deref(),
                tenant = %event.tenant_id,
                ip = event.ip.map(truncate_ip).as_deref(),
                trace_id = event.trace_id.as_deref(),
                "security event"
            );
        }
        Ok(indexes)
    }

    /// Erases an account from the audit trail (AUD-6): destroys its payload keys, so the log's
    /// entries stay and verify but their sealed part is unreadable, and removes its identity,
    /// address, device and details from the searchable rows. Returns the keys destroyed.
    pub async fn erase_subject(&self, account_id: &str) -> Result<u64, StoreError> {
        let chain = &self.chain;
        let destroyed = chain.keys.erase(&chain.pseudonym(account_id)).await?;
        // The rows whose payload was sealed under the subject's key: those it acted in, and
        // those it was the target of with no actor.
        sqlx::query(
            "UPDATE security_events SET actor = NULL, ip = NULL, device = NULL, details = '{}' \
             WHERE actor = $1 OR (actor IS NULL AND target = $1)",
        )
        .bind(account_id)
        .execute(self.db.pool())
        .await?;
        sqlx::query("UPDATE security_events SET target = NULL WHERE target = $1")
            .bind(account_id)
            .execute(self.db.pool())
            .await?;
        Ok(destroyed)
    }

    /// A log entry with its sealed payload opened, or marked erased when its key is gone.
    pub async fn read_entry(&self, index: u64) -> Result<Option<ReadEntry>, StoreError> {
        let chain = &self.chain;
        let Some(log) = chain.log.as_ref() else {
            return Ok(None);
        };
        let Some(text) = log.entry(index).await? else {
            return Ok(None);
        };
        let mut entry: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| StoreError::Database(sqlx::Error::Protocol(e.to_string())))?;
        let sealed = entry
            .get_mut("payload")
            .map(serde_json::Value::take)
            .and_then(|p| serde_json::from_value::<SealedPayload>(p).ok());
        let payload = match sealed {
            None => Payload::None,
            Some(p) => match chain.keys.by_id(&p.key).await? {
                None => Payload::Erased,
                Some(key) => key
                    .open(&p.sealed)
                    .and_then(|plain| serde_json::from_slice(&plain).ok())
                    .map_or(Payload::Unreadable, Payload::Readable),
            },
        };
        if let serde_json::Value::Object(map) = &mut entry {
            map.remove("payload");
        }
        Ok(Some(ReadEntry {
            index,
            leaf_hash: data_encoding::BASE64
                .encode(&palisade_tlog::merkle::leaf_hash(text.as_bytes())),
            entry,
            payload,
        }))
    }

    /// Events of one actor, newest first (the account page and tests read these).
    pub async fn events_for_actor(
        &self,
        actor: &str,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let query = search::Search {
            actor: Some(actor.to_owned()),
            limit: Some(limit),
            ..Default::default()
        };
        search::search(&self.db, &query).await
    }
}

impl Chain {
    fn pseudonym(&self, id: &str) -> String {
        verify::pseudonym(&self.pseudonym_key, id)
    }

    /// Whose key seals an event's payload: the account that acted, else the one acted upon,
    /// else the tenant's own.
    fn subject(&self, e: &SecurityEvent) -> String {
        match e.actor.as_deref().or(e.target.as_deref()) {
            Some(account) => self.pseudonym(account),
            None => self.pseudonym(&format!("tenant:{}", e.tenant_id)),
        }
    }

    /// The leaf of an event: canonical JSON (sorted keys) with accounts and targets as keyed
    /// pseudonyms; the address, device and details sealed under the subject's key; the time
    /// and origin as its searchable row has them.
    async fn leaf(&self, e: &SecurityEvent, row: &EventRow) -> Result<String, StoreError> {
        let key = self.keys.for_subject(&self.subject(e)).await?;
        let private = serde_json::json!({ "ip": row.ip, "device": e.device, "details": e.details });
        Ok(serde_json::json!({
            "action": e.action,
            "outcome": e.outcome.as_str(),
            "actor": e.actor.as_deref().map(|a| self.pseudonym(a)),
            "target": e.target.as_deref().map(|t| self.pseudonym(t)),
            "tenant": e.tenant_id,
            "client": e.client,
            "trace_id": e.trace_id,
            "origin": e.origin.as_leaf_value(),
            "at": row.at,
            "payload": { "key": key.id, "sealed": key.seal(private.to_string().as_bytes()) },
        })
        .to_string())
    }
}

/// An event's row in the searchable `security_events` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EventRow {
    at: i64,
    action: String,
    outcome: String,
    actor: Option<String>,
    target: Option<String>,
    tenant_id: String,
    ip: Option<String>,
    trace_id: Option<String>,
    details: String,
    client: Option<String>,
    device: Option<String>,
}

impl EventRow {
    fn of(e: &SecurityEvent, ip: Option<String>) -> Self {
        Self {
            at: now_ms(),
            action: e.action.to_string(),
            outcome: e.outcome.as_str().to_owned(),
            actor: e.actor.clone(),
            target: e.target.clone(),
            tenant_id: e.tenant_id.clone(),
            ip,
            trace_id: e.trace_id.clone(),
            details: e.details.to_string(),
            client: e.client.clone(),
            device: e.device.clone(),
        }
    }

    pub(crate) const INSERT: &str = "INSERT INTO security_events \
        (at, action, outcome, actor, target, tenant_id, ip, trace_id, details, client, device, log_index) \
        VALUES ";
    pub(crate) const COLUMNS: usize = 12;

    /// The row with its subject forgotten, as `Auditor::erase_subject` leaves rows: for an
    /// event whose subject was erased before the event was integrated.
    pub(crate) fn forgotten(&self) -> Self {
        Self {
            actor: None,
            target: None,
            ip: None,
            device: None,
            details: "{}".into(),
            ..self.clone()
        }
    }

    pub(crate) fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        log_index: Option<u64>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        query
            .bind(self.at)
            .bind(self.action.as_str())
            .bind(self.outcome.as_str())
            .bind(self.actor.as_deref())
            .bind(self.target.as_deref())
            .bind(self.tenant_id.as_str())
            .bind(self.ip.as_deref())
            .bind(self.trace_id.as_deref())
            .bind(self.details.as_str())
            .bind(self.client.as_deref())
            .bind(self.device.as_deref())
            .bind(log_index.map(|i| i as i64))
    }
}

/// The VALUES of a multi-row insert of `rows` rows of `columns`: `($1, $2, …), …` on PostgreSQL;
/// anonymous `?` on SQLite, whose driver resolves each numbered parameter by a linear search
/// over the statement's parameter names (quadratic in the row count), while `?` binds in order.
pub(crate) fn placeholders(backend: Backend, rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=columns)
                .map(|c| match backend {
                    Backend::Sqlite => "?".to_owned(),
                    Backend::Postgres => format!("${}", r * columns + c),
                })
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sealed part of a log entry as stored in the leaf.
#[derive(serde::Deserialize)]
pub struct SealedPayload {
    pub key: String,
    pub sealed: String,
}

#[derive(Debug, Serialize)]
pub struct ReadEntry {
    pub index: u64,
    pub leaf_hash: String,
    /// The entry's public fields.
    pub entry: serde_json::Value,
    pub payload: Payload,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(tag = "state", content = "value", rename_all = "snake_case")]
pub enum Payload {
    /// Address, device and details as recorded.
    Readable(serde_json::Value),
    /// The subject was erased: the key is destroyed and the payload can never be read again.
    Erased,
    /// The key exists but does not open the payload: the entry was tampered with.
    Unreadable,
    /// The entry carries no payload.
    None,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct StoredEvent {
    pub seq: i64,
    pub at: i64,
    pub action: String,
    pub outcome: String,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub tenant_id: String,
    pub ip: Option<String>,
    pub trace_id: Option<String>,
    pub details: String,
    pub client: Option<String>,
    pub device: Option<String>,
    /// The entry this event became in the Merkle log.
    pub log_index: Option<i64>,
}

/// An auditor on a fresh log of its own, for tests.
#[cfg(test)]
pub(crate) async fn auditor_for_test(db: &Db) -> Auditor {
    let (log, _) = crate::log::open_for_test(db).await;
    let sealing = palisade_crypto::SealingKey::from_bytes(&[9u8; 32]).expect("32 bytes");
    let bus = palisade_cluster::Bus::in_process();
    Auditor::with_log(db.clone(), log, [7u8; 32], sealing, bus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_truncated() {
        assert_eq!(
            truncate_ip("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            truncate_ip("2001:db8:abcd:12::1".parse().unwrap()),
            "2001:db8:abcd::/48"
        );
    }

    async fn records_and_reads_back(db: Db) {
        let auditor = auditor_for_test(&db).await;
        auditor
            .record(
                SecurityEvent::new(Action::LoginFailed, Outcome::Failure, "default")
                    .actor("user-1")
                    .ip("198.51.100.9".parse().unwrap())
                    .trace_id("abc")
                    .detail("reason", "bad_password"),
            )
            .await
            .unwrap();
        let events = auditor.events_for_actor("user-1", 10).await.unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.action, "identity.login.failed");
        assert_eq!(e.outcome, "failure");
        assert_eq!(e.ip.as_deref(), Some("198.51.100.0/24"));
        assert_eq!(e.trace_id.as_deref(), Some("abc"));
        assert!(e.details.contains("bad_password"));
    }
    palisade_store::both_backends!(records_and_reads_back);
}
