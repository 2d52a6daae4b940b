//! Offline verification of a log (AUD-5), from any source of its entries — a store, or a
//! directory written by [`write_export`]: every entry is rehashed, indexes must run without
//! gaps, every stored checkpoint must carry a valid signature by a trusted log key (and every
//! cosignature by a trusted witness must verify) and name exactly the root of the entries up to
//! its size. The first problem is located: by index when an entry or its hash changed or went
//! missing, by checkpoint range otherwise. Entries whose payload key was destroyed are counted
//! as "payload erased" (AUD-6): that is not a failure, the proofs hold without the payload.

use crate::merkle::{CompactRange, Hash, leaf_hash};
use crate::note::{Checkpoint, Verifier, open};
use data_encoding::HEXLOWER;
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

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0}")]
    Format(String),
    /// The source could not be read (a store's error, as text).
    #[error("{0}")]
    Source(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VerifyError + '_ {
    move |error| VerifyError::Io {
        path: path.to_owned(),
        error,
    }
}

/// Entries read per page.
pub const PAGE: usize = 10_000;
const ENTRIES: &str = "entries.tsv";
const CHECKPOINTS: &str = "checkpoints";
const ERASED: &str = "erased-keys.txt";

/// One stored entry: its index, the leaf hash recorded beside it (hex) and its bytes.
pub type Row = (i64, String, String);

/// A source of a log's entries in index order, a page at a time; an empty page is the end.
pub trait Pages: Send + 'static {
    fn next_page(&mut self) -> impl Future<Output = Result<Vec<Row>, VerifyError>> + Send;
}

/// A log as a source gives it.
pub struct Loaded {
    pub total: u64,
    /// Stored checkpoints by size.
    pub checkpoints: Vec<(i64, String)>,
    /// Ids of destroyed payload keys.
    pub erased_keys: HashSet<String>,
    pub pages: tokio::sync::mpsc::Receiver<Result<Vec<Row>, VerifyError>>,
}

/// Reads pages ahead on another task, so that reading and hashing overlap.
pub fn prefetch(
    mut pages: impl Pages,
) -> tokio::sync::mpsc::Receiver<Result<Vec<Row>, VerifyError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let page = pages.next_page().await;
            let done = matches!(&page, Ok(p) if p.is_empty()) || page.is_err();
            if tx.send(page).await.is_err() || done {
                return;
            }
        }
    });
    rx
}

/// The entries of an exported directory.
struct FilePages(std::io::Lines<BufReader<std::fs::File>>, PathBuf);

impl Pages for FilePages {
    async fn next_page(&mut self) -> Result<Vec<Row>, VerifyError> {
        let FilePages(lines, path) = self;
        let mut page = Vec::new();
        for line in lines.by_ref().take(PAGE) {
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

/// A directory written by [`write_export`].
pub fn load_dir(dir: &Path) -> Result<Loaded, VerifyError> {
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
        pages: prefetch(FilePages(BufReader::new(file).lines(), entries)),
    })
}

/// Writes `loaded` to `dir` (created if needed) for offline verification and archival:
/// `entries.tsv` (index, leaf hash, entry per line), `checkpoints/<size>` and
/// `erased-keys.txt`. Returns the number of entries written.
pub async fn write_export(mut loaded: Loaded, dir: &Path) -> Result<u64, VerifyError> {
    let cp_dir = dir.join(CHECKPOINTS);
    std::fs::create_dir_all(&cp_dir).map_err(io(&cp_dir))?;
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
    while let Some(page) = loaded.pages.recv().await {
        let page = page?;
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
    loaded: Loaded,
    trust: &Trust,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, VerifyError> {
    let Loaded {
        total,
        checkpoints: stored,
        erased_keys,
        mut pages,
    } = loaded;
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
    // A log's first checkpoint is of size 0, published before any entry.
    while let Some(c) = next_checkpoint.next_if(|c| c.size == 0) {
        if c.root != range.root() {
            problems.push(Problem {
                index: None,
                what: "checkpoint at size 0 does not name the empty tree".into(),
            });
        }
    }
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
                    // Checkpoints at consecutive sizes locate the change exactly.
                    let exact = c.size - 1 == last_good_checkpoint;
                    problems.push(Problem {
                        index: exact.then_some(last_good_checkpoint),
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
    // Checkpoints of sizes the entries never reached.
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
