//! ACME (TLS-3) against Pebble and pebble-challtestsrv (Debian's, on loopback): the node
//! creates its account, proves the name by http-01 (answered by its plain-HTTP listener from
//! shared storage), tls-alpn-01 (answered by its HTTPS listener) or dns-01 (through the
//! configured hook writing to challtestsrv), stores the
//! certificate sealed in the database and serves it on the next handshake; a restart serves the
//! stored certificate without ordering again.

use crate::common::*;
use rcgen::{CertificateParams, KeyPair};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const NAME: &str = "acme.test";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Pebble (the CA) and challtestsrv (its DNS), with their own directory.
struct Pebble {
    children: Vec<Child>,
    dir: tempfile::TempDir,
    directory: String,
    management: SocketAddr,
    dns_management: SocketAddr,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Pebble {
    /// Validating http-01 on `http_port` of the names' address (127.0.0.1).
    async fn start(http_port: u16, tls_port: u16) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        // Pebble does not ship its listener's certificate.
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.path().join("wfe.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("wfe-key.pem"), key.serialize_pem()).unwrap();
        let (wfe, management, dns, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{wfe}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.path().join("wfe.pem"),
            "privateKey": dir.path().join("wfe-key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": 3600,
        }});
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
        let log = |name: &str| Stdio::from(std::fs::File::create(dir.path().join(name)).unwrap());
        let dns_server = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .expect("pebble-challtestsrv (Debian package pebble)");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("pebble (Debian package pebble)");
        let pebble = Pebble {
            children: vec![dns_server, pebble],
            directory: format!("https://127.0.0.1:{wfe}/dir"),
            management: SocketAddr::from(([127, 0, 0, 1], management)),
            dns_management: SocketAddr::from(([127, 0, 0, 1], dns_management)),
            dir,
        };
        for port in [wfe, management, dns_management] {
            eventually(Duration::from_secs(20), "pebble listening", || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(drop)
            })
            .await;
        }
        pebble
    }

    fn wfe_certificate(&self) -> PathBuf {
        self.dir.path().join("wfe.pem")
    }

    /// The root Pebble made at this start (from its management interface).
    async fn root(&self) -> Vec<u8> {
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(
                &std::fs::read(self.wfe_certificate()).unwrap(),
            )
            .unwrap()])
            .build()
            .unwrap();
        client
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
    fn dns_hook(&self) -> PathBuf {
        let path = self.dir.path().join("dns-hook");
        let at = self.dns_management;
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nset -e\ncase \"$1\" in\n\
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

/// The leaf served to a fresh handshake for `NAME`, verified against `root`.
async fn served_leaf(
    server: &Server,
    root: &[u8],
) -> x509_parser::prelude::X509Certificate<'static> {
    chained_leaf(server, root)
        .await
        .expect("the served certificate chains to Pebble's root for the name")
}

/// The served leaf, if it chains to `root` for `NAME`.
async fn chained_leaf(
    server: &Server,
    root: &[u8],
) -> Option<x509_parser::prelude::X509Certificate<'static>> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(root).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let stream = connect(server.https, Arc::new(config), NAME).await.ok()?;
    let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    let der: &'static [u8] = Box::leak(leaf.as_ref().to_vec().into_boxed_slice());
    Some(x509_parser::parse_x509_certificate(der).unwrap().1)
}

fn issued(server: &Server) -> usize {
    server
        .logs()
        .lines()
        .filter(|l| l.contains("ACME certificate issued"))
        .count()
}

async fn obtains_and_serves(challenge: &str) -> (Server, Pebble, Vec<u8>) {
    let (http_port, https_port) = (free_port(), free_port());
    let pebble = Pebble::start(http_port, https_port).await;
    let hook = pebble.dns_hook();
    let acme = format!(
        "{{directory = \"{}\", identifiers = [\"{NAME}\"], challenge = \"{challenge}\", dns_hook = \"{}\", contact = [\"mailto:ops@acme.test\"]}}",
        pebble.directory,
        hook.display()
    );
    let mut server = Server::start_with(
        Options::default()
            .env(
                "PALISADE_SERVER__HTTP_LISTEN",
                format!("127.0.0.1:{http_port}"),
            )
            .env(
                "PALISADE_SERVER__HTTPS_LISTEN",
                format!("127.0.0.1:{https_port}"),
            )
            .env("PALISADE_TLS__ACME", acme)
            .env(
                "PALISADE_EGRESS__EXTRA_ROOTS_FILE",
                pebble.wfe_certificate().to_str().unwrap(),
            ),
    )
    .await;
    eventually(Duration::from_secs(150), "the ACME certificate", || {
        let server = &server;
        async move { (issued(server) == 1).then_some(()) }
    })
    .await;
    let root = pebble.root().await;
    let leaf = served_leaf(&server, &root).await;
    let names: Vec<String> = leaf
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(names, [format!("DNSName({NAME})")]);
    let lifetime = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
    assert!(lifetime <= 3600, "Pebble's configured lifetime: {lifetime}");
    assert!(
        server
            .metrics()
            .await
            .contains("palisade_acme_orders_total 1"),
        "one order"
    );
    // The plain listener answers only pending challenges, and still redirects the rest.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let unknown = plain
        .get(format!(
            "http://{}/.well-known/acme-challenge/not-a-token",
            server.http
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let other = plain
        .get(format!("http://{}/account", server.http))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 308);
    // The key is sealed at rest; no answer is left behind.
    let db = server.db().await;
    let (sealed,): (String,) = sqlx::query_as("SELECT sealed_key FROM tls_certificates")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(!sealed.contains("PRIVATE KEY"));
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM acme_challenges")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
    db.close().await;

    // After a restart the stored certificate is served, and nothing is ordered.
    let serial = leaf.raw_serial_as_string();
    server.restart().await;
    let again = served_leaf(&server, &root).await;
    assert_eq!(again.raw_serial_as_string(), serial);
    assert_eq!(issued(&server), 0);
    assert!(
        server
            .metrics()
            .await
            .contains("palisade_acme_orders_total 0")
    );
    let events = server.events().await;
    assert!(
        events
            .iter()
            .any(|(action, outcome, _)| action == "tls.certificate.issued" && outcome == "success")
    );
    (server, pebble, root)
}

fn certs(server: &Server, command: &str) -> serde_json::Value {
    let out = server.cli(&["certs", command]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One keep-alive request on an open connection; the status line.
async fn status_on(stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
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

/// http-01, then `palisade certs`: the status and schedule, a renewal asked for by the operator
/// (served while a connection opened before it keeps working), and a CA gone away (the
/// failure is recorded and backed off, and the certificate in service stays).
#[tokio::test]
async fn http_01_obtains_serves_and_renews_a_certificate() {
    let (server, pebble, root) = obtains_and_serves("http-01").await;
    let before = served_leaf(&server, &root).await;
    let status = certs(&server, "status");
    let certificate = &status["certificate"];
    assert_eq!(certificate["name"], NAME);
    assert_eq!(certificate["serial"], before.raw_serial_as_string());
    let (not_before, not_after) = (
        certificate["not_before"].as_i64().unwrap(),
        certificate["not_after"].as_i64().unwrap(),
    );
    // A one-hour certificate is renewed at half its lifetime.
    assert_eq!(
        certificate["renew_at"],
        not_before + (not_after - not_before) / 2
    );
    assert_eq!(certificate["renewal"]["failures"], 0);
    assert_eq!(certs(&server, "list").as_array().unwrap().len(), 1);

    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(&root).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut held = connect(server.https, Arc::new(config), NAME).await.unwrap();
    assert_eq!(status_on(&mut held).await, "HTTP/1.1 200 OK");

    certs(&server, "renew");
    let renewed = eventually(Duration::from_secs(150), "the renewed certificate", || {
        let (server, root, serial) = (&server, &root, before.raw_serial_as_string());
        async move {
            let leaf = served_leaf(server, root).await;
            (leaf.raw_serial_as_string() != serial).then_some(leaf)
        }
    })
    .await;
    assert_eq!(
        status_on(&mut held).await,
        "HTTP/1.1 200 OK",
        "the connection outlived the renewal"
    );
    assert_eq!(
        certs(&server, "status")["certificate"]["renewal"]["renew_requested"],
        0
    );

    // The CA goes away: the renewal fails, is recorded with its back-off, and nothing changes.
    drop(pebble);
    certs(&server, "renew");
    let status = eventually(Duration::from_secs(60), "the failure recorded", || {
        let server = &server;
        async move {
            let status = certs(server, "status");
            (status["certificate"]["renewal"]["failures"] == 1).then_some(status)
        }
    })
    .await;
    let renewal = &status["certificate"]["renewal"];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let wait = renewal["next_attempt_at"].as_i64().unwrap() - now;
    assert!(
        (40..=60).contains(&wait),
        "the first back-off is about a minute: {wait}"
    );
    assert!(
        renewal["last_error"].as_str().unwrap().contains("ACME"),
        "{renewal}"
    );
    assert_eq!(
        served_leaf(&server, &root).await.raw_serial_as_string(),
        renewed.raw_serial_as_string(),
        "the certificate in service stays"
    );
    assert!(
        server
            .metrics()
            .await
            .contains("palisade_acme_failures_total 1")
    );
    eventually(Duration::from_secs(10), "the failure audited", || {
        let server = &server;
        async move {
            server
                .events()
                .await
                .iter()
                .any(|(a, o, _)| a == "tls.certificate.renewal_failed" && o == "failure")
                .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn dns_01_obtains_and_serves_a_certificate() {
    obtains_and_serves("dns-01").await;
}

#[tokio::test]
async fn tls_alpn_01_obtains_and_serves_a_certificate() {
    obtains_and_serves("tls-alpn-01").await;
}

fn orders(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("palisade_acme_orders_total "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Three nodes on one database (SCL-1): one order between them, and every node serves its
/// certificate within seconds; an operator's renewal is again one order, served by all.
#[tokio::test]
async fn three_nodes_order_once_and_all_serve_the_certificate() {
    let pebble = Pebble::start(free_port(), free_port()).await;
    let acme = format!(
        "{{directory = \"{}\", identifiers = [\"{NAME}\"], challenge = \"dns-01\", dns_hook = \"{}\"}}",
        pebble.directory,
        pebble.dns_hook().display()
    );
    let roots = pebble.wfe_certificate();
    let deployment = crate::common::nodes::Deployment::start(
        3,
        &[
            ("PALISADE_TLS__ACME", acme.as_str()),
            ("PALISADE_EGRESS__EXTRA_ROOTS_FILE", roots.to_str().unwrap()),
        ],
    )
    .await;
    let root = pebble.root().await;
    // Each node's served serial, `None` while it serves no certificate of Pebble's.
    let serials = || async {
        let mut serials = Vec::new();
        for node in &deployment.nodes {
            serials.push(
                chained_leaf(node, &root)
                    .await
                    .map(|l| l.raw_serial_as_string()),
            );
        }
        serials
    };
    let total_orders = || async {
        let mut total = 0;
        for node in &deployment.nodes {
            total += orders(&node.metrics().await);
        }
        total
    };
    let first = eventually(
        Duration::from_secs(150),
        "every node serving the certificate",
        || async move {
            let s = serials().await;
            let one = s[0].clone()?;
            s.iter().all(|x| x.as_ref() == Some(&one)).then_some(one)
        },
    )
    .await;
    assert_eq!(total_orders().await, 1, "one order between three nodes");

    let out = deployment.nodes[2].cli(&["certs", "renew"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(
        Duration::from_secs(150),
        "every node serving the renewal",
        || {
            let (serials, first) = (serials, first.clone());
            async move {
                let s = serials().await;
                let one = s[0].clone().filter(|x| *x != first)?;
                s.iter().all(|x| x.as_ref() == Some(&one)).then_some(())
            }
        },
    )
    .await;
    assert_eq!(total_orders().await, 2, "one order for the renewal");
}
