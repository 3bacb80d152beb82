//! Settings, from weakest to strongest: built-in defaults ← `Leptos.toml` ← environment ← command line.
//!
//! `Leptos.toml` holds two sections: `[package.metadata.leptos]`, the Leptos options the server needs at
//! run time (where the site's files are, the address), and `[signalboard]`, this server's own settings.
//! Environment variables and flags are declared together on the clap arguments, so `--help` lists all.

use crate::server::store::{Durability, Retention};
use anyhow::Context;
use clap::{Args, Subcommand};
use leptos::config::LeptosOptions;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/signalboard.db";

#[derive(Args, Debug, Clone)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
    /// The database the tokens are stored in [default: database-url of Leptos.toml, else
    /// sqlite://data/signalboard.db].
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// The settings file.
    #[arg(
        long,
        env = "SIGNALBOARD_CONFIG",
        default_value = "Leptos.toml",
        global = true
    )]
    pub config: PathBuf,
}

impl TokenArgs {
    /// The database, resolved as `serve` resolves it.
    pub fn database_url(&self) -> anyhow::Result<String> {
        let file = read_file_settings(&self.config)?;
        Ok(self
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()))
    }
}

#[derive(Subcommand, Debug, Clone)]
pub enum TokenAction {
    /// Make a token and print it, once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        scope: crate::server::access::tokens::Scope,
    },
    /// List the tokens: names, scopes and when they were made (never the tokens).
    List,
    /// Delete a token: clients presenting it are refused from then on.
    Revoke { name: String },
}

#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// Address to listen on [default: site-addr of Leptos.toml, else 127.0.0.1:3000].
    #[arg(long, env = "LEPTOS_SITE_ADDR")]
    pub addr: Option<SocketAddr>,
    /// Database to store points in [default: database-url of Leptos.toml, else sqlite://data/signalboard.db].
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// normal: a commit survives a server crash; fsync: it also survives power loss (slower)
    /// [default: durability of Leptos.toml, else normal].
    #[arg(long, env = "SIGNALBOARD_DURABILITY")]
    pub durability: Option<Durability>,
    /// Also run the simulated producer in-process, feeding this server.
    #[arg(long)]
    pub demo: bool,
    /// Serve beyond loopback without access tokens (anyone who can reach the port may read and
    /// write everything). Without it, such a server refuses to start until a token exists.
    #[arg(long, env = "SIGNALBOARD_NO_AUTH")]
    pub no_auth: bool,
    #[command(flatten)]
    pub producer: SimulationArgs,
    /// The settings file.
    #[arg(long, env = "SIGNALBOARD_CONFIG", default_value = "Leptos.toml")]
    pub config: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct ProduceArgs {
    /// The server's ingest endpoint.
    #[arg(long, default_value = "http://127.0.0.1:3000/api/telemetry")]
    pub url: String,
    /// An access token of scope write or admin, for a server that requires one.
    #[arg(long, env = "SIGNALBOARD_TOKEN")]
    pub token: Option<String>,
    /// Send this machine's own signals (CPU, load, memory, swap, disk and network, from /proc)
    /// instead of simulated ones.
    #[arg(long, conflicts_with = "stdin")]
    pub host: bool,
    /// Send lines read from standard input (line protocol, or `name value [epoch ms]`) until it
    /// ends, then exit once all are delivered.
    #[arg(long)]
    pub stdin: bool,
    /// Keep samples waiting for the server in this directory, so that a restart of the producer
    /// loses none (refused ones go to DIR/dead.jsonl). Without it they wait in memory.
    #[arg(long, env = "SIGNALBOARD_SPOOL")]
    pub spool: Option<PathBuf>,
    /// Most megabytes the spool holds; past them the oldest samples are dropped (and counted).
    #[arg(long, env = "SIGNALBOARD_SPOOL_MAX_MB", default_value_t = 1024)]
    pub spool_max_mb: u64,
    #[command(flatten)]
    pub simulation: SimulationArgs,
}

#[derive(Args, Debug, Clone)]
pub struct EdgeArgs {
    /// The server to forward to: its ingest endpoint.
    #[arg(long, env = "SIGNALBOARD_UPSTREAM")]
    pub upstream: String,
    /// An access token of scope write or admin, presented upstream.
    #[arg(long, env = "SIGNALBOARD_TOKEN")]
    pub token: Option<String>,
    /// Address the edge's ingest APIs listen on (8086, InfluxDB's, is where Telegraf and InfluxDB
    /// clients send by default).
    #[arg(long, env = "SIGNALBOARD_EDGE_ADDR", default_value = "127.0.0.1:8086")]
    pub addr: SocketAddr,
    /// The token local producers must present. Without it, the edge refuses to listen beyond
    /// loopback unless given --no-auth.
    #[arg(long, env = "SIGNALBOARD_EDGE_TOKEN")]
    pub accept_token: Option<String>,
    /// Listen beyond loopback with no token: anyone who can reach the port may write.
    #[arg(long, env = "SIGNALBOARD_NO_AUTH")]
    pub no_auth: bool,
    /// The spool: points are acknowledged once they are in it, and leave it once upstream has them
    /// (refused ones go to DIR/dead.jsonl).
    #[arg(long, env = "SIGNALBOARD_SPOOL", default_value = "data/edge-spool")]
    pub spool: PathBuf,
    /// Most megabytes the spool holds; past them the oldest points are dropped (and counted).
    #[arg(long, env = "SIGNALBOARD_SPOOL_MAX_MB", default_value_t = 1024)]
    pub spool_max_mb: u64,
    /// normal: a spooled point survives a crash of the edge; fsync: it also survives power loss
    /// (each write waits for the disk).
    #[arg(long, env = "SIGNALBOARD_DURABILITY", default_value = "normal")]
    pub durability: Durability,
    /// Most points a second forwarded, so a backlog does not overrun a recovering server.
    #[arg(long, env = "SIGNALBOARD_FORWARD_RATE", default_value_t = 100_000)]
    pub forward_rate: u32,
    /// The settings file, for the request limits (`[signalboard]`, as the server's).
    #[arg(long, env = "SIGNALBOARD_CONFIG", default_value = "Leptos.toml")]
    pub config: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct SimulationArgs {
    /// Number of simulated signals.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub signals: u32,
    /// Samples per second, each carrying every signal.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
}

impl Default for SimulationArgs {
    fn default() -> Self {
        SimulationArgs {
            signals: 5,
            rate: 1.0,
        }
    }
}

/// Limits that protect the server from oversized, too many, too slow or too wide requests. Each has
/// a `[signalboard]` setting of the same name in kebab-case; the README lists them all.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Largest accepted request body, after decompression; larger gets 413.
    pub max_body_bytes: usize,
    /// Most samples (JSON) or lines (line protocol) in one request; more gets 400.
    pub max_samples: usize,
    /// Most signals in one sample, or fields in one line; more gets 400.
    pub max_signals: usize,
    /// Points that may wait for a commit, all requests together; past them 503 + Retry-After.
    pub write_queue_points: usize,
    /// Write requests being read, parsed or waiting at once; past them 503 + Retry-After. With
    /// `max_body_bytes` it bounds the memory that request bodies can take.
    pub max_concurrent_writes: usize,
    /// Most points one history answer holds, raw or decimated; a raw range holding more gets 400.
    pub max_raw_points: usize,
    /// Points a live subscriber may lag behind before it is disconnected.
    pub live_backlog_points: usize,
    /// How long a live subscriber may take to accept one message before it is disconnected.
    pub live_send_timeout: Duration,
    /// Most distinct signals the database may hold; a request that would pass it gets 400.
    pub max_total_signals: usize,
    /// Most signals one request may create; more gets 400.
    pub max_new_signals: usize,
    /// Open connections at once; past them a new connection is closed at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (and an idle kept-alive connection to send the
    /// next); past it the connection is closed.
    pub header_timeout: Duration,
    /// Write requests per second each access token may make (a second's worth at once); past it 429.
    pub token_write_rate: u32,
    /// Time a request may take from its headers to its answer, reading its body included; past it
    /// 408 (a client that trickles its body holds nothing for longer).
    pub request_timeout: Duration,
    /// Most alert rules the database may hold; one more gets 400.
    pub max_alert_rules: usize,
    /// Most annotations the database may hold; one more gets 400.
    pub max_annotations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 8 * 1024 * 1024,
            max_samples: 100_000,
            max_signals: 1_000,
            write_queue_points: 2_000_000,
            max_concurrent_writes: 64,
            max_raw_points: 1_000_000,
            live_backlog_points: 256 * 1024,
            live_send_timeout: Duration::from_secs(10),
            max_total_signals: 1_000_000,
            max_new_signals: 100_000,
            max_connections: 4_096,
            header_timeout: Duration::from_secs(10),
            token_write_rate: 10_000,
            request_timeout: Duration::from_secs(60),
            max_alert_rules: 10_000,
            max_annotations: 100_000,
        }
    }
}

/// Everything `serve` needs, resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: String,
    pub durability: Durability,
    pub retention: Retention,
    pub limits: Limits,
    /// `Some` runs the simulated producer in-process.
    pub demo: Option<SimulationArgs>,
    /// Serve beyond loopback even with no token.
    pub no_auth: bool,
    pub monitoring: Monitoring,
    /// What the server takes for the time: the system's (tests set their own).
    pub clock: crate::server::clock::SharedClock,
    /// Includes `site_addr`, the address to listen on.
    pub leptos: LeptosOptions,
}

/// What the server tells about itself (src/server/metrics/).
#[derive(Clone, Debug, PartialEq)]
pub struct Monitoring {
    /// `GET /metrics`, and counting and timing every request for it.
    pub metrics: bool,
    /// How often the server writes its own `signalboard.*` signals; `None`: never.
    pub self_signals: Option<Duration>,
    /// Whether dashboards send their own health back as `signalboard.browser.*` signals.
    pub browser_signals: bool,
}

impl Default for Monitoring {
    fn default() -> Self {
        Monitoring {
            metrics: true,
            self_signals: Some(Duration::from_secs(5)),
            browser_signals: false,
        }
    }
}

/// The `[signalboard]` section of `Leptos.toml`.
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileSettings {
    database_url: Option<String>,
    durability: Option<Durability>,
    max_body_bytes: Option<usize>,
    max_samples: Option<usize>,
    max_signals: Option<usize>,
    write_queue_points: Option<usize>,
    max_concurrent_writes: Option<usize>,
    max_raw_points: Option<usize>,
    live_backlog_points: Option<usize>,
    live_send_timeout_secs: Option<u64>,
    max_total_signals: Option<usize>,
    max_new_signals: Option<usize>,
    max_connections: Option<usize>,
    header_timeout_secs: Option<u64>,
    token_write_rate: Option<u32>,
    request_timeout_secs: Option<u64>,
    max_alert_rules: Option<usize>,
    max_annotations: Option<usize>,
    metrics: Option<bool>,
    self_signals_secs: Option<u64>,
    browser_signals: Option<bool>,
    raw_retention_days: Option<u32>,
    minute_rollup_retention_days: Option<u32>,
    hour_rollup_retention_days: Option<u32>,
}

#[derive(Deserialize, Default)]
struct SettingsFile {
    #[serde(default)]
    signalboard: FileSettings,
}

impl Settings {
    pub fn load(args: &ServeArgs) -> anyhow::Result<Settings> {
        let file = read_file_settings(&args.config)?;
        let mut leptos = leptos_options(&args.config)?;
        if let Some(addr) = args.addr {
            leptos.site_addr = addr;
        }
        Ok(Settings {
            database_url: args
                .database_url
                .clone()
                .or(file.database_url.clone())
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            durability: args.durability.or(file.durability).unwrap_or_default(),
            retention: Retention::days(
                file.raw_retention_days.unwrap_or(7),
                file.minute_rollup_retention_days.unwrap_or(90),
                file.hour_rollup_retention_days.unwrap_or(730),
            ),
            limits: Limits::from_file(&file),
            demo: args.demo.then(|| args.producer.clone()),
            no_auth: args.no_auth,
            monitoring: Monitoring::from_file(&file),
            clock: crate::server::clock::system(),
            leptos,
        })
    }
}

impl Limits {
    /// The limits a settings file states, defaults for those it leaves out.
    fn from_file(file: &FileSettings) -> Limits {
        let defaults = Limits::default();
        Limits {
            max_body_bytes: file.max_body_bytes.unwrap_or(defaults.max_body_bytes),
            max_samples: file.max_samples.unwrap_or(defaults.max_samples),
            max_signals: file.max_signals.unwrap_or(defaults.max_signals),
            write_queue_points: file
                .write_queue_points
                .unwrap_or(defaults.write_queue_points),
            max_concurrent_writes: file
                .max_concurrent_writes
                .unwrap_or(defaults.max_concurrent_writes),
            max_raw_points: file.max_raw_points.unwrap_or(defaults.max_raw_points),
            live_backlog_points: file
                .live_backlog_points
                .unwrap_or(defaults.live_backlog_points),
            live_send_timeout: seconds(file.live_send_timeout_secs)
                .unwrap_or(defaults.live_send_timeout),
            max_total_signals: file.max_total_signals.unwrap_or(defaults.max_total_signals),
            max_new_signals: file.max_new_signals.unwrap_or(defaults.max_new_signals),
            max_connections: file.max_connections.unwrap_or(defaults.max_connections),
            token_write_rate: file.token_write_rate.unwrap_or(defaults.token_write_rate),
            header_timeout: seconds(file.header_timeout_secs).unwrap_or(defaults.header_timeout),
            request_timeout: seconds(file.request_timeout_secs).unwrap_or(defaults.request_timeout),
            max_alert_rules: file.max_alert_rules.unwrap_or(defaults.max_alert_rules),
            max_annotations: file.max_annotations.unwrap_or(defaults.max_annotations),
        }
    }

    /// The limits of the settings file at `path` (defaults without one).
    pub fn load(path: &Path) -> anyhow::Result<Limits> {
        Ok(Limits::from_file(&read_file_settings(path)?))
    }
}

impl Monitoring {
    fn from_file(file: &FileSettings) -> Monitoring {
        let defaults = Monitoring::default();
        Monitoring {
            metrics: file.metrics.unwrap_or(defaults.metrics),
            // 0 turns them off.
            self_signals: match file.self_signals_secs {
                Some(0) => None,
                secs => seconds(secs).or(defaults.self_signals),
            },
            browser_signals: file.browser_signals.unwrap_or(defaults.browser_signals),
        }
    }
}

fn seconds(secs: Option<u64>) -> Option<Duration> {
    secs.map(Duration::from_secs)
}

/// The Leptos options from the settings file, with `LEPTOS_*` environment variables applied (cargo-leptos
/// sets those when it runs the server). Without a file, Leptos' own defaults.
fn leptos_options(path: &Path) -> anyhow::Result<LeptosOptions> {
    let path = path.exists().then(|| path.to_string_lossy().into_owned());
    let conf = leptos::config::get_configuration(path.as_deref())
        .with_context(|| format!("reading the Leptos options of {path:?}"))?;
    Ok(conf.leptos_options)
}

fn read_file_settings(path: &Path) -> anyhow::Result<FileSettings> {
    if !path.exists() {
        return Ok(FileSettings::default());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: SettingsFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(file.signalboard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Leptos.toml");
        std::fs::write(
            &path,
            "[package.metadata.leptos]\noutput-name = \"signalboard\"\nsite-addr = \"127.0.0.1:4000\"\n\
             [signalboard]\ndatabase-url = \"sqlite://file.db\"\ndurability = \"fsync\"\nwrite-queue-points = 7\n\
             header-timeout-secs = 3\n",
        )
        .unwrap();
        let mut args = ServeArgs {
            config: path,
            ..ServeArgs::default()
        };
        let from_file = Settings::load(&args).unwrap();
        assert_eq!(from_file.database_url, "sqlite://file.db");
        assert_eq!(from_file.durability, Durability::Fsync);
        assert_eq!(from_file.limits.write_queue_points, 7);
        assert_eq!(from_file.limits.header_timeout, Duration::from_secs(3));
        assert_eq!(from_file.limits.max_body_bytes, 8 * 1024 * 1024);
        args.database_url = Some("sqlite://flag.db".into());
        args.addr = Some("127.0.0.1:5000".parse().unwrap());
        let from_flags = Settings::load(&args).unwrap();
        assert_eq!(from_flags.database_url, "sqlite://flag.db");
        assert_eq!(from_flags.leptos.site_addr.port(), 5000);
    }

    /// `Leptos.toml` spells out every default, for users to read and change: it must say what the
    /// code does when a setting is left out.
    #[test]
    fn the_shipped_settings_file_states_the_built_in_defaults() {
        let args = ServeArgs {
            config: "Leptos.toml".into(),
            ..ServeArgs::default()
        };
        let shipped = Settings::load(&args).unwrap();
        assert_eq!(shipped.limits, Limits::default());
        assert_eq!(shipped.monitoring, Monitoring::default());
        assert_eq!(shipped.retention, Retention::default());
        assert_eq!(shipped.durability, Durability::default());
        assert_eq!(shipped.database_url, DEFAULT_DATABASE_URL);
    }

    /// The README's table of limits gives each default: it must be the code's.
    #[test]
    fn the_readme_states_every_limit_s_default() {
        let readme = include_str!("../README.md");
        let row = |setting: &str| {
            readme
                .lines()
                .find(|line| line.starts_with('|') && line.contains(&format!("`{setting}`")))
                .unwrap_or_else(|| panic!("no README row for {setting}"))
        };
        let thousands = |n: usize| {
            let digits = n.to_string();
            let mut out = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i).is_multiple_of(3) {
                    out.push(',');
                }
                out.push(c);
            }
            out
        };
        let secs = |d: Duration| format!("{} s", d.as_secs());
        let d = Limits::default();
        for (setting, default) in [
            ("max-body-bytes", format!("{} MiB", d.max_body_bytes >> 20)),
            ("max-samples", thousands(d.max_samples)),
            ("max-signals", thousands(d.max_signals)),
            ("max-new-signals", thousands(d.max_new_signals)),
            ("max-total-signals", thousands(d.max_total_signals)),
            ("write-queue-points", thousands(d.write_queue_points)),
            ("max-concurrent-writes", thousands(d.max_concurrent_writes)),
            ("max-raw-points", thousands(d.max_raw_points)),
            ("live-backlog-points", thousands(d.live_backlog_points)),
            ("live-send-timeout-secs", secs(d.live_send_timeout)),
            ("max-connections", thousands(d.max_connections)),
            ("header-timeout-secs", secs(d.header_timeout)),
            ("request-timeout-secs", secs(d.request_timeout)),
            ("token-write-rate", thousands(d.token_write_rate as usize)),
            ("max-alert-rules", thousands(d.max_alert_rules)),
            ("max-annotations", thousands(d.max_annotations)),
        ] {
            let cells: Vec<&str> = row(setting).split('|').map(str::trim).collect();
            assert!(
                cells.iter().any(|cell| cell.starts_with(&default)),
                "README's {setting}: {:?}, the code's default {default}",
                row(setting)
            );
        }
    }

    #[test]
    fn unknown_settings_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Leptos.toml");
        std::fs::write(&path, "[signalboard]\ndatabse-url = \"typo\"\n").unwrap();
        let args = ServeArgs {
            config: path,
            ..ServeArgs::default()
        };
        assert!(format!("{:#}", Settings::load(&args).unwrap_err()).contains("databse-url"));
    }
}
