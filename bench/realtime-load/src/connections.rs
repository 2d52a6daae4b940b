//! Many connections from one process: spread over loopback source addresses (each address is a
//! network with its own allowance of new connections, as distinct clients would be), opened
//! with a bound on the handshakes in flight.

use anyhow::{Context, Result};
use futures_util::StreamExt;
use futures_util::stream::{self, TryStreamExt};
use palisade_realtime_client::protocol::ServerFrame;
use palisade_realtime_client::{Connect, Connection};
use rustls_pki_types::pem::PemObject;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

/// Handshakes in flight while a population connects.
const OPENING: usize = 64;

/// The `i`-th connection's source address, among `spread` of them (127.1.x.y).
pub(crate) fn source(i: usize, spread: usize) -> IpAddr {
    let n = i % spread.max(1);
    IpAddr::V4(Ipv4Addr::new(127, 1, (n / 250) as u8, (n % 250 + 1) as u8))
}

/// A TLS client trusting the certificates in `ca` (PEM), speaking HTTP/1.1 (the upgrade).
pub(crate) fn tls(ca: &Path) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(cert?)?;
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Runs `open(i)` for `0..n`, `OPENING` at a time, in order of completion.
pub(crate) async fn open_all<T, F, Fut>(n: usize, open: F) -> Result<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    stream::iter(0..n)
        .map(open)
        .buffer_unordered(OPENING)
        .try_collect()
        .await
}

/// Palisade's gateway, reached at `addr` under its public URL.
#[derive(Clone)]
pub(crate) struct Gateway {
    pub base: String,
    pub addr: SocketAddr,
    pub tls: Arc<rustls::ClientConfig>,
}

impl Gateway {
    pub(crate) fn new(base: &str, ca: &Path) -> Result<Self> {
        let authority = base.strip_prefix("https://").context("an https:// base")?;
        let port: u16 = authority
            .rsplit_once(':')
            .map(|(_, p)| p.parse())
            .transpose()?
            .unwrap_or(443);
        Ok(Self {
            base: base.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            tls: tls(ca)?,
        })
    }

    /// A connection authenticated by a session cookie from the site's own Origin, as the
    /// account's pages open it, past its welcome; with the account's id.
    pub(crate) async fn open(&self, cookie: &str, from: IpAddr) -> Result<(Connection, String)> {
        let url = format!("{}/ws", self.base.replacen("https://", "wss://", 1));
        let mut connection = Connect::new(url, self.tls.clone())
            .at(self.addr)
            .from(from)
            .origin(&self.base)
            .header("cookie", cookie)
            .open()
            .await?;
        match connection.frame().await? {
            ServerFrame::Welcome { subject, .. } => Ok((connection, subject)),
            other => anyhow::bail!("expected a welcome, got {other:?}"),
        }
    }
}
