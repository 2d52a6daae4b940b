use crate::TlsError;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
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
}

const LEAF_LIFETIME_DAYS: i64 = 397;
const RENEW_BEFORE_DAYS: i64 = 30;

/// Creates the CA and leaf in `dir` on first use and keeps them; the leaf is re-issued from the
/// same CA when it is within 30 days of expiry, so a trusted CA stays trusted.
pub fn ensure_dev_certificate(dir: &Path) -> Result<DevCertificate, TlsError> {
    create_private_dir(dir)?;
    let ca_cert = dir.join("dev-ca.pem");
    let ca_key = dir.join("dev-ca-key.pem");
    let cert = dir.join("dev-cert.pem");
    let key = dir.join("dev-key.pem");

    if !ca_cert.exists() || !ca_key.exists() {
        let ca_key_pair = KeyPair::generate().map_err(invalid)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(invalid)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
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
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(LEAF_LIFETIME_DAYS);
        let leaf = params.signed_by(&leaf_key, &issuer).map_err(invalid)?;
        write_private(&key, leaf_key.serialize_pem().as_bytes())?;
        write(&cert, leaf.pem().as_bytes())?;
    }

    let loaded = crate::load_pair(&cert, &key)?;
    Ok(DevCertificate {
        cert,
        key,
        ca: ca_cert,
        fingerprint: loaded.fingerprint,
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
}
