//! ACME (TLS-3, RFC 8555) with shared storage: the accounts, the challenge answers and the
//! certificate live in the database, so any node answers the CA and every node serves what one
//! obtained. One node orders at a time, under a lease it keeps renewing while it orders and whose
//! fencing token guards the store: a node that lost the lease while ordering (stopped, cut off)
//! cannot replace what the next holder stored.
//!
//! Each configured certificate is served to the handshakes naming one of its names (SNI), the
//! node's own certificate to the rest. Renewal falls due at a time chosen at random in the window the CA suggests through ACME
//! Renewal Information (RFC 9773), and the new order names the certificate it replaces; from a
//! CA without ARI, with a third of the lifetime left (half, for certificates under ten days);
//! and whatever the CA suggests, with a twentieth left. An order that fails goes to the next
//! configured CA; when all fail, the attempt is retried with jittered exponential back-off, and
//! the certificate in service stays in service whatever fails. Every certificate has a new key.

mod http;
mod order;
mod store;

pub use store::{RenewalInformation, RenewalState};

use instant_acme::CertificateIdentifier;
use palisade_audit::{Action, Auditor, Outcome, SecurityEvent};
use palisade_cluster::{Bus, Lease};
use palisade_crypto::SealingKey;
use palisade_http::egress::Egress;
use palisade_http::{Access, Routes};
use palisade_store::{Db, StoreError, now_ms};
use palisade_tls::{AcmeChallenge, AcmeIssuer, AcmeSettings, LoadedCert, SwappableResolver};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The bus topic on which a node that stored a certificate tells the others.
const TOPIC: &str = "tls.certificates";
/// The lease is renewed every third of this while an order runs, so a node that dies or stops
/// while ordering is replaced within this time.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
const RETRY_FIRST_S: i64 = 60;
const RETRY_MAX_S: i64 = 6 * 3600;
/// How long a CA's ARI answer is trusted at most, whatever its Retry-After says; and how long
/// a CA without ARI is left before it is asked whether it has gained it.
const ARI_RECHECK_MAX_S: i64 = 24 * 3600;
/// After a failed ARI request, when to ask again (the schedule in force is kept meanwhile).
const ARI_RETRY_S: i64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("audit: {0}")]
    Audit(#[from] palisade_audit::AuditError),
    #[error("the CA offers no {0:?} challenge")]
    NoChallenge(AcmeChallenge),
    #[error("{0}")]
    Order(String),
    #[error("DNS hook: {0}")]
    Hook(String),
    #[error("the certificate issued is unusable: {0}")]
    Certificate(String),
    #[error("the lease was lost while ordering; the certificate was not stored")]
    Fenced,
}

impl AcmeError {
    /// The RFC 8555 §6.7 problem type the CA answered with (`accountDoesNotExist`, …), if any.
    fn problem(&self) -> Option<&str> {
        match self {
            AcmeError::Acme(instant_acme::Error::Api(problem)) => problem
                .r#type
                .as_deref()
                .and_then(|t| t.strip_prefix("urn:ietf:params:acme:error:")),
            _ => None,
        }
    }
}

#[derive(Clone, Default)]
pub struct AcmeMetrics {
    pub orders: Counter,
    pub failures: Counter,
}

impl AcmeMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "acme_orders",
            "Certificates obtained by ACME",
            m.orders.clone(),
        );
        registry.register(
            "acme_failures",
            "ACME orders that failed (the certificate in service stays)",
            m.failures.clone(),
        );
        m
    }
}

pub struct Parts {
    pub settings: AcmeSettings,
    pub db: Db,
    pub sealing: SealingKey,
    pub egress: Egress,
    pub resolver: Arc<SwappableResolver>,
    pub lease: Lease,
    pub bus: Bus,
    pub auditor: Auditor,
    pub metrics: AcmeMetrics,
}

pub struct Acme(Parts);

/// When a certificate valid over `not_before..not_after` falls due for renewal without ARI.
fn renew_at(not_before: i64, not_after: i64) -> i64 {
    let lifetime = not_after - not_before;
    if lifetime < 10 * 86_400 {
        not_before + lifetime / 2
    } else {
        not_after - lifetime / 3
    }
}

/// The latest a certificate is renewed, whatever the CA suggests: a twentieth of its lifetime
/// before it expires.
fn emergency_at(not_before: i64, not_after: i64) -> i64 {
    not_after - (not_after - not_before) / 20
}

/// When the certificate with the ARI identifier `id` falls due: at the time chosen in the
/// window the CA suggested for it, if it did, otherwise at `renew_at`; never after
/// `emergency_at`.
fn due_at(not_before: i64, not_after: i64, id: Option<&str>, ari: &RenewalInformation) -> i64 {
    let suggested = ari
        .selected_at
        .filter(|_| id.is_some() && ari.certificate.as_deref() == id);
    suggested
        .unwrap_or_else(|| renew_at(not_before, not_after))
        .min(emergency_at(not_before, not_after))
}

/// A uniformly random time in `start..=end` (RFC 9773 §4.2), so that the CA's clients spread
/// over the window it suggests.
fn choose_in(start: i64, end: i64) -> i64 {
    if end <= start {
        return start;
    }
    let span = (end - start) as u64 + 1;
    let random = u64::from_le_bytes(palisade_crypto::random_bytes::<8>());
    start + (random % span) as i64
}

/// Seconds to wait after the `failures`-th failure in a row: doubling from a minute to six
/// hours, less up to a fifth at random so that nodes and restarts spread out.
fn back_off(failures: u32) -> i64 {
    let full = RETRY_FIRST_S
        .saturating_mul(1 << failures.saturating_sub(1).min(20))
        .min(RETRY_MAX_S);
    let jitter = i64::from(u16::from_le_bytes(palisade_crypto::random_bytes::<2>()));
    full - full * jitter / (5 * 65_536)
}

fn now() -> i64 {
    now_ms() / 1000
}

fn leaf(chain: &str) -> Option<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(chain.as_bytes())
        .next()
        .and_then(Result::ok)
}

/// The ARI identifier (RFC 9773 §4.1) of a chain's leaf.
fn identifier(chain: &str) -> Option<CertificateIdentifier<'static>> {
    let leaf = leaf(chain)?;
    CertificateIdentifier::try_from(&leaf)
        .ok()
        .map(CertificateIdentifier::into_owned)
}

fn loaded(chain: &str, key: &str) -> Result<LoadedCert, AcmeError> {
    let bad = |e: String| AcmeError::Certificate(e);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| bad(e.to_string()))?;
    LoadedCert::from_der(chain, key).map_err(|e| bad(e.to_string()))
}

/// Renews `lease` every third of its lifetime; returns once it is lost to another node.
async fn keep_holding(lease: &Lease, token: u64) {
    loop {
        tokio::time::sleep(LEASE_TTL / 3).await;
        match lease.renew(token).await {
            Ok(true) => {}
            Ok(false) => return,
            // The store refuses a stale result anyway; keep trying.
            Err(e) => tracing::warn!(error = %e, "cannot renew the ACME lease"),
        }
    }
}

impl Acme {
    pub fn new(parts: Parts) -> Self {
        Self(parts)
    }

    /// Serves the stored certificate if there is one newer than what is served.
    async fn follow_store(&self) -> Result<Option<store::Stored>, AcmeError> {
        let p = &self.0;
        let Some(stored) = store::certificate(&p.db, &p.sealing, &p.settings.name()).await? else {
            return Ok(None);
        };
        let next = loaded(&stored.chain, &stored.key)?;
        let names = &p.settings.identifiers;
        if p.resolver
            .named(names)
            .is_none_or(|served| served.fingerprint != next.fingerprint)
        {
            tracing::info!(fingerprint = %next.fingerprint, not_after = next.not_after, names = %p.settings.name(), "serving the ACME certificate");
            p.resolver.swap_named(names, next);
        }
        Ok(Some(stored))
    }

    /// Serves the stored certificate at once, then keeps it renewed until `shutdown`.
    pub async fn maintain(self, shutdown: CancellationToken) {
        let mut updates = self.0.bus.subscribe(TOPIC);
        let check = Duration::from_secs(self.0.settings.check_seconds);
        loop {
            if let Err(e) = self.look().await {
                tracing::error!(error = %e, "cannot look at the ACME certificate");
            }
            tokio::select! {
                _ = tokio::time::sleep(check) => {}
                _ = updates.recv() => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Serves what is stored, asks the CA when to renew it if that is due, and renews if it is
    /// due (or an operator asked) and the back-off of earlier failures, shared by the nodes,
    /// allows.
    async fn look(&self) -> Result<(), AcmeError> {
        let p = &self.0;
        let name = p.settings.name();
        let stored = self.follow_store().await?;
        let mut state = store::state(&p.db, &name).await?;
        if let Some(stored) = &stored {
            self.ask_renewal_information(stored, &mut state).await?;
        }
        let requested = state.renew_requested != 0;
        let due = stored.as_ref().is_none_or(|s| {
            let id = identifier(&s.chain).map(|id| id.to_string());
            due_at(s.not_before, s.not_after, id.as_deref(), &state.ari) <= now()
        });
        // An operator's request waits out a back-off like a due renewal: both are retried until
        // they succeed (`palisade certs renew` clears the back-off).
        if !((due || requested) && now() >= state.next_attempt_at) {
            return Ok(());
        }
        match self.renew(requested).await {
            Ok(_) => {}
            // Another node holds the lease now, and renews in this node's place.
            Err(AcmeError::Fenced) => {
                tracing::warn!("{}", AcmeError::Fenced);
            }
            Err(e) => {
                let mut state = store::state(&p.db, &name).await?;
                state.failures += 1;
                let wait = back_off(u32::try_from(state.failures).unwrap_or(u32::MAX));
                state.next_attempt_at = now() + wait;
                state.last_error = Some(e.to_string());
                store::set_state(&p.db, &name, &state).await?;
                self.failed(&e, state.failures, wait).await;
            }
        }
        Ok(())
    }

    /// Asks the CA that issued `stored` for its renewal window (RFC 9773 §4.2) when the last
    /// answer has aged out, and chooses a time in it when it changed.
    async fn ask_renewal_information(
        &self,
        stored: &store::Stored,
        state: &mut RenewalState,
    ) -> Result<(), AcmeError> {
        let p = &self.0;
        let (Some(directory), Some(id)) = (&stored.directory, identifier(&stored.chain)) else {
            return Ok(());
        };
        let key = id.to_string();
        let about_this = state.ari.certificate.as_deref() == Some(key.as_str());
        if about_this && now() < state.ari.next_check {
            return Ok(());
        }
        let Some(issuer) = p
            .settings
            .issuers()
            .into_iter()
            .find(|i| &i.directory == directory)
        else {
            return Ok(());
        };
        let known = if about_this {
            state.ari.clone()
        } else {
            RenewalInformation::default()
        };
        let account = self.account(&issuer, false).await?;
        state.ari = match account.renewal_info(&id).await {
            Ok((info, retry_after)) => {
                let (start, end) = (
                    info.suggested_window.start.unix_timestamp(),
                    info.suggested_window.end.unix_timestamp(),
                );
                let same = known.window_start == Some(start) && known.window_end == Some(end);
                let selected_at = match known.selected_at {
                    Some(selected) if same => selected,
                    _ => choose_in(start, end),
                };
                if !same {
                    tracing::info!(
                        window_start = start,
                        window_end = end,
                        selected_at,
                        explanation = info.explanation_url.as_deref().unwrap_or(""),
                        "ACME renewal window"
                    );
                }
                let wait = i64::try_from(retry_after.as_secs()).unwrap_or(i64::MAX);
                RenewalInformation {
                    certificate: Some(key),
                    window_start: Some(start),
                    window_end: Some(end),
                    selected_at: Some(selected_at),
                    next_check: now() + wait.min(ARI_RECHECK_MAX_S),
                    explanation: info.explanation_url,
                }
            }
            Err(instant_acme::Error::Unsupported(_)) => RenewalInformation {
                certificate: Some(key),
                next_check: now() + ARI_RECHECK_MAX_S,
                ..RenewalInformation::default()
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot get the ACME renewal window; the schedule in force stays");
                RenewalInformation {
                    certificate: Some(key),
                    next_check: now() + ARI_RETRY_S,
                    ..known
                }
            }
        };
        store::set_state(&p.db, &p.settings.name(), state).await?;
        Ok(())
    }

    async fn failed(&self, error: &AcmeError, failures: i64, wait: i64) {
        self.0.metrics.failures.inc();
        tracing::error!(error = %error, failures, retry_in_seconds = wait, "ACME order failed; the certificate in service stays");
        let event = SecurityEvent::new(
            Action::TlsCertificateRenewalFailed,
            Outcome::Failure,
            palisade_store::DEFAULT_TENANT,
        )
        .target(self.0.settings.name())
        .detail("kind", "acme")
        .detail("failures", failures)
        .detail("retry_in_seconds", wait);
        if let Err(e) = self.0.auditor.record(event).await {
            tracing::error!(error = %e, "cannot record a failed ACME order");
        }
    }

    /// Orders a certificate if this node gets the lease and it is still due (or `forced`);
    /// whether it did. The lease is kept while the order runs; if it is lost meanwhile, the
    /// outcome is `Fenced` whatever the order did.
    async fn renew(&self, forced: bool) -> Result<bool, AcmeError> {
        let p = &self.0;
        let Some(token) = p.lease.try_acquire().await? else {
            return Ok(false);
        };
        let holding = self.renew_holding(token, forced);
        let heartbeat = keep_holding(&p.lease, token);
        tokio::pin!(holding, heartbeat);
        let mut lost = false;
        let result = loop {
            tokio::select! {
                result = &mut holding => break result,
                () = &mut heartbeat, if !lost => lost = true,
            }
        };
        // A failure while the lease was someone else's is that node's business, not a failure
        // of the renewal.
        let lost = lost || (result.is_err() && !p.lease.renew(token).await.unwrap_or(true));
        if !lost && let Err(e) = p.lease.release(token).await {
            tracing::warn!(error = %e, "cannot release the ACME lease; it expires by itself");
        }
        match result {
            Err(_) if lost => Err(AcmeError::Fenced),
            result => result,
        }
    }

    async fn renew_holding(&self, token: u64, forced: bool) -> Result<bool, AcmeError> {
        let p = &self.0;
        let name = p.settings.name();
        // Another node may have renewed between this node's look and its lease.
        let state = store::state(&p.db, &name).await?;
        let requested = state.renew_requested != 0;
        let current = store::certificate(&p.db, &p.sealing, &name).await?;
        let id = current.as_ref().and_then(|c| identifier(&c.chain));
        let key = id.as_ref().map(ToString::to_string);
        if let Some(stored) = &current
            && due_at(
                stored.not_before,
                stored.not_after,
                key.as_deref(),
                &state.ari,
            ) > now()
            && !(forced && requested)
        {
            return Ok(false);
        }
        // The certificate replaced is named to the CA that issued it, if that CA has ARI.
        let replaced = current
            .as_ref()
            .and_then(|c| c.directory.clone())
            .zip(id.filter(|_| key == state.ari.certificate && state.ari.window_start.is_some()));
        let (chain, key, directory) = self.order(replaced).await?;
        let next = loaded(&chain, &key)?;
        let leaf = leaf(&chain).ok_or_else(|| AcmeError::Certificate("no certificate".into()))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&leaf)
            .map_err(|e| AcmeError::Certificate(e.to_string()))?;
        let stored = store::Stored {
            not_before: parsed.validity().not_before.timestamp(),
            not_after: parsed.validity().not_after.timestamp(),
            chain,
            key,
            directory: Some(directory.clone()),
        };
        if !store::store_certificate(&p.db, &p.sealing, &name, &stored, p.lease.name(), token)
            .await?
        {
            return Err(AcmeError::Fenced);
        }
        // Cleared before the lease is let go, so the next holder does not order again.
        store::set_state(&p.db, &name, &store::RenewalState::default()).await?;
        p.metrics.orders.inc();
        let (fingerprint, not_after) = (next.fingerprint.clone(), next.not_after);
        // Served before it is announced: whoever reads the log line gets it on the next handshake.
        p.resolver.swap_named(&p.settings.identifiers, next);
        tracing::info!(%fingerprint, not_after, names = %name, %directory, "ACME certificate issued");
        p.bus.publish(TOPIC, &b"stored"[..]).await;
        p.auditor
            .record(
                SecurityEvent::new(
                    Action::TlsCertificateIssued,
                    Outcome::Success,
                    palisade_store::DEFAULT_TENANT,
                )
                .target(name)
                .detail("kind", "acme")
                .detail("issuer", directory)
                .detail("not_after", stored.not_after),
            )
            .await?;
        Ok(true)
    }

    /// A certificate from the first configured CA that issues one: its chain, key and the
    /// directory it came from. `replaced` names the certificate in service and its CA.
    async fn order(
        &self,
        replaced: Option<(String, CertificateIdentifier<'static>)>,
    ) -> Result<(String, String, String), AcmeError> {
        let mut failures = Vec::new();
        for issuer in self.0.settings.issuers() {
            let replaces = replaced
                .as_ref()
                .filter(|(directory, _)| *directory == issuer.directory)
                .map(|(_, id)| id);
            match self.order_from(&issuer, replaces).await {
                Ok((chain, key)) => return Ok((chain, key, issuer.directory)),
                Err(e) => {
                    tracing::warn!(directory = %issuer.directory, error = %e, "ACME order failed at this CA");
                    failures.push(format!("{}: {e}", issuer.directory));
                }
            }
        }
        Err(AcmeError::Order(failures.join("; ")))
    }

    /// One order at `issuer`. A CA that no longer knows the stored account gets a new one, and
    /// a CA that refuses the replacement named gets an order that names none.
    async fn order_from(
        &self,
        issuer: &AcmeIssuer,
        replaces: Option<&CertificateIdentifier<'static>>,
    ) -> Result<(String, String), AcmeError> {
        let p = &self.0;
        let account = self.account(issuer, false).await?;
        let first = order::obtain(&account, &p.settings, &p.db, replaces).await;
        match first.as_ref().err().and_then(AcmeError::problem) {
            Some("accountDoesNotExist") => {
                tracing::warn!(directory = %issuer.directory, "the CA no longer knows the ACME account; creating another");
                let account = self.account(issuer, true).await?;
                order::obtain(&account, &p.settings, &p.db, replaces).await
            }
            Some("alreadyReplaced") if replaces.is_some() => {
                order::obtain(&account, &p.settings, &p.db, None).await
            }
            _ => first,
        }
    }

    /// The account at `issuer`: the stored one, or (if there is none, or `fresh`) a new one,
    /// bound to the CA's external account if it gave one, and stored.
    async fn account(
        &self,
        issuer: &AcmeIssuer,
        fresh: bool,
    ) -> Result<instant_acme::Account, AcmeError> {
        let p = &self.0;
        let builder = || {
            instant_acme::Account::builder_with_http(Box::new(http::EgressHttp(p.egress.clone())))
        };
        let directory = &issuer.directory;
        if !fresh
            && let Some(json) = store::account(&p.db, &p.sealing, directory).await?
            && let Ok(credentials) = serde_json::from_slice(&json)
        {
            return Ok(builder().from_credentials(credentials).await?);
        }
        let binding = issuer
            .eab
            .as_ref()
            .map(|eab| {
                eab.key()
                    .map(|key| instant_acme::ExternalAccountKey::new(eab.kid.clone(), &key))
            })
            .transpose()
            .map_err(AcmeError::Order)?;
        let contact: Vec<&str> = p.settings.contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder()
            .create(
                &instant_acme::NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                directory.clone(),
                binding.as_ref(),
            )
            .await?;
        let json = serde_json::to_vec(&credentials)
            .map_err(|e| AcmeError::Order(format!("account credentials: {e}")))?;
        store::save_account(&p.db, &p.sealing, directory, &json).await?;
        tracing::info!(directory = %directory, "ACME account created");
        Ok(account)
    }
}

/// A certificate's state, as `palisade certs` shows it.
#[derive(Debug, serde::Serialize)]
pub struct CertificateStatus {
    pub name: String,
    /// The directory of the CA that issued it.
    pub directory: Option<String>,
    pub issuer: Option<String>,
    pub serial: Option<String>,
    pub not_before: i64,
    pub not_after: i64,
    /// When renewal falls due: at the time chosen in the CA's ARI window (`renewal.ari`), else
    /// with a third of the lifetime left (half, under ten days); at the latest with a
    /// twentieth left.
    pub renew_at: i64,
    pub stored_at: i64,
    pub renewal: RenewalState,
}

/// Every stored certificate with its renewal state.
pub async fn status(db: &Db) -> Result<Vec<CertificateStatus>, StoreError> {
    let mut out = Vec::new();
    for row in store::certificates(db).await? {
        let leaf = leaf(&row.chain);
        let parsed = leaf
            .as_ref()
            .and_then(|l| x509_parser::parse_x509_certificate(l).ok().map(|(_, c)| c));
        let renewal = store::state(db, &row.name).await?;
        let id = identifier(&row.chain).map(|id| id.to_string());
        out.push(CertificateStatus {
            issuer: parsed.as_ref().map(|c| c.issuer().to_string()),
            serial: parsed.as_ref().map(|c| c.raw_serial_as_string()),
            renew_at: due_at(row.not_before, row.not_after, id.as_deref(), &renewal.ari),
            renewal,
            name: row.name,
            directory: row.directory,
            not_before: row.not_before,
            not_after: row.not_after,
            stored_at: row.stored_at,
        });
    }
    Ok(out)
}

/// Asks the nodes to renew the certificate of `settings` now, whatever its date and back-off.
pub async fn request_renewal(
    db: &Db,
    bus: &Bus,
    settings: &AcmeSettings,
) -> Result<(), StoreError> {
    let name = settings.name();
    let mut state = store::state(db, &name).await?;
    state.renew_requested = 1;
    state.next_attempt_at = 0;
    store::set_state(db, &name, &state).await?;
    bus.publish(TOPIC, &b"renew"[..]).await;
    Ok(())
}

/// The tls-alpn-01 answers (RFC 8737 §3), from shared storage so any node answers: for a name
/// being validated, a self-signed certificate for it carrying the critical `acmeIdentifier`
/// extension with the SHA-256 of the key authorization, made for the handshake.
pub struct AlpnAnswers(pub Db);

impl palisade_tls::AlpnChallenges for AlpnAnswers {
    fn certificate<'a>(
        &'a self,
        name: &'a str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Option<Arc<rustls::sign::CertifiedKey>>> + Send + 'a>,
    > {
        Box::pin(async move {
            let key_authorization = store::challenge(&self.0, &order::alpn_key(name))
                .await
                .ok()??;
            let digest = palisade_crypto::sha256(key_authorization.as_bytes());
            let key = rcgen::KeyPair::generate().ok()?;
            let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).ok()?;
            params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(&digest)];
            let certificate = params.self_signed(&key).ok()?;
            // `CertifiedKey::from_der` would refuse the critical acmeIdentifier extension that
            // is the point of this certificate; the key is loaded directly instead.
            let signing = rustls::crypto::aws_lc_rs::default_provider()
                .key_provider
                .load_private_key(PrivateKeyDer::Pkcs8(key.serialize_der().into()))
                .ok()?;
            let certified =
                rustls::sign::CertifiedKey::new(vec![certificate.der().clone()], signing);
            Some(Arc::new(certified))
        })
    }
}

/// `GET /.well-known/acme-challenge/{token}` (RFC 8555 §8.3), for the plain-HTTP listener:
/// the key authorization of a pending http-01 challenge, from shared storage.
pub fn challenge_router(db: Db) -> Routes {
    Routes::new()
        .route(
            Access::Public,
            "GET /.well-known/acme-challenge/{token}",
            answer,
        )
        .with_state(db)
}

async fn answer(
    axum::extract::State(db): axum::extract::State<Db>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Result<axum::response::Response, palisade_http::AppError> {
    use axum::response::IntoResponse;
    match store::challenge(&db, &token).await? {
        Some(key_authorization) => Ok((
            [(::http::header::CONTENT_TYPE, "application/octet-stream")],
            key_authorization,
        )
            .into_response()),
        None => Err(palisade_http::AppError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_falls_due_with_a_third_left_or_half_of_a_short_lifetime() {
        let day = 86_400;
        assert_eq!(renew_at(0, 90 * day), 60 * day);
        assert_eq!(renew_at(0, 6 * day), 3 * day);
        assert_eq!(renew_at(100, 400), 250);
        let no_ari = RenewalInformation::default();
        assert_eq!(due_at(0, 90 * day, Some("a.1"), &no_ari), 60 * day);
        for failures in 1..30 {
            let wait = back_off(failures);
            let full = (RETRY_FIRST_S << (failures - 1).min(20)).min(RETRY_MAX_S);
            assert!(
                wait <= full && wait > full * 4 / 5 - 1,
                "{failures}: {wait}"
            );
        }
    }

    #[test]
    fn the_time_chosen_in_the_ari_window_rules_until_the_emergency_point() {
        let day = 86_400;
        let ari = |selected: i64| RenewalInformation {
            certificate: Some("a.1".into()),
            window_start: Some(selected - 10),
            window_end: Some(selected + 10),
            selected_at: Some(selected),
            next_check: 0,
            explanation: None,
        };
        // Earlier or later than a third before expiry, the CA's choice wins…
        assert_eq!(due_at(0, 90 * day, Some("a.1"), &ari(10 * day)), 10 * day);
        assert_eq!(due_at(0, 90 * day, Some("a.1"), &ari(80 * day)), 80 * day);
        // …until a twentieth of the lifetime is left.
        assert_eq!(
            due_at(0, 90 * day, Some("a.1"), &ari(89 * day)),
            90 * day - 90 * day / 20
        );
        // A window given for another certificate is not this one's.
        assert_eq!(due_at(0, 90 * day, Some("b.2"), &ari(10 * day)), 60 * day);
        assert_eq!(due_at(0, 90 * day, None, &ari(10 * day)), 60 * day);
    }

    #[test]
    fn the_time_chosen_is_inside_the_window_and_spread_over_it() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2_000 {
            let t = choose_in(1_000, 1_009);
            assert!((1_000..=1_009).contains(&t), "{t}");
            seen.insert(t);
        }
        assert_eq!(seen.len(), 10, "every second of the window is chosen");
        assert_eq!(choose_in(500, 500), 500);
        assert_eq!(
            choose_in(500, 400),
            500,
            "a window that ends before it starts"
        );
    }
}

#[cfg(test)]
mod alpn_tests {
    use super::*;
    use palisade_tls::AlpnChallenges;

    async fn a_pending_challenge_is_answered_with_its_digest(db: Db) {
        store::put_challenge(&db, &order::alpn_key("acme.test"), "token.thumbprint")
            .await
            .unwrap();
        let answers = AlpnAnswers(db);
        let key = answers.certificate("acme.test").await.expect("an answer");
        let (_, cert) = x509_parser::parse_x509_certificate(&key.cert[0]).unwrap();
        let acme = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier");
        assert!(acme.critical);
        let digest = palisade_crypto::sha256(b"token.thumbprint");
        assert_eq!(
            &acme.value[2..],
            &digest[..],
            "an OCTET STRING of the digest"
        );
        assert!(answers.certificate("other.test").await.is_none());
    }

    palisade_store::both_backends!(a_pending_challenge_is_answered_with_its_digest);
}

#[cfg(test)]
mod fencing_tests {
    use super::*;

    fn certificate(serial: &str) -> store::Stored {
        store::Stored {
            chain: serial.to_owned(),
            key: "key".to_owned(),
            not_before: 0,
            not_after: 1,
            directory: None,
        }
    }

    async fn a_node_that_lost_the_lease_cannot_store_its_result(db: Db) {
        let sealing = SealingKey::from_bytes(&[5u8; 32]).unwrap();
        let name = "acme:a.test";
        let a = Lease::new(db.clone(), name, "node-a", Duration::from_secs(60));
        let b = Lease::new(db.clone(), name, "node-b", Duration::from_secs(60));
        let first = a.try_acquire().await.unwrap().expect("a holds the lease");
        assert!(
            store::store_certificate(&db, &sealing, "a.test", &certificate("A1"), name, first)
                .await
                .unwrap()
        );
        // A pauses; its lease goes to B, which stores its own result.
        a.release(first).await.unwrap();
        let second = b.try_acquire().await.unwrap().expect("b holds the lease");
        assert!(second > first);
        assert!(
            store::store_certificate(&db, &sealing, "a.test", &certificate("B1"), name, second)
                .await
                .unwrap()
        );
        // A wakes with the result of its order: refused, and B's stays.
        assert!(
            !store::store_certificate(&db, &sealing, "a.test", &certificate("A2"), name, first)
                .await
                .unwrap()
        );
        let kept = store::certificate(&db, &sealing, "a.test")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.chain, "B1");
    }

    palisade_store::both_backends!(a_node_that_lost_the_lease_cannot_store_its_result);
}
