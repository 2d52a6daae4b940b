//! `palisade ca` (TLS-5): create the internal CA of a deployment, hand out one-time join tokens
//! for services' first SVIDs, list what was signed, print the trust bundle, and ask every node
//! to rotate its own SVID now.

use crate::config::Config;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use palisade_ca::Ca;
use palisade_tls::ca::SpiffeId;
use serde_json::json;

#[derive(Subcommand)]
pub(crate) enum CaCommand {
    /// Create the internal CA for `ca.trust_domain` (once per database).
    Init,
    /// Print a one-time token with which a service obtains its first SVID (`POST /ca/svid`).
    JoinToken {
        /// The SPIFFE ID the SVID will name, inside the trust domain.
        #[arg(long)]
        spiffe_id: String,
        /// How long the token may be used, in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u32,
    },
    /// List the SVIDs signed, newest first.
    List,
    /// Print the trust bundle (the CA certificate, PEM).
    Bundle,
    /// Ask every running node to replace its own SVID now.
    Rotate,
}

pub(crate) async fn run(config: Config, command: CaCommand) -> Result<()> {
    let Some(trust_domain) = config.ca.trust_domain.clone() else {
        bail!("ca.trust_domain is not set");
    };
    let tool = crate::node::Tool::open(&config).await?;
    let sealing = crate::node::sealing_key(&config)?;
    if let CaCommand::Init = command {
        let lifetime = time::Duration::days(i64::from(config.ca.ca_lifetime_days));
        let authority = Ca::init(&tool.db, &sealing, &tool.auditor, trust_domain, lifetime).await?;
        super::print(&json!({
            "trust_domain": authority.trust_domain(),
            "not_after": authority.not_after(),
            "bundle": palisade_crypto::pem("CERTIFICATE", authority.certificate()),
        }))?;
        tool.close().await;
        return Ok(());
    }
    let ca = Ca::load(tool.db.clone(), &sealing, tool.auditor.clone(), &config.ca)
        .await?
        .context("the internal CA is not configured")?;
    match command {
        CaCommand::Init => unreachable!("handled above"),
        CaCommand::JoinToken { spiffe_id, ttl } => {
            let id =
                SpiffeId::parse(&spiffe_id).with_context(|| format!("--spiffe-id {spiffe_id}"))?;
            let token = ca
                .create_join_token(id, time::Duration::seconds(i64::from(ttl)))
                .await?;
            super::print(&token)?;
        }
        CaCommand::List => super::print(&ca.list().await?)?,
        CaCommand::Bundle => super::print(&json!({
            "trust_domain": ca.authority().trust_domain(),
            "bundle": palisade_crypto::pem("CERTIFICATE", ca.authority().certificate()),
        }))?,
        CaCommand::Rotate => {
            tool.cluster
                .bus
                .publish(palisade_ca::node::ROTATE_TOPIC, &b"rotate"[..])
                .await;
            super::print(&json!({ "rotation": "requested" }))?;
        }
    }
    tool.close().await;
    Ok(())
}
