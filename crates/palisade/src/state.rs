//! Opening what every command shares: the data directory, the database, the sealing key.

use crate::config::Config;
use anyhow::{Context, Result};
use palisade_crypto::SealingKey;
use palisade_store::Db;
use std::path::Path;

pub fn ensure_data_dir(config: &Config) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))
}

pub async fn open_database(config: &Config) -> Result<Db> {
    ensure_data_dir(config)?;
    let db = Db::connect(&config.database_url(), config.database.max_connections)
        .await
        .context("cannot open the database")?;
    db.migrate().await.context("cannot apply migrations")?;
    Ok(db)
}

/// The key that seals secrets at rest: from configuration, or generated once into the data
/// directory (mode 0600) for the embedded default.
pub fn sealing_key(config: &Config) -> Result<SealingKey> {
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
fn derived_key(config: &Config, purpose: &str) -> Result<[u8; 32]> {
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
pub fn audit_keys(config: &Config) -> Result<(palisade_audit::note::Signer, [u8; 32])> {
    let origin = config.audit.origin.clone();
    let skey = match &config.audit.signing_key {
        Some(key) => key.expose().clone(),
        None => read_or_create_key_file(&config.data_dir.join("audit-signing.key"), || {
            palisade_audit::note::Signer::generate(&origin)
                .map_err(|e| anyhow::anyhow!("audit.origin: {e}"))
        })?,
    };
    let signer = palisade_audit::note::Signer::from_skey(skey.trim())
        .map_err(|e| anyhow::anyhow!("audit.signing_key: {e}"))?;
    let pseudonym = match &config.audit.pseudonym_key {
        Some(key) => key.expose().clone(),
        None => read_or_create_key_file(&config.data_dir.join("audit-pseudonym.key"), random_key)?,
    };
    Ok((signer, decode_key(&pseudonym, "audit.pseudonym_key")?))
}

/// Reads a key file, or creates it (mode 0600, never overwriting) with `make`'s value.
pub fn read_or_create_key_file(
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

/// The token signing keys, with the policy the configuration sets (TOK-2, TOK-3).
pub async fn key_ring(
    config: &Config,
    db: &palisade_store::Db,
) -> Result<palisade_jose::keyring::KeyRing> {
    let t = &config.tokens;
    let policy = palisade_jose::keyring::KeyPolicy {
        algorithm: palisade_jose::Algorithm::parse(&t.signing_algorithm)
            .context("tokens.signing_algorithm")?,
        rotation_interval_ms: i64::from(t.key_rotation_days) * 86_400_000,
        publish_ahead_ms: i64::from(t.jwks_cache_seconds) * 1000,
        // Tokens live at most this long, plus the largest clock skew a verifier allows.
        retire_after_ms: (i64::from(t.access_token_minutes.max(t.id_token_minutes)) * 60
            + palisade_jose::verify::MAX_SKEW_SECONDS)
            * 1000,
    };
    Ok(palisade_jose::keyring::KeyRing::open(db.clone(), sealing_key(config)?, policy).await?)
}

/// The OAuth provider's settings; without a configured issuer, `https://localhost:<port>` of
/// the HTTPS listener (the development certificate's name).
pub fn oauth_config(config: &Config, https_port: u16) -> Result<palisade_oauth::OAuthConfig> {
    let o = &config.oauth;
    let issuer = o
        .issuer
        .clone()
        .unwrap_or_else(|| format!("https://localhost:{https_port}"));
    let resources = if o.resources.is_empty() {
        vec![format!("{issuer}/api")]
    } else {
        o.resources.clone()
    };
    let dpop_nonce_key = if o.dpop_nonces {
        Some(derived_key(config, "dpop nonces")?)
    } else {
        None
    };
    Ok(palisade_oauth::OAuthConfig {
        issuer,
        resources,
        scopes: o.scopes.clone(),
        access_token_minutes: config.tokens.access_token_minutes,
        id_token_minutes: config.tokens.id_token_minutes,
        refresh_token_days: o.refresh_token_days,
        refresh_grace_ms: i64::from(o.refresh_grace_ms),
        skew_seconds: i64::from(o.clock_skew_seconds),
        registration: palisade_oauth::RegistrationPolicy {
            open: o.open_registration,
            initial_tokens: palisade_http::ApiKeys::from_hex_digests(&o.registration_token_sha256)
                .unwrap_or_default(),
            allowed_hosts: o.registration_allowed_hosts.clone(),
            per_minute: o.registration_per_minute,
        },
        dpop_nonce_key,
        api: palisade_oauth::principal::Allowance {
            per_user: config.api.requests_per_minute,
            per_client: config.api.client_requests_per_minute,
            per_network: config.api.network_requests_per_minute,
        },
    })
}

/// The auditor of commands that run beside a server: their events go through the outbox the
/// server's log writer appends from.
pub fn cli_auditor(config: &Config, db: &palisade_store::Db) -> Result<palisade_audit::Auditor> {
    let (_, pseudonym_key) = audit_keys(config)?;
    Ok(palisade_audit::Auditor::deferred(
        db.clone(),
        pseudonym_key,
        sealing_key(config)?,
    ))
}
