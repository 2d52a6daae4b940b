//! `palisade scan`: the scanners of `palisade-scan` on the command line. They need no
//! configuration and no database: they look at a deployment from outside. The report goes to
//! stdout (or `--output`), progress to stderr, and the exit code says the highest severity
//! found: 0 nothing above info, 3 low, 4 medium, 5 high, 6 critical; 1 the scan failed, 2 bad
//! usage.

use std::io::{BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use palisade_scan::finding::Report;
use palisade_scan::jwt::{self, Candidates, Mask, Placement, Signer};
use palisade_scan::output::{self, Format};
use palisade_scan::tls;

#[derive(Subcommand)]
pub(crate) enum ScanCommand {
    /// Audit a JWT offline (header, claims, key set, weak HMAC secret) and, with --target,
    /// probe a service that accepts it.
    Jwt(Box<JwtArgs>),
    /// Audit a TLS server: protocol versions, suites and groups it accepts, its certificate
    /// chain, OCSP stapling, ALPN, HSTS, and Mozilla's modern and intermediate profiles.
    Tls(TlsArgs),
}

/// Where the report goes and in what form.
#[derive(Args)]
struct ReportArgs {
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
    /// Write the report here instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
pub(crate) struct TlsArgs {
    /// The server, as host:port (port 443 when left out).
    target: String,
    /// The name to send as SNI and to check the certificate against, when it is not the host.
    #[arg(long, value_name = "NAME")]
    sni: Option<String>,
    /// Also trust this CA certificate (PEM; repeatable).
    #[arg(long, value_name = "FILE")]
    ca_cert: Vec<PathBuf>,
    /// Trust only the --ca-cert roots, not the system's.
    #[arg(long)]
    no_system_roots: bool,
    /// Seconds to wait for each connection and each answer.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
    #[command(flatten)]
    report: ReportArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
    Sarif,
}

#[derive(Args)]
pub(crate) struct JwtArgs {
    /// The token, or `-` to read it from stdin (which keeps it out of the process list).
    token: String,
    /// A JWK Set to audit and to use for algorithm-confusion probes: an http(s) URL or a file.
    #[arg(long, value_name = "URL|FILE")]
    jwks: Option<String>,
    /// A word list of candidate HMAC secrets, one per line, streamed (repeatable).
    #[arg(long, value_name = "FILE")]
    wordlist: Vec<PathBuf>,
    /// A mask of candidate secrets, e.g. `secret?d?d` (?l ?u ?d ?s ?a ?h ??; repeatable).
    #[arg(long)]
    mask: Vec<String>,
    /// Do not try the built-in list of common secrets.
    #[arg(long)]
    no_common_secrets: bool,
    /// Threads for guessing secrets (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// The longest token lifetime, in seconds, not reported.
    #[arg(long, default_value_t = 86_400)]
    max_lifetime: i64,
    /// Probe this URL, which answers differently to the token and to no token.
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    /// The HTTP method of the probes.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Send the token in this header instead of `Authorization: Bearer`.
    #[arg(long, value_name = "NAME")]
    header: Option<String>,
    /// Send the token in this cookie instead of `Authorization: Bearer`.
    #[arg(long, value_name = "NAME", conflicts_with = "header")]
    cookie: Option<String>,
    /// A file holding the HMAC secret that signs the token, for the probes that need a key.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// A PKCS#8 PEM private key that signs tokens the target accepts.
    #[arg(long, value_name = "FILE", conflicts_with = "secret_file")]
    key: Option<PathBuf>,
    /// Where the listener serving jku/x5u probes binds.
    #[arg(long, default_value = "127.0.0.1:0")]
    callback_bind: SocketAddr,
    /// The URL at which the target reaches that listener, when it is not on this host.
    #[arg(long, value_name = "URL")]
    callback_url: Option<String>,
    /// Also trust this CA certificate (PEM) for HTTPS (repeatable).
    #[arg(long, value_name = "FILE")]
    ca_cert: Vec<PathBuf>,
    /// Accept any TLS certificate from the target.
    #[arg(long)]
    insecure: bool,
    /// Print a cracked secret in full (by default only its length and ends are shown).
    #[arg(long)]
    reveal_secrets: bool,
    #[command(flatten)]
    report: ReportArgs,
}

pub(crate) async fn run(command: ScanCommand) -> anyhow::Result<ExitCode> {
    match command {
        ScanCommand::Jwt(args) => scan_jwt(*args).await,
        ScanCommand::Tls(args) => scan_tls(args).await,
    }
}

async fn scan_tls(args: TlsArgs) -> anyhow::Result<ExitCode> {
    let mut ca_certs = Vec::new();
    for path in &args.ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        ca_certs.extend(
            tls::certificates_from_pem(&pem).with_context(|| format!("{}", path.display()))?,
        );
    }
    let report = tls::scan(tls::Options {
        target: args.target.clone(),
        server_name: args.sni.clone(),
        ca_certs,
        system_roots: !args.no_system_roots,
        timeout: Duration::from_secs(args.timeout),
        progress: !args.report.quiet,
    })
    .await?;
    emit(&report, &args.report)
}

/// Writes the report where asked; the exit code says the highest severity found.
fn emit(report: &Report, args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let format = match args.format {
        OutputFormat::Text => Format::Text,
        OutputFormat::Json => Format::Json,
        OutputFormat::Sarif => Format::Sarif,
    };
    let rendered = output::render(report, format);
    match &args.output {
        Some(path) => {
            std::fs::write(path, rendered).with_context(|| format!("{}", path.display()))?
        }
        None => print!("{rendered}"),
    }
    Ok(ExitCode::from(report.exit_code()))
}

async fn scan_jwt(args: JwtArgs) -> anyhow::Result<ExitCode> {
    let token = if args.token == "-" {
        let mut t = String::new();
        std::io::stdin()
            .read_to_string(&mut t)
            .context("reading the token from stdin")?;
        t
    } else {
        args.token.clone()
    };
    let mut candidates = Vec::new();
    if !args.no_common_secrets {
        candidates.push(Candidates::BuiltIn);
    }
    for path in &args.wordlist {
        let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
        candidates.push(Candidates::Wordlist(Box::new(BufReader::with_capacity(
            1 << 20,
            file,
        ))));
    }
    for mask in &args.mask {
        candidates.push(Candidates::Mask(Mask::parse(mask)?));
    }
    let signer = match (&args.secret_file, &args.key) {
        (Some(path), _) => {
            let secret = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
            let secret = secret.strip_suffix(b"\n").unwrap_or(&secret).to_vec();
            Some(Signer::hmac(jwt::Token::parse(&token)?.alg(), secret)?)
        }
        (None, Some(path)) => {
            let pem =
                std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
            Some(Signer::from_pkcs8_pem(&pem)?)
        }
        (None, None) => None,
    };
    let target = match &args.target {
        None => None,
        Some(url) => Some(jwt::Target {
            url: url.clone(),
            method: args.method.parse().context("--method")?,
            placement: match (&args.header, &args.cookie) {
                (Some(h), _) => Placement::Header(h.clone()),
                (None, Some(c)) => Placement::Cookie(c.clone()),
                (None, None) => Placement::Bearer,
            },
            callback_bind: args.callback_bind,
            callback_url: args.callback_url.clone(),
        }),
    };
    let report = jwt::scan(jwt::Options {
        token,
        jwks: args.jwks.clone(),
        candidates,
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        progress: !args.report.quiet,
        max_lifetime: args.max_lifetime,
        signer,
        target,
        client: client(&args)?,
        reveal_secrets: args.reveal_secrets,
    })
    .await?;
    emit(&report, &args.report)
}

/// One client for every request of a scan: no redirects (a redirect to a sign-in page is an
/// answer, not a detour), a deadline per request.
fn client(args: &JwtArgs) -> anyhow::Result<reqwest::Client> {
    let mut roots = Vec::new();
    for path in &args.ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        roots.push(
            reqwest::Certificate::from_pem(&pem).with_context(|| format!("{}", path.display()))?,
        );
    }
    Ok(reqwest::Client::builder()
        .user_agent(concat!("palisade-scan/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .tls_certs_merge(roots)
        .tls_danger_accept_invalid_certs(args.insecure)
        .build()?)
}
