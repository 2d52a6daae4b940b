//! What the tests read from a report.

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
