//! An ACME CA on loopback for the TLS-3 tests: Debian's Pebble and pebble-challtestsrv (its
//! DNS), and an ACME Renewal Information front for it. Pebble 2.4 has no ARI (RFC 9773); the
//! front passes every request through to it unchanged (Pebble builds its URLs from the Host
//! header, so they all name the front) and adds only the `renewalInfo` resource, whose window
//! the test sets, and a record of the orders it passed on.

use super::*;
use rcgen::{CertificateParams, KeyPair};
use std::process::{Child, Command, Stdio};

/// The name every ACME test orders a certificate for.
pub(crate) const NAME: &str = "acme.test";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How Pebble is set up.
#[derive(Clone, Default)]
pub(crate) struct Setup {
    /// The lifetime of the certificates it issues, in seconds (an hour by default).
    pub validity: Option<u64>,
    /// The key id and base64url MAC key of the one external account it accepts; when set,
    /// accounts without a binding to it are refused.
    pub eab: Option<(String, String)>,
}

/// Pebble (the CA) and challtestsrv (its DNS), with their own directory.
pub(crate) struct Pebble {
    ca: Option<Child>,
    dns: Child,
    pub dir: tempfile::TempDir,
    pub directory: String,
    wfe: u16,
    pub management: SocketAddr,
    pub dns_management: SocketAddr,
    dns_port: u16,
    /// Where it validates http-01 and tls-alpn-01 answers.
    http_port: u16,
    tls_port: u16,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in self.ca.iter_mut().chain([&mut self.dns]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn listening(port: u16) {
    eventually(Duration::from_secs(20), "pebble listening", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(drop)
    })
    .await;
}

impl Pebble {
    /// Validating http-01 and tls-alpn-01 on ports of the names' address (127.0.0.1) that
    /// its `node`s listen on, and dns-01 through challtestsrv.
    pub(crate) async fn start() -> Pebble {
        Self::start_with(Setup::default()).await
    }

    pub(crate) async fn start_with(setup: Setup) -> Pebble {
        let (http_port, tls_port) = (free_port(), free_port());
        let dir = tempfile::tempdir().unwrap();
        // Pebble does not ship its listener's certificate.
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.path().join("wfe.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("wfe-key.pem"), key.serialize_pem()).unwrap();
        let (wfe, management, dns_port, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let mac_keys: serde_json::Map<String, serde_json::Value> = setup
            .eab
            .iter()
            .map(|(kid, key)| (kid.clone(), key.clone().into()))
            .collect();
        let config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{wfe}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.path().join("wfe.pem"),
            "privateKey": dir.path().join("wfe-key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": setup.eab.is_some(),
            "externalAccountMACKeys": mac_keys,
            "certificateValidityPeriod": setup.validity.unwrap_or(3600),
        }});
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
        let log = |name: &str| Stdio::from(std::fs::File::create(dir.path().join(name)).unwrap());
        let dns = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .expect("pebble-challtestsrv (Debian package pebble)");
        let mut pebble = Pebble {
            ca: None,
            dns,
            directory: format!("https://127.0.0.1:{wfe}/dir"),
            wfe,
            management: SocketAddr::from(([127, 0, 0, 1], management)),
            dns_management: SocketAddr::from(([127, 0, 0, 1], dns_management)),
            dns_port,
            http_port,
            tls_port,
            dir,
        };
        listening(dns_management).await;
        pebble.launch().await;
        pebble
    }

    async fn launch(&mut self) {
        let log = |name: &str| {
            Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join(name))
                    .unwrap(),
            )
        };
        let ca = Command::new("pebble")
            .arg("-config")
            .arg(self.dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{}", self.dns_port)])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("pebble (Debian package pebble)");
        self.ca = Some(ca);
        listening(self.wfe).await;
        listening(self.management.port()).await;
    }

    /// Stops the CA (its DNS stays).
    pub(crate) fn stop(&mut self) {
        if let Some(mut ca) = self.ca.take() {
            ca.kill().unwrap();
            ca.wait().unwrap();
        }
    }

    /// Starts the CA again at the same address: with nothing of what it knew (its accounts and
    /// orders) and a new root.
    pub(crate) async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }

    /// A node listening where this CA validates, with `acme` (an inline TOML table) as its
    /// `tls.acme`, trusting this CA's listener.
    pub(crate) async fn node(&self, acme: &str) -> Server {
        Server::start_with(self.options(acme)).await
    }

    /// The options of such a node.
    pub(crate) fn options(&self, acme: &str) -> Options {
        Options::default()
            .env(
                "PALISADE_SERVER__HTTP_LISTEN",
                format!("127.0.0.1:{}", self.http_port),
            )
            .env(
                "PALISADE_SERVER__HTTPS_LISTEN",
                format!("127.0.0.1:{}", self.tls_port),
            )
            .env("PALISADE_TLS__ACME", acme)
            .env(
                "PALISADE_EGRESS__EXTRA_ROOTS_FILE",
                self.wfe_certificate().to_str().unwrap(),
            )
    }

    /// `n` nodes on one database with `acme` as their `tls.acme`, trusting this CA's listener.
    pub(crate) async fn deployment(&self, n: usize, acme: &str) -> super::nodes::Deployment {
        let roots = self.wfe_certificate();
        super::nodes::Deployment::start(
            n,
            &[
                ("PALISADE_TLS__ACME", acme),
                ("PALISADE_EGRESS__EXTRA_ROOTS_FILE", roots.to_str().unwrap()),
            ],
        )
        .await
    }

    pub(crate) fn wfe_certificate(&self) -> PathBuf {
        self.dir.path().join("wfe.pem")
    }

    pub(crate) fn wfe_key(&self) -> PathBuf {
        self.dir.path().join("wfe-key.pem")
    }

    /// A client of Pebble's own listeners.
    pub(crate) fn client(&self) -> reqwest::Client {
        self.client_builder().build().unwrap()
    }

    fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(
            &std::fs::read(self.wfe_certificate()).unwrap(),
        )
        .unwrap()])
    }

    /// The root Pebble made at this start (from its management interface).
    pub(crate) async fn root(&self) -> Vec<u8> {
        self.client()
            .get(format!("https://{}/roots/0", self.management))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    /// A dns-01 hook that publishes and withdraws TXT records in challtestsrv.
    pub(crate) fn dns_hook(&self) -> PathBuf {
        self.hook("")
    }

    /// A dns-01 hook that, while the named pipe `gate` exists, writes the pid of the node
    /// running it to `holder` and waits for the pipe to be written before it publishes.
    pub(crate) fn gated_dns_hook(&self, gate: &Path, holder: &Path) -> PathBuf {
        self.hook(&format!(
            "if [ \"$1\" = set ] && [ -p {gate} ]; then echo $PPID > {holder}.new; mv {holder}.new {holder}; cat {gate} > /dev/null; fi\n",
            gate = gate.display(),
            holder = holder.display()
        ))
    }

    fn hook(&self, before: &str) -> PathBuf {
        let path = self.dir.path().join("dns-hook");
        let at = self.dns_management;
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nset -e\n{before}case \"$1\" in\n\
                 set) curl -sf -X POST -d \"{{\\\"host\\\":\\\"$2.\\\",\\\"value\\\":\\\"$3\\\"}}\" http://{at}/set-txt ;;\n\
                 clear) curl -sf -X POST -d \"{{\\\"host\\\":\\\"$2.\\\"}}\" http://{at}/clear-txt ;;\n\
                 esac\n"
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

/// A client configuration trusting only `root`.
fn trusting(root: &[u8]) -> rustls::ClientConfig {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(root).unwrap())
        .unwrap();
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The served leaf for `NAME`, if it chains to `root`.
pub(crate) async fn chained_leaf(
    server: &Server,
    root: &[u8],
) -> Option<x509_parser::prelude::X509Certificate<'static>> {
    leaf_for(server, root, NAME).await
}

/// The leaf served to a handshake naming `name`, if it chains to `root` for that name.
pub(crate) async fn leaf_for(
    server: &Server,
    root: &[u8],
    name: &str,
) -> Option<x509_parser::prelude::X509Certificate<'static>> {
    let stream = connect(server.https, Arc::new(trusting(root)), name)
        .await
        .ok()?;
    let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    let der: &'static [u8] = Box::leak(leaf.as_ref().to_vec().into_boxed_slice());
    Some(x509_parser::parse_x509_certificate(der).unwrap().1)
}

/// An HTTP/1.1 connection to `NAME`, verified against `root`, to keep open across a renewal.
pub(crate) async fn keep_alive(
    server: &Server,
    root: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut config = trusting(root);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    connect(server.https, Arc::new(config), NAME).await.unwrap()
}

/// One keep-alive request on an open connection; the status line.
pub(crate) async fn status_on(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nhost: {NAME}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Waits for `server` to serve a certificate other than `before`; that certificate.
pub(crate) async fn renewal(
    server: &Server,
    root: &[u8],
    before: &x509_parser::prelude::X509Certificate<'_>,
) -> x509_parser::prelude::X509Certificate<'static> {
    let serial = before.raw_serial_as_string();
    eventually(Duration::from_secs(150), "the renewed certificate", || {
        let serial = serial.clone();
        async move {
            let leaf = chained_leaf(server, root).await?;
            (leaf.raw_serial_as_string() != serial).then_some(leaf)
        }
    })
    .await
}

/// The leaf served to a fresh handshake for `NAME`, verified against `root`.
pub(crate) async fn served_leaf(
    server: &Server,
    root: &[u8],
) -> x509_parser::prelude::X509Certificate<'static> {
    chained_leaf(server, root)
        .await
        .expect("the served certificate chains to Pebble's root for the name")
}

/// What each node serves, `None` while it serves no certificate chaining to `root`.
async fn serials(nodes: &[&Server], root: &[u8]) -> Vec<Option<String>> {
    let mut serials = Vec::new();
    for node in nodes {
        serials.push(
            chained_leaf(node, root)
                .await
                .map(|l| l.raw_serial_as_string()),
        );
    }
    serials
}

/// Waits for every one of `nodes` to serve the same certificate of `root`, other than the one
/// with the serial `not`; its serial.
pub(crate) async fn all_serving(nodes: &[&Server], root: &[u8], not: Option<&str>) -> String {
    eventually(
        Duration::from_secs(150),
        "every node serving one certificate",
        || async move {
            let s = serials(nodes, root).await;
            let one = s[0].clone().filter(|x| Some(x.as_str()) != not)?;
            s.iter().all(|x| x.as_ref() == Some(&one)).then_some(one)
        },
    )
    .await
}

/// Certificates obtained by all of `nodes`.
pub(crate) async fn total_orders(nodes: &[Server]) -> u64 {
    let mut total = 0;
    for node in nodes {
        total += orders(&node.metrics().await);
    }
    total
}

/// Certificates a node logged as obtained.
pub(crate) fn issued(server: &Server) -> usize {
    server
        .logs()
        .lines()
        .filter(|l| l.contains("ACME certificate issued"))
        .count()
}

/// Waits for `server` to log its first certificate obtained.
pub(crate) async fn first_issued(server: &Server) {
    eventually(
        Duration::from_secs(150),
        "the ACME certificate",
        || async move { (issued(server) == 1).then_some(()) },
    )
    .await;
}

/// `palisade_acme_orders_total`.
pub(crate) fn orders(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("palisade_acme_orders_total "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// `palisade certs <command>`, as JSON.
pub(crate) fn certs(server: &Server, command: &str) -> serde_json::Value {
    let out = server.cli(&["certs", command]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The ARI identifier of a certificate (RFC 9773 §4.1), computed here from its definition:
/// the base64url key identifier of its Authority Key Identifier, a dot, and the base64url DER
/// content of its serial number.
pub(crate) fn ari_identifier(certificate: &x509_parser::prelude::X509Certificate<'_>) -> String {
    use x509_parser::extensions::ParsedExtension;
    let key_id = certificate
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.clone(),
            _ => None,
        })
        .expect("an Authority Key Identifier");
    format!(
        "{}.{}",
        data_encoding::BASE64URL_NOPAD.encode(key_id.0),
        data_encoding::BASE64URL_NOPAD.encode(certificate.raw_serial())
    )
}

/// What the ARI front was asked and passed on.
#[derive(Default)]
struct Seen {
    /// The suggested window it answers with (seconds since the Unix epoch)…
    window: (i64, i64),
    /// …unless it was told another for the certificate.
    windows: BTreeMap<String, (i64, i64)>,
    /// The certificate identifiers it was asked about.
    asked: Vec<String>,
    /// The payloads of the new orders it passed on.
    orders: Vec<serde_json::Value>,
    /// The certificate each order (by its path) replaces: Pebble ignores the field, and an ARI
    /// server reflects it in the order object (RFC 9773 §5).
    replacing: BTreeMap<String, serde_json::Value>,
}

/// Pebble behind a front that adds ACME Renewal Information.
pub(crate) struct AriFront {
    pub directory: String,
    seen: Arc<Mutex<Seen>>,
}

struct Front {
    pebble: String,
    client: reqwest::Client,
    seen: Arc<Mutex<Seen>>,
}

impl AriFront {
    /// A front on a port of its own, with Pebble's listener certificate, suggesting `window`
    /// for every certificate.
    pub(crate) async fn start(pebble: &Pebble, window: (i64, i64)) -> AriFront {
        use rustls_pki_types::pem::PemObject;
        let seen = Arc::new(Mutex::new(Seen {
            window,
            ..Seen::default()
        }));
        let front = Arc::new(Front {
            pebble: format!("https://127.0.0.1:{}", pebble.wfe),
            // HTTP/1.1, where the Host header passed on is the one Pebble reads (HTTP/2
            // would take the authority from the URL).
            client: pebble.client_builder().http1_only().build().unwrap(),
            seen: seen.clone(),
        });
        let chain = rustls_pki_types::CertificateDer::pem_file_iter(pebble.wfe_certificate())
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_file(pebble.wfe_key()).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, front) = (acceptor.clone(), front.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let front = front.clone();
                        async move { Ok::<_, std::convert::Infallible>(front.answer(request).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
        });
        AriFront {
            directory: format!("https://{addr}/dir"),
            seen,
        }
    }

    /// From now on, suggest `window` for the certificate `id`.
    pub(crate) fn suggest(&self, id: &str, window: (i64, i64)) {
        self.seen
            .lock()
            .unwrap()
            .windows
            .insert(id.to_owned(), window);
    }

    pub(crate) fn asked(&self) -> Vec<String> {
        self.seen.lock().unwrap().asked.clone()
    }

    pub(crate) fn orders(&self) -> Vec<serde_json::Value> {
        self.seen.lock().unwrap().orders.clone()
    }
}

fn rfc3339(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

impl Front {
    async fn answer(
        &self,
        request: http::Request<hyper::body::Incoming>,
    ) -> http::Response<String> {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(axum::body::Body::new(body), usize::MAX)
            .await
            .unwrap();
        let host = parts.headers[http::header::HOST]
            .to_str()
            .unwrap()
            .to_owned();
        let path = parts.uri.path().to_owned();
        if let Some(id) = path.strip_prefix("/renewal-info/") {
            let mut seen = self.seen.lock().unwrap();
            seen.asked.push(id.to_owned());
            let (start, end) = seen.windows.get(id).copied().unwrap_or(seen.window);
            let window = serde_json::json!({
                "suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)},
                "explanationURL": "https://ca.test/why",
            });
            return http::Response::builder()
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::RETRY_AFTER, "1")
                .body(window.to_string())
                .unwrap();
        }
        let mut replaces = None;
        if path == "/order-plz" {
            let jws: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let payload = data_encoding::BASE64URL_NOPAD
                .decode(jws["payload"].as_str().unwrap().as_bytes())
                .unwrap();
            let payload: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            replaces = payload.get("replaces").cloned();
            self.seen.lock().unwrap().orders.push(payload);
        }
        let mut upstream = self
            .client
            .request(
                parts.method.clone(),
                format!("{}{}", self.pebble, parts.uri),
            )
            .body(body.to_vec());
        for (name, value) in &parts.headers {
            if name != http::header::CONTENT_LENGTH {
                upstream = upstream.header(name, value);
            }
        }
        let answer = upstream.send().await.unwrap();
        let mut response = http::Response::builder().status(answer.status());
        for (name, value) in answer.headers() {
            if name != http::header::CONTENT_LENGTH && name != http::header::TRANSFER_ENCODING {
                response = response.header(name, value);
            }
        }
        let location = answer
            .headers()
            .get(http::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.parse::<http::Uri>().ok())
            .map(|l| l.path().to_owned());
        let mut text = answer.text().await.unwrap();
        let mut seen = self.seen.lock().unwrap();
        if let (Some(replaces), Some(order)) = (&replaces, location) {
            seen.replacing.insert(order, replaces.clone());
        }
        let reflected = replaces.or_else(|| seen.replacing.get(&path).cloned());
        if path == "/dir" || reflected.is_some() {
            let mut object: serde_json::Value = serde_json::from_str(&text).unwrap();
            match reflected {
                Some(replaces) => object["replaces"] = replaces,
                None => object["renewalInfo"] = format!("https://{host}/renewal-info").into(),
            }
            text = object.to_string();
        }
        response.body(text).unwrap()
    }
}
