//! Verifying the stored log (AUD-5): its entries and checkpoints, as `palisade_tlog::verify`
//! checks any log, read from the database — and its searchable event rows against the entries
//! they became, so that editing a row (an actor, an address, a time) is caught even though the
//! rows are outside the Merkle tree. A row blanked by an erasure (AUD-6) verifies only if its
//! subject's key was really destroyed.

use crate::subject_keys::{SubjectKey, SubjectKeys};
use palisade_store::{Db, StoreError};
use palisade_tlog::verify::{Loaded, PAGE, Pages, Row, VerifyError, prefetch};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;

pub use palisade_tlog::verify::{Problem, Report, Trust, load_dir, verify};

fn store(e: impl Into<StoreError>) -> VerifyError {
    VerifyError::Source(e.into().to_string())
}

/// The stored entries, a page at a time.
struct DbPages {
    db: Db,
    after: i64,
}

impl Pages for DbPages {
    async fn next_page(&mut self) -> Result<Vec<Row>, VerifyError> {
        let page: Vec<Row> = sqlx::query_as(
            "SELECT idx, leaf_hash, entry FROM audit_leaves WHERE idx > $1 ORDER BY idx LIMIT $2",
        )
        .bind(self.after)
        .bind(PAGE as i64)
        .fetch_all(self.db.pool())
        .await
        .map_err(store)?;
        if let Some(last) = page.last() {
            self.after = last.0;
        }
        Ok(page)
    }
}

/// The log as the database holds it.
pub async fn load(db: &Db) -> Result<Loaded, VerifyError> {
    let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_leaves")
        .fetch_one(db.pool())
        .await
        .map_err(store)?;
    let checkpoints = sqlx::query_as("SELECT size, note FROM audit_checkpoints ORDER BY size")
        .fetch_all(db.pool())
        .await
        .map_err(store)?;
    let erased_keys = crate::subject_keys::erased_key_ids(db)
        .await
        .map_err(store)?;
    Ok(Loaded {
        total: total as u64,
        checkpoints,
        erased_keys: erased_keys.into_iter().collect(),
        pages: prefetch(DbPages {
            db: db.clone(),
            after: -1,
        }),
    })
}

/// Writes the stored log to `dir` for offline verification and archival.
pub async fn export(db: &Db, dir: &Path) -> Result<u64, VerifyError> {
    palisade_tlog::verify::write_export(load(db).await?, dir).await
}

#[derive(sqlx::FromRow)]
struct EventAndLeaf {
    seq: i64,
    log_index: Option<i64>,
    at: i64,
    action: String,
    outcome: String,
    actor: Option<String>,
    target: Option<String>,
    tenant_id: String,
    ip: Option<String>,
    trace_id: Option<String>,
    details: String,
    client: Option<String>,
    device: Option<String>,
    entry: Option<String>,
}

/// What checking rows needs: the pseudonym key, the subject keys (to open payloads), and which
/// subjects were erased.
pub struct RowKeys {
    pub pseudonym_key: [u8; 32],
    pub keys: SubjectKeys,
}

/// Checks every searchable event row against the log entry it names; returns the problems.
pub async fn check_rows(db: &Db, keys: &RowKeys) -> Result<Vec<Problem>, VerifyError> {
    let erased: HashSet<String> = sqlx::query_as::<_, (String,)>(
        "SELECT DISTINCT subject FROM audit_subject_keys WHERE sealed_key IS NULL",
    )
    .fetch_all(db.pool())
    .await
    .map_err(store)?
    .into_iter()
    .map(|(s,)| s)
    .collect();
    let mut opened: HashMap<String, Option<SubjectKey>> = HashMap::new();
    let mut problems = Vec::new();
    let mut after = -1i64;
    loop {
        let rows: Vec<EventAndLeaf> = sqlx::query_as(
            "SELECT e.seq, e.log_index, e.at, e.action, e.outcome, e.actor, e.target, \
             e.tenant_id, e.ip, e.trace_id, e.details, e.client, e.device, l.entry \
             FROM security_events e LEFT JOIN audit_leaves l ON l.idx = e.log_index \
             WHERE e.seq > $1 ORDER BY e.seq LIMIT $2",
        )
        .bind(after)
        .bind(PAGE as i64)
        .fetch_all(db.pool())
        .await
        .map_err(store)?;
        let Some(last) = rows.last() else {
            return Ok(problems);
        };
        after = last.seq;
        for row in rows {
            if let Some(what) = check_row(&row, keys, &erased, &mut opened).await? {
                problems.push(Problem {
                    index: row.log_index.map(|i| i as u64),
                    what: format!("event row {}: {what}", row.seq),
                });
            }
        }
    }
}

/// What is wrong with one row, if anything.
async fn check_row(
    row: &EventAndLeaf,
    keys: &RowKeys,
    erased: &HashSet<String>,
    opened: &mut HashMap<String, Option<SubjectKey>>,
) -> Result<Option<String>, VerifyError> {
    let (Some(index), Some(entry)) = (row.log_index, &row.entry) else {
        return Ok(Some("it names no entry of the log".into()));
    };
    let Ok(leaf) = serde_json::from_str::<Value>(entry) else {
        return Ok(Some(format!("entry {index} is not JSON")));
    };
    let text = |name: &str| leaf.get(name).and_then(Value::as_str);
    let differs = |name: &str, value: Option<&str>| text(name) != value;
    for (name, value) in [
        ("action", Some(row.action.as_str())),
        ("outcome", Some(row.outcome.as_str())),
        ("tenant", Some(row.tenant_id.as_str())),
        ("client", row.client.as_deref()),
        ("trace_id", row.trace_id.as_deref()),
    ] {
        if differs(name, value) {
            return Ok(Some(format!("its {name} is not the entry's")));
        }
    }
    if leaf.get("at").and_then(Value::as_i64) != Some(row.at) {
        return Ok(Some("its time is not the entry's".into()));
    }
    // Accounts appear in the leaf as pseudonyms; a row may drop one only for an erased subject.
    for (name, account) in [("actor", &row.actor), ("target", &row.target)] {
        let ok = match (text(name), account) {
            (None, None) => true,
            (Some(p), Some(a)) => p == pseudonym(&keys.pseudonym_key, a),
            (Some(p), None) => erased.contains(p),
            (None, Some(_)) => false,
        };
        if !ok {
            return Ok(Some(format!("its {name} is not the entry's")));
        }
    }
    let Some(payload) = leaf.get("payload") else {
        return Ok(None);
    };
    let (Some(key_id), Some(sealed)) = (
        payload.get("key").and_then(Value::as_str),
        payload.get("sealed").and_then(Value::as_str),
    ) else {
        return Ok(Some(format!("entry {index} has a malformed payload")));
    };
    if !opened.contains_key(key_id) {
        let key = keys.keys.by_id(key_id).await.map_err(store)?;
        opened.insert(key_id.to_owned(), key);
    }
    let private = match &opened[key_id] {
        // Erased: the row must have been blanked with it.
        None => {
            let blank = row.ip.is_none() && row.device.is_none() && row.details == "{}";
            return Ok(
                (!blank).then(|| "it keeps what its erased subject's entry no longer can".into())
            );
        }
        Some(key) => match key
            .open(sealed)
            .and_then(|plain| serde_json::from_slice::<Value>(&plain).ok())
        {
            Some(p) => p,
            None => return Ok(Some(format!("entry {index}'s payload does not open"))),
        },
    };
    let details: Value = serde_json::from_str(&row.details).unwrap_or(Value::Null);
    let same = private.get("ip").and_then(Value::as_str) == row.ip.as_deref()
        && private.get("device").and_then(Value::as_str) == row.device.as_deref()
        && private.get("details") == Some(&details);
    Ok((!same).then(|| "its address, device or details are not the entry's".into()))
}

pub(crate) fn pseudonym(key: &[u8; 32], id: &str) -> String {
    let mac = palisade_crypto::hmac_sha256(key, id.as_bytes());
    data_encoding::HEXLOWER.encode(&mac[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Auditor, Outcome, Payload, SecurityEvent};
    use palisade_tlog::note::{Signer, Verifier};

    fn event(actor: &str, i: i64) -> SecurityEvent {
        SecurityEvent::new(Action::LoginSucceeded, Outcome::Success, "default")
            .actor(actor)
            .ip("192.0.2.7".parse().unwrap())
            .device("Firefox")
            .detail("attempt", i)
    }

    async fn erased_payloads_are_unreadable_and_the_log_still_verifies(db: Db) {
        let (log, skey) = crate::log::open_for_test(&db).await;
        let sealing = || palisade_crypto::SealingKey::from_bytes(&[9u8; 32]).unwrap();
        let bus = palisade_cluster::Bus::in_process();
        let auditor = Auditor::with_log(db.clone(), log, [7u8; 32], sealing(), bus.clone());
        let mut indexes = HashMap::new();
        for (actor, n) in [("alice", 3), ("bob", 2)] {
            for i in 0..n {
                let index = auditor.record_proven(vec![event(actor, i)]).await.unwrap()[0];
                indexes.entry(actor).or_insert_with(Vec::new).push(index);
            }
        }
        // The leaf holds no account id, address or detail in the clear.
        let first = auditor
            .log()
            .unwrap()
            .entry(indexes["alice"][0])
            .await
            .unwrap()
            .unwrap();
        for secret in ["alice", "192.0.2", "attempt"] {
            assert!(!first.contains(secret), "{secret} leaked into {first}");
        }
        let read = auditor
            .read_entry(indexes["alice"][0])
            .await
            .unwrap()
            .unwrap();
        let Payload::Readable(payload) = &read.payload else {
            panic!("{:?}", read.payload)
        };
        assert_eq!(payload["ip"], "192.0.2.0/24");
        assert_eq!(payload["details"]["attempt"], 0);

        assert_eq!(auditor.erase_subject("alice").await.unwrap(), 1);
        for &i in &indexes["alice"] {
            assert_eq!(
                auditor.read_entry(i).await.unwrap().unwrap().payload,
                Payload::Erased
            );
        }
        for &i in &indexes["bob"] {
            let p = auditor.read_entry(i).await.unwrap().unwrap().payload;
            assert!(matches!(p, Payload::Readable(_)), "{p:?}");
        }
        // The searchable rows forget alice too.
        assert!(
            auditor
                .events_for_actor("alice", 10)
                .await
                .unwrap()
                .is_empty()
        );

        let trust = Trust {
            log: vec![Verifier::from_vkey(&Signer::from_skey(&skey).unwrap().vkey()).unwrap()],
            witnesses: vec![],
        };
        let report = verify(load(&db).await.unwrap(), &trust, |_, _| {})
            .await
            .unwrap();
        assert!(report.ok, "{:?}", report.problems);
        assert_eq!((report.entries, report.payload_erased), (5, 3));
        let row_keys = RowKeys {
            pseudonym_key: [7u8; 32],
            keys: SubjectKeys::new(db.clone(), sealing(), bus),
        };
        assert_eq!(check_rows(&db, &row_keys).await.unwrap(), vec![]);

        // An edited row is caught, though the entries and checkpoints still verify.
        sqlx::query("UPDATE security_events SET actor = 'mallory' WHERE actor = 'bob'")
            .execute(db.pool())
            .await
            .unwrap();
        let problems = check_rows(&db, &row_keys).await.unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].what.contains("its actor is not the entry's"),
            "{problems:?}"
        );
        assert_eq!(problems[0].index, Some(indexes["bob"][0]));
        // So is a row whose details were changed, or that names no entry.
        sqlx::query("UPDATE security_events SET actor = 'bob' WHERE actor = 'mallory'")
            .execute(db.pool())
            .await
            .unwrap();
        sqlx::query("UPDATE security_events SET details = '{\"attempt\":9}' WHERE log_index = $1")
            .bind(indexes["bob"][1] as i64)
            .execute(db.pool())
            .await
            .unwrap();
        let problems = check_rows(&db, &row_keys).await.unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].what.contains("details"), "{problems:?}");

        // The same log from an export; and a changed exported entry is caught at its index.
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(export(&db, dir.path()).await.unwrap(), 5);
        let exported = verify(load_dir(dir.path()).unwrap(), &trust, |_, _| {})
            .await
            .unwrap();
        assert!(exported.ok, "{:?}", exported.problems);
        assert_eq!((exported.payload_erased, exported.root), (3, report.root));
        let path = dir.path().join("entries.tsv");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replacen("identity.login.succeeded", "identity.login.failed", 2),
        )
        .unwrap();
        let tampered = verify(load_dir(dir.path()).unwrap(), &trust, |_, _| {})
            .await
            .unwrap();
        assert!(!tampered.ok);
        assert_eq!(tampered.problems[0].index, Some(0));
    }
    palisade_store::both_backends!(erased_payloads_are_unreadable_and_the_log_still_verifies);
}
