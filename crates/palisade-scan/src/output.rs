//! A report written for people (text), for programs (JSON) and for code-scanning dashboards
//! (SARIF 2.1.0, OASIS).

use std::fmt::Write;

use serde_json::{Value, json};

use crate::finding::{Report, Rule, Severity};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Sarif,
}

pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Text => text(report),
        Format::Json => pretty(&json_value(report)),
        Format::Sarif => pretty(&sarif(report)),
    }
}

fn pretty(value: &Value) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
    s.push('\n');
    s
}

fn text(report: &Report) -> String {
    let mut out = String::new();
    let above_info = report
        .findings
        .iter()
        .filter(|f| f.severity > Severity::Info)
        .count();
    let _ = writeln!(
        out,
        "{}: {} finding(s) above info, highest {}",
        report.target,
        above_info,
        report.highest().map_or("none", Severity::as_str)
    );
    for f in &report.findings {
        let _ = writeln!(
            out,
            "{:<9} {:<27} {}",
            f.severity.as_str().to_uppercase(),
            f.rule.id,
            f.message
        );
        if let Some(evidence) = &f.evidence {
            let _ = writeln!(out, "{:37} evidence: {evidence}", "");
        }
        if f.severity > Severity::Info {
            let _ = writeln!(out, "{:37} fix: {}", "", f.rule.remedy);
        }
    }
    out
}

fn json_value(report: &Report) -> Value {
    json!({
        "target": report.target,
        "highest": report.highest(),
        "exit_code": report.exit_code(),
        "findings": report.findings.iter().map(|f| json!({
            "rule": f.rule.id,
            "severity": f.severity,
            "message": f.message,
            "evidence": f.evidence,
            "summary": f.rule.summary,
            "remedy": f.rule.remedy,
            "cwe": (f.rule.cwe != 0).then(|| format!("CWE-{}", f.rule.cwe)),
        })).collect::<Vec<_>>(),
    })
}

/// SARIF's levels have no "critical": error covers high and critical, and the CVSS-like
/// `security-severity` property (which GitHub code scanning reads) keeps them apart.
fn level(severity: Severity) -> (&'static str, &'static str) {
    match severity {
        Severity::Critical => ("error", "9.5"),
        Severity::High => ("error", "8.0"),
        Severity::Medium => ("warning", "5.5"),
        Severity::Low => ("note", "3.0"),
        Severity::Info => ("none", "0.0"),
    }
}

fn sarif(report: &Report) -> Value {
    let mut rules: Vec<&Rule> = Vec::new();
    for f in &report.findings {
        if !rules.contains(&f.rule) {
            rules.push(f.rule);
        }
    }
    let rule_objects: Vec<Value> = rules
        .iter()
        .map(|r| {
            let mut tags = vec!["security".to_owned()];
            if r.cwe != 0 {
                tags.push(format!("external/cwe/cwe-{}", r.cwe));
            }
            json!({
                "id": r.id,
                "shortDescription": { "text": r.summary },
                "help": { "text": r.remedy },
                "properties": { "tags": tags },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let (level, score) = level(f.severity);
            let mut properties = json!({ "severity": f.severity, "security-severity": score });
            if let Some(evidence) = &f.evidence {
                properties["evidence"] = evidence.clone().into();
            }
            json!({
                "ruleId": f.rule.id,
                "ruleIndex": rules.iter().position(|r| *r == f.rule),
                "level": level,
                "message": { "text": f.message },
                "locations": [{ "physicalLocation": { "artifactLocation": { "uri": report.target } } }],
                "properties": properties,
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "palisade-scan",
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rule_objects,
            } },
            "invocations": [{ "executionSuccessful": true }],
            "results": results,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Finding;
    use crate::jwt::rules;

    fn sample() -> Report {
        let mut r = Report::new("https://api.example/me");
        r.add(
            Finding::new(&rules::ACCEPTS_NONE, Severity::Critical, "accepts none")
                .with_evidence("header {\"alg\":\"none\"}"),
        );
        r.add(Finding::new(&rules::NO_JTI, Severity::Low, "no jti"));
        r.add(Finding::new(
            &rules::ACCEPTS_NONE,
            Severity::Critical,
            "accepts None",
        ));
        r
    }

    #[test]
    fn sarif_lists_each_rule_once_and_points_results_at_them() {
        let v = sarif(&sample());
        let run = &v["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0]["properties"]["tags"][1], "external/cwe/cwe-347");
        let results = run["results"].as_array().unwrap();
        assert_eq!(results[2]["ruleIndex"], 0);
        assert_eq!(results[1]["level"], "note");
        assert_eq!(results[0]["properties"]["security-severity"], "9.5");
    }

    #[test]
    fn text_and_json_say_the_highest_severity() {
        let r = sample();
        assert!(
            text(&r)
                .starts_with("https://api.example/me: 3 finding(s) above info, highest critical\n")
        );
        let v = json_value(&r);
        assert_eq!(v["exit_code"], 6);
        assert_eq!(v["findings"][0]["cwe"], "CWE-347");
    }
}
