//! Offline verification of an audit log (AUD-5), from its database or from a directory written
//! by [`export`]: every entry is rehashed, indexes must run without gaps, every stored
//! checkpoint must carry a valid signature by a trusted log key (and every cosignature by a
//! trusted witness must verify) and name exactly the root of the entries up to its size. The
//! first problem is located: by index when an entry or its hash changed or went missing, by
//! checkpoint range otherwise. Entries whose payload key was destroyed are counted as
//! "payload erased" (AUD-6): that is not a failure, the proofs hold without the payload.

use crate::merkle::{CompactRange, Hash, leaf_hash};
use crate::note::{Checkpoint, Verifier, open};
use data_encoding::HEXLOWER;
use palisade_store::{Db, StoreError};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

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
    /// Checkpoints carrying at least one valid cosignature by a trusted witness.
    pub cosigned_checkpoints: u64,
    /// Entries whose sealed payload can no longer be read because its subject was erased.
    pub payload_erased: u64,
    pub root: String,
    pub ok: bool,
    pub problems: Vec<Problem>,
}

/// The keys a verification trusts.
pub struct Trust {
    /// Checkpoint keys of the log: every checkpoint needs a valid signature by one of them.
    pub log: Vec<Verifier>,
    /// Witness keys: their cosignatures, where present, must verify.
    pub witnesses: Vec<Verifier>,
}

/// Where the log is read from.
pub enum Source<'a> {
    Db(&'a Db),
    /// A directory written by [`export`].
    Dir(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0}")]
    Format(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VerifyError + '_ {
    move |error| VerifyError::Io {
        path: path.to_owned(),
        error,
    }
}

const PAGE: i64 = 10_000;
const ENTRIES: &str = "entries.tsv";
const CHECKPOINTS: &str = "checkpoints";
const ERASED: &str = "erased-keys.txt";

/// One stored entry: its index, the leaf hash recorded beside it (hex) and its bytes.
type Row = (i64, String, String);

/// Streams a source's entries in index order, a page at a time.
enum Rows {
    Db { db: Db, after: i64 },
    File(std::io::Lines<BufReader<std::fs::File>>, PathBuf),
}

impl Rows {
    async fn next_page(&mut self) -> Result<Vec<Row>, VerifyError> {
        match self {
            Rows::Db { db, after } => {
                let page: Vec<Row> = sqlx::query_as(
                    "SELECT idx, leaf_hash, entry FROM audit_leaves WHERE idx > $1 ORDER BY idx LIMIT $2",
                )
                .bind(*after)
                .bind(PAGE)
                .fetch_all(db.pool())
                .await
                .map_err(StoreError::from)?;
                if let Some(last) = page.last() {
                    *after = last.0;
                }
                Ok(page)
            }
            Rows::File(lines, path) => {
                let mut page = Vec::new();
                for line in lines.by_ref().take(PAGE as usize) {
                    let line = line.map_err(io(path))?;
                    let mut fields = line.splitn(3, '\t');
                    let (Some(idx), Some(hash), Some(entry)) =
                        (fields.next(), fields.next(), fields.next())
                    else {
                        return Err(VerifyError::Format(format!(
                            "{}: a line is not index, hash and entry",
                            path.display()
                        )));
                    };
                    let idx = idx.parse().map_err(|_| {
                        VerifyError::Format(format!("{}: bad index {idx:?}", path.display()))
                    })?;
                    page.push((idx, hash.to_owned(), entry.to_owned()));
                }
                Ok(page)
            }
        }
    }
}

impl Rows {
    /// Reads pages ahead on another task, so that reading (the database's own thread) and
    /// hashing overlap.
    fn prefetch(mut self) -> tokio::sync::mpsc::Receiver<Result<Vec<Row>, VerifyError>> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let page = self.next_page().await;
                let done = matches!(&page, Ok(p) if p.is_empty()) || page.is_err();
                if tx.send(page).await.is_err() || done {
                    return;
                }
            }
        });
        rx
    }
}

struct Loaded {
    total: u64,
    checkpoints: Vec<(i64, String)>,
    erased_keys: HashSet<String>,
    rows: Rows,
}

async fn load(source: Source<'_>) -> Result<Loaded, VerifyError> {
    match source {
        Source::Db(db) => {
            let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_leaves")
                .fetch_one(db.pool())
                .await
                .map_err(StoreError::from)?;
            let checkpoints =
                sqlx::query_as("SELECT size, note FROM audit_checkpoints ORDER BY size")
                    .fetch_all(db.pool())
                    .await
                    .map_err(StoreError::from)?;
            let erased_keys = crate::subject_keys::erased_key_ids(db).await?;
            Ok(Loaded {
                total: total as u64,
                checkpoints,
                erased_keys: erased_keys.into_iter().collect(),
                rows: Rows::Db {
                    db: db.clone(),
                    after: -1,
                },
            })
        }
        Source::Dir(dir) => {
            let entries = dir.join(ENTRIES);
            let total = BufReader::new(std::fs::File::open(&entries).map_err(io(&entries))?)
                .lines()
                .count() as u64;
            let cp_dir = dir.join(CHECKPOINTS);
            let mut checkpoints = Vec::new();
            for file in std::fs::read_dir(&cp_dir).map_err(io(&cp_dir))? {
                let path = file.map_err(io(&cp_dir))?.path();
                let size = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.parse::<i64>().ok())
                    .ok_or_else(|| {
                        VerifyError::Format(format!("{}: not a checkpoint size", path.display()))
                    })?;
                checkpoints.push((size, std::fs::read_to_string(&path).map_err(io(&path))?));
            }
            checkpoints.sort_by_key(|(size, _)| *size);
            let erased = dir.join(ERASED);
            let erased_keys = std::fs::read_to_string(&erased)
                .map_err(io(&erased))?
                .lines()
                .map(str::to_owned)
                .collect();
            let file = std::fs::File::open(&entries).map_err(io(&entries))?;
            Ok(Loaded {
                total,
                checkpoints,
                erased_keys,
                rows: Rows::File(BufReader::new(file).lines(), entries),
            })
        }
    }
}

/// Writes the log in `db` to `dir` (created if needed) for offline verification and archival:
/// `entries.tsv` (index, leaf hash, entry per line), `checkpoints/<size>` and
/// `erased-keys.txt`. Returns the number of entries written.
pub async fn export(db: &Db, dir: &Path) -> Result<u64, VerifyError> {
    let cp_dir = dir.join(CHECKPOINTS);
    std::fs::create_dir_all(&cp_dir).map_err(io(&cp_dir))?;
    let mut loaded = load(Source::Db(db)).await?;
    for (size, note) in &loaded.checkpoints {
        let path = cp_dir.join(size.to_string());
        std::fs::write(&path, note).map_err(io(&path))?;
    }
    let erased = dir.join(ERASED);
    let mut keys: Vec<&String> = loaded.erased_keys.iter().collect();
    keys.sort();
    let keys: String = keys.into_iter().map(|k| format!("{k}\n")).collect();
    std::fs::write(&erased, keys).map_err(io(&erased))?;
    let path = dir.join(ENTRIES);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io(&path))?);
    let mut written = 0;
    loop {
        let page = loaded.rows.next_page().await?;
        if page.is_empty() {
            break;
        }
        for (idx, hash, entry) in page {
            writeln!(out, "{idx}\t{hash}\t{entry}").map_err(io(&path))?;
            written += 1;
        }
    }
    out.into_inner()
        .map_err(|e| VerifyError::Format(e.to_string()))?
        .sync_all()
        .map_err(io(&path))?;
    Ok(written)
}

/// The payload key an entry was sealed under, if any. Entries are compact JSON, where a quote
/// inside a string is always escaped, so this pattern can only be the `payload` object itself;
/// a search is several times cheaper than parsing every entry of a large log.
fn payload_key(entry: &str) -> Option<&str> {
    const PATTERN: &str = "\"payload\":{\"key\":\"";
    let start = entry.find(PATTERN)? + PATTERN.len();
    let len = entry[start..].find('"')?;
    Some(&entry[start..start + len])
}

/// What verification needs from one entry, computed in parallel for a page.
struct Checked<'a> {
    hash: Hash,
    matches_stored: bool,
    payload_key: Option<&'a str>,
}

/// Hashes a page of entries on every core: rehashing is most of a verification's work.
fn check_rows(rows: &[Row]) -> Vec<Checked<'_>> {
    fn check((_, stored, entry): &Row) -> Checked<'_> {
        let hash = leaf_hash(entry.as_bytes());
        Checked {
            matches_stored: HEXLOWER.encode(&hash) == *stored,
            hash,
            payload_key: payload_key(entry),
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = rows.len().div_ceil(cores).max(1024);
    if rows.len() <= chunk {
        return rows.iter().map(check).collect();
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = rows
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(check).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("hashing thread"))
            .collect()
    })
}

/// Verifies a log. `progress(done, total)` is called as entries are checked.
pub async fn verify(
    source: Source<'_>,
    trust: &Trust,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, VerifyError> {
    let Loaded {
        total,
        checkpoints: stored,
        erased_keys,
        rows,
    } = load(source).await?;
    let mut pages = rows.prefetch();
    let mut problems = Vec::new();
    let mut checkpoints = Vec::new();
    let mut cosigned = 0;
    let known: Vec<Verifier> = trust.log.iter().chain(&trust.witnesses).cloned().collect();
    for (size, note) in &stored {
        let opened = open(note, &known)
            .map_err(|e| e.to_string())
            .and_then(|(text, names)| {
                let by_log = trust.log.iter().any(|v| names.contains(&v.name));
                let by_witness = trust.witnesses.iter().any(|v| names.contains(&v.name));
                if !by_log {
                    return Err("it has no signature by the log's key".to_owned());
                }
                Checkpoint::parse(text)
                    .map(|c| (c, by_witness))
                    .map_err(|e| e.to_string())
            });
        match opened {
            Ok((c, _)) if c.size != *size as u64 => problems.push(Problem {
                index: None,
                what: format!("checkpoint stored as size {size} names size {}", c.size),
            }),
            Ok((c, by_witness)) => {
                cosigned += u64::from(by_witness);
                checkpoints.push(c);
            }
            Err(e) => problems.push(Problem {
                index: None,
                what: format!("checkpoint at size {size} is not validly signed: {e}"),
            }),
        }
    }
    let mut next_checkpoint = checkpoints.iter().peekable();
    let mut range = CompactRange::default();
    let mut last_good_checkpoint = 0u64;
    let mut entries_per_key: HashMap<String, u64> = HashMap::new();
    let finish =
        |range: &CompactRange, problems: Vec<Problem>, per_key: &HashMap<String, u64>| Report {
            entries: total,
            checkpoints: checkpoints.len() as u64,
            cosigned_checkpoints: cosigned,
            payload_erased: per_key
                .iter()
                .filter(|(k, _)| erased_keys.contains(*k))
                .map(|(_, n)| n)
                .sum(),
            root: data_encoding::BASE64.encode(&range.root()),
            ok: problems.is_empty(),
            problems,
        };
    loop {
        let page = pages.recv().await.unwrap_or_else(|| Ok(Vec::new()))?;
        if page.is_empty() {
            break;
        }
        let checked = check_rows(&page);
        for ((idx, _, _), checked) in page.iter().zip(checked) {
            let idx = *idx;
            let expected = range.size();
            if idx as u64 != expected {
                problems.push(Problem {
                    index: Some(expected),
                    what: format!("entry {expected} is missing (next stored index is {idx})"),
                });
                return Ok(finish(&range, problems, &entries_per_key));
            }
            let Checked {
                hash,
                matches_stored,
                payload_key,
            } = checked;
            if !matches_stored {
                problems.push(Problem {
                    index: Some(expected),
                    what: format!("entry {expected} does not match its recorded leaf hash"),
                });
            }
            if let Some(key) = payload_key {
                match entries_per_key.get_mut(key) {
                    Some(n) => *n += 1,
                    None => {
                        entries_per_key.insert(key.to_owned(), 1);
                    }
                }
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
            progress(range.size(), total);
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
    Ok(finish(&range, problems, &entries_per_key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::Signer;
    use crate::{Action, Auditor, Outcome, Payload, SecurityEvent};

    async fn erased_payloads_are_unreadable_and_the_log_still_verifies(db: Db) {
        let (log, skey) = crate::log::open_for_test(&db).await;
        let sealing = palisade_crypto::SealingKey::from_bytes(&[9u8; 32]).unwrap();
        let auditor = Auditor::with_log(db.clone(), log, [7u8; 32], sealing);
        let mut indexes = HashMap::new();
        for (actor, n) in [("alice", 3), ("bob", 2)] {
            for i in 0..n {
                let index = auditor
                    .record(
                        SecurityEvent::new(Action::LoginSucceeded, Outcome::Success, "default")
                            .actor(actor)
                            .ip("192.0.2.7".parse().unwrap())
                            .device("Firefox")
                            .detail("attempt", i),
                    )
                    .await
                    .unwrap()
                    .unwrap();
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
        let report = verify(Source::Db(&db), &trust, |_, _| {}).await.unwrap();
        assert!(report.ok, "{:?}", report.problems);
        assert_eq!((report.entries, report.payload_erased), (5, 3));

        // The same from an export; and a changed exported entry is caught at its index.
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(export(&db, dir.path()).await.unwrap(), 5);
        let exported = verify(Source::Dir(dir.path().into()), &trust, |_, _| {})
            .await
            .unwrap();
        assert!(exported.ok, "{:?}", exported.problems);
        assert_eq!((exported.payload_erased, exported.root), (3, report.root));
        let path = dir.path().join(ENTRIES);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replacen("identity.login.succeeded", "identity.login.failed", 2),
        )
        .unwrap();
        let tampered = verify(Source::Dir(dir.path().into()), &trust, |_, _| {})
            .await
            .unwrap();
        assert!(!tampered.ok);
        assert_eq!(tampered.problems[0].index, Some(0));
    }
    palisade_store::both_backends!(erased_payloads_are_unreadable_and_the_log_still_verifies);
}
