//! Search of the security events (AUD-7) by actor, action (exact, or a prefix ending in `*`),
//! time range and trace id, newest first, with a cursor for the next page. Each result names
//! the log entry it became, so any hit can be proven with an inclusion proof.

use crate::StoredEvent;
use palisade_store::{Db, StoreError};
use serde::Deserialize;

pub const MAX_LIMIT: u32 = 500;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    /// An account id.
    pub actor: Option<String>,
    /// `identity.login.failed`, or `identity.login.*` for a family of actions.
    pub action: Option<String>,
    /// Unix milliseconds, inclusive.
    pub from: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub to: Option<i64>,
    pub trace_id: Option<String>,
    /// At most [`MAX_LIMIT`]; 50 by default.
    pub limit: Option<u32>,
    /// The `next` cursor of a previous page.
    pub before: Option<i64>,
}

impl Search {
    pub fn page_size(&self) -> u32 {
        self.limit.unwrap_or(50).clamp(1, MAX_LIMIT)
    }
}

/// The upper bound of the strings starting with `prefix`: its last byte incremented. Action
/// names are ASCII, so a range scan stands in for `LIKE`, whose wildcards (`_`) they contain.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    let last = bytes.pop()?;
    bytes.push(last.checked_add(1)?);
    String::from_utf8(bytes).ok()
}

pub async fn search(db: &Db, q: &Search) -> Result<Vec<StoredEvent>, StoreError> {
    enum Bind {
        Text(String),
        Int(i64),
    }
    let mut clauses = Vec::new();
    let mut binds = Vec::new();
    let mut push = |clause: &str, value: Bind| {
        binds.push(value);
        clauses.push(clause.replace('?', &format!("${}", binds.len())));
    };
    if let Some(actor) = &q.actor {
        push("actor = ?", Bind::Text(actor.clone()));
    }
    match q.action.as_deref().map(|a| a.strip_suffix('*').ok_or(a)) {
        Some(Ok(prefix)) => {
            push("action >= ?", Bind::Text(prefix.to_owned()));
            if let Some(end) = prefix_end(prefix) {
                push("action < ?", Bind::Text(end));
            }
        }
        Some(Err(exact)) => push("action = ?", Bind::Text(exact.to_owned())),
        None => {}
    }
    if let Some(from) = q.from {
        push("at >= ?", Bind::Int(from));
    }
    if let Some(to) = q.to {
        push("at < ?", Bind::Int(to));
    }
    if let Some(trace) = &q.trace_id {
        push("trace_id = ?", Bind::Text(trace.clone()));
    }
    if let Some(before) = q.before {
        push("seq < ?", Bind::Int(before));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let limit = q.page_size();
    let sql = format!(
        "SELECT seq, at, action, outcome, actor, target, tenant_id, ip, trace_id, details, \
         client, device, log_index FROM security_events {filter} ORDER BY seq DESC LIMIT {limit}"
    );
    let mut query = sqlx::query_as::<_, StoredEvent>(&sql);
    for b in binds {
        query = match b {
            Bind::Text(t) => query.bind(t),
            Bind::Int(i) => query.bind(i),
        };
    }
    Ok(query.fetch_all(db.pool()).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Outcome, SecurityEvent};

    async fn filters_combine_and_pages_follow_the_cursor(db: Db) {
        let auditor = crate::auditor_for_test(&db).await;
        for (i, (action, actor, trace)) in [
            (Action::LoginFailed, "alice", "t1"),
            (Action::LoginSucceeded, "alice", "t2"),
            (Action::MfaEnabled, "alice", "t3"),
            (Action::LoginFailed, "bob", "t4"),
            (Action::RecoveryCodeUsed, "bob", "t5"),
        ]
        .into_iter()
        .enumerate()
        {
            auditor
                .record(
                    SecurityEvent::new(action, Outcome::Success, "default")
                        .actor(actor)
                        .trace_id(trace)
                        .detail("n", i),
                )
                .await
                .unwrap();
        }
        let find = |q: Search| {
            let db = db.clone();
            async move {
                search(&db, &q)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| e.trace_id.unwrap())
                    .collect::<Vec<_>>()
            }
        };
        let by = |actor: Option<&str>, action: Option<&str>| Search {
            actor: actor.map(str::to_owned),
            action: action.map(str::to_owned),
            ..Default::default()
        };
        assert_eq!(find(by(Some("alice"), None)).await, ["t3", "t2", "t1"]);
        assert_eq!(
            find(by(None, Some("identity.login.failed"))).await,
            ["t4", "t1"]
        );
        assert_eq!(
            find(by(None, Some("identity.login.*"))).await,
            ["t4", "t2", "t1"]
        );
        // `_` is an ordinary character here, not a wildcard.
        assert!(
            find(by(None, Some("identity.recovery_code_*")))
                .await
                .is_empty()
        );
        assert_eq!(
            find(by(Some("bob"), Some("identity.login.*"))).await,
            ["t4"]
        );
        let trace = Search {
            trace_id: Some("t5".into()),
            ..Default::default()
        };
        assert_eq!(find(trace).await, ["t5"]);
        let future = Search {
            from: Some(palisade_store::now_ms() + 60_000),
            ..Default::default()
        };
        assert!(find(future).await.is_empty());
        let past = Search {
            to: Some(palisade_store::now_ms() + 60_000),
            ..Default::default()
        };
        assert_eq!(find(past).await.len(), 5);

        // Pages of two, following the cursor, cover everything once.
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = search(
                &db,
                &Search {
                    limit: Some(2),
                    before,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            let Some(last) = page.last() else { break };
            before = Some(last.seq);
            seen.extend(page.into_iter().map(|e| e.trace_id.unwrap()));
        }
        assert_eq!(seen, ["t5", "t4", "t3", "t2", "t1"]);
    }
    palisade_store::both_backends!(filters_combine_and_pages_follow_the_cursor);
}
