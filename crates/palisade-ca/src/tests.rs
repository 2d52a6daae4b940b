use super::*;
use palisade_store::both_backends;
use palisade_tls::ca::check_svid;

fn sealing() -> SealingKey {
    SealingKey::from_bytes(&[3u8; 32]).expect("32 bytes")
}

fn auditor(db: &Db) -> Auditor {
    Auditor::deferred(
        db.clone(),
        [7u8; 32],
        sealing(),
        palisade_cluster::Bus::in_process(),
    )
}

fn settings(domain: &str) -> CaSettings {
    CaSettings {
        trust_domain: Some(TrustDomain::parse(domain).unwrap()),
        ..CaSettings::default()
    }
}

fn csr() -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .der()
        .to_vec()
}

async fn nodes_starting_together_share_one_authority(db: Db) {
    let (key, settings, other) = (sealing(), settings("palisade.test"), settings("other.test"));
    let (a, b) = tokio::join!(
        Ca::load_or_create(db.clone(), &key, auditor(&db), &settings),
        Ca::load_or_create(db.clone(), &key, auditor(&db), &settings),
    );
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    assert_eq!(a.authority().certificate(), b.authority().certificate());

    let elsewhere = Ca::load(db.clone(), &key, auditor(&db), &other).await;
    assert!(matches!(elsewhere, Err(ServiceError::OtherDomain { .. })));
    let wrong_key = SealingKey::from_bytes(&[4u8; 32]).unwrap();
    let sealed = Ca::load(db.clone(), &wrong_key, auditor(&db), &settings).await;
    assert!(matches!(sealed, Err(ServiceError::Sealed)));
    let domain = TrustDomain::parse("palisade.test").unwrap();
    let again = Ca::init(&db, &key, &auditor(&db), domain, Duration::days(1)).await;
    assert!(matches!(again, Err(ServiceError::Exists(_))));
}

both_backends!(nodes_starting_together_share_one_authority);

async fn a_join_token_buys_one_svid_even_when_raced(db: Db) {
    let ca = Ca::load_or_create(
        db.clone(),
        &sealing(),
        auditor(&db),
        &settings("palisade.test"),
    )
    .await
    .unwrap()
    .unwrap();
    let id = SpiffeId::parse("spiffe://palisade.test/svc/a").unwrap();
    let token = ca
        .create_join_token(id.clone(), Duration::minutes(5))
        .await
        .unwrap();
    let (csr_a, csr_b) = (csr(), csr());
    let (a, b) = tokio::join!(
        ca.enroll(&token.token, &csr_a),
        ca.enroll(&token.token, &csr_b)
    );
    let (won, lost) = match (a, b) {
        (Ok(svid), Err(e)) | (Err(e), Ok(svid)) => (svid, e),
        other => panic!("exactly one enrolment must win: {other:?}"),
    };
    assert_eq!(check_svid(&won.certificate).unwrap(), id);
    assert!(matches!(lost, ServiceError::JoinToken));
    assert!(!ca.join_token_is_live(&token.token).await.unwrap());

    let expired = ca
        .create_join_token(id.clone(), Duration::milliseconds(-1))
        .await
        .unwrap();
    assert!(!ca.join_token_is_live(&expired.token).await.unwrap());
    assert!(matches!(
        ca.enroll(&expired.token, &csr()).await,
        Err(ServiceError::JoinToken)
    ));
    let outside = SpiffeId::parse("spiffe://other.test/svc/a").unwrap();
    assert!(
        ca.create_join_token(outside, Duration::minutes(5))
            .await
            .is_err()
    );

    let listed = ca.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].serial, won.serial);
    assert_eq!(listed[0].via, "join_token");
}

both_backends!(a_join_token_buys_one_svid_even_when_raced);

#[test]
fn settings_refuse_what_cannot_work() {
    let mut s = CaSettings {
        mtls_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..CaSettings::default()
    };
    assert!(s.validate().unwrap_err().contains("ca.trust_domain"));
    s.trust_domain = Some(TrustDomain::parse("palisade.test").unwrap());
    assert!(s.validate().is_ok());
    assert_eq!(s.node_dns_names(), ["palisade.test"]);
    assert_eq!(s.mtls_base(8444), "https://palisade.test:8444");
    let allow: AllowListProbe =
        serde_json::from_str(r#"{"allow": {"audti-ingest": ["spiffe://palisade.test/*"]}}"#)
            .unwrap();
    s.allow = allow.allow;
    assert!(s.validate().unwrap_err().contains("audti-ingest"));
    s.allow = Default::default();
    s.svid_lifetime_seconds = 30;
    assert!(s.validate().is_err());
    let bad: Result<AllowListProbe, _> =
        serde_json::from_str(r#"{"allow": {"audit-ingest": ["spiffe://Palisade.test/*"]}}"#);
    assert!(bad.is_err());
}

#[derive(serde::Deserialize)]
struct AllowListProbe {
    allow: palisade_tls::ca::AllowList,
}
