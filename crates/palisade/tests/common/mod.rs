//! Test harness: starts the real `palisade` binary on ephemeral loopback ports with its own data
//! directory, captures its logs, and talks to it over TLS like a browser would.

#![allow(dead_code)]

pub(crate) mod dpop_key;
pub(crate) mod factors;
pub(crate) mod flow;
pub(crate) mod nodes;
pub(crate) mod pebble;
pub(crate) mod realtime;
pub(crate) mod social;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// Every secret a test's agents sent or received: passwords and codes they submitted, cookie
/// values they were given. nextest runs each test in its own process, so this list belongs to
/// one test; when its server is dropped, its logs are checked for all of them (TOK-6).
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub(crate) fn remember_secret(value: &str) {
    // Six-digit TOTP codes are skipped: such digit runs occur in any log's timestamps.
    if value.len() >= 8 && !value.bytes().all(|b| b.is_ascii_digit()) {
        SECRETS.lock().unwrap().push(value.to_owned());
    }
}

/// Form fields whose values are secrets.
const SECRET_FIELDS: &[&str] = &[
    "password",
    "current_password",
    "new_password",
    "code",
    "csrf",
];

pub(crate) struct Server {
    child: Option<Child>,
    pub https: SocketAddr,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    /// The mTLS listener, when `ca.mtls_listen` is configured.
    pub mtls: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    logs: Arc<Mutex<Vec<String>>>,
    database_url: String,
    /// The settings the server was started with; commands run beside it get them too.
    env: Vec<(String, String)>,
}

#[derive(Clone)]
pub(crate) struct Options {
    pub env: Vec<(String, String)>,
    pub backend: Backend,
    /// A database other nodes share, instead of a fresh one.
    pub database_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            env: Vec::new(),
            backend: Backend::Sqlite,
            database_url: None,
        }
    }
}

pub(crate) use palisade_store::Backend;

impl Options {
    pub(crate) fn on(backend: Backend) -> Self {
        Self {
            backend,
            ..Self::default()
        }
    }

    pub(crate) fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Configures `var` (a list of SHA-256 digests) to accept the API key `key`.
    pub(crate) fn accepting_key(self, var: &str, key: &str) -> Self {
        let digest = palisade_crypto::sha256_hex(key.as_bytes());
        self.env(var, format!("[\"{digest}\"]"))
    }
}

pub(crate) fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_palisade")
}

impl Server {
    pub(crate) async fn start() -> Server {
        Self::start_with(Options::default()).await
    }

    pub(crate) async fn start_with(options: Options) -> Server {
        palisade_tls::install_crypto_provider();
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = match (&options.database_url, options.backend) {
            (Some(url), _) => url.clone(),
            (None, Backend::Sqlite) => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("data/palisade.db").display()
            ),
            (None, Backend::Postgres) => palisade_store::test_support::postgres_url().await,
        };
        let (child, logs, [https, http, admin], mtls) =
            serve(dir.path(), &database_url, &options.env);
        Server {
            https,
            http,
            admin,
            mtls,
            child: Some(child),
            dir,
            logs,
            database_url,
            env: options.env.clone(),
        }
    }

    /// Stops the server (SIGTERM, waiting for it to exit) and starts it again on the same data
    /// directory, database and settings; its listeners get new ports, and its log starts over.
    pub(crate) async fn restart(&mut self) {
        self.signal("TERM");
        assert!(exit_of(self.child.as_mut().unwrap()).await.success());
        let (child, logs, [https, http, admin], mtls) =
            serve(self.dir.path(), &self.database_url, &self.env);
        (self.child, self.logs) = (Some(child), logs);
        (self.https, self.http, self.admin, self.mtls) = (https, http, admin, mtls);
    }

    pub(crate) fn base(&self) -> String {
        format!("https://{}", self.https)
    }

    pub(crate) fn database_url(&self) -> &str {
        &self.database_url
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.data_dir().join("tls/dev-ca.pem")).expect("dev CA")
    }

    /// A plain client trusting only the development CA, not following redirects, sending
    /// nothing by itself: for requests the test shapes header by header.
    pub(crate) fn http_client(&self) -> reqwest::Client {
        self.http_client_from(None)
    }

    /// The same, connecting from another loopback address when given.
    pub(crate) fn http_client_from(&self, local: Option<IpAddr>) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&self.ca_pem()).unwrap()])
            .redirect(reqwest::redirect::Policy::none())
            .local_address(local)
            .build()
            .unwrap()
    }

    pub(crate) fn agent(&self) -> Agent {
        Agent::new(self, None)
    }

    /// An agent whose connections come from another loopback address.
    pub(crate) fn agent_from(&self, ip: IpAddr) -> Agent {
        Agent::new(self, Some(ip))
    }

    pub(crate) fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    pub(crate) fn logs_handle(&self) -> Arc<Mutex<Vec<String>>> {
        self.logs.clone()
    }

    /// Fails if any of `secrets` appears anywhere in what the server logged (TOK-6).
    /// Returns once everything the server logged before this call has been read: a request
    /// with a trace id of its own is made, and its log line awaited (lines arrive in order).
    pub(crate) async fn logs_flushed(&self) {
        let trace_id = palisade_crypto::sha256_hex(palisade_crypto::random_token().as_bytes());
        let trace_id = &trace_id[..32];
        let r = self
            .http_client()
            .get(format!("{}/healthz", self.base()))
            .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        eventually(
            Duration::from_secs(10),
            "the server's logs read",
            || async { self.logs().contains(trace_id).then_some(()) },
        )
        .await;
    }

    /// Fails if any of `secrets` appears anywhere in what the server logged (TOK-6), once the
    /// logs are flushed. A secret of digits only (a TOTP code) is looked for as a whole number
    /// in the logged text, leaving out the fields of time — a timestamp's microseconds or a
    /// duration may hold any six digits.
    pub(crate) async fn assert_logs_free_of(&self, secrets: &[&str]) {
        self.logs_flushed().await;
        let logs = self.logs();
        assert!(
            logs.len() > 1000,
            "expected substantial logs, got {} bytes",
            logs.len()
        );
        for s in secrets {
            assert!(s.len() >= 6, "secret too short to search for: {s:?}");
            let logged = if s.bytes().all(|b| b.is_ascii_digit()) {
                logs.lines().any(|line| number_logged(line, s))
            } else {
                logs.contains(s)
            };
            assert!(!logged, "a secret reached the logs: {s:?}");
        }
    }

    pub(crate) async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then wait for the exit status (asynchronously, so that this test's own client
    /// connections keep answering the server's shutdown handshake).
    pub(crate) async fn stop(self) -> ExitStatus {
        self.signal("TERM");
        self.exited().await
    }

    /// Sends `method path` with `headers` and the first half of `body` on a connection of its
    /// own, and returns once the server has the request in flight (its handler waiting for the
    /// rest of the body).
    pub(crate) async fn request_in_flight(
        &self,
        method_path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> HeldRequest {
        use tokio::io::AsyncWriteExt;
        let ca = self.data_dir().join("tls/dev-ca.pem");
        let mut stream = connect(self.https, http1_client(&[&ca]), "localhost")
            .await
            .unwrap();
        let mut head = format!("{method_path} HTTP/1.1\r\nhost: localhost\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        ));
        let (first, rest) = body.split_at(body.len() / 2);
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(first.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        self.until_in_flight(1).await;
        HeldRequest {
            stream,
            rest: rest.to_owned(),
        }
    }

    /// PLT-6: the server's readiness answer on its admin listener.
    pub(crate) async fn readiness(&self) -> (u16, serde_json::Value) {
        let r = reqwest::get(format!("http://{}/readyz", self.admin))
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// Waits until the server has exactly `n` requests in flight.
    pub(crate) async fn until_in_flight(&self, n: u32) {
        let line = format!("palisade_http_requests_in_flight {n}");
        eventually(Duration::from_secs(10), &line, || async {
            self.metrics()
                .await
                .lines()
                .any(|l| l == line)
                .then_some(())
        })
        .await;
    }

    /// Waits for the server to exit by itself (after a signal sent earlier).
    pub(crate) async fn exited(mut self) -> ExitStatus {
        exit_of(self.child.as_mut().unwrap()).await
    }

    /// Runs a `palisade` command beside the server, on its data directory and database.
    pub(crate) fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_with_input(args, "")
    }

    /// Gives the default tenant's account of `email` the role `role` with the CLI.
    pub(crate) fn set_role(&self, email: &str, role: &str) {
        let out = self.cli(&["admin", "set-role", "--email", email, "--role", role]);
        assert!(
            out.status.success(),
            "set-role {role}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `palisade ARGS` with `input` on standard input (passwords are read from there), in an
    /// environment as clean as the server's. Every call checks the output contract: a command
    /// that succeeded (or failed with a finding) printed exactly one JSON document on stdout;
    /// one that failed otherwise printed nothing there and said why once, as stderr's last
    /// line; every other stderr line is a JSON log line.
    pub(crate) fn cli_with_input(&self, args: &[&str], input: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(binary())
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().cloned())
            .env("PALISADE_DATA_DIR", self.data_dir())
            .env("PALISADE_DATABASE__URL", self.database_url())
            .env("PALISADE_LOG__LEVEL", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut lines: Vec<&str> = stderr.lines().collect();
        // A result, or a finding (a log that fails verification exits non-zero with its report).
        let reported = out.status.success() || !out.stdout.is_empty();
        if reported {
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                panic!(
                    "palisade {args:?}: stdout is not one JSON document ({e}): {}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
        } else {
            let last = lines.pop().unwrap_or_default();
            assert!(last.starts_with("palisade: "), "{args:?}: {stderr}");
            let reason = &last["palisade: ".len()..];
            assert!(
                !lines.iter().any(|l| l.contains(reason)),
                "palisade {args:?}: the error is said once: {stderr}"
            );
        }
        for line in lines {
            assert!(
                serde_json::from_str::<serde_json::Value>(line).is_ok(),
                "palisade {args:?}: a stderr line that is not a JSON log line: {line}"
            );
        }
        out
    }

    /// The server's signing key, as an insider holding the sealing key could load it: what it
    /// signs passes the signature check and reaches the claim checks.
    pub(crate) async fn signing_key(&self) -> Arc<palisade_jose::keys::SigningKey> {
        let sealing = std::fs::read_to_string(self.data_dir().join("sealing.key")).unwrap();
        let sealing = data_encoding::BASE64
            .decode(sealing.trim().as_bytes())
            .unwrap();
        let ring = palisade_jose::keyring::KeyRing::open(
            self.db().await,
            palisade_crypto::SealingKey::from_bytes(&sealing).unwrap(),
            palisade_jose::keyring::KeyPolicy {
                algorithm: palisade_jose::keys::Algorithm::EdDSA,
                rotation_interval_ms: i64::MAX / 4,
                publish_ahead_ms: 3_600_000,
                retire_after_ms: 3_600_000,
            },
        )
        .await
        .unwrap();
        ring.signing_key()
    }

    /// Registers an OAuth client with `palisade clients create ARGS`; returns its JSON.
    pub(crate) fn register_client(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cli(&[&["clients", "create"], args].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A client_credentials access token for the client `id` with secret `secret`.
    pub(crate) async fn client_credentials_token(&self, id: &str, secret: &str) -> String {
        let r: serde_json::Value = self
            .http_client()
            .post(format!("{}/oauth/token", self.base()))
            .basic_auth(id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["access_token"].as_str().unwrap().to_owned()
    }

    /// GETs a public JSON document.
    pub(crate) async fn fetch_json(&self, path: &str) -> serde_json::Value {
        let r = self
            .http_client()
            .get(format!("{}{path}", self.base()))
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    /// The keys of the published JWKS, as a client would load them.
    pub(crate) async fn published_keys(&self) -> Vec<palisade_jose::keys::PublicKey> {
        let jwks = self.fetch_json("/.well-known/jwks.json").await;
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                let jwk: palisade_jose::keys::Jwk = serde_json::from_value(k.clone()).unwrap();
                palisade_jose::keys::PublicKey::from_jwk(&jwk).unwrap()
            })
            .collect()
    }

    /// A handle on the server's own database.
    pub(crate) async fn db(&self) -> palisade_store::Db {
        palisade_store::Db::connect(&self.database_url, 1)
            .await
            .unwrap()
    }

    /// The security events recorded so far, oldest first, as `action outcome` pairs.
    pub(crate) async fn events(&self) -> Vec<(String, String, Option<String>)> {
        let db = self.db().await;
        let rows: Vec<(String, String, Option<String>)> =
            sqlx::query_as("SELECT action, outcome, actor FROM security_events ORDER BY seq")
                .fetch_all(db.pool())
                .await
                .unwrap();
        db.close().await;
        rows
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            // What went wrong on the server's side, for whoever reads the failure.
            let logs = self.logs.lock().unwrap();
            let problems: Vec<&String> = logs
                .iter()
                .filter(|l| l.contains("\"ERROR\"") || l.contains("\"WARN\""))
                .collect();
            for line in problems.iter().rev().take(40).rev() {
                eprintln!("server {}: {line}", self.https);
            }
        } else {
            let logs = self.logs();
            for secret in SECRETS.lock().unwrap().iter() {
                assert!(
                    !logs.contains(secret.as_str()),
                    "a secret reached the logs: {secret:?}"
                );
            }
        }
    }
}

/// Starts `cmd` (with a clean environment but `PATH`, debug logs and captured output) and waits
/// for its first log line containing `marker`.
/// Whether `digits` is a whole number in the text of a log line, outside its time fields.
fn number_logged(line: &str, digits: &str) -> bool {
    fn texts(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(items) => items.iter().for_each(|i| texts(i, out)),
            serde_json::Value::Object(fields) => fields
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "timestamp" | "elapsed" | "elapsed_secs"))
                .for_each(|(_, v)| texts(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(v) => texts(&v, &mut found),
        Err(_) => found.push(line.to_owned()),
    }
    found.iter().any(|t| {
        t.split(|c: char| !c.is_ascii_digit())
            .any(|run| run == digits)
    })
}

/// The exit status of `child`, polled asynchronously (so that the test's own client connections
/// keep answering the server's shutdown handshake) for at most 30 seconds.
async fn exit_of(child: &mut Child) -> ExitStatus {
    eventually(Duration::from_secs(30), "the server to stop", || {
        let status = child.try_wait().unwrap();
        async move { status }
    })
    .await
}

/// A request the server holds in flight (see [`Server::request_in_flight`]).
pub(crate) struct HeldRequest {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    rest: String,
}

impl HeldRequest {
    /// Sends the rest of the body; the whole answer, as received.
    pub(crate) async fn finish(mut self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.stream.write_all(self.rest.as_bytes()).await.unwrap();
        let mut answer = String::new();
        self.stream.read_to_string(&mut answer).await.unwrap();
        answer
    }
}

/// A TLS connection to `addr` for the server name `name`.
pub(crate) async fn connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, std::io::Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(config)
        .connect(
            rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap(),
            tcp,
        )
        .await
}

/// A client trusting `ca` that speaks HTTP/1.1 only, for requests written by hand.
pub(crate) fn http1_client(ca: &[&Path]) -> Arc<rustls::ClientConfig> {
    let mut config = (*tls_client(ca)).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A started server: the process, its log lines, its HTTPS, HTTP and admin addresses, and its
/// mTLS address if it has that listener.
type Serving = (
    Child,
    Arc<Mutex<Vec<String>>>,
    [SocketAddr; 3],
    Option<SocketAddr>,
);

/// `palisade serve` in `dir` on `database_url` with `env`, once it listens.
fn serve(dir: &Path, database_url: &str, env: &[(String, String)]) -> Serving {
    let mut cmd = Command::new(binary());
    cmd.arg("serve")
        .current_dir(dir)
        .env("PALISADE_DATA_DIR", dir.join("data"))
        .env("PALISADE_SERVER__HTTPS_LISTEN", "127.0.0.1:0")
        .env("PALISADE_SERVER__HTTP_LISTEN", "127.0.0.1:0")
        .env("PALISADE_SERVER__ADMIN_LISTEN", "127.0.0.1:0")
        .env("PALISADE_DATABASE__URL", database_url);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (child, logs, line) = spawn_until(cmd, "palisade listening");
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    let addr = |k: &str| v["fields"][k].as_str().unwrap().parse().unwrap();
    let mtls = v["fields"]["mtls"].as_str().map(|a| a.parse().unwrap());
    (
        child,
        logs,
        [addr("https"), addr("http"), addr("admin")],
        mtls,
    )
}

fn spawn_until(mut cmd: Command, marker: &str) -> (Child, Arc<Mutex<Vec<String>>>, String) {
    let envs: Vec<_> = cmd
        .get_envs()
        .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
        .collect();
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PALISADE_LOG__LEVEL", "debug");
    for (k, v) in envs {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn palisade");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel::<String>();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let logs = logs.clone();
        let tx = tx.clone();
        let marker = marker.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if line.contains(&marker) {
                    let _ = tx.send(line.clone());
                }
                logs.lock().unwrap().push(line);
            }
        });
    }
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(line) => (child, logs, line),
        Err(_) => {
            let _ = child.kill();
            panic!(
                "{marker:?} never logged:\n{}",
                logs.lock().unwrap().join("\n")
            );
        }
    }
}

/// A `palisade witness` process (AUD-4) cosigning one log, with its own data directory and
/// SQLite state.
pub(crate) struct WitnessProcess {
    child: Child,
    _dir: tempfile::TempDir,
    logs: Arc<Mutex<Vec<String>>>,
    pub url: String,
}

impl WitnessProcess {
    pub(crate) fn start(name: &str, skey: &str, log_origin: &str, log_vkey: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(binary());
        cmd.arg("witness")
            .current_dir(dir.path())
            .env("PALISADE_DATA_DIR", dir.path().join("data"))
            .env(
                "PALISADE_DATABASE__URL",
                format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("witness.db").display()
                ),
            )
            .env("PALISADE_WITNESS__LISTEN", "127.0.0.1:0")
            .env("PALISADE_WITNESS__NAME", name)
            .env("PALISADE_WITNESS__SIGNING_KEY", skey)
            .env(
                "PALISADE_WITNESS__LOGS",
                format!("[{{origin=\"{log_origin}\", vkey=\"{log_vkey}\"}}]"),
            );
        let (child, logs, line) = spawn_until(cmd, "palisade witness listening");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        let url = format!("http://{}", v["fields"]["addr"].as_str().unwrap());
        Self {
            child,
            _dir: dir,
            logs,
            url,
        }
    }

    pub(crate) fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns `Some`, failing after `timeout`.
pub(crate) async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub(crate) struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Response {
    pub(crate) fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub(crate) fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    /// The hidden inputs of the page's forms (name, value), unescaped, except the CSRF token
    /// (which agents add themselves): what a browser posts back.
    pub(crate) fn hidden_fields(&self) -> Vec<(String, String)> {
        let unescape = |s: &str| {
            s.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#x27;", "'")
                .replace("&#34;", "\"")
                .replace("&#39;", "'")
                .replace("&#60;", "<")
                .replace("&#62;", ">")
                .replace("&amp;", "&")
                .replace("&#38;", "&")
        };
        self.body
            .split(r#"<input type="hidden" name=""#)
            .skip(1)
            .filter_map(|rest| {
                let (name, rest) = rest.split_once('"')?;
                let value = rest.strip_prefix(r#" value=""#)?.split_once('"')?.0;
                Some((unescape(name), unescape(value)))
            })
            .filter(|(name, _)| name != "csrf")
            .collect()
    }

    /// The text of the element with this id (first occurrence), for simple assertions.
    pub(crate) fn element_text(&self, id: &str) -> Option<String> {
        let marker = format!("id=\"{id}\"");
        let start = self.body.find(&marker)?;
        let open_end = self.body[start..].find('>')? + start + 1;
        let close = self.body[open_end..].find("</")? + open_end;
        Some(self.body[open_end..close].trim().to_owned())
    }
}

/// A cookie-keeping HTTPS client that trusts only the server's development CA and does not
/// follow redirects, so each step of a flow can be asserted.
pub(crate) struct Agent {
    client: reqwest::Client,
    pub base: String,
    pub cookies: BTreeMap<String, String>,
}

impl Agent {
    fn new(server: &Server, local: Option<IpAddr>) -> Self {
        Self {
            client: server.http_client_from(local),
            base: server.base(),
            cookies: BTreeMap::new(),
        }
    }

    pub(crate) fn csrf(&self) -> String {
        self.cookies
            .get("__Host-palisade-csrf")
            .cloned()
            .expect("no CSRF cookie yet: GET a page first")
    }

    pub(crate) fn session(&self) -> Option<&String> {
        self.cookies.get("__Host-palisade-session")
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Response {
        let req = if self.cookies.is_empty() {
            req
        } else {
            req.header("cookie", self.cookie_header())
        };
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        let r = Response {
            status,
            headers,
            body,
        };
        for c in r.set_cookies() {
            let first = c.split(';').next().unwrap();
            let (k, v) = first.split_once('=').unwrap();
            remember_secret(v);
            if c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        r
    }

    pub(crate) async fn get(&mut self, path: &str) -> Response {
        let req = self
            .client
            .get(format!("{}{path}", self.base))
            .header("accept", "text/html");
        self.send(req).await
    }

    pub(crate) async fn get_json(&mut self, path: &str) -> Response {
        let req = self.client.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    /// Posts a form the way a browser on this site does (Origin set, CSRF field included).
    pub(crate) async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        let csrf = self.csrf();
        let mut all: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        all.extend_from_slice(fields);
        for (name, value) in &all {
            if SECRET_FIELDS.contains(name) {
                remember_secret(value);
            }
        }
        let body = encode_form(&all);
        self.post_raw(
            path,
            "application/x-www-form-urlencoded",
            body.into_bytes(),
            true,
        )
        .await
    }

    pub(crate) async fn post_raw(
        &mut self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        same_origin: bool,
    ) -> Response {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .header("accept", "text/html")
            .body(body);
        if same_origin {
            req = req
                .header("origin", self.base.clone())
                .header("sec-fetch-site", "same-origin");
        }
        self.send(req).await
    }

    /// Posts JSON the way this site's own scripts do (same origin, CSRF token in a header).
    pub(crate) async fn post_json(&mut self, path: &str, body: &serde_json::Value) -> Response {
        let req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("origin", self.base.clone())
            .header("sec-fetch-site", "same-origin")
            .header("x-csrf-token", self.csrf())
            .body(body.to_string());
        self.send(req).await
    }

    pub(crate) async fn sign_up(&mut self, email: &str, password: &str) {
        self.get("/signup").await;
        let r = self
            .post_form("/signup", &[("email", email), ("password", password)])
            .await;
        assert_eq!(r.status, 303, "sign-up: {}", r.body);
        assert_eq!(r.location(), "/login?notice=signed_up");
    }

    /// Signs in with a password; returns the response (303 to /account, or to /login/mfa).
    pub(crate) async fn log_in(&mut self, email: &str, password: &str) -> Response {
        self.get("/login").await;
        self.post_form("/login", &[("email", email), ("password", password)])
            .await
    }

    pub(crate) async fn log_out(&mut self) {
        let r = self.post_form("/logout", &[]).await;
        assert_eq!(r.status, 303, "logout: {}", r.body);
        assert!(self.session().is_none(), "logout clears the session cookie");
    }
}

pub(crate) fn encode_form(fields: &[(&str, &str)]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        write!(out, "{}={}", enc(k), enc(v)).unwrap();
    }
    out
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// sslyze (PyPI) finds `target` (`name:port{ip}`) compliant with Mozilla's "intermediate"
/// configuration, and the chain it serves valid against `ca` and in order; the report is
/// written to `report`.
pub(crate) fn assert_mozilla_intermediate(target: &str, ca: &Path, report: &Path) {
    let out = Command::new(installed_tool(
        "PALISADE_TEST_SSLYZE",
        "/opt/sslyze/bin/sslyze",
    ))
    .args(["--quiet", "--mozilla_config", "intermediate", "--json_out"])
    .arg(report)
    .arg("--certinfo_ca_file")
    .arg(ca)
    .arg(target)
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "Mozilla intermediate: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The report gives RSA moduli (of a CA's certificate) as JSON integers beyond any
    // floating-point range; they are not looked at, so each long run of digits becomes a 0.
    let text = std::fs::read_to_string(report).unwrap();
    let mut tamed = String::with_capacity(text.len());
    let mut digits = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        tamed.push_str(if digits.len() > 300 { "0" } else { &digits });
        digits.clear();
        tamed.push(c);
    }
    tamed.pop();
    let report: serde_json::Value = serde_json::from_str(&tamed).unwrap();
    let deployment = &report["server_scan_results"][0]["scan_result"]["certificate_info"]["result"]
        ["certificate_deployments"][0];
    let supplied = deployment["path_validation_results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["trust_store"]["name"] == "Supplied CA file")
        .expect("a validation against the CA file");
    assert_eq!(supplied["was_validation_successful"], true, "{supplied}");
    assert_eq!(deployment["received_chain_has_valid_order"], true);
}

/// A tool the test command installs: the path in `var`, or `default` where it installs it.
pub(crate) fn installed_tool(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.exists(),
        "{} is not there (scripts/test installs it; {var} names another place)",
        path.display()
    );
    path
}

/// RES-7: calls `request` until a limiter answers `429`, as a flooding client would, each
/// answer before that being `admitted`; returns how many were let through and the last
/// `Retry-After`. Fails if no 429 comes within a hundred requests.
pub(crate) async fn flood_until_limited<F, Fut>(admitted: u16, mut request: F) -> (u32, Option<u64>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (u16, Option<u64>)>,
{
    for accepted in 0..100 {
        match request().await {
            (429, retry_after) => return (accepted, retry_after),
            (status, _) => assert_eq!(status, admitted, "request {accepted}"),
        }
    }
    panic!("no 429 in a hundred requests");
}

/// RES-7: a limiter of `per_minute` (a burst of as many, then one every 60/`per_minute` s)
/// with `burst` of its allowance left at `since` let `accepted` requests through: at least
/// that burst, and no more than the burst plus what the elapsed time refilled — a check that
/// holds whatever the machine's speed.
pub(crate) fn assert_within_rate(accepted: u32, burst: u32, per_minute: u32, since: Instant) {
    let refilled = (since.elapsed().as_secs_f64() * f64::from(per_minute) / 60.0).floor() as u32;
    assert!(
        (burst..=burst + refilled).contains(&accepted),
        "{accepted} let through: a burst of {burst}, {refilled} refilled since"
    );
}

/// A wall clock the test moves forward for the server alone, with libfaketime (scripts/test
/// installs it): expiry is then tested by moving time, not by waiting for it. Monotonic time is
/// left alone, so the server's timers and timeouts behave as usual.
pub(crate) struct Clock {
    dir: tempfile::TempDir,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let clock = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(clock.file(), "+0\n").unwrap();
        clock
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("offset")
    }

    /// `options` with the server's wall clock under this clock's control.
    pub(crate) fn on(&self, options: Options) -> Options {
        let library = installed_tool(
            "PALISADE_TEST_FAKETIME",
            "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        );
        options
            .env("LD_PRELOAD", library.to_str().unwrap())
            .env("FAKETIME_TIMESTAMP_FILE", self.file().to_str().unwrap())
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("FAKETIME_CACHE_DURATION", "1")
    }

    /// Moves the server's clock to `ahead` past real time, and returns once its answers are
    /// dated that late.
    pub(crate) async fn advance(&self, server: &Server, ahead: Duration) {
        std::fs::write(self.file(), format!("+{}\n", ahead.as_secs())).unwrap();
        let target = std::time::SystemTime::now() + ahead - Duration::from_secs(5);
        eventually(
            Duration::from_secs(20),
            "the server's clock moved",
            || async {
                let r = reqwest::get(format!("http://{}/healthz", server.admin))
                    .await
                    .ok()?;
                let date = httpdate::parse_http_date(r.headers()["date"].to_str().ok()?).ok()?;
                (date >= target).then_some(())
            },
        )
        .await;
    }
}

/// What a finished command said, stdout then stderr.
pub(crate) fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The claims of a JWT, unverified: what a client reads from a token it was given.
pub(crate) fn jwt_claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(
        &data_encoding::BASE64URL_NOPAD
            .decode(payload.as_bytes())
            .unwrap(),
    )
    .unwrap()
}

pub(crate) fn unique_email(tag: &str) -> String {
    format!(
        "{tag}-{}@example.com",
        palisade_crypto::random_token()[..10].to_lowercase()
    )
}

/// A rustls client configuration trusting the given CA files only.
pub(crate) fn tls_client(ca_files: &[&Path]) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for f in ca_files {
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(f).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Declares a test twice, once per database backend (PLT-3: same behaviour, same suite).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    )*};
}
