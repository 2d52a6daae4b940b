//! `palisade keys` (TOK-3): list the signing keys, rotate (refused until the next key has been
//! published for a JWKS cache lifetime, unless `--force`), revoke one in an emergency. Running
//! servers are told at once (through Redis, or the local server's socket); each change is an audit event.

use crate::config::Config;
use anyhow::Result;
use clap::Subcommand;
use palisade_audit::{Action, Outcome, SecurityEvent};
use serde_json::json;

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// List the signing keys and their states.
    List,
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
    let ring = crate::node::key_ring(&config, &tool.db, &tool.auditor).await?;
    let auditor = &tool.auditor;
    let tenant = "default";
    match command {
        KeysCommand::List => super::print(&ring.list().await?)?,
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
            super::print(&json!({ "signing_kid": kid }))?;
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
            super::print(&json!({ "revoked": kid, "signing_kid": ring.signing_key().kid }))?;
        }
    }
    tool.close().await;
    Ok(())
}
