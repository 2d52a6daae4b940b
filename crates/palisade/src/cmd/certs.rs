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
    /// A configured certificate (`tls.acme`): stored or not, and its renewal state.
    Status {
        /// Which certificate, by one of its names (the first configured, by default).
        name: Option<String>,
    },
    /// Ask the running nodes to renew the configured certificates now.
    Renew {
        /// Only the certificate with this name among its names.
        name: Option<String>,
    },
}

/// The configured certificates, or the one naming `name`.
fn configured(config: &Config, name: Option<&str>) -> Result<Vec<palisade_tls::AcmeSettings>> {
    let acme = config
        .tls
        .acme
        .as_ref()
        .context("tls.acme is not configured")?;
    let all = acme.certificates();
    let Some(name) = name else {
        return Ok(all);
    };
    let chosen: Vec<_> = all
        .into_iter()
        .filter(|c| c.identifiers.iter().any(|i| i == name))
        .collect();
    anyhow::ensure!(
        !chosen.is_empty(),
        "no certificate of tls.acme names {name}"
    );
    Ok(chosen)
}

pub(crate) async fn run(config: Config, command: CertsCommand) -> Result<()> {
    let tool = crate::node::Tool::open(&config).await?;
    match command {
        CertsCommand::List => super::print(&palisade_certs::acme::status(&tool.db).await?)?,
        CertsCommand::Status { name } => {
            let acme = configured(&config, name.as_deref())?.remove(0);
            let name = acme.name();
            let stored = palisade_certs::acme::status(&tool.db)
                .await?
                .into_iter()
                .find(|c| c.name == name);
            super::print(&json!({
                "name": name,
                "issuers": acme.issuers().into_iter().map(|i| i.directory).collect::<Vec<_>>(),
                "challenge": acme.challenge,
                "certificate": stored,
            }))?;
        }
        CertsCommand::Renew { name } => {
            let mut renewing = Vec::new();
            for acme in configured(&config, name.as_deref())? {
                palisade_certs::acme::request_renewal(&tool.db, &tool.cluster.bus, &acme).await?;
                renewing.push(acme.name());
            }
            super::print(&json!({ "renewal": "requested", "names": renewing }))?;
        }
    }
    tool.close().await;
    Ok(())
}
