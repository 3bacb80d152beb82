//! A real server for integration tests: the production `serve`, on a free loopback port, over a fresh
//! SQLite file in its own temporary directory.

// Each test crate uses a different part of this helper.
#![allow(dead_code)]

use signalboard::config::{ServeArgs, Settings};
use signalboard::server::clock::FixedClock;
use signalboard::server::domain::{DataPoint, SignalName, Timestamp, Value};
use signalboard::server::store::Store;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The time on every test server's clock: 2026-11-26T12:00:00Z, two hours after the tests' T0.
pub const NOW: i64 = 1_795_694_400_000;

pub struct TestServer {
    pub addr: SocketAddr,
    /// The server's clock: at `NOW` until a test moves it.
    pub clock: Arc<FixedClock>,
    pub client: reqwest::Client,
    /// The SQLite file, for tests that inspect or lock it from outside.
    pub database: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
    // Dropped last: the database lives until the server is gone.
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// Starts with the repo's `Leptos.toml` settings, changed by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Settings)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut database = dir.path().join("signalboard.db");
        let args = ServeArgs {
            database_url: Some(format!("sqlite://{}", database.display())),
            config: "Leptos.toml".into(),
            ..ServeArgs::default()
        };
        let mut settings = Settings::load(&args).unwrap();
        // Tests write at fixed dates: the server's clock stands at NOW whatever today is, with the
        // shipped retention.
        let clock = Arc::new(FixedClock::at(Timestamp::from_millis(NOW).unwrap()));
        settings.clock = clock.clone();
        // Tests count the signals they write: the server's own come only where a test asks.
        settings.monitoring.self_signals = None;
        adjust(&mut settings);
        if let Some(path) = settings.database_url.strip_prefix("sqlite://") {
            database = PathBuf::from(path);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(signalboard::server::serve(listener, settings, async {
            let _ = stopped.await;
        }));
        let server = TestServer {
            addr,
            clock,
            client: reqwest::Client::new(),
            database,
            stop: Some(stop),
            task,
            _dir: dir,
        };
        // `serve` binds first and opens the database after: wait until it answers.
        for _ in 0..200 {
            if let Ok(r) = server.client.get(server.url("/healthz")).send().await {
                if r.status().is_success() {
                    return server;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("test server did not become healthy");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs `body` as JSON to the ingest endpoint; returns the status and the parsed JSON answer.
    pub async fn post(&self, body: &str) -> (u16, serde_json::Value) {
        self.post_as("application/json", body).await
    }

    pub async fn post_as(&self, content_type: &str, body: &str) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(self.url("/api/telemetry"))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// GETs `path` presenting `token`; returns the status and the parsed JSON answer.
    pub async fn get_as(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let request = self.client.get(self.url(path)).bearer_auth(token);
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Takes the database's write lock from another connection: the server's next commit waits for
    /// it, exactly as it would behind a slow disk, until `WriteBlock::release`.
    pub async fn block_writes(&self) -> WriteBlock {
        use sqlx::Connection;
        let url = format!("sqlite://{}", self.database.display());
        let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut connection)
            .await
            .unwrap();
        WriteBlock(connection)
    }

    /// Whether `/healthz` answers 200: the server is still up.
    pub async fn healthy(&self) -> bool {
        let response = self.client.get(self.url("/healthz")).send().await;
        response.is_ok_and(|r| r.status().is_success())
    }

    /// Stops gracefully and waits until the writer has finished.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
    }
}

/// Another connection's hold on the database's write lock (`TestServer::block_writes`).
pub struct WriteBlock(sqlx::SqliteConnection);

impl WriteBlock {
    pub async fn release(mut self) {
        sqlx::query("ROLLBACK").execute(&mut self.0).await.unwrap();
    }
}

/// A valid point of `signal` at `t` (epoch ms).
pub fn point(signal: &str, t: i64, v: f64) -> DataPoint {
    DataPoint {
        signal: SignalName::parse(signal).unwrap(),
        timestamp: Timestamp::from_millis(t).unwrap(),
        value: Value::new(v).unwrap(),
    }
}

/// Writes `points` to `store` in one commit.
pub async fn write(store: &Store, points: &[DataPoint]) {
    store
        .write(&points.iter().collect::<Vec<_>>())
        .await
        .unwrap();
}

/// Each signal's name, point count and last value, as the signal list shows them.
pub async fn figures(store: &Store) -> Vec<(String, u64, f64)> {
    let signals = store.signals().await.unwrap();
    signals
        .into_iter()
        .map(|s| (s.signal, s.points, s.last_value))
        .collect()
}

/// The URL of a new, empty database on the PostgreSQL cluster that `SIGNALBOARD_TEST_POSTGRES`
/// names (e.g. `postgres://signalboard@127.0.0.1:55432/postgres`; `make test` starts a throwaway
/// cluster and sets it).
pub async fn postgres_database() -> String {
    use sqlx::Connection;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let cluster = std::env::var("SIGNALBOARD_TEST_POSTGRES").expect(
        "SIGNALBOARD_TEST_POSTGRES names no PostgreSQL cluster: run `make test`, or start one with \
         scripts/postgres.sh and set it",
    );
    let name = format!(
        "test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut admin = sqlx::PgConnection::connect(&cluster).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let (base, _) = cluster.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// The built binary's `serve` (or another command) as a child process, killed (SIGKILL) when
/// dropped: for tests of what survives a crash or an outage.
pub struct ServeProcess(std::process::Child);

impl ServeProcess {
    /// `serve` on `port` over `database`.
    pub fn start(database: &str, port: u16) -> ServeProcess {
        ServeProcess::run(&[
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            database,
        ])
    }

    /// The binary with `args`.
    pub fn run(args: &[&str]) -> ServeProcess {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_signalboard"))
            .args(args)
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        ServeProcess(child)
    }

    /// Kills it with SIGKILL, as a crash would, and waits for it to be gone.
    pub fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the server at `base` answers `/healthz`.
pub async fn wait_healthy(client: &reqwest::Client, base: &str) {
    for _ in 0..400 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("server at {base} did not become healthy");
}

/// A loopback port nothing listens on (as of now).
pub fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

/// GETs `url` and parses the answer as JSON.
pub async fn get_json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    let response = client.get(url).send().await.unwrap();
    response.json().await.unwrap()
}
