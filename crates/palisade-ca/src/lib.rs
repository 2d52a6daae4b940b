//! The internal CA as a service (TLS-5): the authority is created once per database
//! (`palisade ca init`) and shared by every node; services obtain a first X.509-SVID with a
//! one-time join token and a certificate signing request (`POST /ca/svid`), renew it over mTLS
//! with the SVID they hold (`POST /ca/svid/renew`), and read the trust bundle
//! (`GET /ca/bundle`). Palisade's nodes hold SVIDs of their own, rotated at half their lifetime
//! ([`node`]). Every issuance and refusal goes through the audit append.
// Library code handles every failure; tests may unwrap.
#![warn(clippy::unwrap_used)]

pub mod node;
mod routes;
mod settings;
mod store;
#[cfg(test)]
mod tests;

pub use routes::{JoinTokenGuard, router};
pub use settings::CaSettings;
pub use store::SvidRecord;

use palisade_audit::{Action, Auditor, Outcome, SecurityEvent};
use palisade_crypto::SealingKey;
use palisade_store::{Db, StoreError, now_ms};
use palisade_tls::ca::{
    Authority, CaError, CertificateRequest, IssuedSvid, SpiffeId, TrustDomain, Validity,
};
use rustls_pki_types::PrivatePkcs8KeyDer;
use std::sync::Arc;
use time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("audit: {0}")]
    Audit(#[from] palisade_audit::AuditError),
    #[error("the join token is unknown, already used or expired")]
    JoinToken,
    #[error("an internal CA already exists for trust domain {0}")]
    Exists(String),
    #[error("there is no internal CA; create one with `palisade ca init`")]
    Missing,
    #[error("the internal CA is for trust domain {stored}, but ca.trust_domain is {configured}")]
    OtherDomain { stored: String, configured: String },
    #[error("the stored CA key cannot be opened with this sealing key")]
    Sealed,
}

/// How an SVID came to be issued, as the audit trail and `ca_svids` record it.
#[derive(Debug, Clone, Copy)]
enum Via {
    JoinToken,
    Renewal,
    Node,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::JoinToken => "join_token",
            Via::Renewal => "renewal",
            Via::Node => "node",
        }
    }
}

/// A join token as `palisade ca join-token` prints it: shown once, stored as a digest.
#[derive(Debug, serde::Serialize)]
pub struct JoinToken {
    pub token: String,
    pub spiffe_id: SpiffeId,
    pub expires_at: i64,
}

#[derive(Clone)]
pub struct Ca(Arc<Inner>);

struct Inner {
    db: Db,
    authority: Authority,
    auditor: Auditor,
    svid_lifetime: Duration,
}

const TENANT: &str = palisade_store::DEFAULT_TENANT;

fn seal_context(trust_domain: &TrustDomain) -> Vec<u8> {
    format!("palisade internal ca key {trust_domain}").into_bytes()
}

impl Ca {
    /// Creates the internal CA of this database, once.
    pub async fn init(
        db: &Db,
        sealing: &SealingKey,
        auditor: &Auditor,
        trust_domain: TrustDomain,
        lifetime: Duration,
    ) -> Result<Authority, ServiceError> {
        if let Some((stored, ..)) = store::authority(db).await? {
            return Err(ServiceError::Exists(stored));
        }
        let (authority, key) =
            Authority::create(trust_domain.clone(), Validity::from_now(lifetime))?;
        let sealed = sealing.seal_text(&seal_context(&trust_domain), key.secret_pkcs8_der());
        store::insert_authority(db, &authority, &sealed).await?;
        auditor
            .record(
                SecurityEvent::new(Action::TlsCaCreated, Outcome::Success, TENANT)
                    .detail("kind", "internal")
                    .detail("trust_domain", trust_domain.as_str())
                    .detail("not_after", authority.not_after()),
            )
            .await?;
        Ok(authority)
    }

    /// The internal CA of this database for `settings`' trust domain; `None` when no trust
    /// domain is configured.
    pub async fn load(
        db: Db,
        sealing: &SealingKey,
        auditor: Auditor,
        settings: &CaSettings,
    ) -> Result<Option<Self>, ServiceError> {
        let Some(configured) = &settings.trust_domain else {
            return Ok(None);
        };
        let Some((stored, certificate, sealed)) = store::authority(&db).await? else {
            return Err(ServiceError::Missing);
        };
        if stored != configured.as_str() {
            return Err(ServiceError::OtherDomain {
                stored,
                configured: configured.to_string(),
            });
        }
        let key = sealing
            .open_text(&seal_context(configured), &sealed)
            .map_err(|_| ServiceError::Sealed)?;
        let authority = Authority::open(
            configured.clone(),
            certificate,
            &PrivatePkcs8KeyDer::from(key),
        )?;
        Ok(Some(Self(Arc::new(Inner {
            db,
            authority,
            auditor,
            svid_lifetime: Duration::seconds(settings.svid_lifetime_seconds as i64),
        }))))
    }

    /// As [`Ca::load`], creating the CA first if this database has none (the first node to
    /// start with a trust domain configured makes it; the others load it).
    pub async fn load_or_create(
        db: Db,
        sealing: &SealingKey,
        auditor: Auditor,
        settings: &CaSettings,
    ) -> Result<Option<Self>, ServiceError> {
        let Some(domain) = &settings.trust_domain else {
            return Ok(None);
        };
        if store::authority(&db).await?.is_none() {
            let lifetime = Duration::days(i64::from(settings.ca_lifetime_days));
            match Self::init(&db, sealing, &auditor, domain.clone(), lifetime).await {
                Ok(_) | Err(ServiceError::Exists(_)) => {}
                // Another node created it between the look and the insert.
                Err(ServiceError::Store(e)) if e.is_unique_violation() => {}
                Err(e) => return Err(e),
            }
        }
        Self::load(db, sealing, auditor, settings).await
    }

    pub fn authority(&self) -> &Authority {
        &self.0.authority
    }

    pub fn svid_lifetime(&self) -> Duration {
        self.0.svid_lifetime
    }

    /// A one-time token that a service exchanges for its first SVID, naming `id`.
    pub async fn create_join_token(
        &self,
        id: SpiffeId,
        lifetime: Duration,
    ) -> Result<JoinToken, ServiceError> {
        if id.trust_domain() != self.authority().trust_domain() {
            return Err(CaError::OutsideTrustDomain(
                id.to_string(),
                self.authority().trust_domain().to_string(),
            )
            .into());
        }
        let token = palisade_crypto::random_token();
        let expires_at = now_ms() + lifetime.whole_milliseconds() as i64;
        store::insert_join_token(&self.0.db, &digest(&token), &id, expires_at).await?;
        self.0
            .auditor
            .record(
                SecurityEvent::new(Action::CaJoinTokenCreated, Outcome::Success, TENANT)
                    .target(id.to_string())
                    .detail("expires_at", expires_at),
            )
            .await?;
        Ok(JoinToken {
            token,
            spiffe_id: id,
            expires_at: expires_at / 1000,
        })
    }

    /// Whether a join token could be spent now (the guard's check; spending is atomic in
    /// [`Ca::enroll`]).
    pub async fn join_token_is_live(&self, token: &str) -> Result<bool, ServiceError> {
        Ok(store::join_token_is_live(&self.0.db, &digest(token), now_ms()).await?)
    }

    /// Spends a join token on the SVID it names. The request is checked before the token is
    /// spent, so a malformed request does not waste it; two requests racing for one token get
    /// one SVID between them.
    pub async fn enroll(&self, token: &str, csr: &[u8]) -> Result<IssuedSvid, ServiceError> {
        let request = self.parse(None, csr).await?;
        let Some(id) = store::spend_join_token(&self.0.db, &digest(token), now_ms()).await? else {
            self.record_refusal(None, "join_token").await?;
            return Err(ServiceError::JoinToken);
        };
        let id = SpiffeId::parse(&id).map_err(CaError::from)?;
        self.sign(&request, &id, Via::JoinToken).await
    }

    /// A new SVID for the workload that proved its current one.
    pub async fn renew(&self, id: &SpiffeId, csr: &[u8]) -> Result<IssuedSvid, ServiceError> {
        let request = self.parse(Some(id), csr).await?;
        self.sign(&request, id, Via::Renewal).await
    }

    async fn sign(
        &self,
        request: &CertificateRequest,
        id: &SpiffeId,
        via: Via,
    ) -> Result<IssuedSvid, ServiceError> {
        let svid = self.0.authority.sign_request(
            request,
            id,
            &[],
            Validity::from_now(self.0.svid_lifetime),
        )?;
        self.issued(&svid, via).await?;
        Ok(svid)
    }

    /// An SVID and a new key for a node of this cluster, `spiffe://<td>/palisade/node/<id>`,
    /// also naming `dns_names` (inside the trust domain).
    pub async fn issue_node(
        &self,
        node_id: &str,
        dns_names: &[String],
    ) -> Result<(IssuedSvid, PrivatePkcs8KeyDer<'static>), ServiceError> {
        let id = SpiffeId::new(
            self.authority().trust_domain(),
            &format!("/palisade/node/{node_id}"),
        )
        .map_err(CaError::from)?;
        let (svid, key) =
            self.0
                .authority
                .issue(&id, dns_names, Validity::from_now(self.0.svid_lifetime))?;
        self.issued(&svid, Via::Node).await?;
        Ok((svid, key))
    }

    async fn issued(&self, svid: &IssuedSvid, via: Via) -> Result<(), ServiceError> {
        store::insert_svid(&self.0.db, svid, via.as_str()).await?;
        self.0
            .auditor
            .record(
                SecurityEvent::new(Action::TlsCertificateIssued, Outcome::Success, TENANT)
                    .target(svid.id.to_string())
                    .detail("kind", "svid")
                    .detail("via", via.as_str())
                    .detail("serial", svid.serial.as_str())
                    .detail("not_after", svid.not_after),
            )
            .await?;
        tracing::info!(spiffe_id = %svid.id, serial = %svid.serial, via = via.as_str(), "X.509-SVID issued");
        Ok(())
    }

    /// A request the CA would not sign is refused before anything is spent, and audited.
    async fn parse(
        &self,
        id: Option<&SpiffeId>,
        csr: &[u8],
    ) -> Result<CertificateRequest, ServiceError> {
        match CertificateRequest::parse(csr) {
            Ok(request) => Ok(request),
            Err(e) => {
                self.record_refusal(id, reason(&e)).await?;
                Err(e.into())
            }
        }
    }

    pub(crate) async fn record_refusal(
        &self,
        id: Option<&SpiffeId>,
        reason: &'static str,
    ) -> Result<(), ServiceError> {
        self.0.auditor.record(refusal_event(id, reason)).await?;
        Ok(())
    }

    /// The SVIDs signed so far, newest first.
    pub async fn list(&self) -> Result<Vec<store::SvidRecord>, ServiceError> {
        Ok(store::svids(&self.0.db).await?)
    }
}

fn refusal_event(id: Option<&SpiffeId>, reason: &'static str) -> SecurityEvent {
    let event = SecurityEvent::new(Action::TlsCertificateRefused, Outcome::Failure, TENANT)
        .detail("kind", "svid")
        .detail("reason", reason);
    match id {
        Some(id) => event.target(id.to_string()),
        None => event,
    }
}

fn reason(error: &CaError) -> &'static str {
    match error {
        CaError::Csr => "malformed_request",
        CaError::Key(_) => "key_not_accepted",
        _ => "refused",
    }
}

fn digest(token: &str) -> String {
    palisade_crypto::sha256_hex(token.as_bytes())
}
