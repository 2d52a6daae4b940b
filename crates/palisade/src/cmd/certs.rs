//! `palisade certs` (TLS-3): the certificates obtained by ACME — issuer, validity, when renewal
//! falls due and where it stands (failures, the next attempt allowed, the last error) — and a
//! request to renew now, which the running nodes act on at once.

use crate::config::Config;
use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand)]
pub(crate) enum CertsCommand {
    /// List every stored certificate with its renewal state.
    List,
    /// The configured certificate (`tls.acme`): stored or not, and its renewal state.
    Status,
    /// Ask the running nodes to renew the configured certificate now.
    Renew,
}

pub(crate) async fn run(config: Config, command: CertsCommand) -> Result<()> {
    let tool = crate::node::Tool::open(&config).await?;
    match command {
        CertsCommand::List => super::print(&palisade_certs::acme::status(&tool.db).await?)?,
        CertsCommand::Status => {
            let acme = config
                .tls
                .acme
                .as_ref()
                .context("tls.acme is not configured")?;
            let name = acme.name();
            let stored = palisade_certs::acme::status(&tool.db)
                .await?
                .into_iter()
                .find(|c| c.name == name);
            super::print(&json!({
                "name": name,
                "directory": acme.directory,
                "challenge": acme.challenge,
                "certificate": stored,
            }))?;
        }
        CertsCommand::Renew => {
            let acme = config
                .tls
                .acme
                .as_ref()
                .context("tls.acme is not configured")?;
            palisade_certs::acme::request_renewal(&tool.db, &tool.cluster.bus, acme).await?;
            super::print(&json!({ "name": acme.name(), "renewal": "requested" }))?;
        }
    }
    tool.close().await;
    Ok(())
}
