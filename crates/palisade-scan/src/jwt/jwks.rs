//! A published key set: its audit, and the byte strings a verifier confused about algorithms
//! might be using as an HMAC secret for each key.

use std::collections::HashMap;

use data_encoding::BASE64URL_NOPAD;
use serde_json::Value;

use super::der;
use super::rules;
use super::token::Object;
use crate::ScanError;
use crate::finding::{Finding, Report, Severity};

/// The keys of a JWK Set document.
pub(crate) fn parse(document: &[u8]) -> Result<Vec<Object>, ScanError> {
    let value: Value =
        serde_json::from_slice(document).map_err(|e| ScanError::Jwks(format!("not JSON: {e}")))?;
    let keys = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| ScanError::Jwks("no \"keys\" array".into()))?;
    keys.iter()
        .map(|k| match k {
            Value::Object(map) => Ok(map.clone()),
            _ => Err(ScanError::Jwks("a key is not a JSON object".into())),
        })
        .collect()
}

fn text<'a>(key: &'a Object, name: &str) -> Option<&'a str> {
    key.get(name).and_then(Value::as_str)
}

fn bytes(key: &Object, name: &str) -> Option<Vec<u8>> {
    BASE64URL_NOPAD.decode(text(key, name)?.as_bytes()).ok()
}

fn describe(key: &Object, index: usize) -> String {
    match text(key, "kid") {
        Some(kid) => format!("key {kid:?}"),
        None => format!("key #{index}"),
    }
}

/// Members that only a private or secret key has (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Audits every key of a set into `report`.
pub(crate) fn audit(keys: &[Object], report: &mut Report) {
    let mut kids: HashMap<&str, usize> = HashMap::new();
    let mut uses: HashMap<String, Vec<&str>> = HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        let name = describe(key, i);
        let private: Vec<&str> = PRIVATE_MEMBERS
            .into_iter()
            .filter(|m| key.contains_key(*m))
            .collect();
        if !private.is_empty() {
            report.add(
                Finding::new(
                    &rules::PRIVATE_KEY_PUBLISHED,
                    Severity::Critical,
                    format!("{name} publishes {}", private.join(", ")),
                )
                .with_evidence(format!("kty {}", text(key, "kty").unwrap_or("?"))),
            );
        }
        audit_strength(key, &name, report);
        match text(key, "kid") {
            Some(kid) => *kids.entry(kid).or_default() += 1,
            None => report.add(Finding::new(
                &rules::JWKS_KID,
                Severity::Low,
                format!("{name} has no kid"),
            )),
        }
        let material = key_material(key);
        let usage = text(key, "use").unwrap_or("unspecified");
        uses.entry(material).or_default().push(usage);
        if !key.contains_key("use") && !key.contains_key("alg") && !key.contains_key("key_ops") {
            report.add(Finding::new(
                &rules::JWKS_MIXED_USE,
                Severity::Info,
                format!("{name} says neither its use nor its algorithm"),
            ));
        }
    }
    for (kid, n) in kids {
        if n > 1 {
            report.add(Finding::new(
                &rules::JWKS_KID,
                Severity::Medium,
                format!("{n} keys share the kid {kid:?}"),
            ));
        }
    }
    for usages in uses.values() {
        let mut distinct = usages.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() > 1 {
            report.add(Finding::new(
                &rules::JWKS_MIXED_USE,
                Severity::Low,
                format!("one key is published for {}", distinct.join(" and ")),
            ));
        }
    }
}

/// The public parameters that identify a key, whatever its kid.
fn key_material(key: &Object) -> String {
    ["kty", "crv", "n", "e", "x", "y", "k"]
        .iter()
        .map(|m| text(key, m).unwrap_or(""))
        .collect::<Vec<_>>()
        .join(".")
}

fn audit_strength(key: &Object, name: &str, report: &mut Report) {
    match text(key, "kty") {
        Some("RSA") => {
            let (Some(n), Some(e)) = (bytes(key, "n"), bytes(key, "e")) else {
                report.add(Finding::new(
                    &rules::WEAK_KEY,
                    Severity::Medium,
                    format!("{name} is an RSA key without a readable n and e"),
                ));
                return;
            };
            let bits = modulus_bits(&n);
            if bits < 2048 {
                let severity = if bits < 1024 {
                    Severity::Critical
                } else {
                    Severity::High
                };
                report.add(Finding::new(
                    &rules::WEAK_KEY,
                    severity,
                    format!("{name} is a {bits}-bit RSA key; 2048 bits is the minimum"),
                ));
            }
            let exponent = e.iter().skip_while(|&&b| b == 0).fold(0u128, |acc, &b| {
                acc.saturating_mul(256).saturating_add(u128::from(b))
            });
            if exponent < 3 || exponent % 2 == 0 {
                report.add(Finding::new(
                    &rules::WEAK_KEY,
                    Severity::Critical,
                    format!(
                        "{name} has the RSA public exponent {exponent}, which is no key at all"
                    ),
                ));
            } else if exponent < 65537 {
                report.add(Finding::new(
                    &rules::WEAK_KEY,
                    Severity::Low,
                    format!("{name} has the small RSA public exponent {exponent}; use 65537"),
                ));
            }
        }
        Some("EC") => match text(key, "crv") {
            Some("P-256" | "P-384" | "P-521") => {}
            other => report.add(Finding::new(
                &rules::WEAK_KEY,
                Severity::Medium,
                format!(
                    "{name} is on the curve {}, which JOSE verifiers rarely support safely",
                    other.unwrap_or("(none)")
                ),
            )),
        },
        Some("OKP") | Some("oct") => {}
        other => report.add(Finding::new(
            &rules::WEAK_KEY,
            Severity::Low,
            format!(
                "{name} has the unknown key type {}",
                other.unwrap_or("(none)")
            ),
        )),
    }
}

fn modulus_bits(n: &[u8]) -> usize {
    match n.iter().position(|&b| b != 0) {
        Some(i) => (n.len() - i) * 8 - n[i].leading_zeros() as usize,
        None => 0,
    }
}

/// The byte strings a verifier that lets the token choose the algorithm could be feeding to
/// HMAC for this key: its PEM and DER encodings as libraries read them from files, its raw
/// point, and the JWK itself. Each comes with a label for the report.
pub(crate) fn confusion_secrets(key: &Object) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut spki = |label: &str, der: Vec<u8>| {
        let pem = der::pem("PUBLIC KEY", &der);
        out.push((
            format!("{label} public key as PEM"),
            pem.clone().into_bytes(),
        ));
        out.push((
            format!("{label} public key as PEM without the final newline"),
            pem.trim_end().as_bytes().to_vec(),
        ));
        out.push((format!("{label} public key as DER"), der));
    };
    match text(key, "kty") {
        Some("RSA") => {
            if let (Some(n), Some(e)) = (bytes(key, "n"), bytes(key, "e")) {
                spki("RSA", der::rsa_spki(&n, &e));
                let pkcs1 = der::rsa_pkcs1(&n, &e);
                let pem = der::pem("RSA PUBLIC KEY", &pkcs1);
                out.push(("RSA public key as PKCS#1 PEM".into(), pem.into_bytes()));
                out.push(("RSA public key as PKCS#1 DER".into(), pkcs1));
            }
        }
        Some("EC") => {
            if let (Some(crv), Some(x), Some(y)) =
                (text(key, "crv"), bytes(key, "x"), bytes(key, "y"))
            {
                let point = [&[4u8][..], &x, &y].concat();
                if let Some(der) = der::ec_spki(crv, &point) {
                    spki("EC", der);
                }
                out.push(("EC public point".into(), point));
            }
        }
        Some("OKP") => {
            if let Some(x) = bytes(key, "x") {
                if text(key, "crv") == Some("Ed25519") {
                    spki("Ed25519", der::ed25519_spki(&x));
                }
                out.push(("OKP public key bytes".into(), x));
            }
        }
        _ => {}
    }
    if let Some(Value::Array(chain)) = key.get("x5c")
        && let Some(cert) = chain
            .first()
            .and_then(Value::as_str)
            .and_then(|c| data_encoding::BASE64.decode(c.as_bytes()).ok())
    {
        out.push((
            "the x5c certificate as PEM".into(),
            der::pem("CERTIFICATE", &cert).into_bytes(),
        ));
    }
    out.push((
        "the JWK as published".into(),
        Value::Object(key.clone()).to_string().into_bytes(),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn audit_of(keys: Value) -> Report {
        let mut report = Report::new("jwks");
        audit(
            &parse(json!({ "keys": keys }).to_string().as_bytes()).unwrap(),
            &mut report,
        );
        report
    }

    fn b64(bytes: &[u8]) -> String {
        BASE64URL_NOPAD.encode(bytes)
    }

    #[test]
    fn finds_weak_leaked_and_ambiguous_keys() {
        let n1024 = b64(&[0xc5; 128]);
        let n2048 = b64(&[0xc5; 256]);
        let r = audit_of(json!([
            { "kty": "RSA", "kid": "a", "use": "sig", "n": n1024, "e": "AQAB" },
            { "kty": "RSA", "kid": "b", "use": "sig", "n": n2048, "e": "AQ" },
            { "kty": "RSA", "kid": "b", "use": "enc", "n": n2048, "e": "AQ", "d": "AA" },
            { "kty": "oct", "k": "c2VjcmV0" },
            { "kty": "EC", "kid": "k1", "alg": "ES256K", "crv": "secp256k1", "x": "AA", "y": "AA" },
        ]));
        let messages: Vec<(&str, Severity, &str)> = r
            .findings
            .iter()
            .map(|f| (f.rule.id, f.severity, f.message.as_str()))
            .collect();
        assert!(
            messages.contains(&(
                "JWT-WEAK-KEY",
                Severity::High,
                "key \"a\" is a 1024-bit RSA key; 2048 bits is the minimum"
            )),
            "{messages:#?}"
        );
        assert!(messages.contains(&(
            "JWT-WEAK-KEY",
            Severity::Critical,
            "key \"b\" has the RSA public exponent 1, which is no key at all"
        )));
        assert!(messages.contains(&(
            "JWT-PRIVATE-KEY-PUBLISHED",
            Severity::Critical,
            "key \"b\" publishes d"
        )));
        assert!(messages.contains(&(
            "JWT-PRIVATE-KEY-PUBLISHED",
            Severity::Critical,
            "key #3 publishes k"
        )));
        assert!(messages.contains(&("JWT-JWKS-KID", Severity::Low, "key #3 has no kid")));
        assert!(messages.contains(&(
            "JWT-JWKS-KID",
            Severity::Medium,
            "2 keys share the kid \"b\""
        )));
        assert!(messages.contains(&(
            "JWT-JWKS-MIXED-USE",
            Severity::Low,
            "one key is published for enc and sig"
        )));
        assert!(r.findings.iter().any(|f| f.message.contains("secp256k1")));
    }

    #[test]
    fn a_sound_key_set_has_nothing_to_report() {
        let r = audit_of(json!([
            { "kty": "OKP", "crv": "Ed25519", "kid": "e1", "use": "sig", "alg": "EdDSA", "x": b64(&[7; 32]) },
            { "kty": "RSA", "kid": "r1", "use": "sig", "alg": "RS256", "n": b64(&[0xc5; 256]), "e": "AQAB" },
        ]));
        assert!(r.findings.is_empty(), "{:?}", r.findings);
    }

    #[test]
    fn refuses_what_is_not_a_key_set() {
        assert!(matches!(parse(b"[]"), Err(ScanError::Jwks(m)) if m.contains("keys")));
        assert!(matches!(parse(b"{"), Err(ScanError::Jwks(m)) if m.contains("JSON")));
    }
}
