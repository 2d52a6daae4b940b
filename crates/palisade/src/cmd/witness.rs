//! `palisade witness` (AUD-4): runs a C2SP tlog-witness for the configured logs. Its state (the
//! latest cosigned checkpoint per log) lives in the configured database; its cosigning key comes
//! from `witness.signing_key` or is generated once into the data directory.

use crate::config::Config;
use anyhow::{Context, Result, anyhow};
use palisade_tlog::note::{KeyKind, Signer, Verifier};
use palisade_witness::Witness;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub(crate) async fn run(config: Config) -> Result<()> {
    let name = config.witness.name.clone();
    let skey = match &config.witness.signing_key {
        Some(key) => key.expose().clone(),
        None => crate::node::read_or_create_key_file(
            &config.data_dir.join("witness-signing.key"),
            || {
                Signer::generate_kind(&name, KeyKind::Cosignature)
                    .map_err(|e| anyhow!("witness.name: {e}"))
            },
        )?,
    };
    let signer = Signer::from_skey(skey.trim()).map_err(|e| anyhow!("witness.signing_key: {e}"))?;
    let mut logs: HashMap<String, Vec<Verifier>> = HashMap::new();
    for log in &config.witness.logs {
        let key = Verifier::from_vkey(&log.vkey)
            .map_err(|e| anyhow!("witness.logs {}: {e}", log.origin))?;
        logs.entry(log.origin.clone()).or_default().push(key);
    }
    if logs.is_empty() {
        tracing::warn!("witness.logs is empty: every checkpoint will be refused");
    }
    let db = crate::node::open_database(&config).await?;
    let witness = Arc::new(Witness::new(db.clone(), signer, logs)?);
    let listener = TcpListener::bind(config.witness.listen)
        .await
        .with_context(|| format!("cannot listen on witness.listen {}", config.witness.listen))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        vkey = %witness.vkey(),
        "palisade witness listening"
    );
    let shutdown = CancellationToken::new();
    let guards = palisade_http::Guards::new().with(
        "signed_body",
        palisade_witness::SignedByKnownLog(witness.clone()),
    );
    let app = palisade_witness::router(witness)
        .finish()
        .0
        .layer(axum::Extension(guards));
    let server = tokio::spawn(palisade_http::server::serve_plain(
        listener,
        app,
        shutdown.clone(),
    ));
    crate::cmd::serve::wait_for_signal().await;
    shutdown.cancel();
    let _ = server.await;
    db.close().await;
    Ok(())
}
