use palisade_tls::ca::{AllowList, TrustDomain};
use std::net::SocketAddr;

/// `[ca]` settings: the internal CA and the mTLS listener (TLS-5).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaSettings {
    /// The trust domain of the internal CA (`spiffe://<trust domain>/...`); unset, there is no
    /// internal CA and no mTLS listener.
    pub trust_domain: Option<TrustDomain>,
    /// The mTLS listener: every client presents a certificate, an X.509-SVID of the internal CA
    /// or (for RFC 8705 self-signed client authentication) one of its own. It serves the same
    /// routes as the public listener, presenting this node's own SVID.
    pub mtls_listen: Option<SocketAddr>,
    /// The mTLS listener's URL as clients reach it (the `mtls_endpoint_aliases` of the OAuth
    /// metadata); by default `https://<trust domain>:<port>`, the name in the node's SVID.
    pub mtls_public_url: Option<String>,
    /// Lifetime of the SVIDs the CA signs; holders renew at half of it.
    pub svid_lifetime_seconds: u64,
    /// Lifetime of a new CA (`palisade ca init`).
    pub ca_lifetime_days: u32,
    /// DNS names in this node's own SVID besides its SPIFFE ID, inside the trust domain; by
    /// default the trust domain itself, so that ordinary TLS clients trusting the bundle can
    /// connect to `https://<trust domain>:<port>`.
    pub node_dns_names: Option<Vec<String>>,
    /// Which workloads each group of routes admits, as SPIFFE IDs or `spiffe://td/path/*`
    /// patterns. Groups: `audit-ingest`.
    pub allow: AllowList,
}

impl Default for CaSettings {
    fn default() -> Self {
        Self {
            trust_domain: None,
            mtls_listen: None,
            mtls_public_url: None,
            svid_lifetime_seconds: 3600,
            ca_lifetime_days: 5 * 365,
            node_dns_names: None,
            allow: AllowList::default(),
        }
    }
}

/// The route groups `ca.allow` may name.
pub(crate) const GROUPS: &[&str] = &[palisade_principal::AUDIT_INGEST];

impl CaSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.trust_domain.is_none() && self.mtls_listen.is_some() {
            return Err("ca.mtls_listen needs ca.trust_domain".into());
        }
        if let Some(url) = &self.mtls_public_url
            && !url.starts_with("https://")
        {
            return Err("ca.mtls_public_url must be an https URL".into());
        }
        if !(60..=30 * 86_400).contains(&self.svid_lifetime_seconds) {
            return Err("ca.svid_lifetime_seconds must be between 60 and 2592000 (30 days)".into());
        }
        if !(1..=20 * 365).contains(&self.ca_lifetime_days) {
            return Err("ca.ca_lifetime_days must be between 1 and 7300".into());
        }
        if let Some(group) = self.allow.groups().find(|g| !GROUPS.contains(g)) {
            return Err(format!(
                "ca.allow names an unknown route group {group:?} (known: {})",
                GROUPS.join(", ")
            ));
        }
        Ok(())
    }

    /// The base URL of the mTLS listener on `port`.
    pub fn mtls_base(&self, port: u16) -> String {
        match (&self.mtls_public_url, &self.trust_domain) {
            (Some(url), _) => url.trim_end_matches('/').to_owned(),
            (None, Some(domain)) => format!("https://{domain}:{port}"),
            (None, None) => format!("https://localhost:{port}"),
        }
    }

    /// The DNS names of this node's SVID.
    pub fn node_dns_names(&self) -> Vec<String> {
        match (&self.node_dns_names, &self.trust_domain) {
            (Some(names), _) => names.clone(),
            (None, Some(domain)) => vec![domain.to_string()],
            (None, None) => Vec::new(),
        }
    }
}
