//! Transport security (TLS-1, TLS-2): protocol and suite policy, the development certificate,
//! and hot reload of certificate files without dropping open connections.

use crate::common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

fn peer_fingerprint(stream: &TlsStream<TcpStream>) -> String {
    let leaf = &stream.get_ref().1.peer_certificates().unwrap()[0];
    palisade_crypto::sha256(leaf.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One HTTP/1.1 request on an open TLS stream; returns the status line.
async fn request_on(stream: &mut TlsStream<TcpStream>) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("\"ok\"}") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap()
        .to_owned()
}

/// PLT-2: the development certificate covers localhost, 127.0.0.1 and ::1, chains to the CA
/// in the data directory, and its fingerprint is the one printed at start-up.
async fn development_certificate(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let ca = server.data_dir().join("tls/dev-ca.pem");
    let config = tls_client(&[&ca]);
    let mut fingerprints = Vec::new();
    for name in ["localhost", "127.0.0.1"] {
        let stream = connect(server.https, config.clone(), name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        fingerprints.push(peer_fingerprint(&stream));
    }
    let pem = std::fs::read(server.data_dir().join("tls/dev-cert.pem")).unwrap();
    let der: rustls_pki_types::CertificateDer =
        rustls_pki_types::pem::PemObject::from_pem_slice(&pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    use x509_parser::extensions::GeneralName;
    let sans = &cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    let mut loopback = [false; 3];
    for name in sans {
        match name {
            GeneralName::DNSName("localhost") => loopback[0] = true,
            GeneralName::IPAddress([127, 0, 0, 1]) => loopback[1] = true,
            GeneralName::IPAddress(ip) if *ip == std::net::Ipv6Addr::LOCALHOST.octets() => {
                loopback[2] = true
            }
            _ => {}
        }
    }
    assert_eq!(loopback, [true; 3], "{sans:?}");
    assert!(
        server.logs().contains(&fingerprints[0]),
        "fingerprint printed at start-up"
    );
    assert!(
        connect(server.https, config, "example.com").await.is_err(),
        "no other names"
    );
}

/// TLS-1: TLS 1.3 with the post-quantum hybrid group preferred, TLS 1.2 with AEAD suites only.
async fn negotiates_modern_parameters(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let ca = server.data_dir().join("tls/dev-ca.pem");
    let stream = connect(server.https, tls_client(&[&ca]), "localhost")
        .await
        .unwrap();
    let conn = stream.get_ref().1;
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(
        conn.negotiated_key_exchange_group().unwrap().name(),
        rustls::NamedGroup::X25519MLKEM768,
        "hybrid post-quantum key exchange"
    );

    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::pem::PemObject::pem_file_iter(&ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let tls12 = rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
        .with_root_certificates(roots)
        .with_no_client_auth();
    let stream = connect(server.https, Arc::new(tls12), "localhost")
        .await
        .unwrap();
    let suite = format!(
        "{:?}",
        stream
            .get_ref()
            .1
            .negotiated_cipher_suite()
            .unwrap()
            .suite()
    );
    assert!(
        suite.starts_with("TLS_ECDHE_")
            && (suite.contains("GCM") || suite.contains("CHACHA20_POLY1305")),
        "{suite}"
    );
}

/// TLS-1: the server's order wins over a client that offers weaker options first: classical
/// groups before the hybrid one and the weaker suites first get the hybrid group (asked for
/// with a HelloRetryRequest) and the server's first suite, in TLS 1.3 and in TLS 1.2.
async fn the_servers_preferences_win_over_a_weak_first_client(backend: Backend) {
    use rustls::crypto::aws_lc_rs::{cipher_suite as cs, kx_group};
    let server = Server::start_with(Options::on(backend)).await;
    let ca = server.data_dir().join("tls/dev-ca.pem");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::pem::PemObject::pem_file_iter(&ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let weak_first = |version: &'static rustls::SupportedProtocolVersion| {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        provider.kx_groups = vec![
            kx_group::SECP256R1,
            kx_group::SECP384R1,
            kx_group::X25519,
            kx_group::X25519MLKEM768,
        ];
        provider.cipher_suites = vec![
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ];
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        Arc::new(config)
    };
    for (version, group, suite) in [
        (
            &rustls::version::TLS13,
            rustls::NamedGroup::X25519MLKEM768,
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
        ),
        (
            &rustls::version::TLS12,
            rustls::NamedGroup::X25519,
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
    ] {
        let stream = connect(server.https, weak_first(version), "localhost")
            .await
            .unwrap();
        let conn = stream.get_ref().1;
        assert_eq!(
            conn.negotiated_key_exchange_group().unwrap().name(),
            group,
            "{version:?}"
        );
        assert_eq!(conn.negotiated_cipher_suite().unwrap().suite(), suite);
    }
}

/// The count of handshakes the server refused for `reason`.
async fn handshake_failures(server: &Server, reason: &str) -> f64 {
    let line = format!("palisade_tls_handshake_failures_total{{reason=\"{reason}\"}}");
    server
        .metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

fn s_client(server: &Server, args: &[&str]) -> (bool, String) {
    let ca = server.data_dir().join("tls/dev-ca.pem");
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &server.https.to_string(),
            "-servername",
            "localhost",
            "-CAfile",
        ])
        .arg(&ca)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl is installed by scripts/test");
    let text = said(&out);
    (
        out.status.success() && !text.contains("Cipher is (NONE)"),
        text,
    )
}

/// `openssl verify -x509_strict` of `cert` against `ca`: whether it verified, and what it said.
fn strict_verify(ca: &Path, cert: &Path) -> (bool, String) {
    let out = std::process::Command::new("openssl")
        .args(["verify", "-x509_strict", "-CAfile"])
        .arg(ca)
        .arg(cert)
        .output()
        .expect("openssl is installed by scripts/test");
    (out.status.success(), said(&out))
}

/// PLT-2, TLS-1: strict verifiers accept the development certificate once its CA is trusted:
/// sslyze validates the served chain against the CA file and finds the server compliant with
/// Mozilla's "intermediate" configuration, and OpenSSL's strict mode verifies it. The CA
/// certifies nothing but the development names: a certificate for another name made with its
/// key is refused.
async fn development_certificate_passes_strict_verifiers(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let tls = server.data_dir().join("tls");
    let ca = tls.join("dev-ca.pem");
    assert_mozilla_intermediate(
        &format!("localhost:{}{{127.0.0.1}}", server.https.port()),
        &ca,
        &server.dir.path().join("sslyze.json"),
    );

    let (ok, text) = strict_verify(&ca, &tls.join("dev-cert.pem"));
    assert!(ok, "{text}");

    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(tls.join("dev-ca-key.pem")).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&std::fs::read_to_string(&ca).unwrap(), ca_key).unwrap();
    let mut params = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
    params.use_authority_key_identifier_extension = true;
    params.is_ca = IsCa::ExplicitNoCa;
    let forged = params
        .signed_by(&KeyPair::generate().unwrap(), &issuer)
        .unwrap();
    let forged_path = server.dir.path().join("forged.pem");
    std::fs::write(&forged_path, forged.pem()).unwrap();
    let (ok, text) = strict_verify(&ca, &forged_path);
    assert!(
        !ok && text.contains("permitted subtree violation"),
        "{text}"
    );
}

/// TLS-1: a client offering only TLS 1.0, TLS 1.1 or non-AEAD (CBC) suites is refused — by the
/// server, which counts each refusal by its reason, so the ClientHello did reach it.
async fn legacy_protocols_and_suites_are_refused(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let (ok, text) = s_client(&server, &["-tls1_2"]);
    assert!(
        ok && text.contains("Verify return code: 0"),
        "control: modern TLS 1.2 works\n{text}"
    );
    for (args, reason) in [
        (
            &["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"][..],
            "unsupported_protocol",
        ),
        (
            &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
            "unsupported_protocol",
        ),
        (
            &[
                "-tls1_2",
                "-cipher",
                "AES128-SHA:AES256-SHA:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256@SECLEVEL=0",
            ],
            "no_shared_cipher_suite",
        ),
    ] {
        let before = handshake_failures(&server, reason).await;
        let (ok, text) = s_client(&server, args);
        assert!(!ok, "{args:?} must fail\n{text}");
        assert!(
            text.contains("alert"),
            "refused by the server: {args:?}\n{text}"
        );
        eventually(Duration::from_secs(10), "the refusal counted", || async {
            (handshake_failures(&server, reason).await == before + 1.0).then_some(())
        })
        .await;
    }
}

struct Pki {
    dir: tempfile::TempDir,
    ca_cert: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let ca_cert = dir.path().join("ca.pem");
        std::fs::write(&ca_cert, cert.pem()).unwrap();
        Self {
            dir,
            ca_cert,
            issuer: Issuer::new(params, key),
        }
    }

    /// A fresh leaf for localhost as (certificate PEM, key PEM).
    fn leaf(&self) -> (String, String) {
        self.leaf_with(|_| {})
    }

    /// A leaf for localhost that expired in 2021.
    fn expired_leaf(&self) -> (String, String) {
        self.leaf_with(|params| {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        })
    }

    fn leaf_with(&self, adjust: impl FnOnce(&mut CertificateParams)) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        adjust(&mut params);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Replaces a file the way deploy tools do: write a sibling, then rename over.
fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn fingerprint_of(pem: &str) -> String {
    let der: rustls_pki_types::CertificateDer =
        rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes()).unwrap();
    palisade_crypto::sha256(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

async fn reload_failures(server: &Server) -> f64 {
    metric(
        &server.metrics().await,
        "palisade_tls_certificate_reload_failures_total",
    )
}

async fn more_reload_failures_than(server: &Server, before: f64, what: &str) {
    eventually(Duration::from_secs(20), what, || async {
        (reload_failures(server).await > before).then_some(())
    })
    .await;
}

fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in metrics"))
}

/// A server serving `pair` (certificate PEM, key PEM) from files in `pki`'s directory, and the
/// paths of those files, for the test to replace.
async fn serving(
    backend: Backend,
    pki: &Pki,
    (cert, key): (String, String),
) -> (Server, PathBuf, PathBuf) {
    let cert_path = pki.dir.path().join("cert.pem");
    let key_path = pki.dir.path().join("key.pem");
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let server = Server::start_with(
        Options::on(backend)
            .env("PALISADE_TLS__CERT_FILE", cert_path.to_str().unwrap())
            .env("PALISADE_TLS__KEY_FILE", key_path.to_str().unwrap())
            // The timer is the fallback when file notifications are unavailable (inotify
            // limits, network file systems); a short one keeps these tests quick either way.
            .env("PALISADE_TLS__RELOAD_INTERVAL_SECONDS", "1"),
    )
    .await;
    (server, cert_path, key_path)
}

/// PLT-6: a node serving an expired certificate is not ready; once a valid pair replaces it,
/// it is ready again.
async fn an_expired_certificate_makes_the_node_unready(backend: Backend) {
    let pki = Pki::new();
    let (server, cert_path, key_path) = serving(backend, &pki, pki.expired_leaf()).await;
    let (status, ready) = server.readiness().await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "not_ready");
    assert_eq!(ready["checks"]["certificate"], "expired");
    assert_eq!(ready["checks"]["database"], "ok");

    let (cert, key) = pki.leaf();
    replace(&key_path, &key);
    replace(&cert_path, &cert);
    eventually(
        Duration::from_secs(20),
        "ready with the new pair",
        || async {
            let (status, ready) = server.readiness().await;
            (status == 200 && ready["checks"]["certificate"] == "ok").then_some(())
        },
    )
    .await;
}

/// TLS-2: replaced certificate files are picked up by new handshakes while an open connection
/// keeps working; garbage and mismatched pairs are refused and the last good pair keeps serving.
async fn certificate_files_hot_reload(backend: Backend) {
    let pki = Pki::new();
    let (cert_a, key_a) = pki.leaf();
    let (server, cert_path, key_path) = serving(backend, &pki, (cert_a.clone(), key_a)).await;
    // No session resumption: a resumed session shows the certificate of the session it
    // resumes, and the test asks what a new full handshake is given.
    let config = {
        let mut c = (*http1_client(&[&pki.ca_cert])).clone();
        c.resumption = rustls::client::Resumption::disabled();
        Arc::new(c)
    };
    let mut open = connect(server.https, config.clone(), "localhost")
        .await
        .unwrap();
    assert_eq!(peer_fingerprint(&open), fingerprint_of(&cert_a));
    assert!(request_on(&mut open).await.contains("200"));

    // New pair: key first, then certificate, as a deploy would.
    let (cert_b, key_b) = pki.leaf();
    replace(&key_path, &key_b);
    replace(&cert_path, &cert_b);
    let expected_b = fingerprint_of(&cert_b);
    eventually(
        Duration::from_secs(20),
        "new handshakes to see certificate B",
        || {
            let config = config.clone();
            let expected = expected_b.clone();
            let addr = server.https;
            async move {
                let s = connect(addr, config, "localhost").await.ok()?;
                (peer_fingerprint(&s) == expected).then_some(())
            }
        },
    )
    .await;
    assert!(
        request_on(&mut open).await.contains("200"),
        "the connection opened before the swap still works"
    );
    assert_eq!(peer_fingerprint(&open), fingerprint_of(&cert_a));

    // Garbage: refused, counted, and B stays in service.
    let failures_before = reload_failures(&server).await;
    replace(
        &cert_path,
        "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n",
    );
    more_reload_failures_than(&server, failures_before, "the reload failure metric").await;
    let s = connect(server.https, config.clone(), "localhost")
        .await
        .unwrap();
    assert_eq!(
        peer_fingerprint(&s),
        expected_b,
        "the old certificate keeps serving"
    );
    assert!(server.logs().contains("TLS certificate reload refused"));

    // A certificate with somebody else's key: refused as well, also on SIGHUP.
    let (cert_c, _) = pki.leaf();
    replace(&cert_path, &cert_c);
    let failures_before = reload_failures(&server).await;
    server.signal("HUP");
    more_reload_failures_than(&server, failures_before, "the mismatch to be refused").await;
    let s = connect(server.https, config.clone(), "localhost")
        .await
        .unwrap();
    assert_eq!(peer_fingerprint(&s), expected_b);
    assert!(server.logs().contains("do not match"));
    assert!(request_on(&mut open).await.contains("200"));
}

on_both_backends!(
    development_certificate,
    negotiates_modern_parameters,
    the_servers_preferences_win_over_a_weak_first_client,
    development_certificate_passes_strict_verifiers,
    legacy_protocols_and_suites_are_refused,
    an_expired_certificate_makes_the_node_unready,
    certificate_files_hot_reload,
);
