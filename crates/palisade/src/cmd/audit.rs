//! `palisade audit verify` (AUD-5): checks the whole stored log offline and exits non-zero on
//! any problem, naming the first bad index.

use crate::config::Config;
use anyhow::{Result, anyhow};
use clap::Subcommand;
use palisade_audit::verify::Trust;
use palisade_tlog::note::Verifier;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Recompute the tree, check every checkpoint signature, cosignature and root, report the
    /// first problem and the entries whose payload was erased.
    Verify {
        /// A trusted checkpoint key (`name+hash+key`); repeatable. Defaults to the log's own key.
        #[arg(long = "vkey")]
        vkeys: Vec<String>,
        /// A trusted witness key; repeatable. Defaults to the configured witnesses.
        #[arg(long = "witness-vkey")]
        witness_vkeys: Vec<String>,
        /// Verify a directory written by `palisade audit export` instead of the database.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Write the log (entries, checkpoints, erased key ids) to a directory for offline
    /// verification and archival.
    Export { dir: PathBuf },
}

fn verifiers(keys: &[String], flag: &str) -> Result<Vec<Verifier>> {
    keys.iter()
        .map(|k| Verifier::from_vkey(k).map_err(|e| anyhow!("{flag} {k}: {e}")))
        .collect()
}

/// Returns whether the command succeeded (for `verify`: whether the log verified).
pub(crate) async fn run(config: Config, command: AuditCommand) -> Result<bool> {
    let (vkeys, witness_vkeys, dir) = match command {
        AuditCommand::Export { dir } => {
            let db = crate::node::open_database(&config).await?;
            let written = palisade_audit::verify::export(&db, &dir).await?;
            db.close().await;
            super::print(&serde_json::json!({ "exported": written, "directory": dir }))?;
            return Ok(true);
        }
        AuditCommand::Verify {
            vkeys,
            witness_vkeys,
            dir,
        } => (vkeys, witness_vkeys, dir),
    };
    let vkeys = if vkeys.is_empty() {
        vec![crate::node::audit_keys(&config)?.0.vkey()]
    } else {
        vkeys
    };
    let witness_vkeys = if witness_vkeys.is_empty() {
        config
            .audit
            .witnesses
            .iter()
            .map(|w| w.vkey.clone())
            .collect()
    } else {
        witness_vkeys
    };
    let trust = Trust {
        log: verifiers(&vkeys, "--vkey")?,
        witnesses: verifiers(&witness_vkeys, "--witness-vkey")?,
    };
    let db = match &dir {
        Some(_) => None,
        None => Some(crate::node::open_database(&config).await?),
    };
    let loaded = match (&db, &dir) {
        (Some(db), _) => palisade_audit::verify::load(db).await?,
        (None, Some(dir)) => palisade_audit::verify::load_dir(dir)?,
        (None, None) => unreachable!("a database is opened when no directory is given"),
    };
    let tty = std::io::stderr().is_terminal();
    // Progress every 10,000 entries and at the end: a bar on a terminal, log lines otherwise
    // (stderr stays JSON for whatever reads it).
    let mut report = palisade_audit::verify::verify(loaded, &trust, |done, total| {
        if !(done % 10_000 == 0 || done == total) {
            return;
        }
        if !tty {
            tracing::info!(done, total, "audit entries verified");
        } else {
            const WIDTH: u64 = 40;
            let filled = (done * WIDTH)
                .checked_div(total)
                .unwrap_or(WIDTH)
                .min(WIDTH) as usize;
            eprint!(
                "\r[{}{}] {done}/{total}",
                "#".repeat(filled),
                " ".repeat(WIDTH as usize - filled)
            );
            let _ = std::io::stderr().flush();
        }
    })
    .await?;
    if tty {
        eprintln!();
    }
    // From the database, the searchable rows are checked against their entries too.
    if let Some(db) = db {
        let keys = palisade_audit::verify::RowKeys {
            pseudonym_key: crate::node::audit_keys(&config)?.1,
            keys: palisade_audit::subject_keys::SubjectKeys::new(
                db.clone(),
                crate::node::sealing_key(&config)?,
                palisade_cluster::Bus::in_process(),
            ),
        };
        report
            .problems
            .extend(palisade_audit::verify::check_rows(&db, &keys).await?);
        report.ok = report.problems.is_empty();
        db.close().await;
    }
    super::print(&report)?;
    Ok(report.ok)
}
