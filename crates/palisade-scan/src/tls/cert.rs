//! The certificate audit: each certificate's dates, key, signature and extensions read with
//! x509-parser, and the chain's trust and name judged by webpki (through rustls), as a
//! client would judge them. Trust is judged at a moment the leaf is valid, so an expired
//! chain still says whether it would otherwise be trusted.

use rustls::RootCertStore;
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::rules;
use crate::finding::{Finding, Report, Severity};

const DAY: i64 = 86_400;

/// A certificate's public key, as the profiles judge it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Key {
    Rsa(usize),
    /// An elliptic-curve key of this many bits (256 for P-256).
    Ec(usize),
    Ed25519,
    Other(String),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rsa(bits) => write!(f, "RSA {bits}"),
            Self::Ec(bits) => write!(f, "EC P-{bits}"),
            Self::Ed25519 => write!(f, "Ed25519"),
            Self::Other(oid) => write!(f, "key {oid}"),
        }
    }
}

/// What the profiles need from the audit.
pub(super) struct Leaf {
    pub(super) key: Key,
    pub(super) lifetime_days: i64,
    /// Trusted, in date and valid for the name.
    pub(super) valid: bool,
    /// Where the leaf says its OCSP responder is.
    pub(super) ocsp_responder: Option<String>,
}

fn key_of(cert: &X509Certificate) -> Key {
    let spki = cert.public_key();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let m = rsa.modulus;
            let leading = m.iter().take_while(|&&b| b == 0).count();
            let bits = m[leading..]
                .first()
                .map_or(0, |b| (m.len() - leading) * 8 - b.leading_zeros() as usize);
            Key::Rsa(bits)
        }
        Ok(PublicKey::EC(point)) => Key::Ec(point.key_size()),
        _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => Key::Ed25519,
        _ => Key::Other(spki.algorithm.algorithm.to_id_string()),
    }
}

/// SHA-1 and MD5 signature algorithms (RSA, DSA and ECDSA).
fn weak_signature(oid: &str) -> Option<&'static str> {
    match oid {
        "1.2.840.113549.1.1.4" => Some("MD5 with RSA"),
        "1.2.840.113549.1.1.5" => Some("SHA-1 with RSA"),
        "1.2.840.10040.4.3" => Some("DSA with SHA-1"),
        "1.2.840.10045.4.1" => Some("ECDSA with SHA-1"),
        _ => None,
    }
}

/// Audits `chain` (leaf first) as served to a client connecting to `name`.
pub(super) fn audit(
    chain: &[CertificateDer<'static>],
    name: &ServerName<'static>,
    roots: &RootCertStore,
    now: i64,
    report: &mut Report,
) -> Option<Leaf> {
    let parsed: Vec<X509Certificate> = chain
        .iter()
        .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, c)| c))
        .collect();
    let Some(leaf) = parsed.first() else {
        report.add(Finding::new(
            &rules::CERT_UNTRUSTED,
            Severity::High,
            "the server's certificate cannot be parsed",
        ));
        return None;
    };
    let mut described = Vec::new();
    for (i, cert) in parsed.iter().enumerate() {
        let subject = cert.subject().to_string();
        let (from, until) = (
            cert.validity().not_before.timestamp(),
            cert.validity().not_after.timestamp(),
        );
        let key = key_of(cert);
        described.push(format!(
            "#{i} {subject} ({key}, {} days, until {})",
            (until - from) / DAY,
            cert.validity().not_after
        ));
        if until < now {
            report.add(Finding::new(
                &rules::CERT_EXPIRED,
                Severity::Critical,
                format!(
                    "{subject} expired {} days ago, on {}",
                    (now - until) / DAY,
                    cert.validity().not_after
                ),
            ));
        } else if from > now {
            report.add(Finding::new(
                &rules::CERT_NOT_YET_VALID,
                Severity::High,
                format!(
                    "{subject} is valid only from {}",
                    cert.validity().not_before
                ),
            ));
        }
        let weak_key = match key {
            Key::Rsa(bits) => bits < 2048,
            Key::Ec(bits) => bits < 256,
            _ => false,
        };
        if weak_key {
            report.add(Finding::new(
                &rules::CERT_WEAK_KEY,
                Severity::High,
                format!("{subject} has a {key} key"),
            ));
        }
        let self_signed = cert.subject().as_raw() == cert.issuer().as_raw();
        if let Some(alg) = weak_signature(&cert.signature_algorithm.algorithm.to_id_string())
            && !(self_signed && i > 0)
        {
            report.add(Finding::new(
                &rules::CERT_WEAK_SIGNATURE,
                Severity::High,
                format!("{subject} is signed with {alg}"),
            ));
        }
        let has = |want: fn(&ParsedExtension) -> bool| {
            cert.extensions().iter().any(|e| want(e.parsed_extension()))
        };
        let missing = if i == 0 && !self_signed {
            (!has(|e| matches!(e, ParsedExtension::AuthorityKeyIdentifier(a) if a.key_identifier.is_some())))
                .then_some("authorityKeyIdentifier")
        } else if cert.is_ca() {
            (!has(|e| matches!(e, ParsedExtension::SubjectKeyIdentifier(_))))
                .then_some("subjectKeyIdentifier")
        } else {
            None
        };
        if let Some(ext) = missing {
            report.add(Finding::new(
                &rules::CERT_NO_KEY_ID,
                Severity::Low,
                format!("{subject} has no {ext}"),
            ));
        }
    }
    let subject = leaf.subject().to_string();
    let (from, until) = (
        leaf.validity().not_before.timestamp(),
        leaf.validity().not_after.timestamp(),
    );
    let lifetime_days = (until - from) / DAY;
    if (now..now + 30 * DAY).contains(&until) {
        let left = (until - now) / DAY;
        report.add(Finding::new(
            &rules::CERT_EXPIRING,
            if left < 7 {
                Severity::High
            } else {
                Severity::Medium
            },
            format!(
                "{subject} expires in {left} days, on {}",
                leaf.validity().not_after
            ),
        ));
    }
    if lifetime_days > 398 {
        report.add(Finding::new(
            &rules::CERT_LONG_LIFETIME,
            Severity::Low,
            format!("{subject} is valid for {lifetime_days} days"),
        ));
    }
    let names: Vec<String> = leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .map(|n| match n {
                    GeneralName::DNSName(d) => (*d).to_owned(),
                    GeneralName::IPAddress(ip) => ip_text(ip),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        report.add(Finding::new(
            &rules::CERT_NO_SAN,
            Severity::Medium,
            format!("{subject} names no host in subjectAltName"),
        ));
    }
    let serial = leaf.raw_serial();
    let serial_bytes = serial.iter().skip_while(|&&b| b == 0).count();
    if serial_bytes < 8 {
        report.add(Finding::new(
            &rules::CERT_SHORT_SERIAL,
            Severity::Low,
            format!("{subject} has a serial number of {serial_bytes} bytes"),
        ));
    }
    let leaf_self_signed = leaf.subject().as_raw() == leaf.issuer().as_raw();
    for pair in parsed.windows(2) {
        if pair[0].issuer().as_raw() != pair[1].subject().as_raw() {
            report.add(Finding::new(
                &rules::CHAIN_ORDER,
                Severity::Low,
                format!(
                    "{} is followed by {}, which did not issue it",
                    pair[0].subject(),
                    pair[1].subject()
                ),
            ));
            break;
        }
    }
    // Both are judged, so both are reported.
    let valid = trust(
        chain,
        roots,
        now.clamp(from, until),
        leaf_self_signed,
        &subject,
        report,
    ) & check_name(&chain[0], name, &names, report)
        && (from..=until).contains(&now);
    report.add(Finding::new(
        &rules::CHAIN,
        Severity::Info,
        format!(
            "{} certificate(s): {}; names: {}",
            parsed.len(),
            described.join("; "),
            names.join(", ")
        ),
    ));
    let ocsp_responder =
        leaf.extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityInfoAccess(aia) => aia.accessdescs.iter().find_map(|d| {
                    match (&d.access_location, d.access_method.to_id_string().as_str()) {
                        (GeneralName::URI(uri), "1.3.6.1.5.5.7.48.1") => Some((*uri).to_owned()),
                        _ => None,
                    }
                }),
                _ => None,
            });
    Some(Leaf {
        key: key_of(leaf),
        lifetime_days,
        valid,
        ocsp_responder,
    })
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default()).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default()).to_string(),
        _ => format!("{bytes:02x?}"),
    }
}

/// Whether the chain leads to one of `roots`, judged `at` a moment the leaf is valid.
fn trust(
    chain: &[CertificateDer<'static>],
    roots: &RootCertStore,
    at: i64,
    self_signed: bool,
    subject: &str,
    report: &mut Report,
) -> bool {
    let algorithms =
        rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
    let result = ParsedCertificate::try_from(&chain[0]).and_then(|leaf| {
        verify_server_cert_signed_by_trust_anchor(
            &leaf,
            roots,
            &chain[1..],
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.max(0) as u64)),
            algorithms.all,
        )
    });
    match result {
        Ok(()) => true,
        Err(_) if self_signed => {
            report.add(Finding::new(
                &rules::CERT_SELF_SIGNED,
                Severity::High,
                format!("{subject} is self-signed and not a trusted root"),
            ));
            false
        }
        Err(e) => {
            report.add(Finding::new(
                &rules::CERT_UNTRUSTED,
                Severity::High,
                format!("the chain of {subject} does not lead to a trusted root: {e}"),
            ));
            false
        }
    }
}

fn check_name(
    leaf: &CertificateDer<'static>,
    name: &ServerName<'static>,
    names: &[String],
    report: &mut Report,
) -> bool {
    let ok = ParsedCertificate::try_from(leaf)
        .and_then(|cert| verify_server_name(&cert, name))
        .is_ok();
    if !ok {
        report.add(Finding::new(
            &rules::CERT_NAME_MISMATCH,
            Severity::High,
            format!(
                "the certificate is for {} but the server was reached as {}",
                names.join(", "),
                name.to_str()
            ),
        ));
    }
    ok
}
