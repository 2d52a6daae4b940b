//! What every command opens the same way: the data directory, the database, the keys (from
//! configuration, or generated once into the data directory for the embedded default), and —
//! for tools running beside a server — the cluster as a tool sees it.

use crate::config::Config;
use anyhow::{Context, Result};
use palisade_cluster::Cluster;
use palisade_crypto::SealingKey;
use palisade_store::Db;
use std::path::{Path, PathBuf};

pub(crate) fn ensure_data_dir(config: &Config) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))
}

pub(crate) async fn open_database(config: &Config) -> Result<Db> {
    ensure_data_dir(config)?;
    let db = Db::connect(&config.database_url(), config.database.max_connections)
        .await
        .context("cannot open the database")?;
    db.migrate().await.context("cannot apply migrations")?;
    Ok(db)
}

/// Where, without Redis, a server listens for the messages of tools beside it.
pub(crate) fn bus_socket(config: &Config) -> PathBuf {
    config.data_dir.join("bus.sock")
}

/// The key that seals secrets at rest: from configuration, or generated once into the data
/// directory (mode 0600) for the embedded default.
pub(crate) fn sealing_key(config: &Config) -> Result<SealingKey> {
    SealingKey::from_bytes(&sealing_key_bytes(config)?).context("secrets.sealing_key")
}

fn sealing_key_bytes(config: &Config) -> Result<[u8; 32]> {
    let encoded = match &config.secrets.sealing_key {
        Some(key) => key.expose().clone(),
        None => read_or_create_key_file(&config.data_dir.join("sealing.key"), random_key)?,
    };
    decode_key(&encoded, "secrets.sealing_key")
}

/// A key for `purpose` derived from the sealing key, so that every node sharing the sealing
/// key derives the same one and none of them can be used for another purpose.
pub(crate) fn derived_key(config: &Config, purpose: &str) -> Result<[u8; 32]> {
    Ok(palisade_crypto::hmac_sha256(
        &sealing_key_bytes(config)?,
        format!("palisade derived key: {purpose}").as_bytes(),
    ))
}

fn random_key() -> Result<String> {
    Ok(data_encoding::BASE64.encode(&palisade_crypto::random_bytes::<32>()))
}

fn decode_key(encoded: &str, name: &str) -> Result<[u8; 32]> {
    let bytes = data_encoding::BASE64
        .decode(encoded.trim().as_bytes())
        .with_context(|| format!("{name} is not valid base64"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{name} must decode to 32 bytes"))
}

/// The audit log's checkpoint signer and the key of its pseudonyms: from configuration, or
/// generated once into the data directory.
pub(crate) fn audit_keys(config: &Config) -> Result<(palisade_tlog::note::Signer, [u8; 32])> {
    let origin = config.audit.origin.clone();
    let skey = match &config.audit.signing_key {
        Some(key) => key.expose().clone(),
        None => read_or_create_key_file(&config.data_dir.join("audit-signing.key"), || {
            palisade_tlog::note::Signer::generate(&origin)
                .map_err(|e| anyhow::anyhow!("audit.origin: {e}"))
        })?,
    };
    let signer = palisade_tlog::note::Signer::from_skey(skey.trim())
        .map_err(|e| anyhow::anyhow!("audit.signing_key: {e}"))?;
    let pseudonym = match &config.audit.pseudonym_key {
        Some(key) => key.expose().clone(),
        None => read_or_create_key_file(&config.data_dir.join("audit-pseudonym.key"), random_key)?,
    };
    Ok((signer, decode_key(&pseudonym, "audit.pseudonym_key")?))
}

/// Reads a key file, or creates it (mode 0600, never overwriting) with `make`'s value.
pub(crate) fn read_or_create_key_file(
    path: &Path,
    make: impl FnOnce() -> Result<String>,
) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()));
    }
    let encoded = make()?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(encoded.as_bytes())?;
    Ok(encoded)
}

/// The token signing keys, with the lifecycle the configuration sets (TOK-2, TOK-3).
/// The signing keys; keys generated on the way (a first start) are key events in the log.
pub(crate) async fn key_ring(
    config: &Config,
    db: &Db,
    auditor: &palisade_audit::Auditor,
) -> Result<palisade_jose::keyring::KeyRing> {
    let ring = palisade_jose::keyring::KeyRing::open(
        db.clone(),
        sealing_key(config)?,
        config.tokens.key_policy(),
    )
    .await?;
    for key in ring.created_on_open() {
        auditor
            .record(
                palisade_audit::SecurityEvent::new(
                    palisade_audit::Action::SigningKeyCreated,
                    palisade_audit::Outcome::Success,
                    palisade_store::DEFAULT_TENANT,
                )
                .target(key.kid.clone())
                .detail("state", key.state),
            )
            .await?;
    }
    Ok(ring)
}

/// The OAuth provider's settings for a server whose public URL is `public`.
pub(crate) fn oauth_config(
    config: &Config,
    public: &crate::config::PublicUrl,
    mtls_base: Option<String>,
) -> Result<palisade_oauth::OAuthConfig> {
    let o = &config.oauth;
    let issuer = public.base.clone();
    Ok(palisade_oauth::OAuthConfig {
        resources: resources(config, &issuer),
        issuer,
        scopes: o.scopes.clone(),
        access_token_minutes: config.tokens.access_token_minutes,
        id_token_minutes: config.tokens.id_token_minutes,
        refresh_token_days: o.refresh_token_days,
        refresh_grace_ms: i64::from(o.refresh_grace_ms),
        refresh_key: derived_key(config, "refresh successors")?,
        skew_seconds: i64::from(o.clock_skew_seconds),
        registration: palisade_oauth::RegistrationPolicy {
            open: o.open_registration,
            initial_tokens: palisade_http::ApiKeys::from_hex_digests(&o.registration_token_sha256)
                .unwrap_or_default(),
            allowed_hosts: o.registration_allowed_hosts.clone(),
            per_minute: o.registration_per_minute,
        },
        mtls_base,
    })
}

/// The resources tokens may be issued for; the first is this server's own API.
pub(crate) fn resources(config: &Config, issuer: &str) -> Vec<String> {
    if config.oauth.resources.is_empty() {
        vec![format!("{issuer}/api")]
    } else {
        config.oauth.resources.clone()
    }
}

/// What a command-line tool beside a running server works with: the database, the cluster as
/// a tool sees it (its messages reach the servers), and an auditor whose events the servers'
/// sequencer appends.
pub(crate) struct Tool {
    pub db: Db,
    pub cluster: Cluster,
    pub auditor: palisade_audit::Auditor,
}

impl Tool {
    pub(crate) async fn open(config: &Config) -> Result<Self> {
        let db = open_database(config).await?;
        let cluster = Cluster::tool(db.clone(), &config.cluster, bus_socket(config))?;
        cluster.connect().await;
        let (_, pseudonym_key) = audit_keys(config)?;
        let auditor = palisade_audit::Auditor::deferred(
            db.clone(),
            pseudonym_key,
            sealing_key(config)?,
            cluster.bus.clone(),
        );
        Ok(Self {
            db,
            cluster,
            auditor,
        })
    }

    /// Revocation state changes, told to the servers.
    pub(crate) fn revocations(&self) -> palisade_principal::Revocations {
        palisade_principal::Revocations::new(self.db.clone(), self.cluster.bus.clone())
    }

    pub(crate) async fn close(self) {
        self.db.close().await;
    }
}
