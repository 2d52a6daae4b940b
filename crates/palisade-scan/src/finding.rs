//! What a scan reports: findings against a fixed catalogue of rules, and the exit code they
//! add up to.

use serde::Serialize;

/// How bad a finding is. The order is the order of the exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// The process exit code when this is the highest severity found: 0 when nothing above
    /// informational was found, 3 to 6 from low to critical (1 is a failed scan, 2 bad usage).
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Info => 0,
            Self::Low => 3,
            Self::Medium => 4,
            Self::High => 5,
            Self::Critical => 6,
        }
    }
}

/// One kind of weakness the scanners look for. Every finding names one; the SARIF report
/// lists the rules it used.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    /// Stable identifier, e.g. `JWT-ALG-NONE`.
    pub id: &'static str,
    /// What the rule means, in one sentence.
    pub summary: &'static str,
    /// How to fix what it found.
    pub remedy: &'static str,
    /// The CWE it is an instance of.
    pub cwe: u32,
}

/// Declares a scanner's catalogue of rules as constants, one per line:
/// `NAME = "ID", cwe, "summary", "remedy";` (CWE 0 for informational rules).
macro_rules! rules {
    ($($name:ident = $id:literal, $cwe:literal, $summary:literal, $remedy:literal;)*) => {
        $(pub const $name: $crate::finding::Rule = $crate::finding::Rule {
            id: $id, summary: $summary, remedy: $remedy, cwe: $cwe,
        };)*
    };
}
pub(crate) use rules;

/// One weakness found.
#[derive(Debug, Serialize)]
pub struct Finding {
    #[serde(serialize_with = "rule_id")]
    pub rule: &'static Rule,
    pub severity: Severity,
    /// What was found, about this target.
    pub message: String,
    /// What proves it: the probe's header, the request's answer. Never a secret in full
    /// unless the scan was asked to reveal secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

fn rule_id<S: serde::Serializer>(rule: &&'static Rule, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(rule.id)
}

impl Finding {
    pub fn new(rule: &'static Rule, severity: Severity, message: impl Into<String>) -> Self {
        Self {
            rule,
            severity,
            message: message.into(),
            evidence: None,
        }
    }

    pub fn with_evidence(mut self, evidence: impl Into<String>) -> Self {
        self.evidence = Some(evidence.into());
        self
    }
}

/// Everything one scan found about one target.
#[derive(Debug, Serialize)]
pub struct Report {
    /// What was scanned: a URL, a `host:port`, or `token` for an offline audit.
    pub target: String,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn new(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            findings: Vec::new(),
        }
    }

    pub fn add(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    pub fn highest(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    pub fn exit_code(&self) -> u8 {
        self.highest().map_or(0, Severity::exit_code)
    }

    /// Whether a finding of this rule was reported.
    pub fn has(&self, rule: &Rule) -> bool {
        self.findings.iter().any(|f| f.rule == rule)
    }

    /// Most severe first, so the text report opens with what matters.
    pub fn sort(&mut self) {
        self.findings
            .sort_by(|a, b| b.severity.cmp(&a.severity).then(a.rule.id.cmp(b.rule.id)));
    }
}
