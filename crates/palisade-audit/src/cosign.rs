//! The log's side of witnessing (AUD-4): after each new checkpoint, every configured witness is
//! sent it with a consistency proof from the size that witness last cosigned (C2SP
//! tlog-witness). Verified cosignatures are appended to the stored checkpoint, which is then
//! served as the latest cosigned one. New checkpoints that arrive while witnesses are being
//! asked are coalesced: only the newest is sent next.

use crate::log::AuditLog;
use data_encoding::BASE64;
use http::StatusCode;
use palisade_http::egress::Egress;
use palisade_tlog::note::{Verifier, open};
use tokio_util::sync::CancellationToken;

pub struct WitnessEndpoint {
    url: String,
    verifier: Verifier,
    /// The size this witness last cosigned, once known.
    size: Option<u64>,
}

impl WitnessEndpoint {
    /// `url` is the witness's base URL (`http://…` or `https://…`); `vkey` its cosignature key.
    pub fn new(url: &str, vkey: &str) -> Result<Self, String> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("{url}: must be an http(s) URL"));
        }
        Ok(Self {
            url: format!("{}/add-checkpoint", url.trim_end_matches('/')),
            verifier: Verifier::from_vkey(vkey).map_err(|e| format!("{vkey}: {e}"))?,
            size: None,
        })
    }
}

pub async fn run(
    log: AuditLog,
    mut witnesses: Vec<WitnessEndpoint>,
    egress: Egress,
    shutdown: CancellationToken,
) {
    let mut published = log.subscribe();
    published.mark_changed();
    loop {
        tokio::select! {
            changed = published.changed() => if changed.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
        // The sequencer asks the witnesses; every other node serves what they answered.
        if !log.is_sequencer() {
            continue;
        }
        let Some((note, size)) = log.latest() else {
            continue;
        };
        let mut lines = String::new();
        let mut count = 0;
        for w in &mut witnesses {
            match cosign(&egress, &log, w, &note, size).await {
                Ok(line) => {
                    lines.push_str(&line);
                    count += 1;
                }
                Err(e) => {
                    tracing::warn!(witness = %w.url, size, error = %e, "witness did not cosign")
                }
            }
        }
        if count > 0
            && let Err(e) = log
                .store_cosigned(size, format!("{note}{lines}"), count)
                .await
        {
            tracing::error!(error = %e, size, "cosigned checkpoint not stored");
        }
    }
}

/// Asks one witness to cosign; returns its verified cosignature line.
async fn cosign(
    egress: &Egress,
    log: &AuditLog,
    w: &mut WitnessEndpoint,
    note: &str,
    size: u64,
) -> Result<String, String> {
    // At most two rounds: the second after the witness told us the size it holds.
    for _ in 0..2 {
        let old = w.size.unwrap_or(0);
        if old > size {
            return Err(format!(
                "the witness holds size {old}, beyond this log's {size}: the log was rolled back"
            ));
        }
        let proof = if old == 0 || old == size {
            Vec::new()
        } else {
            log.consistency_proof(old, size)
                .map_err(|e| format!("consistency proof {old}→{size}: {e:?}"))?
        };
        let mut body = format!("old {old}\n");
        for h in &proof {
            body.push_str(&BASE64.encode(h));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(note);
        let answered = egress
            .post(&w.url, "text/plain", body)
            .await
            .map_err(|e| e.to_string())?;
        let answer = String::from_utf8_lossy(&answered.body);
        match answered.status {
            StatusCode::OK => {
                let cosigned = format!("{note}{answer}");
                let (_, names) = open(&cosigned, std::slice::from_ref(&w.verifier))
                    .map_err(|e| format!("its answer is not a valid cosignature: {e}"))?;
                if names.is_empty() {
                    return Err("its answer carries no cosignature by its key".into());
                }
                w.size = Some(size);
                let prefix = format!("— {} ", w.verifier.name);
                return Ok(answer
                    .lines()
                    .filter(|l| l.starts_with(&prefix))
                    .map(|l| format!("{l}\n"))
                    .collect());
            }
            StatusCode::CONFLICT => {
                let held = answer
                    .trim_end()
                    .parse()
                    .map_err(|_| format!("409 without a size: {answer:?}"))?;
                if w.size == Some(held) {
                    return Err(format!(
                        "the witness refuses this checkpoint at size {held}: the log forked"
                    ));
                }
                w.size = Some(held);
            }
            other => return Err(format!("{other}: {}", answer.trim_end())),
        }
    }
    Err("the witness kept changing its size".into())
}
