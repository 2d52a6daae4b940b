use super::*;
use ::time::{Duration, OffsetDateTime};
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::CertificateDer;

fn authority() -> Authority {
    let domain = TrustDomain::parse("palisade.test").unwrap();
    Authority::create(domain, Validity::from_now(Duration::days(365)))
        .unwrap()
        .0
}

fn id(text: &str) -> SpiffeId {
    SpiffeId::parse(text).unwrap()
}

fn request(key: &KeyPair) -> Vec<u8> {
    // What the request asks for is ignored: the CA names the SVID.
    let params = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
    params.serialize_request(key).unwrap().der().to_vec()
}

/// Parses and signs a request, as the CA service does.
fn sign(
    ca: &Authority,
    csr: &[u8],
    id: &SpiffeId,
    dns_names: &[String],
    validity: Validity,
) -> Result<IssuedSvid, CaError> {
    ca.sign_request(&CertificateRequest::parse(csr)?, id, dns_names, validity)
}

fn hour() -> Validity {
    Validity::from_now(Duration::hours(1))
}

#[test]
fn a_signed_request_becomes_an_svid_that_the_verifier_accepts_for_its_id() {
    crate::install_crypto_provider();
    let ca = authority();
    let key = KeyPair::generate().unwrap();
    let svid = sign(
        &ca,
        &request(&key),
        &id("spiffe://palisade.test/svc/ingest"),
        &[],
        hour(),
    )
    .unwrap();
    assert_eq!(check_svid(&svid.certificate).unwrap(), svid.id);
    let (_, parsed) = x509_parser::parse_x509_certificate(&svid.certificate).unwrap();
    let names: Vec<String> = parsed
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(names, ["URI(spiffe://palisade.test/svc/ingest)"]);
    assert_eq!(
        parsed.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key)
    );
    assert!(
        parsed.validity().not_after.timestamp() - OffsetDateTime::now_utc().unix_timestamp()
            <= 3600
    );

    // rustls-webpki validates the path through the name-constrained root.
    let verifier = PeerVerifier::new(ca.certificate(), false).unwrap();
    let peer = verifier
        .identify(std::slice::from_ref(&svid.certificate))
        .unwrap();
    assert_eq!(peer.svid, Some(svid.id.clone()));
    assert_eq!(
        peer.thumbprint,
        data_encoding::BASE64URL_NOPAD.encode(&palisade_crypto::sha256(&svid.certificate))
    );
}

#[test]
fn the_ca_signs_only_inside_its_trust_domain_and_only_sound_requests() {
    crate::install_crypto_provider();
    let ca = authority();
    let key = KeyPair::generate().unwrap();
    let csr = request(&key);
    let outside = sign(&ca, &csr, &id("spiffe://other.test/svc"), &[], hour());
    assert!(
        matches!(outside, Err(CaError::OutsideTrustDomain(..))),
        "{outside:?}"
    );
    let dns = sign(
        &ca,
        &csr,
        &id("spiffe://palisade.test/svc"),
        &["palisade.test.evil.example".into()],
        hour(),
    );
    assert!(
        matches!(dns, Err(CaError::OutsideTrustDomain(..))),
        "{dns:?}"
    );
    let inside = sign(
        &ca,
        &csr,
        &id("spiffe://palisade.test/svc"),
        &["node-1.palisade.test".into(), "palisade.test".into()],
        hour(),
    );
    assert!(inside.is_ok(), "{inside:?}");

    let mut tampered = csr.clone();
    let last = tampered.len() - 5;
    tampered[last] ^= 1;
    let forged = sign(
        &ca,
        &tampered,
        &id("spiffe://palisade.test/svc"),
        &[],
        hour(),
    );
    assert!(matches!(forged, Err(CaError::Csr)), "{forged:?}");

    let p521 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
    let weak = sign(
        &ca,
        &request(&p521),
        &id("spiffe://palisade.test/svc"),
        &[],
        hour(),
    );
    assert!(matches!(weak, Err(CaError::Key(_))), "{weak:?}");
}

#[test]
fn the_verifier_refuses_other_cas_expired_svids_and_unknown_self_signed_certificates() {
    crate::install_crypto_provider();
    let ca = authority();
    let verifier = PeerVerifier::new(ca.certificate(), false).unwrap();
    let subject = id("spiffe://palisade.test/svc");
    let now = rustls::pki_types::UnixTime::now();
    use rustls::server::danger::ClientCertVerifier;

    let other = authority();
    let (foreign, _) = other.issue(&subject, &[], hour()).unwrap();
    assert!(
        verifier
            .verify_client_cert(&foreign.certificate, &[], now)
            .is_err()
    );

    let past = OffsetDateTime::now_utc() - Duration::hours(2);
    let expired = Validity {
        not_before: past,
        not_after: past + Duration::hours(1),
    };
    let (old, _) = ca.issue(&subject, &[], expired).unwrap();
    assert!(
        verifier
            .verify_client_cert(&old.certificate, &[], now)
            .is_err()
    );

    let own_key = KeyPair::generate().unwrap();
    let self_signed: CertificateDer = CertificateParams::new(vec!["client".to_string()])
        .unwrap()
        .self_signed(&own_key)
        .unwrap()
        .der()
        .clone();
    assert!(verifier.verify_client_cert(&self_signed, &[], now).is_err());
    let lenient = PeerVerifier::new(ca.certificate(), true).unwrap();
    assert!(lenient.verify_client_cert(&self_signed, &[], now).is_ok());
    assert!(
        lenient
            .verify_client_cert(&old.certificate, &[], now)
            .is_err()
    );
    // Accepted, but it is no SVID: only its thumbprint identifies it.
    assert_eq!(lenient.identify(&[self_signed]).unwrap().svid, None);
}

#[test]
fn an_svid_is_one_uri_san_on_a_leaf_that_cannot_sign_certificates() {
    crate::install_crypto_provider();
    let ca = authority();
    assert!(matches!(
        check_svid(ca.certificate()),
        Err(CaError::NotSvid(_))
    ));
    let key = KeyPair::generate().unwrap();
    let two = {
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![
            rcgen::SanType::URI("spiffe://palisade.test/a".try_into().unwrap()),
            rcgen::SanType::URI("spiffe://palisade.test/b".try_into().unwrap()),
        ];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.self_signed(&key).unwrap()
    };
    assert!(matches!(
        check_svid(two.der()),
        Err(CaError::NotSvid("more than one URI SAN"))
    ));
    let no_usage = {
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![rcgen::SanType::URI(
            "spiffe://palisade.test/a".try_into().unwrap(),
        )];
        params.self_signed(&key).unwrap()
    };
    assert!(matches!(
        check_svid(no_usage.der()),
        Err(CaError::NotSvid("no key usage"))
    ));
    let root_id = {
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![rcgen::SanType::URI(
            "spiffe://palisade.test".try_into().unwrap(),
        )];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.self_signed(&key).unwrap()
    };
    assert!(matches!(
        check_svid(root_id.der()),
        Err(CaError::SpiffeId(SpiffeIdError::NoPath))
    ));
}

#[test]
fn a_stored_authority_reopens_only_with_its_own_key() {
    crate::install_crypto_provider();
    let domain = TrustDomain::parse("palisade.test").unwrap();
    let (ca, key) = Authority::create(domain.clone(), hour()).unwrap();
    let reopened = Authority::open(domain.clone(), ca.certificate().clone(), &key).unwrap();
    let (svid, _) = reopened
        .issue(&id("spiffe://palisade.test/x"), &[], hour())
        .unwrap();
    let verifier = PeerVerifier::new(ca.certificate(), false).unwrap();
    assert!(
        verifier
            .identify(&[svid.certificate])
            .unwrap()
            .svid
            .is_some()
    );
    let (_, other_key) = Authority::create(domain.clone(), hour()).unwrap();
    assert!(Authority::open(domain, ca.certificate().clone(), &other_key).is_err());
}
