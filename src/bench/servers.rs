//! The server processes a benchmark starts and drives: Signalboard's own and VictoriaMetrics.

use anyhow::{bail, Context};
use signalboard::server::metrics::process::status_kib;
use signalboard::server::store::Durability;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where a benchmark stores: a new SQLite file in a temporary folder, or a new database on the
/// PostgreSQL cluster `--database-url` names.
pub(super) struct BenchDatabase {
    pub(super) url: String,
    /// The SQLite file, if it is one.
    file: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl BenchDatabase {
    pub(super) async fn new(cluster: Option<&str>) -> anyhow::Result<BenchDatabase> {
        use sqlx::Connection;
        let dir = tempfile::tempdir()?;
        let Some(cluster) = cluster else {
            let file = dir.path().join("bench.db");
            return Ok(BenchDatabase {
                url: format!("sqlite://{}", file.display()),
                file: Some(file),
                _dir: dir,
            });
        };
        let name = format!(
            "bench_{}_{}",
            std::process::id(),
            chrono::Utc::now().timestamp()
        );
        let mut admin = sqlx::PgConnection::connect(cluster)
            .await
            .context("connecting to --database-url")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let (base, _) = cluster
            .rsplit_once('/')
            .context("--database-url names no database")?;
        Ok(BenchDatabase {
            url: format!("{base}/{name}"),
            file: None,
            _dir: dir,
        })
    }

    /// The bytes the database occupies: a SQLite file with its WAL and shared-memory files, or
    /// PostgreSQL's own count of the database's files.
    pub(super) async fn bytes(&self) -> anyhow::Result<u64> {
        use sqlx::Connection;
        let Some(file) = &self.file else {
            let mut db = sqlx::PgConnection::connect(&self.url).await?;
            let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(&mut db)
                .await?;
            return Ok(u64::try_from(bytes)?);
        };
        Ok(["", "-wal", "-shm"]
            .iter()
            .map(|suffix| {
                let mut path = file.as_os_str().to_owned();
                path.push(suffix);
                std::fs::metadata(&path).map_or(0, |m| m.len())
            })
            .sum())
    }
}

/// A stored block: where it starts, and its bytes.
#[derive(sqlx::FromRow)]
pub(super) struct StoredBlock {
    pub(super) first_ts: i64,
    pub(super) data: Vec<u8>,
}

impl BenchDatabase {
    /// Every raw block of a SQLite database; `None` for PostgreSQL, which keeps a row per point.
    pub(super) async fn blocks(&self) -> anyhow::Result<Option<Vec<StoredBlock>>> {
        use sqlx::Connection;
        if self.file.is_none() {
            return Ok(None);
        }
        let mut db = sqlx::SqliteConnection::connect(&self.url).await?;
        let sql = "SELECT first_ts, data FROM blocks";
        Ok(Some(sqlx::query_as(sql).fetch_all(&mut db).await?))
    }
}

/// Polls `url` every 25 ms until it answers 2xx, at most `tries` times: a server just started is not
/// listening yet.
async fn wait_healthy(url: &str, what: &str, tries: u32) -> anyhow::Result<()> {
    for _ in 0..tries {
        if reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("{what} did not become healthy")
}

/// A VictoriaMetrics process on a temporary directory, the peer the figures are compared with.
pub(super) struct Victoria {
    child: tokio::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Victoria {
    pub(super) async fn start() -> anyhow::Result<Victoria> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let child = tokio::process::Command::new("victoria-metrics")
            .arg(format!("-storageDataPath={}", dir.path().display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-loggerLevel=ERROR")
            // As in the peer's figures: every query computed, none answered from a cache.
            .arg("-search.disableCache")
            // Points are visible to queries at once, not 30 s after their timestamp.
            .arg("-search.latencyOffset=0s")
            .kill_on_drop(true)
            .spawn()
            .context("starting victoria-metrics (apt-get install victoria-metrics)")?;
        let url = format!("http://127.0.0.1:{port}");
        wait_healthy(&format!("{url}/health"), "victoria-metrics", 400).await?;
        Ok(Victoria {
            child,
            url,
            _dir: dir,
        })
    }

    pub(super) fn write_url(&self) -> String {
        format!("{}/write", self.url)
    }

    /// Started and fed what the query benchmark's database holds: the simulation's `signals` (same
    /// seed, so the same values) at 1 Hz from `start` to `now`, as line protocol, one line per instant
    /// (`bench demo.sine=50.1,demo.random_walk=49.7,… T`); metrics are named `bench_<signal>`.
    pub(super) async fn filled(signals: u32, start: i64, now: i64) -> anyhow::Result<Victoria> {
        use futures::{StreamExt, TryStreamExt};

        let victoria = Victoria::start().await?;
        let client = reqwest::Client::new();
        let url = format!("{}?precision=ms", victoria.write_url());
        let mut simulation = signalboard::producer::Simulation::new(signals, 7);
        let mut t = start;
        let bodies = std::iter::from_fn(|| {
            let mut body = String::with_capacity(10_000 * 128);
            for _ in 0..10_000 {
                if t > now {
                    break;
                }
                body.push_str("bench ");
                for (i, (name, value)) in simulation.sample(t).signals.iter().enumerate() {
                    body.push_str(&format!("{}{name}={value}", if i > 0 { "," } else { "" }));
                }
                body.push_str(&format!(" {t}\n"));
                t += 1000;
            }
            (!body.is_empty()).then_some(body)
        });
        let began = Instant::now();
        futures::stream::iter(bodies)
            .map(|body| async {
                let response = client.post(&url).body(body).send().await?;
                if !response.status().is_success() {
                    bail!("victoria-metrics' /write answered {}", response.status());
                }
                Ok(())
            })
            .buffer_unordered(4)
            .try_collect::<()>()
            .await?;
        // Rows are searchable once VictoriaMetrics has flushed them from memory.
        client
            .get(format!("{}/internal/force_flush", victoria.url))
            .send()
            .await?
            .error_for_status()?;
        let fed = began.elapsed();
        // It merges what it was fed in the background; timed while merging, both servers would
        // share the cores with it.
        let settled = victoria.settle().await?;
        println!(
            "| VictoriaMetrics fed the same points as line protocol | {:.1} s, then {:.1} s of background merging |",
            fed.as_secs_f64(),
            settled.as_secs_f64()
        );
        Ok(victoria)
    }

    /// Waits (a minute at most) until the process uses under 5 % of a core over half a second;
    /// returns how long that took.
    async fn settle(&self) -> anyhow::Result<Duration> {
        let pid = self.child.id().context("victoria-metrics has exited")?;
        let cpu_ticks = || -> anyhow::Result<u64> {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
            // utime and stime, the 14th and 15th fields, counted after the command's ")".
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .context("odd /proc/PID/stat")?
                .1
                .split_whitespace()
                .collect();
            Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
        };
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(60) {
            let before = cpu_ticks()?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            // Clock ticks are 10 ms: 2 of them in 500 ms is 4 %.
            if cpu_ticks()? - before <= 2 {
                break;
            }
        }
        Ok(began.elapsed())
    }

    /// The raw points of every `bench_` metric from `from` to `to` (milliseconds).
    pub(super) fn export_url(&self, from: i64, to: i64) -> String {
        format!(
            "{}/api/v1/export?match[]={{__name__=~\"bench_.%2B\"}}&start={}&end={}",
            self.url,
            seconds(from),
            seconds(to)
        )
    }

    /// Each `bench_` metric's maximum in each of `steps` steps from `from` to `to` (milliseconds).
    pub(super) fn max_over_time_url(&self, from: i64, to: i64, steps: i64) -> String {
        let step = (to - from) / steps;
        format!(
            "{}/api/v1/query_range?query=max_over_time({{__name__=~\"bench_.%2B\"}}[{step}ms])&start={}&end={}&step={step}ms",
            self.url,
            seconds(from),
            seconds(to)
        )
    }

    /// Points in an export: one JSON object per line and series, with its `timestamps`.
    pub(super) fn exported_points(body: &[u8]) -> anyhow::Result<usize> {
        #[derive(serde::Deserialize)]
        struct Exported {
            timestamps: Vec<i64>,
        }
        let mut points = 0;
        for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            points += serde_json::from_slice::<Exported>(line)?.timestamps.len();
        }
        Ok(points)
    }

    /// Points in a `query_range` answer: the `values` of every series in `data.result`.
    pub(super) fn range_points(body: &[u8]) -> anyhow::Result<usize> {
        let answer: serde_json::Value = serde_json::from_slice(body)?;
        let series = answer["data"]["result"]
            .as_array()
            .context("no data.result in the query_range answer")?;
        Ok(series
            .iter()
            .filter_map(|s| s["values"].as_array())
            .map(Vec::len)
            .sum())
    }
}

/// A loopback port nothing listens on (as of now).
pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Milliseconds as the seconds VictoriaMetrics takes in `start` and `end`.
fn seconds(millis: i64) -> String {
    format!("{}.{:03}", millis.div_euclid(1000), millis.rem_euclid(1000))
}

/// A `signalboard serve` child process.
pub(super) struct OwnServer {
    child: tokio::process::Child,
    pub(super) url: String,
}

impl OwnServer {
    /// Serves the database at `database` (a URL).
    pub(super) async fn start(database: &str, durability: Durability) -> anyhow::Result<OwnServer> {
        OwnServer::start_on(free_port()?, database, durability).await
    }

    /// Serves the database at `database` on `port`.
    pub(super) async fn start_on(
        port: u16,
        database: &str,
        durability: Durability,
    ) -> anyhow::Result<OwnServer> {
        OwnServer::serve(port, database, durability, &[]).await
    }

    /// Serves the database at `database` with the settings file `config`.
    pub(super) async fn start_configured(
        database: &str,
        durability: Durability,
        config: &std::path::Path,
    ) -> anyhow::Result<OwnServer> {
        let config = config.display().to_string();
        OwnServer::serve(free_port()?, database, durability, &["--config", &config]).await
    }

    /// `signalboard serve` on `port`, with `more` arguments.
    async fn serve(
        port: u16,
        database: &str,
        durability: Durability,
        more: &[&str],
    ) -> anyhow::Result<OwnServer> {
        let addr = format!("127.0.0.1:{port}");
        let args = ["serve", "--addr", &addr, "--database-url", database];
        let more = [&["--durability", durability.name()], more].concat();
        OwnServer::spawn(&args, &more, port).await
    }

    /// `signalboard edge` forwarding to `upstream`, spooling in `spool`, forwarding at most
    /// `forward_rate` points a second.
    pub(super) async fn edge(
        upstream: &str,
        spool: &std::path::Path,
        forward_rate: u32,
    ) -> anyhow::Result<OwnServer> {
        let port = free_port()?;
        let (addr, spool) = (format!("127.0.0.1:{port}"), spool.display().to_string());
        let args = [
            "edge",
            "--upstream",
            upstream,
            "--addr",
            &addr,
            "--spool",
            &spool,
        ];
        OwnServer::spawn(&args, &["--forward-rate", &forward_rate.to_string()], port).await
    }

    async fn spawn(args: &[&str], more: &[&str], port: u16) -> anyhow::Result<OwnServer> {
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .args(args)
            .args(more)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting `signalboard {}`", args[0]))?;
        let server = OwnServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let healthz = format!("{}/healthz", server.url);
        wait_healthy(&healthz, "the benchmark's server", 200).await?;
        Ok(server)
    }

    fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the server has exited")
    }

    /// The server's peak resident set size (VmHWM), in KiB.
    pub(super) fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?))?;
        Some(status_kib(&status, "VmHWM:"))
            .filter(|&kib| kib > 0)
            .context("no VmHWM in /proc/PID/status")
    }

    /// Stops the server with SIGTERM: a graceful shutdown (SQLite checkpoints the WAL into the
    /// database file).
    pub(super) async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.pid()?;
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        self.child.wait().await?;
        Ok(())
    }
}
