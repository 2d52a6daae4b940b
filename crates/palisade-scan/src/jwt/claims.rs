//! The offline audit of a token's header and claims.

use serde_json::Value;

use super::rules;
use super::token::{Token, now};
use crate::finding::{Finding, Report, Severity};

/// The JWS signature algorithms registered by RFC 7518 and RFC 8037.
const REGISTERED: [&str; 13] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256",
    "PS384", "PS512", "EdDSA",
];

/// Claim names whose value is a secret or sensitive personal data wherever it appears.
const SENSITIVE_NAMES: [&str; 16] = [
    "password",
    "passwd",
    "pwd",
    "pass",
    "secret",
    "client_secret",
    "api_key",
    "apikey",
    "private_key",
    "ssn",
    "social_security_number",
    "credit_card",
    "card_number",
    "cvv",
    "pin",
    "iban",
];

/// Audits the header and claims. `max_lifetime` is the longest lifetime (exp − iat, in
/// seconds) not reported.
pub(crate) fn audit(token: &Token, max_lifetime: i64, report: &mut Report) {
    audit_header(token, report);
    audit_claims(token, max_lifetime, report);
}

fn audit_header(token: &Token, report: &mut Report) {
    let alg = token.alg();
    if alg.eq_ignore_ascii_case("none") {
        report.add(Finding::new(
            &rules::ALG_NONE,
            Severity::Critical,
            format!("the header says alg {alg:?}"),
        ));
    } else if !REGISTERED.contains(&alg) {
        report.add(Finding::new(
            &rules::ALG_UNKNOWN,
            Severity::Medium,
            format!("the header says alg {alg:?}"),
        ));
    } else if token.signature.is_empty() {
        report.add(Finding::new(
            &rules::SIGNATURE_EMPTY,
            Severity::High,
            format!("alg {alg} with an empty signature"),
        ));
    }
    if alg.starts_with("HS") {
        report.add(Finding::new(
            &rules::ALG_SYMMETRIC,
            Severity::Info,
            format!("{alg}: every verifier holds the signing secret"),
        ));
    }
    match token.header.get("typ").and_then(Value::as_str) {
        None => report.add(Finding::new(
            &rules::UNTYPED,
            Severity::Low,
            "the header has no typ",
        )),
        Some(t) if t.eq_ignore_ascii_case("JWT") => report.add(Finding::new(
            &rules::UNTYPED,
            Severity::Info,
            "typ is the generic JWT, which tells no kind of token from another",
        )),
        Some(_) => {}
    }
    for name in ["jku", "x5u"] {
        if let Some(url) = token.header.get(name) {
            report.add(
                Finding::new(
                    &rules::KEY_URL_HEADER,
                    Severity::Medium,
                    format!("the header names its key's location in {name}"),
                )
                .with_evidence(format!("{name}: {url}")),
            );
        }
    }
    for name in ["jwk", "x5c"] {
        if token.header.contains_key(name) {
            report.add(Finding::new(
                &rules::EMBEDDED_KEY_HEADER,
                Severity::Medium,
                format!("the header embeds a key in {name}"),
            ));
        }
    }
    if let Some(kid) = token.header.get("kid").and_then(Value::as_str) {
        let shaped = kid.contains("..")
            || kid.contains('/')
            || kid.contains('\\')
            || kid.contains('\'')
            || kid.contains('"')
            || kid.contains(';')
            || kid.contains("://")
            || kid.contains('|');
        if shaped {
            report.add(
                Finding::new(
                    &rules::SUSPICIOUS_KID,
                    Severity::Medium,
                    "the kid looks like a path, URL or query",
                )
                .with_evidence(format!("kid: {kid:?}")),
            );
        }
    }
}

fn audit_claims(token: &Token, max_lifetime: i64, report: &mut Report) {
    let exp = token.time_claim("exp");
    let iat = token.time_claim("iat");
    match exp {
        None => report.add(Finding::new(
            &rules::NO_EXP,
            Severity::High,
            "the token never expires",
        )),
        Some(exp) => {
            let now = now();
            if exp < now {
                report.add(Finding::new(
                    &rules::EXPIRED,
                    Severity::Info,
                    format!("expired {} s ago", now - exp),
                ));
            }
            let lifetime = exp - iat.or(token.time_claim("nbf")).unwrap_or(now);
            if lifetime > max_lifetime {
                report.add(Finding::new(
                    &rules::LONG_LIFETIME,
                    Severity::Medium,
                    format!("lives {lifetime} s, longer than the {max_lifetime} s allowed"),
                ));
            }
        }
    }
    let missing = [
        (
            "aud",
            &rules::NO_AUD,
            Severity::Medium,
            "the token names no audience",
        ),
        (
            "iss",
            &rules::NO_ISS,
            Severity::Low,
            "the token names no issuer",
        ),
        ("jti", &rules::NO_JTI, Severity::Low, "the token has no jti"),
        (
            "iat",
            &rules::NO_IAT,
            Severity::Info,
            "the token has no iat",
        ),
    ];
    for (claim, rule, severity, message) in missing {
        if !token.claims.contains_key(claim) {
            report.add(Finding::new(rule, severity, message));
        }
    }
    sensitive(&Value::Object(token.claims.clone()), "", report);
}

/// Walks the claims, nested objects included, for sensitive names and values.
fn sensitive(value: &Value, path: &str, report: &mut Report) {
    match value {
        Value::Object(map) => {
            for (name, v) in map {
                let here = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                let lower = name.to_ascii_lowercase();
                if SENSITIVE_NAMES.contains(&lower.as_str()) {
                    report.add(
                        Finding::new(
                            &rules::SENSITIVE_CLAIM,
                            Severity::High,
                            format!("the claim {here} carries a secret in cleartext"),
                        )
                        .with_evidence(format!("{here}: ({} characters)", v.to_string().len())),
                    );
                } else {
                    sensitive(v, &here, report);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| sensitive(v, path, report)),
        Value::String(s) if looks_like_card_number(s) => report.add(Finding::new(
            &rules::SENSITIVE_CLAIM,
            Severity::High,
            format!("the claim {path} holds what looks like a payment card number"),
        )),
        _ => {}
    }
}

/// 13 to 19 digits (spaces and dashes allowed) passing the Luhn check.
fn looks_like_card_number(s: &str) -> bool {
    if !s
        .chars()
        .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
    {
        return false;
    }
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::token::{compact, signing_input};
    use serde_json::json;

    fn audit_of(header: Value, claims: Value, signature: &[u8]) -> Report {
        let input = signing_input(header.as_object().unwrap(), claims.as_object().unwrap());
        let mut report = Report::new("token");
        audit(
            &Token::parse(&compact(&input, signature)).unwrap(),
            3600,
            &mut report,
        );
        report
    }

    fn rules_of(r: &Report) -> Vec<(&str, Severity)> {
        r.findings.iter().map(|f| (f.rule.id, f.severity)).collect()
    }

    #[test]
    fn a_careless_token_is_reported_claim_by_claim() {
        let r = audit_of(
            json!({ "alg": "none", "jku": "https://attacker.example/k", "kid": "../../etc/passwd" }),
            json!({ "sub": "u", "profile": { "Password": "hunter2" }, "card": "4111 1111 1111 1111" }),
            b"",
        );
        let found = rules_of(&r);
        for expected in [
            ("JWT-ALG-NONE", Severity::Critical),
            ("JWT-NO-EXP", Severity::High),
            ("JWT-NO-AUD", Severity::Medium),
            ("JWT-NO-ISS", Severity::Low),
            ("JWT-NO-JTI", Severity::Low),
            ("JWT-UNTYPED", Severity::Low),
            ("JWT-KEY-URL-HEADER", Severity::Medium),
            ("JWT-SUSPICIOUS-KID", Severity::Medium),
        ] {
            assert!(found.contains(&expected), "{expected:?} in {found:?}");
        }
        let mut sensitive: Vec<&str> = r
            .findings
            .iter()
            .filter(|f| f.rule.id == "JWT-SENSITIVE-CLAIM")
            .map(|f| f.message.as_str())
            .collect();
        sensitive.sort_unstable();
        assert_eq!(
            sensitive,
            [
                "the claim card holds what looks like a payment card number",
                "the claim profile.Password carries a secret in cleartext"
            ]
        );
        assert!(
            !format!("{:?}", r.findings).contains("hunter2"),
            "the secret itself is not repeated"
        );
    }

    #[test]
    fn a_well_made_access_token_has_nothing_above_info() {
        let now = now();
        let r = audit_of(
            json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": "k1" }),
            json!({ "iss": "https://id.example", "aud": "api", "sub": "u", "jti": "j", "iat": now, "exp": now + 300 }),
            &[1; 64],
        );
        assert_eq!(r.exit_code(), 0, "{:?}", r.findings);
        assert!(r.findings.is_empty());
    }

    #[test]
    fn lifetimes_longer_than_allowed_are_reported() {
        let now = now();
        let r = audit_of(
            json!({ "alg": "HS256", "typ": "at+jwt" }),
            json!({ "iss": "i", "aud": "a", "jti": "j", "iat": now, "exp": now + 86_400 }),
            &[1; 32],
        );
        assert_eq!(
            rules_of(&r),
            [
                ("JWT-ALG-SYMMETRIC", Severity::Info),
                ("JWT-LONG-LIFETIME", Severity::Medium)
            ]
        );
    }
}
