//! `palisade audit verify` (AUD-5): checks the whole stored log offline and exits non-zero on
//! any problem, naming the first bad index.

use crate::config::Config;
use anyhow::{Result, anyhow};
use clap::Subcommand;
use palisade_audit::note::Verifier;
use std::io::{IsTerminal, Write};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute the tree, check every checkpoint signature and root, report the first problem.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// A trusted checkpoint key (`name+hash+key`); repeatable. Defaults to the log's own key.
        #[arg(long = "vkey")]
        vkeys: Vec<String>,
    },
}

/// Returns whether the log verified.
pub async fn run(config: Config, command: AuditCommand) -> Result<bool> {
    let AuditCommand::Verify { json, vkeys } = command;
    let db = crate::state::open_database(&config).await?;
    let vkeys = if vkeys.is_empty() {
        vec![crate::state::audit_keys(&config)?.0.vkey()]
    } else {
        vkeys
    };
    let trusted = vkeys
        .iter()
        .map(|k| Verifier::from_vkey(k).map_err(|e| anyhow!("--vkey {k}: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let tty = std::io::stderr().is_terminal();
    let report = palisade_audit::verify::verify_store(&db, &trusted, |done, total| {
        if tty && (done % 10_000 == 0 || done == total) {
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
    db.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.ok {
        println!(
            "audit log verified: {} entries, {} checkpoints, root {}",
            report.entries, report.checkpoints, report.root
        );
    } else {
        println!(
            "audit log FAILED verification ({} entries):",
            report.entries
        );
        for p in &report.problems {
            match p.index {
                Some(i) => println!("  index {i}: {}", p.what),
                None => println!("  {}", p.what),
            }
        }
    }
    Ok(report.ok)
}
