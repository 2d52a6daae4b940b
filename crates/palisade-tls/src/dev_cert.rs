use crate::TlsError;
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// The development certificate of the embedded default (PLT-2): a local CA that a developer can
/// trust once, and a leaf for localhost, 127.0.0.1 and ::1 signed by it.
#[derive(Debug, Clone)]
pub struct DevCertificate {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// SHA-256 fingerprint of the leaf, printed at start-up.
    pub fingerprint: String,
    /// What this call generated, for the audit log (AUD-1: key and certificate events).
    pub generated: Generated,
}

/// The development CA and leaf made by one call, if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Generated {
    pub ca: bool,
    pub leaf: bool,
}

/// Within the 90 days that browsers and ACME CAs are moving public certificates to, so strict
/// clients that check lifetimes accept it too.
const LEAF_LIFETIME_DAYS: i64 = 90;
const RENEW_BEFORE_DAYS: i64 = 30;

/// The names the development CA may certify (its name constraints): a trusted development CA
/// whose key leaked can vouch for nothing but this machine.
fn development_names() -> NameConstraints {
    let mut loopback_v6 = [0u8; 16];
    loopback_v6[15] = 1;
    NameConstraints {
        permitted_subtrees: vec![
            GeneralSubtree::DnsName("localhost".into()),
            GeneralSubtree::IpAddress(CidrSubnet::V4([127, 0, 0, 0], [255, 0, 0, 0])),
            GeneralSubtree::IpAddress(CidrSubnet::V6(loopback_v6, [0xff; 16])),
        ],
        excluded_subtrees: vec![],
    }
}

/// Whether the CA on disk is one this version would make: an older, unconstrained CA is
/// replaced (the developer trusts the new file once more).
fn ca_is_current(ca_cert: &Path) -> bool {
    let Ok(pem) = std::fs::read(ca_cert) else {
        return false;
    };
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(&pem) else {
        return false;
    };
    let Ok(cert) = pem.parse_x509() else {
        return false;
    };
    matches!(cert.name_constraints(), Ok(Some(_)))
}

/// Creates the CA and leaf in `dir` on first use and keeps them; the leaf is re-issued from the
/// same CA when it is within 30 days of expiry, so a trusted CA stays trusted.
pub fn ensure_dev_certificate(dir: &Path) -> Result<DevCertificate, TlsError> {
    create_private_dir(dir)?;
    let ca_cert = dir.join("dev-ca.pem");
    let ca_key = dir.join("dev-ca-key.pem");
    let cert = dir.join("dev-cert.pem");
    let key = dir.join("dev-key.pem");

    let mut generated = Generated::default();
    if !ca_key.exists() || !ca_is_current(&ca_cert) {
        let ca_key_pair = KeyPair::generate().map_err(invalid)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(invalid)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.name_constraints = Some(development_names());
        params
            .distinguished_name
            .push(DnType::CommonName, "Palisade development CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(3650);
        let ca = params.self_signed(&ca_key_pair).map_err(invalid)?;
        write_private(&ca_key, ca_key_pair.serialize_pem().as_bytes())?;
        write(&ca_cert, ca.pem().as_bytes())?;
        // A new CA invalidates any leaf signed by an old one.
        let _ = std::fs::remove_file(&cert);
        generated.ca = true;
    }

    if needs_new_leaf(&cert, &key) {
        let ca_key_pair = KeyPair::from_pem(&read_string(&ca_key)?).map_err(invalid)?;
        let issuer =
            Issuer::from_ca_cert_pem(&read_string(&ca_cert)?, ca_key_pair).map_err(invalid)?;
        let leaf_key = KeyPair::generate().map_err(invalid)?;
        let mut params = CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .map_err(invalid)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "Palisade development certificate");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Subject and authority key identifiers (RFC 5280 §4.2.1.1-2), which strict verifiers
        // require to build the chain; "explicitly not a CA" is what makes rcgen write the SKI.
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(LEAF_LIFETIME_DAYS);
        let leaf = params.signed_by(&leaf_key, &issuer).map_err(invalid)?;
        write_private(&key, leaf_key.serialize_pem().as_bytes())?;
        write(&cert, leaf.pem().as_bytes())?;
        generated.leaf = true;
    }

    let loaded = crate::load_pair(&cert, &key)?;
    Ok(DevCertificate {
        cert,
        key,
        ca: ca_cert,
        fingerprint: loaded.fingerprint,
        generated,
    })
}

fn needs_new_leaf(cert: &Path, key: &Path) -> bool {
    match crate::load_pair(cert, key) {
        Ok(loaded) => {
            let renew_at =
                (OffsetDateTime::now_utc() + Duration::days(RENEW_BEFORE_DAYS)).unix_timestamp();
            loaded.not_after < renew_at
        }
        Err(_) => true,
    }
}

fn invalid(e: rcgen::Error) -> TlsError {
    TlsError::Invalid(format!("development certificate: {e}"))
}

fn read_string(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Read {
        path: path.display().to_string(),
        source,
    }
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))
}

fn write(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    std::fs::write(path, data).map_err(io_err(path))
}

/// Writes a private key readable by the owner only, created with that mode so there is no window
/// in which another user could open it.
fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(data).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_and_keeps_the_same_certificate() {
        crate::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let first = ensure_dev_certificate(dir.path()).unwrap();
        let second = ensure_dev_certificate(dir.path()).unwrap();
        assert_eq!(first.fingerprint, second.fingerprint);
        let both = Generated {
            ca: true,
            leaf: true,
        };
        assert_eq!(
            (first.generated, second.generated),
            (both, Generated::default())
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&first.key).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "private key must not be readable by others"
        );
    }

    #[test]
    fn mismatched_key_is_refused() {
        crate::install_crypto_provider();
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let ca = ensure_dev_certificate(a.path()).unwrap();
        let cb = ensure_dev_certificate(b.path()).unwrap();
        let err = crate::load_pair(&ca.cert, &cb.key).unwrap_err();
        assert!(err.to_string().contains("do not match"), "{err}");
    }

    fn parsed(pem_path: &Path) -> Vec<u8> {
        let pem = std::fs::read(pem_path).unwrap();
        x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents
    }

    /// What strict verifiers check: a leaf of at most 90 days naming its issuer's key, and a CA
    /// that may certify the development names only.
    #[test]
    fn leaf_is_short_lived_with_key_identifiers_and_the_ca_is_name_constrained() {
        use x509_parser::extensions::{GeneralName, ParsedExtension};
        crate::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let dev = ensure_dev_certificate(dir.path()).unwrap();
        let (leaf_der, ca_der) = (parsed(&dev.cert), parsed(&dev.ca));
        let leaf = x509_parser::parse_x509_certificate(&leaf_der).unwrap().1;
        let ca = x509_parser::parse_x509_certificate(&ca_der).unwrap().1;
        let validity = leaf.validity();
        let days = (validity.not_after.timestamp() - validity.not_before.timestamp()) / 86_400;
        assert!(days <= 90, "{days} days");
        let key_ids = |c: &x509_parser::certificate::X509Certificate<'_>| {
            let (mut ski, mut aki) = (None, None);
            for e in c.extensions() {
                match e.parsed_extension() {
                    ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
                    ParsedExtension::AuthorityKeyIdentifier(a) => {
                        aki = a.key_identifier.as_ref().map(|k| k.0.to_vec())
                    }
                    _ => {}
                }
            }
            (ski, aki)
        };
        let (ca_ski, _) = key_ids(&ca);
        let (leaf_ski, leaf_aki) = key_ids(&leaf);
        assert!(ca_ski.is_some() && leaf_ski.is_some(), "both have an SKI");
        assert_eq!(leaf_aki, ca_ski, "the leaf names its issuer's key");
        let constraints = ca.name_constraints().unwrap().expect("name constraints");
        assert!(constraints.critical);
        let permitted = constraints.value.permitted_subtrees.as_ref().unwrap();
        assert!(matches!(
            permitted[0].base,
            GeneralName::DNSName("localhost")
        ));
        assert!(constraints.value.excluded_subtrees.is_none());
        assert_eq!(permitted.len(), 3, "localhost, 127.0.0.0/8 and ::1");
    }

    /// A CA made before name constraints is replaced, and a new leaf issued from it.
    #[test]
    fn an_unconstrained_ca_is_replaced() {
        crate::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let first = ensure_dev_certificate(dir.path()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let old = params.self_signed(&key).unwrap();
        std::fs::write(&first.ca, old.pem()).unwrap();
        let again = ensure_dev_certificate(dir.path()).unwrap();
        assert_eq!(
            again.generated,
            Generated {
                ca: true,
                leaf: true
            }
        );
        assert!(ca_is_current(&again.ca));
    }
}
