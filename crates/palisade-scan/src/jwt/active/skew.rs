//! The leeway a target allows past `exp` (or before `nbf`), found to the second by doubling
//! and then bisecting: about 2·log2(leeway) requests.

use super::oracle::Oracle;
use crate::ScanError;
use crate::finding::{Finding, Severity};
use crate::jwt::rules;

/// Beyond this many seconds (a year) the claim is taken as not checked at all.
pub(crate) const LIMIT: i64 = 366 * 86_400;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Leeway {
    Seconds(i64),
    Unbounded,
}

/// `probe(d)` makes a token `d` seconds past the bound, signed now.
pub(crate) async fn leeway(
    oracle: &Oracle,
    probe: impl Fn(i64) -> Result<String, ScanError>,
) -> Result<Leeway, ScanError> {
    let accepts = |d: i64| {
        let token = probe(d);
        async move { oracle.accepts(&token?).await }
    };
    if !accepts(1).await? {
        return Ok(Leeway::Seconds(0));
    }
    let (mut accepted, mut next) = (1, 2);
    let mut refused = loop {
        if !accepts(next).await? {
            break next;
        }
        if next == LIMIT {
            if accepts(LIMIT).await? {
                return Ok(Leeway::Unbounded);
            }
            break LIMIT;
        }
        accepted = next;
        next = (next * 2).min(LIMIT);
    };
    while refused - accepted > 1 {
        let mid = accepted + (refused - accepted) / 2;
        if accepts(mid).await? {
            accepted = mid;
        } else {
            refused = mid;
        }
    }
    // The bound is reported only when the target accepts it a second time.
    while accepted > 0 && !accepts(accepted).await? {
        accepted -= 1;
    }
    Ok(Leeway::Seconds(accepted))
}

/// The finding for a measured leeway: up to a minute is ordinary clock tolerance.
pub(crate) fn finding(bound: &str, seconds: i64) -> Finding {
    let severity = match seconds {
        ..=60 => Severity::Info,
        61..=300 => Severity::Low,
        _ => Severity::Medium,
    };
    Finding::new(
        &rules::CLOCK_SKEW,
        severity,
        format!("the target accepts tokens up to {seconds} s {bound}"),
    )
}
