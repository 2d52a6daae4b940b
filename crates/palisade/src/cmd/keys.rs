//! `palisade keys` (TOK-3): list the signing keys, rotate (refused until the next key has been
//! published for a JWKS cache lifetime, unless `--force`), revoke one in an emergency. Running
//! servers are told at once (through Redis, or the local server's socket); each change is an audit event.

use crate::config::Config;
use anyhow::Result;
use clap::Subcommand;
use palisade_audit::{Action, Outcome, SecurityEvent};

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// List the signing keys and their states.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Activate the next key and publish a new next key.
    Rotate {
        /// Rotate even if clients may not have seen the next key yet (an emergency).
        #[arg(long)]
        force: bool,
    },
    /// Withdraw a key at once: tokens it signed stop verifying.
    Revoke {
        /// Key ids are base64url and may begin with `-`.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

pub(crate) async fn run(config: Config, command: KeysCommand) -> Result<()> {
    let tool = crate::node::Tool::open(&config).await?;
    let ring = crate::node::key_ring(&config, &tool.db).await?;
    let auditor = &tool.auditor;
    let tenant = "default";
    match command {
        KeysCommand::List { json } => {
            let keys = ring.list().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                for k in keys {
                    println!("{}  {:6}  {}", k.kid, k.alg, k.state);
                }
            }
        }
        KeysCommand::Rotate { force } => {
            let kid = ring.rotate(force).await?;
            crate::signing::announce(&tool.cluster.bus).await;
            auditor
                .record(
                    SecurityEvent::new(Action::SigningKeyRotated, Outcome::Success, tenant)
                        .target(kid.clone())
                        .detail("forced", force),
                )
                .await?;
            println!("signing with {kid}");
        }
        KeysCommand::Revoke { kid } => {
            ring.revoke(&kid).await?;
            crate::signing::announce(&tool.cluster.bus).await;
            auditor
                .record(
                    SecurityEvent::new(Action::SigningKeyRevoked, Outcome::Success, tenant)
                        .target(kid.clone()),
                )
                .await?;
            println!("revoked {kid}; signing with {}", ring.signing_key().kid);
        }
    }
    tool.close().await;
    Ok(())
}
