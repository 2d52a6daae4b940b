//! The load generator of bench/mtls_vs_nginx.sh. `handshakes`: full mutual-TLS handshakes per
//! second — each of `--connections` tasks repeatedly connects, completes a TLS handshake
//! presenting a client certificate (no session resumption, so every handshake is a full one),
//! sends one `GET /healthz` with `Connection: close`, and reads the answer to its end; the same
//! binary, settings and client work drive every server measured. `renewals`: SVIDs signed per
//! second, each task renewing over one keep-alive mTLS connection. Each prints one JSON document.

use anyhow::{Context, Result, bail};
use clap::Parser;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
enum Cli {
    /// Full mutual-TLS handshakes per second, one request per connection.
    Handshakes(Handshakes),
    /// SVIDs signed per second by renewal over keep-alive mTLS connections.
    Renewals(Renewals),
}

/// What every run needs: where, trusting what, presenting which certificate, how hard.
#[derive(clap::Args)]
struct Client {
    #[arg(long)]
    addr: SocketAddr,
    /// The CA bundle (PEM) the server's certificate chains to.
    #[arg(long)]
    ca: PathBuf,
    /// The client certificate (PEM) and its key.
    #[arg(long)]
    cert: PathBuf,
    #[arg(long)]
    key: PathBuf,
    #[arg(long, default_value_t = 32)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

#[derive(clap::Args)]
struct Renewals {
    #[command(flatten)]
    client: Client,
    /// The mTLS listener's base URL (its name must be the one in the node's SVID).
    #[arg(long)]
    base: String,
    /// A certificate signing request (PEM) sent with every renewal.
    #[arg(long)]
    csr: PathBuf,
}

#[derive(clap::Args)]
struct Handshakes {
    #[command(flatten)]
    client: Client,
    /// Key exchange: `x25519` (what OpenSSL 3.0 servers offer) or `default` (rustls' order,
    /// X25519MLKEM768 first).
    #[arg(long, default_value = "x25519")]
    groups: String,
}

/// The server's chain is verified against the bundle exactly as any client would, but its name
/// is not checked: the servers compared present certificates for different names (an SVID
/// names a SPIFFE ID), and the comparison is of handshake cost, identical on both.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn config(client: &Client, groups: &str) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&client.ca).context("--ca")? {
        roots.add(cert?)?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&client.cert)
        .context("--cert")?
        .collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&client.key).context("--key")?;
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    match groups {
        "x25519" => provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519],
        "default" => {}
        other => bail!("--groups must be x25519 or default, not {other}"),
    }
    let provider = Arc::new(provider);
    let verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)))
        .with_client_auth_cert(chain, key)?;
    config.resumption = Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// One full handshake and request; what was negotiated.
async fn once(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Result<String> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost")?;
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    // A server may end a `Connection: close` exchange without close_notify; what was read is
    // the answer.
    let _ = tls.read_to_end(&mut answer).await;
    if !answer.starts_with(b"HTTP/1.1 200") {
        bail!(
            "unexpected answer: {}",
            String::from_utf8_lossy(&answer[..answer.len().min(80)])
        );
    }
    let (_, session) = tls.get_ref();
    Ok(format!(
        "{:?} {:?} {:?}",
        session.protocol_version(),
        session.negotiated_cipher_suite().map(|s| s.suite()),
        session.negotiated_key_exchange_group().map(|g| g.name())
    ))
}

/// Runs `work` on `connections` tasks for `seconds`; successes and failures per second.
async fn load<F, Fut>(connections: usize, seconds: u64, work: F) -> serde_json::Value
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (stop, done, failed, work) =
                (stop.clone(), done.clone(), failed.clone(), work.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match work().await {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for task in tasks {
        let _ = task.await;
    }
    let done = done.load(Ordering::Relaxed);
    serde_json::json!({
        "per_second": done as f64 / elapsed,
        "done": done,
        "failed": failed.load(Ordering::Relaxed),
        "seconds": elapsed,
        "connections": connections,
    })
}

async fn handshakes(cli: Handshakes) -> Result<serde_json::Value> {
    let config = config(&cli.client, &cli.groups)?;
    let addr = cli.client.addr;
    let negotiated = once(addr, config.clone()).await?;
    let mut result = load(cli.client.connections, cli.client.seconds, move || {
        let config = config.clone();
        async move { once(addr, config).await.map(|_| ()) }
    })
    .await;
    result["negotiated"] = negotiated.into();
    Ok(result)
}

async fn renewals(cli: Renewals) -> Result<serde_json::Value> {
    let c = &cli.client;
    let bundle = std::fs::read(&c.ca).context("--ca")?;
    let mut identity = std::fs::read(&c.cert).context("--cert")?;
    identity.extend(std::fs::read(&c.key).context("--key")?);
    let csr = std::fs::read_to_string(&cli.csr).context("--csr")?;
    let host = cli
        .base
        .trim_start_matches("https://")
        .split(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&bundle)?])
        .identity(reqwest::Identity::from_pem(&identity)?)
        .resolve(&host, c.addr)
        .build()?;
    let url = format!("{}/ca/svid/renew", cli.base);
    let body = serde_json::json!({ "csr": csr });
    Ok(load(c.connections, c.seconds, move || {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move {
            let r = client.post(url).json(&body).send().await?;
            if r.status() != 201 {
                bail!("renewal answered {}", r.status());
            }
            Ok(())
        }
    })
    .await)
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let result = match Cli::parse() {
        Cli::Handshakes(cli) => handshakes(cli).await?,
        Cli::Renewals(cli) => renewals(cli).await?,
    };
    println!("{result}");
    Ok(())
}
