//! Offline verification of a stored audit log (AUD-5): every entry is rehashed, indexes must
//! run without gaps, every stored checkpoint must carry a valid signature by a trusted key and
//! name exactly the root of the entries up to its size. The first problem is located: by index
//! when an entry or its hash changed or went missing, by checkpoint range otherwise.

use crate::merkle::{CompactRange, Hash, leaf_hash};
use crate::note::{Checkpoint, Verifier, open};
use data_encoding::HEXLOWER;
use palisade_store::{Db, StoreError};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The first entry known to be wrong, when it can be pinned down.
    pub index: Option<u64>,
    pub what: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub entries: u64,
    pub checkpoints: u64,
    pub root: String,
    pub ok: bool,
    pub problems: Vec<Problem>,
}

const PAGE: i64 = 10_000;

/// Verifies the log in `db`. `progress(done, total)` is called as entries are checked.
pub async fn verify_store(
    db: &Db,
    trusted: &[Verifier],
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, StoreError> {
    let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_leaves")
        .fetch_one(db.pool())
        .await?;
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT size, note FROM audit_checkpoints ORDER BY size")
            .fetch_all(db.pool())
            .await?;
    let mut problems = Vec::new();
    let mut checkpoints = Vec::new();
    for (size, note) in &rows {
        match open(note, trusted)
            .map_err(|e| e.to_string())
            .and_then(|(text, _)| Checkpoint::parse(text).map_err(|e| e.to_string()))
        {
            Ok(c) if c.size == *size as u64 => checkpoints.push(c),
            Ok(c) => problems.push(Problem {
                index: None,
                what: format!("checkpoint stored as size {size} names size {}", c.size),
            }),
            Err(e) => problems.push(Problem {
                index: None,
                what: format!("checkpoint at size {size} is not validly signed: {e}"),
            }),
        }
    }
    let mut next_checkpoint = checkpoints.iter().peekable();
    let mut range = CompactRange::default();
    let mut last_good_checkpoint = 0u64;
    let mut after = -1i64;
    loop {
        let page: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT idx, leaf_hash, entry FROM audit_leaves WHERE idx > $1 ORDER BY idx LIMIT $2",
        )
        .bind(after)
        .bind(PAGE)
        .fetch_all(db.pool())
        .await?;
        let Some(last) = page.last() else { break };
        after = last.0;
        for (idx, stored, entry) in page {
            let expected = range.size();
            if idx as u64 != expected {
                problems.push(Problem {
                    index: Some(expected),
                    what: format!("entry {expected} is missing (next stored index is {idx})"),
                });
                return Ok(finish(total, &checkpoints, &range, problems));
            }
            let hash: Hash = leaf_hash(entry.as_bytes());
            if HEXLOWER.encode(&hash) != stored {
                problems.push(Problem {
                    index: Some(expected),
                    what: format!("entry {expected} does not match its recorded leaf hash"),
                });
            }
            range.append(hash);
            while let Some(c) = next_checkpoint.peek() {
                if c.size > range.size() {
                    break;
                }
                if c.root != range.root() {
                    problems.push(Problem {
                        index: None,
                        what: format!(
                            "checkpoint at size {} does not match the entries: a change between index {} and {}",
                            c.size,
                            last_good_checkpoint,
                            c.size - 1
                        ),
                    });
                } else {
                    last_good_checkpoint = c.size;
                }
                next_checkpoint.next();
            }
            progress(range.size(), total as u64);
        }
    }
    for c in next_checkpoint {
        problems.push(Problem {
            index: Some(range.size()),
            what: format!(
                "checkpoint at size {} but only {} entries remain (truncated)",
                c.size,
                range.size()
            ),
        });
    }
    Ok(finish(total, &checkpoints, &range, problems))
}

fn finish(
    total: i64,
    checkpoints: &[Checkpoint],
    range: &CompactRange,
    problems: Vec<Problem>,
) -> Report {
    Report {
        entries: total as u64,
        checkpoints: checkpoints.len() as u64,
        root: data_encoding::BASE64.encode(&range.root()),
        ok: problems.is_empty(),
        problems,
    }
}
