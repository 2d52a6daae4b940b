//! SCN-3: `palisade scan jwt` and `palisade scan tls` run against Palisade itself, as their
//! users would run them, find nothing above info; SCN-1: the exit code says the highest
//! severity of what a scan finds.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{Server, binary};

/// Runs `palisade scan jwt - ARGS` with the token on stdin; returns the exit code and the
/// JSON report.
fn scan(token: &str, args: &[&str]) -> (i32, serde_json::Value) {
    run_scan(&[&["jwt", "-"], args].concat(), token)
}

/// Runs `palisade scan ARGS --format json --quiet` with `stdin`.
fn run_scan(args: &[&str], stdin: &str) -> (i32, serde_json::Value) {
    let mut child = Command::new(binary())
        .arg("scan")
        .args(args)
        .args(["--format", "json", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

fn findings_above_info(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "info")
        .map(|f| format!("{} {}: {}", f["severity"], f["rule"], f["message"]))
        .collect()
}

#[tokio::test]
async fn every_probe_against_palisade_finds_nothing() {
    let server = Server::start().await;
    let service = server.register_client(&[
        "--name",
        "Scanned service",
        "--grant",
        "client_credentials",
        "--scope",
        "social:read",
    ]);
    let token = &server
        .client_credentials_token(
            service["client_id"].as_str().unwrap(),
            service["client_secret"].as_str().unwrap(),
        )
        .await;
    let ca = server.data_dir().join("tls/dev-ca.pem");
    let target = format!("{}/api/me", server.base());
    let (code, report) = scan(
        token,
        &["--target", &target, "--ca-cert", ca.to_str().unwrap()],
    );
    assert_eq!(
        findings_above_info(&report),
        Vec::<String>::new(),
        "{report:#}"
    );
    assert_eq!(code, 0);
    // The scan did probe: the oracle was calibrated and Palisade's keys were used.
    let messages: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(
            |m| m.starts_with("the target answers 200 to the token and 401 to a garbage token")
        ),
        "{messages:?}"
    );
    assert!(messages.iter().any(|m| m.starts_with("the target publishes") && m.ends_with("/.well-known/jwks.json")), "{messages:?}");
}

#[tokio::test]
async fn scan_tls_of_palisade_finds_nothing() {
    let server = Server::start().await;
    let ca = server.data_dir().join("tls/dev-ca.pem");
    let target = format!("127.0.0.1:{}", server.https.port());
    let (code, report) = run_scan(
        &[
            "tls",
            &target,
            "--ca-cert",
            ca.to_str().unwrap(),
            "--no-system-roots",
        ],
        "",
    );
    assert_eq!(
        findings_above_info(&report),
        Vec::<String>::new(),
        "{report:#}"
    );
    assert_eq!(code, 0);
    let message = |rule: &str| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == rule)
            .and_then(|f| f["message"].as_str())
            .unwrap_or_else(|| panic!("no {rule}: {report:#}"))
            .to_owned()
    };
    assert_eq!(message("TLS-PROTOCOLS"), "accepts TLS 1.2, TLS 1.3");
    assert!(message("TLS-GROUPS").starts_with("accepts X25519MLKEM768, x25519,"));
    assert_eq!(
        message("TLS-MOZILLA-INTERMEDIATE"),
        "meets Mozilla's intermediate profile (6.0)"
    );
    assert!(message("TLS-HSTS").contains("max-age=63072000"));
    assert!(message("TLS-CHAIN").contains("(EC P-256, 90 days"));
}

#[test]
fn the_exit_code_is_the_highest_severity_found() {
    // HS256 under the secret "secret", no exp: critical (6).
    let weak = "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJhbGljZSJ9.GbpX2Ek8ORE9GnVKg4dvoPfU_FHaoogJ7MfKpqZ-4Ys";
    let (code, report) = scan(weak, &[]);
    assert_eq!(code, 6, "{report:#}");
    assert_eq!(report["highest"], "critical");
    let secret = &report["findings"][0];
    assert_eq!(secret["rule"], "JWT-WEAK-SECRET");
    assert_eq!(
        secret["message"],
        "the HS256 secret is 6 characters long, s…t (--reveal-secrets shows it)"
    );
    // Without the guessing, the missing exp is the worst: high (5).
    let (code, _) = scan(weak, &["--no-common-secrets"]);
    assert_eq!(code, 5);
    // Not a token at all: the scan fails (1), saying why.
    let out = Command::new(binary())
        .args(["scan", "jwt", "not-a-token"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("the token cannot be read: a compact JWS has 3 parts")
    );
}
