//! SCN-2: deliberately weak TLS servers (nginx over OpenSSL 3, configured here) are each found
//! with the right findings and severities, and the verdicts agree with testssl.sh's on the
//! same servers.

#[path = "support/findings.rs"]
mod findings;
#[path = "support/nginx.rs"]
mod nginx;

use std::collections::BTreeSet;
use std::time::Duration;

use findings::{above_info, message, sarif_check};
use nginx::{INTERMEDIATE, LEGACY, Leaf, Nginx, TestCa};
use palisade_scan::finding::{Report, Severity};
use palisade_scan::output::{Format, render};
use palisade_scan::tls;

async fn scan(server: &Nginx, ca: Option<&TestCa>) -> Report {
    tls::scan(tls::Options {
        target: server.addr.to_string(),
        server_name: None,
        ca_certs: ca
            .map(|ca| tls::certificates_from_pem(ca.pem.as_bytes()).unwrap())
            .unwrap_or_default(),
        system_roots: false,
        timeout: Duration::from_secs(5),
        progress: false,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_legacy_server_is_found_with_each_weakness() {
    let ca = TestCa::new();
    let server = Nginx::start(&LEGACY, Leaf::Rsa(&ca));
    let report = scan(&server, Some(&ca)).await;
    use Severity::*;
    assert_eq!(
        above_info(&report),
        BTreeSet::from([
            ("TLS-TLS10", Medium),
            ("TLS-TLS11", Medium),
            ("TLS-NO-TLS13", Low),
            ("TLS-SUITE-CBC", Low),
            ("TLS-SUITE-NO-FS", Medium),
            ("TLS-SUITE-BROKEN", Critical),
            ("TLS-DH-WEAK", Medium),
            ("TLS-NO-HSTS", Low),
            ("TLS-MOZILLA-INTERMEDIATE", Medium),
        ]),
        "{report:#?}"
    );
    assert_eq!(
        message(&report, "TLS-PROTOCOLS", ""),
        "accepts TLS 1.0, TLS 1.1, TLS 1.2"
    );
    assert!(
        message(&report, "TLS-SUITE-CBC", "")
            .contains("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA (TLS 1.0, TLS 1.1, TLS 1.2)"),
        "{report:#?}"
    );
    assert!(message(&report, "TLS-SUITE-NO-FS", "").contains("TLS_RSA_WITH_AES_128_CBC_SHA"));
    assert!(message(&report, "TLS-SUITE-BROKEN", "").contains("TLS_DH_anon_WITH_AES_128_CBC_SHA"));
    assert_eq!(
        message(&report, "TLS-DH-WEAK", ""),
        "DHE uses a 1024-bit prime"
    );
    let verdict = message(&report, "TLS-MOZILLA-INTERMEDIATE", "");
    for deviation in [
        "TLS 1.0 should be refused",
        "TLS 1.3 should be offered",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA should be refused",
    ] {
        assert!(verdict.contains(deviation), "{verdict}");
    }
    assert_eq!(
        sarif_check(&render(&report, Format::Sarif)),
        Ok(report.findings.len())
    );
    assert!(
        message(&report, "TLS-CHAIN", "").contains("RSA 2048"),
        "{report:#?}"
    );
}

#[tokio::test]
async fn an_expired_certificate_is_critical() {
    let ca = TestCa::new();
    let server = Nginx::start(&INTERMEDIATE, Leaf::Expired(&ca));
    let report = scan(&server, Some(&ca)).await;
    assert_eq!(
        above_info(&report),
        BTreeSet::from([
            ("TLS-CERT-EXPIRED", Severity::Critical),
            ("TLS-MOZILLA-INTERMEDIATE", Severity::Medium),
        ]),
        "{report:#?}"
    );
    assert!(message(&report, "TLS-CERT-EXPIRED", "").contains("expired 10 days ago"));
    assert_eq!(
        message(&report, "TLS-PROTOCOLS", ""),
        "accepts TLS 1.2, TLS 1.3"
    );
    assert_eq!(
        message(&report, "TLS-MOZILLA-INTERMEDIATE", ""),
        "does not meet Mozilla's intermediate profile (6.0): the certificate is not valid for this server"
    );
}

#[tokio::test]
async fn a_self_signed_certificate_is_high() {
    let server = Nginx::start(&INTERMEDIATE, Leaf::SelfSigned);
    let report = scan(&server, None).await;
    assert_eq!(
        above_info(&report),
        BTreeSet::from([
            ("TLS-CERT-SELF-SIGNED", Severity::High),
            ("TLS-MOZILLA-INTERMEDIATE", Severity::Medium),
        ]),
        "{report:#?}"
    );
    assert!(
        message(&report, "TLS-GROUPS", "").starts_with("accepts x25519, secp256r1, secp384r1;")
    );
}

/// testssl.sh's findings by id (its JSON output), for the protocols, server defaults and
/// cipher categories of `server`.
fn testssl(server: &Nginx, ca: Option<&TestCa>) -> std::collections::HashMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("testssl.json");
    let bin = std::env::var("PALISADE_TEST_TESTSSL").unwrap_or_else(|_| "/usr/bin/testssl".into());
    let mut cmd = std::process::Command::new(bin);
    cmd.args([
        "--quiet",
        "--warnings",
        "off",
        "--color",
        "0",
        "-p",
        "-S",
        "-s",
        "--jsonfile",
    ])
    .arg(&json);
    if let Some(ca) = ca {
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, &ca.pem).unwrap();
        cmd.arg("--add-ca").arg(pem);
    }
    let out = cmd
        .arg(server.addr.to_string())
        .output()
        .expect("testssl (apt-get install testssl.sh)");
    let entries: Vec<serde_json::Value> = serde_json::from_slice(
        &std::fs::read(&json)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stdout))),
    )
    .unwrap();
    entries
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e["finding"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// SCN-2: on each weak server, testssl.sh (Debian's) and `scan tls` agree on the versions
/// offered, the expired and the self-signed certificate, and the anonymous suites.
#[tokio::test(flavor = "multi_thread")]
async fn verdicts_agree_with_testssl() {
    let ca = TestCa::new();
    let servers = [
        (Nginx::start(&LEGACY, Leaf::Rsa(&ca)), Some(&ca)),
        (Nginx::start(&INTERMEDIATE, Leaf::Expired(&ca)), Some(&ca)),
        (Nginx::start(&INTERMEDIATE, Leaf::SelfSigned), None),
    ];
    let theirs: Vec<_> = std::thread::scope(|s| {
        let runs: Vec<_> = servers
            .iter()
            .map(|(server, ca)| s.spawn(|| testssl(server, *ca)))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for ((server, ca), theirs) in servers.iter().zip(&theirs) {
        let ours = scan(server, *ca).await;
        let offered = |id: &str| theirs.get(id).is_some_and(|f| f.starts_with("offered"));
        let their_versions: Vec<&str> = [
            ("SSLv3", "SSLv3"),
            ("TLS1", "TLS 1.0"),
            ("TLS1_1", "TLS 1.1"),
            ("TLS1_2", "TLS 1.2"),
            ("TLS1_3", "TLS 1.3"),
        ]
        .iter()
        .filter(|(id, _)| offered(id))
        .map(|(_, name)| *name)
        .collect();
        assert_eq!(
            message(&ours, "TLS-PROTOCOLS", ""),
            format!("accepts {}", their_versions.join(", ")),
            "{theirs:#?}"
        );
        let has = |rule: &str| ours.findings.iter().any(|f| f.rule.id == rule);
        assert_eq!(
            has("TLS-CERT-EXPIRED"),
            theirs["cert_expirationStatus"] == "expired",
            "{theirs:#?}"
        );
        assert_eq!(
            has("TLS-CERT-SELF-SIGNED"),
            theirs["cert_chain_of_trust"].contains("self signed"),
            "{theirs:#?}"
        );
        assert_eq!(
            has("TLS-SUITE-BROKEN"),
            offered("cipherlist_aNULL"),
            "{theirs:#?}"
        );
    }
    // Each server gave each verdict at least once, so the agreement says something.
    assert!(theirs[0]["TLS1"].starts_with("offered"));
    assert_eq!(theirs[1]["cert_expirationStatus"], "expired");
    assert!(theirs[2]["cert_chain_of_trust"].contains("self signed"));
}
