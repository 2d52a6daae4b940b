//! The one outbound HTTP client (SCL-3). Every request the server makes on its own — back-channel
//! logout, witnesses, span export, and later webhooks — goes through [`Egress`], so that an
//! address someone registered (a client's logout URI) cannot turn the server against the network
//! it stands in (SSRF):
//!
//! - loopback, private, link-local (cloud metadata at 169.254.169.254 among them), shared,
//!   multicast and reserved addresses are refused, unless `egress.allowed_networks` names them,
//!   or the host is one the operator configured (a witness, a collector);
//! - the address checked is the address connected to: names are resolved by a resolver that
//!   drops refused addresses, and the connection is made to what it returned, so a name that
//!   resolves elsewhere the second time (DNS rebinding) gains nothing; address literals are
//!   checked before anything is sent;
//! - no redirects, no proxies from the environment, a timeout, and a cap on the answer's size.

use bytes::Bytes;
use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

/// `[egress]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EgressSettings {
    /// Networks (CIDR) that outbound requests may reach although they are not public, e.g.
    /// `["10.1.0.0/16"]` for receivers on a private network. Empty: public addresses only.
    pub allowed_networks: Vec<String>,
    pub timeout_seconds: u64,
    /// Answers longer than this are refused.
    pub max_response_bytes: usize,
    /// PEM CA certificates trusted besides the system's, for servers on a private PKI (an
    /// internal ACME directory, a collector).
    pub extra_roots_file: Option<std::path::PathBuf>,
}

impl Default for EgressSettings {
    fn default() -> Self {
        Self {
            allowed_networks: Vec::new(),
            timeout_seconds: 10,
            max_response_bytes: 1024 * 1024,
            extra_roots_file: None,
        }
    }
}

impl EgressSettings {
    pub fn validate(&self) -> Result<(), String> {
        self.networks().map(|_| ())?;
        if self.timeout_seconds == 0 || self.max_response_bytes == 0 {
            return Err(
                "egress.timeout_seconds and egress.max_response_bytes must be positive".into(),
            );
        }
        Ok(())
    }

    fn networks(&self) -> Result<Vec<IpNet>, String> {
        self.allowed_networks
            .iter()
            .map(|n| {
                n.parse::<IpNet>()
                    .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("egress.allowed_networks: `{n}` is not a network (CIDR)"))
            })
            .collect()
    }
}

/// Why a request was not made or not answered.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The destination is not one the server may reach.
    #[error("destination refused by the egress policy: {0}")]
    Refused(String),
    #[error("not an http(s) URL")]
    InvalidUrl,
    #[error("timed out")]
    Timeout,
    #[error("could not connect")]
    Connect,
    #[error("the answer is larger than allowed")]
    TooLarge,
    #[error("request failed")]
    Failed,
}

/// What the destination answered.
#[derive(Debug)]
pub struct Answer {
    pub status: http::StatusCode,
    pub body: Bytes,
}

/// Which destinations are allowed.
#[derive(Debug, Default)]
struct Policy {
    allowed_networks: Vec<IpNet>,
    /// Hosts the operator configured, as written in their URLs (names or address literals).
    trusted_hosts: HashSet<String>,
}

impl Policy {
    fn allows(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allowed_networks.iter().any(|n| n.contains(&ip))
    }

    /// The addresses of `host` on `port` that may be reached: those the policy allows, or all
    /// of a trusted host's. What is connected to is one of these, never a fresh lookup.
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<std::net::SocketAddr>> {
        let trusted = self.trusted_hosts.contains(host);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        Ok(tokio::net::lookup_host((bare, port))
            .await?
            .filter(|a| trusted || self.allows(a.ip()))
            .collect())
    }
}

#[derive(Clone)]
pub struct Egress {
    client: reqwest::Client,
    policy: Arc<Policy>,
    max_bytes: usize,
    connect_timeout: Duration,
}

impl Egress {
    /// The client under `settings`; `trusted` are URLs the operator configured (witnesses, a
    /// collector), whose hosts are reachable whatever their addresses.
    pub fn new(settings: &EgressSettings, trusted: &[&str]) -> Result<Self, String> {
        let trusted_hosts = trusted
            .iter()
            .map(|u| {
                reqwest::Url::parse(u)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .ok_or_else(|| format!("`{u}` is not a URL"))
            })
            .collect::<Result<_, _>>()?;
        let policy = Arc::new(Policy {
            allowed_networks: settings.networks()?,
            trusted_hosts,
        });
        let connect_timeout = Duration::from_secs(settings.timeout_seconds.min(5));
        let extra_roots = match &settings.extra_roots_file {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("egress.extra_roots_file {}: {e}", path.display()))?;
                reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| format!("egress.extra_roots_file {}: {e}", path.display()))?
            }
            None => Vec::new(),
        };
        let client = reqwest::Client::builder()
            .tls_certs_merge(extra_roots)
            .dns_resolver(Arc::new(CheckedResolver(policy.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_secs(settings.timeout_seconds))
            .connect_timeout(connect_timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            policy,
            max_bytes: settings.max_response_bytes,
            connect_timeout,
        })
    }

    /// POSTs a form.
    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<Answer, EgressError> {
        let body = serde_urlencoded(form);
        self.post(url, "application/x-www-form-urlencoded", body)
            .await
    }

    /// POSTs `body` as `content_type`.
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: impl Into<bytes::Bytes>,
    ) -> Result<Answer, EgressError> {
        self.post_with_headers(url, content_type, &[], body).await
    }

    /// POSTs `body` as `content_type` with `headers` besides (a webhook's signature).
    pub async fn post_with_headers(
        &self,
        url: &str,
        content_type: &str,
        headers: &[(&str, String)],
        body: impl Into<bytes::Bytes>,
    ) -> Result<Answer, EgressError> {
        let mut request = http::Request::post(url).header(http::header::CONTENT_TYPE, content_type);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(body.into())
            .map_err(|_| EgressError::InvalidUrl)?;
        let answer = self.send(request).await?;
        Ok(Answer {
            status: answer.status(),
            body: answer.into_body(),
        })
    }

    /// Sends any request (an ACME client's GETs, HEADs and POSTs) under the policy, and the
    /// whole answer with its headers, within the size cap.
    pub async fn send(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, EgressError> {
        let (parts, body) = request.into_parts();
        let url =
            reqwest::Url::parse(&parts.uri.to_string()).map_err(|_| EgressError::InvalidUrl)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressError::InvalidUrl);
        }
        let host = url.host_str().ok_or(EgressError::InvalidUrl)?.to_owned();
        let trusted = self.policy.trusted_hosts.contains(&host);
        // Literals never reach the resolver: they are checked here.
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        if let Some(ip) = literal
            && !trusted
            && !self.policy.allows(ip)
        {
            return Err(EgressError::Refused(ip.to_string()));
        }
        let mut sent = self
            .client
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(classify)?;
        let mut answer = http::Response::builder().status(sent.status());
        if let Some(headers) = answer.headers_mut() {
            *headers = std::mem::take(sent.headers_mut());
        }
        let mut body = Vec::new();
        while let Some(chunk) = sent.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(EgressError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        answer.body(body.into()).map_err(|_| EgressError::Failed)
    }
}

impl Egress {
    /// A TCP connection to `host:port` under the same policy as requests (TLS endpoints that
    /// are watched, not spoken HTTP to): only to an address the policy allows, or any address
    /// of a host the operator configured.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
    ) -> Result<tokio::net::TcpStream, EgressError> {
        let addresses = self
            .policy
            .resolve(host, port)
            .await
            .map_err(|_| EgressError::Connect)?;
        if addresses.is_empty() {
            return Err(EgressError::Refused(host.to_owned()));
        }
        let connect = tokio::net::TcpStream::connect(&addresses[..]);
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(_)) => Err(EgressError::Connect),
            Err(_) => Err(EgressError::Timeout),
        }
    }
}

fn serde_urlencoded(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A transport error without the URL (which may carry a receiver's query secrets).
fn classify(e: reqwest::Error) -> EgressError {
    let mut source: Option<&dyn std::error::Error> = Some(&e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<Refused>() {
            return EgressError::Refused(refused.0.clone());
        }
        source = s.source();
    }
    if e.is_timeout() {
        EgressError::Timeout
    } else if e.is_connect() {
        EgressError::Connect
    } else {
        EgressError::Failed
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0} resolves to no address the server may reach")]
struct Refused(String);

/// Resolves names, keeping only the addresses the policy allows (all of them for a trusted
/// host). The connection is made to these addresses and no others.
struct CheckedResolver(Arc<Policy>);

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let allowed = policy.resolve(&host, 0).await?;
            if allowed.is_empty() {
                return Err(Box::new(Refused(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Whether `ip` is a public unicast address: not loopback, private, link-local, shared (CGNAT),
/// unspecified, broadcast, multicast, documentation, benchmarking or reserved — and, for IPv6
/// forms that embed an IPv4 address (mapped, NAT64, 6to4), neither is the address it embeds.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
        || (a == 192 && b == 0 && c == 0))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = |v4: [u16; 2]| {
        Ipv4Addr::new(
            (v4[0] >> 8) as u8,
            v4[0] as u8,
            (v4[1] >> 8) as u8,
            v4[1] as u8,
        )
    };
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach IPv4 addresses.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(embedded([s[6], s[7]]));
    }
    if s[0] == 0x2002 {
        return is_public_v4(embedded([s[1], s[2]]));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local, cloud metadata (fd00:ec2::254) among them
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || s[0..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for refused in [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:db8::1",
        ] {
            assert!(
                !is_public(refused.parse().unwrap()),
                "{refused} is not public"
            );
        }
        for allowed in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(allowed.parse().unwrap()), "{allowed} is public");
        }
    }

    #[test]
    fn allowed_networks_open_exactly_what_they_name() {
        let settings = EgressSettings {
            allowed_networks: vec!["10.1.0.0/16".into(), "127.0.0.1".into()],
            ..Default::default()
        };
        let policy = Policy {
            allowed_networks: settings.networks().unwrap(),
            trusted_hosts: HashSet::new(),
        };
        assert!(policy.allows("10.1.200.3".parse().unwrap()));
        assert!(!policy.allows("10.2.0.1".parse().unwrap()));
        assert!(policy.allows("127.0.0.1".parse().unwrap()));
        assert!(!policy.allows("127.0.0.2".parse().unwrap()));
        assert!(
            EgressSettings {
                allowed_networks: vec!["not a network".into()],
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }

    #[tokio::test]
    async fn loopback_is_refused_by_literal_and_by_name_before_anything_is_sent() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let egress = Egress::new(&EgressSettings::default(), &[]).unwrap();
        for url in [
            format!("http://127.0.0.1:{port}/logout"),
            format!("http://[::1]:{port}/logout"),
            format!("http://localhost:{port}/logout"),
        ] {
            let e = egress.post_form(&url, &[("a", "b")]).await.unwrap_err();
            assert!(matches!(e, EgressError::Refused(_)), "{url}: {e:?}");
        }
        // Nothing reached the listener.
        let accepted = tokio::time::timeout(Duration::from_millis(50), listener.accept()).await;
        assert!(accepted.is_err(), "a connection was made");
        // Allowed by configuration, the same destination is reached.
        let allowing = Egress::new(
            &EgressSettings {
                allowed_networks: vec!["127.0.0.0/8".into()],
                ..Default::default()
            },
            &[],
        )
        .unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        let answer = allowing
            .post_form(&format!("http://127.0.0.1:{port}/x"), &[])
            .await
            .unwrap();
        assert_eq!(answer.status, 204);
        server.await.unwrap();
    }
}
