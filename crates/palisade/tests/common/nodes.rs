//! Several `palisade serve` processes of one deployment on loopback (SCL-1): they share a
//! PostgreSQL database, a Redis server, their keys and their public URL, as nodes behind a load
//! balancer would. Also throwaway PostgreSQL servers, for the tests that restart one.

use super::*;
pub(crate) use palisade_cluster::test_support::TestRedis;

/// The URL every node of a test deployment serves under (the issuer, the DPoP `htu` base).
pub(crate) const PUBLIC_URL: &str = "https://palisade.test";

pub(crate) struct Deployment {
    pub nodes: Vec<Server>,
    pub redis: TestRedis,
    options: Options,
}

impl Deployment {
    /// `n` nodes on a fresh database and a Redis of their own, with `extra` settings.
    pub(crate) async fn start(n: usize, extra: &[(&str, &str)]) -> Self {
        let redis = TestRedis::start();
        let database_url = palisade_store::test_support::postgres_url().await;
        Self::start_on(n, extra, redis, database_url).await
    }

    /// `n` nodes on `database_url` and `redis`.
    pub(crate) async fn start_on(
        n: usize,
        extra: &[(&str, &str)],
        redis: TestRedis,
        database_url: String,
    ) -> Self {
        let origin = "palisade.test/audit";
        let mut options = Options {
            backend: Backend::Postgres,
            database_url: Some(database_url),
            ..Options::default()
        }
        .env("PALISADE_PUBLIC_URL", PUBLIC_URL)
        .env("PALISADE_CLUSTER__REDIS_URL", redis.url())
        .env("PALISADE_SECRETS__SEALING_KEY", random_key())
        .env("PALISADE_AUDIT__PSEUDONYM_KEY", random_key())
        .env("PALISADE_AUDIT__ORIGIN", origin)
        .env(
            "PALISADE_AUDIT__SIGNING_KEY",
            palisade_tlog::note::Signer::generate(origin).unwrap(),
        );
        for (k, v) in extra {
            options = options.env(k, *v);
        }
        let mut deployment = Self {
            nodes: Vec::new(),
            redis,
            options,
        };
        for _ in 0..n {
            let node = deployment.start_node().await;
            deployment.nodes.push(node);
        }
        deployment
    }

    /// One more node of this deployment (not added to `nodes`).
    pub(crate) async fn start_node(&self) -> Server {
        Server::start_with(self.options.clone()).await
    }

    /// Stops every node (SIGTERM, each exiting 0) and starts as many again.
    pub(crate) async fn restart_all(&mut self) {
        let n = self.nodes.len();
        for node in self.nodes.drain(..) {
            assert!(node.stop().await.success());
        }
        for _ in 0..n {
            let node = self.start_node().await;
            self.nodes.push(node);
        }
    }

    pub(crate) fn database_url(&self) -> &str {
        self.options
            .database_url
            .as_deref()
            .expect("a deployment's database")
    }

    /// The setting `key` every node has.
    pub(crate) fn setting(&self, key: &str) -> &str {
        self.options
            .env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .expect("a deployment setting")
    }
}

fn random_key() -> String {
    data_encoding::BASE64.encode(&palisade_crypto::random_bytes::<32>())
}

/// A PostgreSQL server of a test's own, on a loopback port, that the test may stop and start.
/// Run as the `postgres` user (initdb refuses root), from `PALISADE_TEST_PG_BIN` or the newest
/// `/usr/lib/postgresql/*/bin`.
pub(crate) struct TestPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl TestPostgres {
    pub(crate) fn start() -> Self {
        let bin = std::env::var("PALISADE_TEST_PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                    .expect("PostgreSQL (installed by scripts/test)")
                    .map(|e| e.unwrap().path().join("bin"))
                    .collect();
                bins.sort();
                bins.pop().expect("a PostgreSQL version")
            });
        let dir = tempfile::tempdir().unwrap();
        run(
            "chown",
            &["postgres:postgres", dir.path().to_str().unwrap()],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let pg = Self { dir, bin, port };
        pg.as_postgres(
            "initdb",
            &["-D", pg.data(), "-A", "trust", "-U", "postgres"],
        );
        pg.resume();
        pg
    }

    fn data(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    fn as_postgres(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut all = vec!["-u", "postgres", "--", program.to_str().unwrap()];
        all.extend_from_slice(args);
        run("runuser", &all);
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once (`immediate`: connections drop as in a crash).
    pub(crate) fn stop(&self) {
        self.as_postgres(
            "pg_ctl",
            &["-D", self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// Starts it again and waits until it accepts connections.
    pub(crate) fn resume(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.data()
        );
        let log = format!("{}/server.log", self.data());
        self.as_postgres(
            "pg_ctl",
            &["-D", self.data(), "-l", &log, "-o", &options, "-w", "start"],
        );
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", program.to_str().unwrap()])
            .args(["-D", self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
