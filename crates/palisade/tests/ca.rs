//! The internal CA and workload identities (TLS-5), over the real server: a service exchanges
//! a one-time join token and a CSR for an X.509-SVID, uses it on the mTLS listener where the
//! audit ingest admits the SPIFFE IDs on its allow-list, renews it with itself, and reads the
//! trust bundle. Refused: a reused or unknown join token, an unsound CSR (without spending the
//! token), no certificate, another trust domain's SVID, an expired SVID of the right CA, an ID
//! not on the allow-list, a self-signed certificate where an SVID is required. The node's own
//! SVID rotates under load without a failed request or a dropped connection.

use crate::common::*;
use palisade_tls::ca::{Authority, SpiffeId, TrustDomain, Validity, check_svid};
use rcgen::{CertificateParams, KeyPair};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DOMAIN: &str = "palisade.test";
const INGEST: &str = "spiffe://palisade.test/svc/ingest";
const OTHER: &str = "spiffe://palisade.test/svc/other";

fn options(backend: Backend, sealing_key: &str) -> Options {
    Options::on(backend)
        .env("PALISADE_CA__TRUST_DOMAIN", DOMAIN)
        .env("PALISADE_CA__MTLS_LISTEN", "127.0.0.1:0")
        .env(
            "PALISADE_CA__ALLOW",
            format!("{{audit-ingest = [\"{INGEST}\"]}}"),
        )
        // Known to the test, which forges an expired SVID with the CA's own key.
        .env("PALISADE_SECRETS__SEALING_KEY", sealing_key)
}

fn sealing_key() -> String {
    data_encoding::BASE64.encode(&palisade_crypto::random_bytes::<32>())
}

/// A key and the SVID (PEM) the CA signed for it.
struct Svid {
    key: KeyPair,
    certificate: String,
}

impl Svid {
    fn identity(&self) -> reqwest::Identity {
        let pem = format!("{}{}", self.certificate, self.key.serialize_pem());
        reqwest::Identity::from_pem(pem.as_bytes()).unwrap()
    }

    fn der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.certificate.as_bytes()).unwrap()
    }
}

fn csr(key: &KeyPair) -> String {
    // What a request asks to be named is ignored: the join token decides.
    CertificateParams::new(vec!["attacker.example".to_string()])
        .unwrap()
        .serialize_request(key)
        .unwrap()
        .pem()
        .unwrap()
}

fn join_token(server: &Server, id: &str) -> String {
    let out = server.cli(&["ca", "join-token", "--spiffe-id", id, "--ttl", "600"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["spiffe_id"], id);
    let token = printed["token"].as_str().unwrap().to_owned();
    remember_secret(&token);
    token
}

async fn enroll_with(server: &Server, token: &str, csr: &str) -> reqwest::Response {
    server
        .http_client()
        .post(format!("{}/ca/svid", server.base()))
        .bearer_auth(token)
        .json(&serde_json::json!({ "csr": csr }))
        .send()
        .await
        .unwrap()
}

/// A fresh key and its SVID for `id`, by a join token.
async fn enroll(server: &Server, id: &str) -> Svid {
    let key = KeyPair::generate().unwrap();
    let r = enroll_with(server, &join_token(server, id), &csr(&key)).await;
    assert_eq!(r.status(), 201);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["spiffe_id"], id);
    let svid = Svid {
        key,
        certificate: body["certificate"].as_str().unwrap().to_owned(),
    };
    assert_eq!(check_svid(&svid.der()).unwrap().to_string(), id);
    let (not_before, not_after) = (body["not_before"].as_i64(), body["not_after"].as_i64());
    assert_eq!(
        body["renew_after"].as_i64(),
        Some(not_before.unwrap() + (not_after.unwrap() - not_before.unwrap()) / 2)
    );
    svid
}

async fn bundle(server: &Server) -> String {
    let r = server
        .http_client()
        .get(format!("{}/ca/bundle.pem", server.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// A client of the mTLS listener trusting the bundle, presenting `identity`, one connection per
/// request.
fn mtls_client(
    bundle: &str,
    server: &Server,
    identity: Option<reqwest::Identity>,
) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(bundle.as_bytes()).unwrap()])
        .resolve(DOMAIN, server.mtls.unwrap())
        .pool_max_idle_per_host(0);
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.build().unwrap()
}

fn mtls_url(server: &Server, path: &str) -> String {
    format!("https://{DOMAIN}:{}{path}", server.mtls.unwrap().port())
}

async fn ingest(client: &reqwest::Client, server: &Server) -> reqwest::Result<reqwest::Response> {
    client
        .post(mtls_url(server, "/audit/events"))
        .json(&serde_json::json!({ "action": "billing.invoice.sent", "outcome": "success" }))
        .send()
        .await
}

async fn error_code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The CA's own key, unsealed from the database with the sealing key the server was given.
async fn stolen_authority(server: &Server, sealing_key: &str) -> Authority {
    let db = server.db().await;
    let (pem, sealed): (String, String) =
        sqlx::query_as("SELECT certificate, sealed_key FROM ca_authority")
            .fetch_one(db.pool())
            .await
            .unwrap();
    db.close().await;
    let sealing = palisade_crypto::SealingKey::from_bytes(
        &data_encoding::BASE64
            .decode(sealing_key.as_bytes())
            .unwrap(),
    )
    .unwrap();
    let key = sealing
        .open(
            format!("palisade internal ca key {DOMAIN}").as_bytes(),
            &data_encoding::BASE64.decode(sealed.as_bytes()).unwrap(),
        )
        .unwrap();
    Authority::open(
        TrustDomain::parse(DOMAIN).unwrap(),
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap(),
        &key.into(),
    )
    .unwrap()
}

/// An SVID of `authority` for `id` (with a new key) valid over `validity`.
fn forged(authority: &Authority, id: &str, validity: Validity) -> reqwest::Identity {
    let (svid, key) = authority
        .issue(&SpiffeId::parse(id).unwrap(), &[], validity)
        .unwrap();
    let pem = format!(
        "{}{}",
        palisade_crypto::pem("CERTIFICATE", &svid.certificate),
        palisade_crypto::pem("PRIVATE KEY", key.secret_pkcs8_der())
    );
    reqwest::Identity::from_pem(pem.as_bytes()).unwrap()
}

async fn workloads_get_svids_and_use_them_over_mtls(backend: Backend) {
    let sealing = sealing_key();
    let server = Server::start_with(options(backend, &sealing)).await;
    let bundle = bundle(&server).await;

    // The SPIFFE bundle: one JWK for x509-svid use, no kid, carrying the CA certificate.
    let spiffe = server.fetch_json("/ca/bundle").await;
    let key = &spiffe["keys"][0];
    assert_eq!(key["use"], "x509-svid");
    assert!(key.get("kid").is_none());
    let x5c = data_encoding::BASE64
        .decode(key["x5c"][0].as_str().unwrap().as_bytes())
        .unwrap();
    assert_eq!(
        x5c,
        CertificateDer::from_pem_slice(bundle.as_bytes())
            .unwrap()
            .as_ref()
    );

    // Join tokens: one SVID each; a reused, unknown or absent token is refused the same way.
    let key = KeyPair::generate().unwrap();
    let token = join_token(&server, INGEST);
    let mut tampered = csr(&key).into_bytes();
    let at = tampered.len() / 2;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let r = enroll_with(&server, &token, std::str::from_utf8(&tampered).unwrap()).await;
    assert_eq!(
        error_code(r).await,
        (400, "invalid_csr".into()),
        "an unsound request"
    );
    let r = enroll_with(&server, &token, &csr(&key)).await;
    assert_eq!(
        r.status(),
        201,
        "the unsound request did not spend the token"
    );
    let ingest_svid = Svid {
        key,
        certificate: r.json::<serde_json::Value>().await.unwrap()["certificate"]
            .as_str()
            .unwrap()
            .to_owned(),
    };
    assert_eq!(check_svid(&ingest_svid.der()).unwrap().to_string(), INGEST);
    for presented in [token.as_str(), "not-a-join-token"] {
        let r = enroll_with(&server, presented, &csr(&KeyPair::generate().unwrap())).await;
        assert_eq!(
            error_code(r).await,
            (401, "invalid_join_token".into()),
            "{presented}"
        );
    }

    // The audit ingest admits the SPIFFE ID on its allow-list, and the log names it.
    let client = mtls_client(&bundle, &server, Some(ingest_svid.identity()));
    let r = ingest(&client, &server).await.unwrap();
    assert_eq!(r.status(), 201);
    let index = r.json::<serde_json::Value>().await.unwrap()["index"]
        .as_i64()
        .unwrap();
    let db = server.db().await;
    let (entry,): (String,) = sqlx::query_as("SELECT entry FROM audit_leaves WHERE idx = $1")
        .bind(index)
        .fetch_one(db.pool())
        .await
        .unwrap();
    db.close().await;
    let leaf: serde_json::Value = serde_json::from_str(&entry).unwrap();
    assert_eq!(leaf["origin"], format!("workload:{INGEST}"));

    // Another workload of the trust domain connects, but the ingest does not admit it.
    let other = enroll(&server, OTHER).await;
    let other_client = mtls_client(&bundle, &server, Some(other.identity()));
    let r = ingest(&other_client, &server).await.unwrap();
    assert_eq!(error_code(r).await, (403, "workload_not_allowed".into()));

    // Renewal with the SVID held: same SPIFFE ID, a new certificate for a new key.
    let key = KeyPair::generate().unwrap();
    let r = client
        .post(mtls_url(&server, "/ca/svid/renew"))
        .json(&serde_json::json!({ "csr": csr(&key) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let renewed: serde_json::Value = r.json().await.unwrap();
    assert_eq!(renewed["spiffe_id"], INGEST);
    assert_ne!(
        renewed["certificate"].as_str().unwrap(),
        ingest_svid.certificate
    );
    // Without an SVID (the public listener asks for none) there is nothing to renew.
    let r = server
        .http_client()
        .post(format!("{}/ca/svid/renew", server.base()))
        .json(&serde_json::json!({ "csr": csr(&key) }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (403, "svid_required".into()));

    // Refused at the handshake: no certificate, another trust domain's SVID, an expired one.
    let no_certificate = mtls_client(&bundle, &server, None);
    assert!(ingest(&no_certificate, &server).await.is_err());
    let (foreign, _) = Authority::create(
        TrustDomain::parse(DOMAIN).unwrap(),
        Validity::from_now(time::Duration::days(1)),
    )
    .unwrap();
    let foreign_client = mtls_client(
        &bundle,
        &server,
        Some(forged(
            &foreign,
            INGEST,
            Validity::from_now(time::Duration::hours(1)),
        )),
    );
    assert!(ingest(&foreign_client, &server).await.is_err());
    let real = stolen_authority(&server, &sealing).await;
    let past = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    let expired = Validity {
        not_before: past,
        not_after: past + time::Duration::hours(1),
    };
    let expired_client = mtls_client(&bundle, &server, Some(forged(&real, INGEST, expired)));
    assert!(ingest(&expired_client, &server).await.is_err());
    // The same key signs a current SVID that works: the refusal was the expiry.
    let current = mtls_client(
        &bundle,
        &server,
        Some(forged(
            &real,
            INGEST,
            Validity::from_now(time::Duration::hours(1)),
        )),
    );
    assert_eq!(ingest(&current, &server).await.unwrap().status(), 201);

    // A self-signed certificate (RFC 8705's) gets a connection, and no workload's access.
    let own = KeyPair::generate().unwrap();
    let self_signed = CertificateParams::new(vec!["client".to_string()])
        .unwrap()
        .self_signed(&own)
        .unwrap();
    let pem = format!("{}{}", self_signed.pem(), own.serialize_pem());
    let self_signed_client = mtls_client(
        &bundle,
        &server,
        Some(reqwest::Identity::from_pem(pem.as_bytes()).unwrap()),
    );
    assert_eq!(
        ingest(&self_signed_client, &server).await.unwrap().status(),
        401
    );
    let r = self_signed_client
        .post(mtls_url(&server, "/ca/svid/renew"))
        .json(&serde_json::json!({ "csr": csr(&own) }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (403, "svid_required".into()));

    // The CLI's events are queued for the server's sequencer, which appends them in moments.
    let events = eventually(Duration::from_secs(10), "the CLI's events", || {
        let server = &server;
        async move {
            let events = server.events().await;
            let tokens = events
                .iter()
                .filter(|(a, _, _)| a == "tls.ca.join_token.created")
                .count();
            (tokens == 2).then_some(events)
        }
    })
    .await;
    let count = |action: &str, outcome: &str| {
        events
            .iter()
            .filter(|(a, o, _)| a == action && o == outcome)
            .count()
    };
    // The development CA of the public listener, and the internal CA.
    assert_eq!(count("tls.ca.created", "success"), 2);
    // The development certificate; the node's SVID, two by join token, one renewal.
    assert_eq!(count("tls.certificate.issued", "success"), 5, "{events:?}");
    // The unsound CSR, the reused token and the unknown one.
    assert_eq!(count("tls.certificate.refused", "failure"), 3, "{events:?}");
}

on_both_backends!(workloads_get_svids_and_use_them_over_mtls);

/// A TLS connection to the mTLS listener presenting `svid`, and the serial of the server's
/// certificate.
async fn connect_mtls(
    server: &Server,
    bundle: &str,
    svid: &Svid,
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    String,
) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(bundle.as_bytes()).unwrap())
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(svid.key.serialize_pem().as_bytes())
        .unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![svid.der()], key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let stream = connect(server.mtls.unwrap(), Arc::new(config), DOMAIN)
        .await
        .unwrap();
    let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    (stream, parsed.raw_serial_as_string())
}

/// One keep-alive `GET /healthz` on an open connection; the status.
async fn healthz_on(stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> u16 {
    stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nhost: {DOMAIN}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the connection closed");
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received);
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            if received.len() >= end + 4 + length {
                return text[9..12].parse().unwrap();
            }
        }
    }
}

/// The node's SVID names it in the trust domain, and `palisade ca rotate` replaces it on the
/// running server while clients keep connecting: no request fails, and a connection opened
/// before the rotation keeps working on the certificate it negotiated.
#[tokio::test]
async fn the_node_svid_rotates_under_load_without_dropping_connections() {
    let server = Server::start_with(options(Backend::Sqlite, &sealing_key())).await;
    let bundle = bundle(&server).await;
    let svid = enroll(&server, INGEST).await;

    let (mut held, before) = connect_mtls(&server, &bundle, &svid).await;
    assert_eq!(healthz_on(&mut held).await, 200);
    let served = held.get_ref().1.peer_certificates().unwrap()[0].clone();
    let node = check_svid(&served).unwrap();
    assert!(node.path().starts_with("/palisade/node/"), "{node}");
    let (_, parsed) = x509_parser::parse_x509_certificate(&served).unwrap();
    let lifetime =
        parsed.validity().not_after.timestamp() - parsed.validity().not_before.timestamp();
    assert_eq!(
        lifetime,
        3600 + 60,
        "the default lifetime, from a minute back"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let client = mtls_client(&bundle, &server, Some(svid.identity()));
    let url = mtls_url(&server, "/healthz");
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed, client, url) = (
                stop.clone(),
                ok.clone(),
                failed.clone(),
                client.clone(),
                url.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match client.get(&url).send().await {
                        Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    eventually(Duration::from_secs(10), "requests under load", || {
        let ok = ok.load(Ordering::Relaxed);
        async move { (ok >= 20).then_some(()) }
    })
    .await;

    let out = server.cli(&["ca", "rotate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = eventually(Duration::from_secs(10), "a rotated node SVID", || {
        let (server, bundle, svid, before) = (&server, &bundle, &svid, &before);
        async move {
            let (_, serial) = connect_mtls(server, bundle, svid).await;
            (serial != *before).then_some(serial)
        }
    })
    .await;
    let served_before = ok.load(Ordering::Relaxed);
    eventually(
        Duration::from_secs(10),
        "requests after the rotation",
        || {
            let ok = ok.load(Ordering::Relaxed);
            async move { (ok >= served_before + 20).then_some(()) }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed");
    assert_eq!(
        healthz_on(&mut held).await,
        200,
        "the connection outlived the rotation"
    );
    let (_, now_served) = connect_mtls(&server, &bundle, &svid).await;
    assert_eq!(now_served, after);

    let metrics = server.metrics().await;
    assert!(
        metrics.contains("palisade_tls_node_svid_rotations_total 1"),
        "{metrics}"
    );
}

const BILLING: &str = "spiffe://palisade.test/svc/billing";

fn jwt_claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &data_encoding::BASE64URL_NOPAD
            .decode(payload.as_bytes())
            .unwrap(),
    )
    .unwrap()
}

/// The access token of a token response, remembered as a secret the logs must not show.
async fn access_token(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 200);
    let token = r.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    remember_secret(&token);
    token
}

fn thumbprint(der: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(&palisade_crypto::sha256(der))
}

/// `client_credentials` for `client_id` authenticated by the connection's certificate.
async fn mtls_token(client: &reqwest::Client, url: String, client_id: &str) -> reqwest::Response {
    client
        .post(url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
        ])
        .send()
        .await
        .unwrap()
}

async fn ingest_with_token(
    client: &reqwest::Client,
    url: String,
    token: &str,
) -> reqwest::Response {
    client
        .post(url)
        .bearer_auth(token)
        .json(&serde_json::json!({ "action": "billing.invoice.sent", "outcome": "success" }))
        .send()
        .await
        .unwrap()
}

/// RFC 8705: clients authenticate with their certificate (an SVID naming the registered SPIFFE
/// ID, or a registered self-signed certificate), their tokens carry `cnf.x5t#S256`, and a bound
/// token is refused without that very certificate — on the public listener, or with another
/// valid SVID.
#[tokio::test]
async fn certificate_bound_tokens_need_their_certificate() {
    let server = Server::start_with(options(Backend::Sqlite, &sealing_key())).await;
    let bundle = bundle(&server).await;
    let metadata = server
        .fetch_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(metadata["tls_client_certificate_bound_access_tokens"], true);
    assert_eq!(
        metadata["mtls_endpoint_aliases"]["token_endpoint"],
        mtls_url(&server, "/oauth/token")
    );
    let methods = metadata["token_endpoint_auth_methods_supported"].to_string();
    assert!(
        methods.contains("\"tls_client_auth\"")
            && methods.contains("\"self_signed_tls_client_auth\"")
    );

    let registered = server.register_client(&[
        "--name",
        "billing",
        "--auth-method",
        "tls_client_auth",
        "--tls-client-auth-san-uri",
        BILLING,
        "--grant",
        "client_credentials",
        "--scope",
        "audit:write",
    ]);
    let client_id = registered["client_id"].as_str().unwrap();
    assert!(registered.get("client_secret").is_none_or(|s| s.is_null()));
    let billing = enroll(&server, BILLING).await;
    let other = enroll(&server, OTHER).await;
    let billing_client = mtls_client(&bundle, &server, Some(billing.identity()));
    let other_client = mtls_client(&bundle, &server, Some(other.identity()));

    let r = mtls_token(
        &billing_client,
        mtls_url(&server, "/oauth/token"),
        client_id,
    )
    .await;
    let token = access_token(r).await;
    assert_eq!(
        jwt_claims(&token)["cnf"]["x5t#S256"],
        thumbprint(&billing.der())
    );

    // The certificate is the credential: another SVID, or none, authenticates nothing.
    let r = mtls_token(&other_client, mtls_url(&server, "/oauth/token"), client_id).await;
    assert_eq!(error_code(r).await, (401, "invalid_client".into()));
    let r = mtls_token(
        &server.http_client(),
        format!("{}/oauth/token", server.base()),
        client_id,
    )
    .await;
    assert_eq!(error_code(r).await, (401, "invalid_client".into()));

    // The bound token works with its certificate, and only with it.
    let r = ingest_with_token(&billing_client, mtls_url(&server, "/audit/events"), &token).await;
    assert_eq!(r.status(), 201);
    let r = ingest_with_token(&other_client, mtls_url(&server, "/audit/events"), &token).await;
    assert_eq!(
        error_code(r).await,
        (401, "invalid_token".into()),
        "another valid SVID"
    );
    let r = ingest_with_token(
        &server.http_client(),
        format!("{}/audit/events", server.base()),
        &token,
    )
    .await;
    assert_eq!(
        error_code(r).await,
        (401, "invalid_token".into()),
        "no certificate"
    );

    // Introspection tells a resource server what the token is bound to.
    let resource = server.register_client(&["--name", "rs", "--grant", "client_credentials"]);
    let r = server
        .http_client()
        .post(format!("{}/oauth/introspect", server.base()))
        .basic_auth(
            resource["client_id"].as_str().unwrap(),
            resource["client_secret"].as_str(),
        )
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    let introspected: serde_json::Value = r.json().await.unwrap();
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["cnf"]["x5t#S256"], thumbprint(&billing.der()));

    // A self-signed certificate registered by its thumbprint (RFC 8705 §2.2).
    let own = KeyPair::generate().unwrap();
    let certificate = CertificateParams::new(vec!["billing-batch".to_string()])
        .unwrap()
        .self_signed(&own)
        .unwrap();
    let path = server.dir.path().join("client.pem");
    std::fs::write(&path, certificate.pem()).unwrap();
    let registered = server.register_client(&[
        "--name",
        "batch",
        "--auth-method",
        "self_signed_tls_client_auth",
        "--tls-client-certificate-file",
        path.to_str().unwrap(),
        "--grant",
        "client_credentials",
        "--scope",
        "audit:write",
    ]);
    let batch_id = registered["client_id"].as_str().unwrap();
    let identity = |key: &KeyPair, cert: &rcgen::Certificate| {
        let pem = format!("{}{}", cert.pem(), key.serialize_pem());
        reqwest::Identity::from_pem(pem.as_bytes()).unwrap()
    };
    let batch = mtls_client(&bundle, &server, Some(identity(&own, &certificate)));
    let r = mtls_token(&batch, mtls_url(&server, "/oauth/token"), batch_id).await;
    let token = access_token(r).await;
    assert_eq!(
        jwt_claims(&token)["cnf"]["x5t#S256"],
        thumbprint(certificate.der())
    );
    let forger_key = KeyPair::generate().unwrap();
    let forger_cert = CertificateParams::new(vec!["billing-batch".to_string()])
        .unwrap()
        .self_signed(&forger_key)
        .unwrap();
    let forger = mtls_client(&bundle, &server, Some(identity(&forger_key, &forger_cert)));
    let r = mtls_token(&forger, mtls_url(&server, "/oauth/token"), batch_id).await;
    assert_eq!(error_code(r).await, (401, "invalid_client".into()));
    let r = ingest_with_token(&forger, mtls_url(&server, "/audit/events"), &token).await;
    assert_eq!(error_code(r).await, (401, "invalid_token".into()));
    let r = ingest_with_token(&batch, mtls_url(&server, "/audit/events"), &token).await;
    assert_eq!(r.status(), 201);
}
