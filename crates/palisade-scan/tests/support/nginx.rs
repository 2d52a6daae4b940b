//! Deliberately weak TLS servers: nginx (Debian's, over its OpenSSL 3) configured as old
//! deployments are, with certificates made here.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use time::{Duration as Days, OffsetDateTime};

/// A CA the scans are told to trust.
pub(crate) struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub(crate) pem: String,
}

impl TestCa {
    pub(crate) fn new() -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(DnType::CommonName, "Scan test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: Issuer::new(params, key),
            pem,
        }
    }
}

/// Which certificate a server presents.
pub(crate) enum Leaf<'a> {
    /// RSA 2048 from the CA, valid for 90 days.
    Rsa(&'a TestCa),
    /// ECDSA P-256 from the CA, which expired ten days ago.
    Expired(&'a TestCa),
    /// ECDSA P-256, signed by itself.
    SelfSigned,
}

/// Writes the leaf's certificate and key; returns their paths.
fn leaf(kind: Leaf, dir: &Path) -> (PathBuf, PathBuf) {
    let now = OffsetDateTime::now_utc();
    let alg = match kind {
        Leaf::Rsa(_) => &PKCS_RSA_SHA256,
        _ => &PKCS_ECDSA_P256_SHA256,
    };
    let key = KeyPair::generate_for(alg).unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "scan target");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Days::hours(1);
    params.not_after = now + Days::days(90);
    let cert = match kind {
        Leaf::Rsa(ca) => params.signed_by(&key, &ca.issuer),
        Leaf::Expired(ca) => {
            params.not_before = now - Days::days(100);
            params.not_after = now - Days::days(10);
            params.signed_by(&key, &ca.issuer)
        }
        Leaf::SelfSigned => {
            params.use_authority_key_identifier_extension = false;
            params.self_signed(&key)
        }
    }
    .unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// How an nginx server is configured.
pub(crate) struct Config {
    pub(crate) protocols: &'static str,
    pub(crate) ciphers: &'static str,
    pub(crate) hsts: bool,
    /// Finite-field DHE over the 1024-bit Oakley group 2 (RFC 2409 §6.2), as Logjam found.
    pub(crate) weak_dh: bool,
}

/// The 1024-bit MODP prime of RFC 2409 §6.2.
const OAKLEY_GROUP_2: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF";

/// DHParameter ::= SEQUENCE { prime INTEGER, base INTEGER (2) }, as PEM.
fn dh_params_pem() -> String {
    let p: Vec<u8> = (0..OAKLEY_GROUP_2.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&OAKLEY_GROUP_2[i..i + 2], 16).unwrap())
        .collect();
    let mut der = vec![0x30, 0x81, 0x87, 0x02, 0x81, 0x81, 0x00];
    der.extend_from_slice(&p);
    der.extend_from_slice(&[0x02, 0x01, 0x02]);
    let b64 = data_encoding::BASE64.encode(&der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN DH PARAMETERS-----\n{}\n-----END DH PARAMETERS-----\n",
        lines.join("\n")
    )
}

/// TLS 1.0 to 1.2 with CBC, static-RSA, anonymous and weak-DH suites (OpenSSL 3 offers TLS
/// 1.0 only at security level 0; Debian's has no 3DES or RC4 left to offer), no HSTS.
pub(crate) const LEGACY: Config = Config {
    protocols: "TLSv1 TLSv1.1 TLSv1.2",
    ciphers: "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA:AES128-SHA:DHE-RSA-AES128-SHA:ADH-AES128-SHA:@SECLEVEL=0",
    hsts: false,
    weak_dh: true,
};

/// Mozilla's intermediate configuration, as its generator writes it for nginx.
pub(crate) const INTERMEDIATE: Config = Config {
    protocols: "TLSv1.2 TLSv1.3",
    ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
    hsts: true,
    weak_dh: false,
};

pub(crate) struct Nginx {
    child: Child,
    pub(crate) addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> String {
    std::env::var("PALISADE_TEST_NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".into())
}

impl Nginx {
    pub(crate) fn start(config: &Config, leaf_kind: Leaf) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = leaf(leaf_kind, dir.path());
        let d = dir.path().display();
        let hsts = if config.hsts {
            r#"add_header Strict-Transport-Security "max-age=63072000" always;"#
        } else {
            ""
        };
        let dhparam = if config.weak_dh {
            let path = dir.path().join("dhparam.pem");
            std::fs::write(&path, dh_params_pem()).unwrap();
            format!("ssl_dhparam {};", path.display())
        } else {
            String::new()
        };
        // nginx cannot report a port it chose itself: it is handed a free one, and another
        // if something took that one first.
        for _ in 0..3 {
            let addr = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            let conf = format!(
                r#"daemon off;
master_process off;
error_log {d}/error.log;
pid {d}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen {addr} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols {protocols};
        ssl_ciphers {ciphers};
        ssl_ecdh_curve X25519:prime256v1:secp384r1;
        ssl_prefer_server_ciphers off;
        {hsts}
        {dhparam}
        location / {{ return 200 "ok\n"; }}
    }}
}}
"#,
                cert = cert.display(),
                key = key.display(),
                protocols = config.protocols,
                ciphers = config.ciphers,
            );
            let conf_path = dir.path().join("nginx.conf");
            std::fs::write(&conf_path, conf).unwrap();
            let mut child = Command::new(nginx_binary())
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf_path)
                .spawn()
                .expect("nginx (apt-get install nginx)");
            let deadline = Instant::now() + Duration::from_secs(20);
            while TcpStream::connect(addr).is_err() {
                if let Some(status) = child.try_wait().unwrap() {
                    let log =
                        std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                    assert!(
                        log.contains("Address already in use"),
                        "nginx exited ({status}): {log}"
                    );
                    break;
                }
                assert!(Instant::now() < deadline, "nginx did not listen on {addr}");
                std::thread::yield_now();
            }
            if child.try_wait().unwrap().is_none() {
                return Self {
                    child,
                    addr,
                    _dir: dir,
                };
            }
        }
        panic!("no free port for nginx in three tries");
    }
}
