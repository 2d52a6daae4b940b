//! Layered configuration (PLT-4): built-in defaults, then a TOML file, then `PALISADE_*`
//! environment variables (`__` separates sections: `PALISADE_SERVER__HTTPS_LISTEN`). Unknown
//! keys and bad values fail fast with the key named; secrets print masked.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use palisade_crypto::Secret;
use palisade_identity::IdentityConfig;
use serde::{Deserialize, Serialize, Serializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the embedded default keeps its database, development certificate and keys.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    pub telemetry: TelemetryConfig,
    pub audit: AuditConfig,
    pub secrets: SecretsConfig,
    pub identity: IdentityConfig,
    pub admin: AdminConfig,
    pub witness: WitnessConfig,
    pub tokens: TokensConfig,
    pub oauth: OAuthSettings,
    pub authz: AuthzConfig,
    pub api: ApiConfig,
}

/// The protected API (RES-7).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Requests each principal (user or client) may make per minute, in bursts of as many.
    pub requests_per_minute: u32,
    /// Requests per minute of all the users of one OAuth client together.
    pub client_requests_per_minute: u32,
    /// Requests per minute from one network (an IPv4 address, an IPv6 /64), counted before any
    /// token is checked.
    pub network_requests_per_minute: u32,
    /// Requests the API serves at once; more are shed at once with `503` and `Retry-After`
    /// rather than queued on the database.
    pub max_in_flight: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            requests_per_minute: 600,
            client_requests_per_minute: 60_000,
            network_requests_per_minute: 3_000,
            max_in_flight: 256,
        }
    }
}

/// Authorization policies (RES-2, RES-5).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthzConfig {
    /// A Cedar policy file replacing the built-in policies; reread on SIGHUP.
    pub policy_file: Option<PathBuf>,
}

/// The OAuth 2.1 / OpenID Connect provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthSettings {
    /// The issuer identifier (`https://id.example.com`); default `https://localhost:<port>`.
    pub issuer: Option<String>,
    /// Resource indicators tokens may be issued for; default `<issuer>/api`.
    pub resources: Vec<String>,
    /// Scopes clients may be registered for, besides OpenID Connect's.
    pub scopes: Vec<String>,
    /// Tolerated clock difference when checking token times (at most 120).
    pub clock_skew_seconds: u32,
    pub refresh_token_days: u32,
    /// A rotated refresh token used again within this window counts as a concurrent refresh,
    /// not as theft (at most 2000).
    pub refresh_grace_ms: u32,
    /// Dynamic client registration without an initial access token.
    pub open_registration: bool,
    /// Hex SHA-256 digests of initial access tokens for (closed) dynamic registration.
    pub registration_token_sha256: Vec<String>,
    /// When not empty, dynamically registered redirect URIs must be on these hosts.
    pub registration_allowed_hosts: Vec<String>,
    /// Dynamic registrations accepted per client address and minute (a burst of as many).
    pub registration_per_minute: u32,
    /// Require DPoP proofs to carry a server nonce (RFC 9449 §8).
    pub dpop_nonces: bool,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        Self {
            issuer: None,
            resources: Vec::new(),
            scopes: [
                "audit:write",
                "social:read",
                "social:write",
                "messages",
                "moderation",
            ]
            .map(String::from)
            .to_vec(),
            clock_skew_seconds: 30,
            refresh_token_days: 30,
            refresh_grace_ms: 2000,
            open_registration: false,
            registration_token_sha256: Vec::new(),
            registration_allowed_hosts: Vec::new(),
            registration_per_minute: 10,
            dpop_nonces: true,
        }
    }
}

/// Token signing and lifetimes (TOK-1..3).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokensConfig {
    /// `EdDSA` (Ed25519, the default) or `ES256`.
    pub signing_algorithm: String,
    /// Scheduled rotation of the signing key.
    pub key_rotation_days: u32,
    /// How long clients may cache the JWKS; a new key is published this long before it signs.
    pub jwks_cache_seconds: u32,
    /// Access tokens live 5-15 minutes.
    pub access_token_minutes: u32,
    pub id_token_minutes: u32,
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            signing_algorithm: "EdDSA".into(),
            key_rotation_days: 30,
            jwks_cache_seconds: 3600,
            access_token_minutes: 10,
            id_token_minutes: 60,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Hex SHA-256 digests of the API keys allowed on `/admin/…`; empty refuses all.
    pub api_key_sha256: Vec<String>,
}

/// `palisade witness` (AUD-4): a C2SP tlog-witness that cosigns the checkpoints of the logs it
/// is told about, and never a checkpoint that forks or rolls back what it saw before.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WitnessConfig {
    /// Plain HTTP, meant for loopback or behind the TLS listener of a proxy.
    pub listen: SocketAddr,
    /// The witness's key name, conventionally a URL without scheme.
    pub name: String,
    /// The cosigning key (`PRIVATE+KEY+…`); generated into `data_dir` when absent.
    pub signing_key: Option<Secret<String>>,
    /// The logs this witness cosigns: their origin and checkpoint key (`name+hash+key`).
    pub logs: Vec<WitnessedLog>,
}

impl Default for WitnessConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8380)),
            name: "localhost/palisade/witness".into(),
            signing_key: None,
            logs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessedLog {
    pub origin: String,
    pub vkey: String,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// The first line of every checkpoint: names this log (conventionally a URL without scheme).
    pub origin: String,
    /// The checkpoint signer (`PRIVATE+KEY+…`); generated into `data_dir` when absent.
    pub signing_key: Option<Secret<String>>,
    /// Base64 of 32 bytes keying the pseudonyms of accounts in the log; generated when absent.
    pub pseudonym_key: Option<Secret<String>>,
    /// Hex SHA-256 digests of the API keys allowed to `POST /audit/events`; empty refuses all.
    pub ingest_key_sha256: Vec<String>,
    /// Witnesses asked to cosign each new checkpoint (AUD-4).
    pub witnesses: Vec<LogWitness>,
}

impl Default for AuditConfig {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// An OTLP/HTTP collector, e.g. `http://127.0.0.1:4318`; request spans are exported to
    /// `{otlp_endpoint}/v1/traces` when set.
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "palisade".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub https_listen: SocketAddr,
    /// Plain HTTP that only redirects to HTTPS; empty to disable.
    pub http_listen: Option<SocketAddr>,
    /// Metrics and health for operators; keep it on loopback or a private network.
    pub admin_listen: Option<SocketAddr>,
    /// The HTTPS port clients reach (differs from the listen port behind port forwarding).
    pub public_https_port: Option<u16>,
    pub max_connections: usize,
    pub body_limit_bytes: usize,
    pub request_timeout_seconds: u64,
    pub drain_timeout_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain; with `key_file`, replaces the development certificate and is
    /// reloaded when it changes.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub reload_interval_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path` or `postgres://user:password@host/db`; defaults to SQLite in `data_dir`.
    pub url: Option<DatabaseUrl>,
    pub max_connections: u32,
}

/// A database URL; printed with its password masked.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(pub Secret<String>);

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&mask_url_password(self.0.expose()))
    }
}

fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}"),
        None => url.to_owned(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter: `info`, `palisade=debug,info`, ...
    pub level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// Base64 of 32 random bytes that seal secrets at rest (TOTP seeds). When absent, one is
    /// generated into `data_dir/sealing.key` on first start.
    pub sealing_key: Option<Secret<String>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("palisade-data"),
            server: ServerConfig::default(),
            tls: TlsConfig {
                reload_interval_seconds: 60,
                ..Default::default()
            },
            database: DatabaseConfig {
                url: None,
                max_connections: 16,
            },
            log: LogConfig::default(),
            telemetry: TelemetryConfig::default(),
            audit: AuditConfig::default(),
            secrets: SecretsConfig::default(),
            identity: IdentityConfig::default(),
            admin: AdminConfig::default(),
            witness: WitnessConfig::default(),
            tokens: TokensConfig::default(),
            oauth: OAuthSettings::default(),
            authz: AuthzConfig::default(),
            api: ApiConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            https_listen: "127.0.0.1:8443".parse().expect("static address"),
            http_listen: Some("127.0.0.1:8080".parse().expect("static address")),
            admin_listen: Some("127.0.0.1:9090".parse().expect("static address")),
            public_https_port: None,
            max_connections: 10_000,
            body_limit_bytes: 64 * 1024,
            request_timeout_seconds: 30,
            drain_timeout_seconds: 20,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

impl Config {
    /// Loads defaults ← file (if given, or `palisade.toml` if present) ← environment.
    pub fn load(file: Option<&Path>) -> Result<Self, String> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(format!(
                    "configuration file {} does not exist",
                    path.display()
                ));
            }
            Some(path) => figment = figment.merge(Toml::file(path)),
            None if Path::new("palisade.toml").exists() => {
                figment = figment.merge(Toml::file("palisade.toml"))
            }
            None => {}
        }
        let env = Env::prefixed("PALISADE_")
            .split("__")
            // PALISADE_CONFIG names the file (handled by the CLI) and PALISADE_TEST_* configure
            // the test suite; neither is a configuration key.
            .filter(|key| {
                let key = key.as_str().to_ascii_lowercase();
                !key.starts_with("test_") && key != "config"
            });
        let config: Config = figment
            .merge(env)
            .extract()
            .map_err(|e| format!("invalid configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err("tls.cert_file and tls.key_file must be set together".into());
        }
        if self.tls.reload_interval_seconds == 0 {
            return Err("tls.reload_interval_seconds must be positive".into());
        }
        if let Some(url) = &self.database.url {
            let u = url.0.expose();
            if !(u.starts_with("sqlite:")
                || u.starts_with("postgres://")
                || u.starts_with("postgresql://"))
            {
                return Err("database.url must start with sqlite: or postgres://".into());
            }
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && !endpoint.starts_with("http://")
        {
            return Err("telemetry.otlp_endpoint must be an http:// URL".into());
        }
        if self.audit.origin.is_empty() || self.audit.origin.contains(['+', ' ', '\n']) {
            return Err(
                "audit.origin must be a non-empty name without '+', spaces or newlines".into(),
            );
        }
        palisade_http::ApiKeys::from_hex_digests(&self.audit.ingest_key_sha256)
            .map_err(|e| format!("audit.ingest_key_sha256: {e}"))?;
        palisade_http::ApiKeys::from_hex_digests(&self.admin.api_key_sha256)
            .map_err(|e| format!("admin.api_key_sha256: {e}"))?;
        palisade_http::ApiKeys::from_hex_digests(&self.oauth.registration_token_sha256)
            .map_err(|e| format!("oauth.registration_token_sha256: {e}"))?;
        if let Some(issuer) = &self.oauth.issuer
            && (!issuer.starts_with("https://")
                || issuer.contains(['?', '#'])
                || issuer.ends_with('/'))
        {
            return Err(
                "oauth.issuer must be an https URL without query, fragment or trailing slash"
                    .into(),
            );
        }
        for (key, value) in [
            ("api.requests_per_minute", self.api.requests_per_minute),
            (
                "api.client_requests_per_minute",
                self.api.client_requests_per_minute,
            ),
            (
                "api.network_requests_per_minute",
                self.api.network_requests_per_minute,
            ),
        ] {
            if value == 0 {
                return Err(format!("{key} must be positive"));
            }
        }
        if self.api.max_in_flight == 0 {
            return Err("api.max_in_flight must be positive".into());
        }
        if self.oauth.registration_per_minute == 0 {
            return Err("oauth.registration_per_minute must be positive".into());
        }
        if self.oauth.refresh_grace_ms > 2000 || self.oauth.refresh_token_days == 0 {
            return Err(
                "oauth.refresh_grace_ms must be at most 2000 and oauth.refresh_token_days positive"
                    .into(),
            );
        }
        if i64::from(self.oauth.clock_skew_seconds) > palisade_jose::verify::MAX_SKEW_SECONDS {
            return Err("oauth.clock_skew_seconds must be at most 120".into());
        }
        if palisade_jose::Algorithm::parse(&self.tokens.signing_algorithm).is_none() {
            return Err("tokens.signing_algorithm must be EdDSA or ES256".into());
        }
        if !(5..=15).contains(&self.tokens.access_token_minutes) {
            return Err("tokens.access_token_minutes must be between 5 and 15".into());
        }
        if self.tokens.id_token_minutes == 0 || self.tokens.key_rotation_days == 0 {
            return Err(
                "tokens.id_token_minutes and tokens.key_rotation_days must be positive".into(),
            );
        }
        if self.database.max_connections == 0 {
            return Err("database.max_connections must be positive".into());
        }
        if self.server.max_connections == 0 || self.server.max_connections > 18_000 {
            return Err("server.max_connections must be between 1 and 18000 (the process may hold 20000 files)".into());
        }
        if self.server.body_limit_bytes < 1024 {
            return Err("server.body_limit_bytes must be at least 1024".into());
        }
        self.identity.validate()
    }

    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.0.expose().clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("palisade.db").display()
            ),
        }
    }

    /// The configuration as TOML with every secret masked (`palisade config check`).
    pub fn to_masked_toml(&self) -> String {
        toml_string(self)
    }
}

fn toml_string<T: Serialize>(value: &T) -> String {
    // figment's TOML provider brings the toml crate; go through JSON to avoid a second encoder.
    let json = serde_json::to_value(value).expect("configuration serialises");
    render_toml(&json, "")
}

/// A small TOML renderer for the configuration's shape: scalars first, then one table per
/// nested object.
fn render_toml(value: &serde_json::Value, prefix: &str) -> String {
    let serde_json::Value::Object(map) = value else {
        return String::new();
    };
    let mut out = String::new();
    for (k, v) in map {
        match v {
            serde_json::Value::Object(_) | serde_json::Value::Null => {}
            other => out.push_str(&format!("{k} = {other}\n")),
        }
    }
    for (k, v) in map {
        if let serde_json::Value::Object(_) = v {
            let name = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.push_str(&format!("\n[{name}]\n"));
            out.push_str(&render_toml(v, &name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            mask_url_password("postgres://app:s3cret@db:5432/palisade"),
            "postgres://app:[redacted]@db:5432/palisade"
        );
        assert_eq!(mask_url_password("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn masked_output_hides_secrets() {
        let mut c = Config::default();
        c.database.url = Some(DatabaseUrl(Secret::new(
            "postgres://app:s3cret@db/p".into(),
        )));
        c.secrets.sealing_key = Some(Secret::new("c2VjcmV0".into()));
        let out = c.to_masked_toml();
        assert!(
            !out.contains("s3cret") && !out.contains("c2VjcmV0"),
            "{out}"
        );
        assert!(
            out.contains("[server]") && out.contains("https_listen = \"127.0.0.1:8443\""),
            "{out}"
        );
    }
}
