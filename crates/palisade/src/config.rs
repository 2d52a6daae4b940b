//! Layered configuration (PLT-4): built-in defaults, then a TOML file, then `PALISADE_*`
//! environment variables (`__` separates sections: `PALISADE_SERVER__HTTPS_LISTEN`). Unknown
//! keys and bad values fail fast with the key named; secrets print masked.
//!
//! Each section is the typed settings of the crate that owns it; this file only composes them,
//! and derives from the one public URL what several of them need.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use palisade_crypto::Secret;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    /// Where the embedded default keeps its database, development certificate and keys.
    pub data_dir: PathBuf,
    /// The HTTPS URL users and clients reach this server at (`https://id.example.com`, a port
    /// if not 443). It is the OAuth issuer, the passkeys' relying party and origin, and where
    /// plain HTTP redirects; every node of a deployment has the same. Default:
    /// `https://localhost:<https port>`.
    pub public_url: Option<String>,
    pub server: palisade_http::server::ServerSettings,
    pub tls: palisade_tls::TlsSettings,
    pub database: palisade_store::DatabaseSettings,
    pub log: LogConfig,
    pub telemetry: palisade_http::otlp::TelemetrySettings,
    pub audit: palisade_audit::AuditSettings,
    pub secrets: SecretsConfig,
    pub identity: palisade_identity::IdentityConfig,
    pub admin: AdminConfig,
    pub witness: WitnessConfig,
    pub tokens: palisade_oauth::TokenSettings,
    pub oauth: palisade_oauth::OAuthSettings,
    pub authz: palisade_authz::AuthzSettings,
    pub api: palisade_principal::ApiSettings,
    pub cluster: palisade_cluster::Settings,
    pub egress: palisade_http::egress::EgressSettings,
    pub realtime: palisade_realtime::Settings,
    pub ca: palisade_ca::CaSettings,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct AdminConfig {
    /// Hex SHA-256 digests of the API keys allowed on `/admin/…`; empty refuses all.
    pub api_key_sha256: Vec<String>,
}

/// `palisade witness` (AUD-4): a C2SP tlog-witness that cosigns the checkpoints of the logs it
/// is told about, and never a checkpoint that forks or rolls back what it saw before.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct WitnessConfig {
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
pub(crate) struct WitnessedLog {
    pub origin: String,
    pub vkey: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct LogConfig {
    /// A tracing filter: `info`, `palisade=debug,info`, ...
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct SecretsConfig {
    /// Base64 of 32 random bytes that seal secrets at rest (TOTP seeds, signing keys) and derive
    /// the keys every node must share (DPoP nonces, refresh successors). When absent, one is
    /// generated into `data_dir/sealing.key` on first start.
    pub sealing_key: Option<Secret<String>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("palisade-data"),
            public_url: None,
            server: Default::default(),
            tls: Default::default(),
            database: Default::default(),
            log: Default::default(),
            telemetry: Default::default(),
            audit: Default::default(),
            secrets: Default::default(),
            identity: Default::default(),
            admin: Default::default(),
            witness: Default::default(),
            tokens: Default::default(),
            oauth: Default::default(),
            authz: Default::default(),
            api: Default::default(),
            cluster: Default::default(),
            egress: Default::default(),
            realtime: Default::default(),
            ca: Default::default(),
        }
    }
}

/// What the public URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicUrl {
    /// `https://host[:port]`, without a trailing slash: the issuer.
    pub base: String,
    pub host: String,
}

impl PublicUrl {
    fn parse(url: &str) -> Result<Self, String> {
        let bad = || {
            "public_url must be an https URL of a host name (and a port), without a path, query or fragment"
                .to_owned()
        };
        let rest = url.strip_prefix("https://").ok_or_else(bad)?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(bad());
        }
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
                port.parse::<u16>().map_err(|_| bad())?;
                host
            }
            _ => authority,
        };
        Ok(Self {
            base: format!("https://{authority}"),
            host: host.to_owned(),
        })
    }

    /// The passkeys' relying party: the public host, and exactly its origin — except the
    /// development default (`localhost`), whose port is often ephemeral.
    pub(crate) fn relying_party(&self) -> palisade_identity::webauthn::RelyingParty {
        palisade_identity::webauthn::RelyingParty {
            id: self.host.clone(),
            origin: (self.host != "localhost").then(|| self.base.clone()),
        }
    }
}

impl Config {
    /// Loads defaults ← file (if given, or `palisade.toml` if present) ← environment.
    pub(crate) fn load(file: Option<&Path>) -> Result<Self, String> {
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
        if let Some(url) = &self.public_url {
            PublicUrl::parse(url)?;
        }
        self.server.validate()?;
        self.tls.validate()?;
        self.database.validate()?;
        self.telemetry.validate()?;
        self.audit.validate()?;
        palisade_http::ApiKeys::from_hex_digests(&self.admin.api_key_sha256)
            .map_err(|e| format!("admin.api_key_sha256: {e}"))?;
        self.oauth.validate()?;
        self.tokens.validate()?;
        self.api.validate()?;
        self.cluster.validate()?;
        self.egress.validate()?;
        self.realtime.validate()?;
        self.ca.validate()?;
        self.identity.validate()
    }

    /// The public URL, given the port the HTTPS listener is on.
    pub(crate) fn public_url(&self, https_port: u16) -> PublicUrl {
        match &self.public_url {
            Some(url) => PublicUrl::parse(url).expect("validated at load"),
            None => PublicUrl {
                base: format!("https://localhost:{https_port}"),
                host: "localhost".into(),
            },
        }
    }

    pub(crate) fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.expose().to_owned(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("palisade.db").display()
            ),
        }
    }

    /// The configuration as TOML with every secret masked (`palisade config check`).
    pub(crate) fn to_masked_toml(&self) -> String {
        // figment's TOML provider brings the toml crate; go through JSON to avoid a second
        // encoder.
        let json = serde_json::to_value(self).expect("configuration serialises");
        render_toml(&json, "")
    }
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
    fn masked_output_hides_secrets() {
        let mut c = Config::default();
        c.database.url = Some(palisade_store::DatabaseUrl::new(
            "postgres://app:s3cret@db/p",
        ));
        c.secrets.sealing_key = Some(Secret::new("c2VjcmV0".into()));
        c.cluster.redis_url = Some(Secret::new("redis://:hunter2@cache".into()));
        let out = c.to_masked_toml();
        assert!(
            !out.contains("s3cret") && !out.contains("c2VjcmV0") && !out.contains("hunter2"),
            "{out}"
        );
        assert!(
            out.contains("[server]") && out.contains("https_listen = \"127.0.0.1:8443\""),
            "{out}"
        );
    }

    #[test]
    fn the_public_url_derives_issuer_and_relying_party() {
        let url = PublicUrl::parse("https://id.example.com:8443/").unwrap();
        assert_eq!(url.base, "https://id.example.com:8443");
        let rp = url.relying_party();
        assert_eq!(rp.id, "id.example.com");
        assert_eq!(rp.origin.as_deref(), Some("https://id.example.com:8443"));
        for bad in [
            "http://id.example.com",
            "https://id.example.com/path",
            "https://user@id.example.com",
            "https://id.example.com:port",
            "https://",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
