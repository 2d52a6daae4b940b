//! A C2SP tlog-witness (AUD-4): `POST /add-checkpoint` takes a log's new checkpoint with a
//! consistency proof from the last one this witness cosigned, and cosigns it only if the log
//! grew append-only. It remembers the latest size and root per log, so a log that rolls back,
//! forks or rewrites history is refused — which lets anyone holding a cosigned checkpoint prove
//! that the log never showed two histories.
//!
//! Answers, as the protocol fixes them: 200 with the cosignature line; 400 for a malformed
//! request or an old size above the new; 403 when no trusted key of the log signed; 404 for an
//! unknown log; 409 with the witness's size (`text/x.tlog.size`) when the old size is not the
//! one it holds or the same size comes with another root; 422 when the proof does not verify.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use data_encoding::BASE64;
use http::StatusCode;
use palisade_http::{Access, Routes};
use palisade_store::{Db, StoreError, now_ms};
use palisade_tlog::merkle::{self, Hash};
use palisade_tlog::note::{Checkpoint, KeyKind, Signer, Verifier, open};
use std::collections::HashMap;
use std::sync::Arc;

/// The protocol's limit on proof lines.
const MAX_PROOF_LINES: usize = 63;

pub struct Witness {
    db: Db,
    signer: Signer,
    /// Trusted checkpoint keys by log origin.
    logs: HashMap<String, Vec<Verifier>>,
}

#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("the witness key must be a cosignature/v1 key")]
    NotACosigner,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a checkpoint was not cosigned.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Malformed(&'static str),
    UnknownLog,
    NotSigned,
    /// The old size is not the witness's, or a same-size checkpoint has another root: carries
    /// the size the witness holds.
    Conflict(u64),
    BadProof,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let plain = [("content-type", "text/plain; charset=utf-8")];
        match self {
            Refusal::Malformed(why) => (StatusCode::BAD_REQUEST, plain, format!("{why}\n")),
            Refusal::UnknownLog => (StatusCode::NOT_FOUND, plain, "unknown log\n".into()),
            Refusal::NotSigned => (
                StatusCode::FORBIDDEN,
                plain,
                "no valid signature by the log's key\n".into(),
            ),
            Refusal::Conflict(size) => (
                StatusCode::CONFLICT,
                [("content-type", "text/x.tlog.size")],
                format!("{size}\n"),
            ),
            Refusal::BadProof => (
                StatusCode::UNPROCESSABLE_ENTITY,
                plain,
                "consistency proof does not verify\n".into(),
            ),
        }
        .into_response()
    }
}

struct Request<'a> {
    old: u64,
    proof: Vec<Hash>,
    note: &'a str,
}

fn parse_request(body: &str) -> Result<Request<'_>, Refusal> {
    let (head, note) = body
        .split_once("\n\n")
        .ok_or(Refusal::Malformed("no blank line before the checkpoint"))?;
    let mut lines = head.split('\n');
    let old = lines
        .next()
        .and_then(|l| l.strip_prefix("old "))
        .and_then(|n| n.parse::<u64>().ok().filter(|v| v.to_string() == n))
        .ok_or(Refusal::Malformed("first line must be `old <size>`"))?;
    let proof = merkle::parse_hash_lines(lines)
        .ok_or(Refusal::Malformed("proof line is not a base64 hash"))?;
    if proof.len() > MAX_PROOF_LINES {
        return Err(Refusal::Malformed("too many proof lines"));
    }
    Ok(Request { old, proof, note })
}

impl Witness {
    pub fn new(
        db: Db,
        signer: Signer,
        logs: HashMap<String, Vec<Verifier>>,
    ) -> Result<Self, WitnessError> {
        if signer.kind != KeyKind::Cosignature {
            return Err(WitnessError::NotACosigner);
        }
        Ok(Self { db, signer, logs })
    }

    pub fn vkey(&self) -> String {
        self.signer.vkey()
    }

    /// The size and root this witness holds for `origin`.
    async fn latest(&self, origin: &str) -> Result<Option<(u64, Hash)>, StoreError> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT size, root FROM witness_checkpoints WHERE origin = $1")
                .bind(origin)
                .fetch_optional(self.db.pool())
                .await?;
        Ok(row.and_then(|(size, root)| {
            let root = BASE64.decode(root.as_bytes()).ok()?.try_into().ok()?;
            Some((size as u64, root))
        }))
    }

    /// Whether `body` is a request signed by a log this witness knows: its checkpoint text.
    fn signed<'a>(&self, request: &Request<'a>) -> Result<(&'a str, &'a str), Refusal> {
        let origin = request.note.split('\n').next().unwrap_or_default();
        let keys = self.logs.get(origin).ok_or(Refusal::UnknownLog)?;
        let (text, _) = open(request.note, keys).map_err(|_| Refusal::NotSigned)?;
        Ok((text, origin))
    }

    /// Handles one add-checkpoint request body: the cosignature line, or why not.
    pub async fn add_checkpoint(&self, body: &str) -> Result<Result<String, Refusal>, StoreError> {
        let request = match parse_request(body) {
            Ok(r) => r,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let (text, origin) = match self.signed(&request) {
            Ok(signed) => signed,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let Ok(checkpoint) = Checkpoint::parse(text) else {
            return Ok(Err(Refusal::Malformed("not a checkpoint")));
        };
        if request.old > checkpoint.size {
            return Ok(Err(Refusal::Malformed(
                "old size is above the checkpoint's",
            )));
        }
        let held = self.latest(origin).await?;
        let (held_size, held_root) = held.unwrap_or((0, merkle::empty_root()));
        if request.old != held_size {
            return Ok(Err(Refusal::Conflict(held_size)));
        }
        if request.old == checkpoint.size {
            if !request.proof.is_empty() {
                return Ok(Err(Refusal::BadProof));
            }
            if checkpoint.root != held_root {
                return Ok(Err(Refusal::Conflict(held_size)));
            }
        } else if request.old == 0 {
            // Trust on first use: nothing to be consistent with yet.
            if !request.proof.is_empty() {
                return Ok(Err(Refusal::BadProof));
            }
        } else if merkle::verify_consistency(
            request.old,
            checkpoint.size,
            &held_root,
            &checkpoint.root,
            &request.proof,
        )
        .is_err()
        {
            return Ok(Err(Refusal::BadProof));
        }
        // Compare-and-swap on the size read above: of two racing requests from the same old
        // size only one can advance the state.
        let root = BASE64.encode(&checkpoint.root);
        let stored = if held.is_none() {
            sqlx::query(
                "INSERT INTO witness_checkpoints (origin, size, root, note, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(origin)
            .bind(checkpoint.size as i64)
            .bind(&root)
            .bind(request.note)
            .bind(now_ms())
            .execute(self.db.pool())
            .await?
        } else {
            sqlx::query(
                "UPDATE witness_checkpoints SET size = $1, root = $2, note = $3, updated_at = $4 \
                 WHERE origin = $5 AND size = $6 AND root = $7",
            )
            .bind(checkpoint.size as i64)
            .bind(&root)
            .bind(request.note)
            .bind(now_ms())
            .bind(origin)
            .bind(held_size as i64)
            .bind(BASE64.encode(&held_root))
            .execute(self.db.pool())
            .await?
        };
        if stored.rows_affected() != 1 {
            let now = self.latest(origin).await?.map_or(0, |(size, _)| size);
            return Ok(Err(Refusal::Conflict(now)));
        }
        let timestamp = (now_ms() / 1000) as u64;
        let line = self
            .signer
            .signature_line(text, timestamp)
            .expect("checkpoint text was validated by open");
        tracing::info!(origin, size = checkpoint.size, "checkpoint cosigned");
        Ok(Ok(line))
    }
}

pub fn router(witness: Arc<Witness>) -> Routes {
    Routes::new()
        .route(Access::SignedBody, "POST /add-checkpoint", add_checkpoint)
        .with_state(witness)
}

/// Requests are small: a checkpoint and at most 63 proof lines.
const BODY_LIMIT: usize = 16 * 1024;

/// The guard of `Access::SignedBody`: the body must be a checkpoint signed by a log this
/// witness knows, before anything else is looked at.
pub struct SignedByKnownLog(pub Arc<Witness>);

impl palisade_http::Guard for SignedByKnownLog {
    fn admit<'a>(
        &'a self,
        _: Access,
        request: axum::extract::Request,
    ) -> futures_util::future::BoxFuture<'a, Result<axum::extract::Request, Response>> {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let bytes = axum::body::to_bytes(body, BODY_LIMIT)
                .await
                .map_err(|_| Refusal::Malformed("the request is too large").into_response())?;
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| Refusal::Malformed("the request is not UTF-8").into_response())?;
            let request = parse_request(text).map_err(IntoResponse::into_response)?;
            self.0
                .signed(&request)
                .map_err(IntoResponse::into_response)?;
            Ok(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
        })
    }
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: String) -> Response {
    match witness.add_checkpoint(&body).await {
        Ok(Ok(line)) => ([("content-type", "text/plain; charset=utf-8")], line).into_response(),
        Ok(Err(refusal)) => {
            tracing::warn!(?refusal, "checkpoint refused");
            refusal.into_response()
        }
        Err(e) => palisade_http::AppError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_tlog::merkle::{Tree, leaf_hash};

    struct Log {
        skey: String,
        signer: Signer,
        tree: Tree,
    }

    impl Log {
        fn new(entries: u64) -> Self {
            Self::with_key(Signer::generate("log.example").unwrap(), entries)
        }

        fn with_key(skey: String, entries: u64) -> Self {
            let mut log = Self {
                signer: Signer::from_skey(&skey).unwrap(),
                skey,
                tree: Tree::default(),
            };
            log.grow(entries, "");
            log
        }

        fn grow(&mut self, n: u64, salt: &str) {
            for _ in 0..n {
                let i = self.tree.size();
                self.tree.push(leaf_hash(format!("{salt}{i}").as_bytes()));
            }
        }

        fn note(&self, size: u64) -> String {
            let c = Checkpoint {
                origin: "log.example".into(),
                size,
                root: self.tree.root(size).unwrap(),
                extensions: vec![],
            };
            self.signer.sign(&c.to_text()).unwrap()
        }

        fn body(&self, old: u64, size: u64) -> String {
            let proof = if old == 0 || old >= size {
                vec![]
            } else {
                self.tree.consistency_proof(old, size).unwrap()
            };
            let lines: String = proof.iter().map(|h| BASE64.encode(h) + "\n").collect();
            format!("old {old}\n{lines}\n{}", self.note(size))
        }
    }

    fn witness(db: Db, log: &Log) -> Witness {
        let signer = Signer::from_skey(
            &Signer::generate_kind("witness.example", KeyKind::Cosignature).unwrap(),
        )
        .unwrap();
        let logs = HashMap::from([(
            "log.example".to_owned(),
            vec![Verifier::from_vkey(&log.signer.vkey()).unwrap()],
        )]);
        Witness::new(db, signer, logs).unwrap()
    }

    async fn cosigns_growth_and_refuses_rollbacks_and_forks(db: Db) {
        let mut log = Log::new(5);
        let w = witness(db, &log);
        let witness_key = Verifier::from_vkey(&w.vkey()).unwrap();
        let add = |body: String| {
            let w = &w;
            async move { w.add_checkpoint(&body).await.unwrap() }
        };

        // First sight: trusted as is; the cosignature verifies with the witness key.
        let line = add(log.body(0, 5)).await.unwrap();
        let cosigned = format!("{}{line}", log.note(5));
        let (_, names) = open(&cosigned, std::slice::from_ref(&witness_key)).unwrap();
        assert_eq!(names, ["witness.example"]);

        // A client that does not know the witness's size learns it from the 409.
        log.grow(4, "");
        assert_eq!(add(log.body(0, 9)).await, Err(Refusal::Conflict(5)));
        add(log.body(5, 9)).await.unwrap();
        // The same checkpoint again is fine.
        add(log.body(9, 9)).await.unwrap();

        // Rollback: a smaller tree is refused whatever old size is claimed.
        assert_eq!(add(log.body(0, 7)).await, Err(Refusal::Conflict(9)));
        assert!(matches!(
            add(log.body(9, 7)).await,
            Err(Refusal::Malformed(_))
        ));

        // Fork at the same size: another history with 9 entries.
        let mut fork = Log::with_key(log.skey.clone(), 0);
        fork.grow(9, "forked-");
        assert_eq!(add(fork.body(9, 9)).await, Err(Refusal::Conflict(9)));
        // Fork that grows: its proof from the witness's root cannot verify.
        fork.grow(3, "forked-");
        let forged = format!(
            "old 9\n{}\n{}",
            fork.tree
                .consistency_proof(9, 12)
                .unwrap()
                .iter()
                .map(|h| BASE64.encode(h) + "\n")
                .collect::<String>(),
            fork.note(12)
        );
        assert_eq!(add(forged).await, Err(Refusal::BadProof));

        // Unknown logs, foreign keys and garbage.
        let stranger = Log::new(3);
        assert_eq!(add(stranger.body(0, 3)).await, Err(Refusal::NotSigned));
        let other_origin = log.body(9, 9).replace("log.example\n", "other.example\n");
        assert_eq!(add(other_origin).await, Err(Refusal::UnknownLog));
        assert!(matches!(
            add("old 09\n\nx\n".into()).await,
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            add("nonsense".into()).await,
            Err(Refusal::Malformed(_))
        ));

        // The honest log still advances.
        log.grow(2, "");
        add(log.body(9, 11)).await.unwrap();
    }
    palisade_store::both_backends!(cosigns_growth_and_refuses_rollbacks_and_forks);
}
