//! `bench --sweep`: line-protocol batches from `wrk` (Debian's, an HTTP load generator that is
//! neither server's client) at 1, 4, 8, 16 and 32 connections, into Signalboard and VictoriaMetrics
//! taking turns, `--seconds` each, `--rounds` turns each per step: the table shows medians, as
//! single turns on a shared machine scatter. wrk builds every request in Lua: 1,000 lines, the
//! `--signals` taking turns as `bench --victoria-metrics` sends them, numbered across requests and
//! threads so no point is sent twice. A turn ends once Signalboard has folded its journal (a fold
//! left running would take VictoriaMetrics' cores). Then the time to list the signals, as the
//! dashboard does.

use super::history::interleaved_medians;
use super::servers::{BenchDatabase, OwnServer, Victoria};
use super::{median, ms, BenchArgs};
use anyhow::{bail, Context};
use signalboard::model::HOUR;

/// Connections at each step of the sweep.
const CONNECTIONS: [usize; 5] = [1, 4, 8, 16, 32];

/// Hands each wrk thread its number, then builds request `r` of thread `id` from points
/// `(r * threads + id) * 1000` on: point `n` is signal `n % signals` at `base + n / signals` ms.
const SCRIPT: &str = r#"
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end
function init(args)
  signals, base, threads, sent = tonumber(args[1]), tonumber(args[2]), tonumber(args[3]), 0
end
function request()
  local first = (sent * threads + id) * 1000
  sent = sent + 1
  local lines = {}
  for k = 0, 999 do
    local n = first + k
    lines[k + 1] = string.format("bench,signal=bench.batch.%d value=%d %d000000",
      n % signals, n % 1000, base + math.floor(n / signals))
  end
  return wrk.format("POST", nil, {["Content-Type"] = "text/plain"}, table.concat(lines, "\n"))
end
"#;

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let script = tempfile::Builder::new().suffix(".lua").tempfile()?;
    std::fs::write(script.path(), SCRIPT)?;
    let database = BenchDatabase::new(args.database_url.as_deref()).await?;
    let server = OwnServer::start(&database.url, args.durability).await?;
    let victoria = Victoria::start().await?;
    // An hour of timestamps a turn (more rounds of the signals than any turn sends), the last
    // ending an hour ago: every point in the past, none overwriting another.
    let turns = (CONNECTIONS.len() * args.rounds * 2) as i64;
    let mut base = chrono::Utc::now().timestamp_millis() - (turns + 1) * HOUR;
    println!(
        "| connections | Signalboard, {} signals | VictoriaMetrics | ratio |\n|---|---|---|---|",
        args.signals
    );
    let client = reqwest::Client::builder().gzip(true).build()?;
    // A read folds what the journal holds first: Signalboard's turn ends with its journal
    // folded, not with a fold left to share the cores with VictoriaMetrics' turn.
    let folded = format!("{}/api/telemetry?signals=bench.batch.0", server.url);
    let urls = [format!("{}/api/v2/write", server.url), victoria.write_url()];
    for connections in CONNECTIONS {
        let mut rates = [Vec::new(), Vec::new()];
        for _ in 0..args.rounds {
            for (url, rates) in urls.iter().zip(&mut rates) {
                rates.push(wrk(script.path(), url, connections, args, base).await?);
                base += HOUR;
                client.get(&folded).send().await?.error_for_status()?;
            }
        }
        let [ours, theirs] = rates.map(|rates| median(&rates));
        println!(
            "| {connections} | {:.2} M points/s | {:.2} M | {:.2} |",
            ours / 1e6,
            theirs / 1e6,
            ours / theirs
        );
    }
    // The signal list at this width, as the dashboard loads it.
    let list = [format!("{}/api/signals", server.url)];
    let timed = interleaved_medians(&client, &list).await?;
    let signals: Vec<signalboard::model::SignalInfo> = serde_json::from_slice(&timed[0].1)?;
    println!(
        "\n| GET /api/signals, {} signals, gzip, median of 21 | {} |",
        signals.len(),
        ms(Some(timed[0].0))
    );
    server.stop().await
}

/// Points per second wrk sent to `url` with `connections`, every answer a 2xx.
async fn wrk(
    script: &std::path::Path,
    url: &str,
    connections: usize,
    args: &BenchArgs,
    base: i64,
) -> anyhow::Result<f64> {
    let threads = connections.min(2);
    let output = tokio::process::Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", args.seconds))
        .arg("-s")
        .arg(script)
        .arg(url)
        .arg("--")
        .args([
            args.signals.to_string(),
            base.to_string(),
            threads.to_string(),
        ])
        .output()
        .await
        .context("running wrk (Debian package `wrk`)")?;
    let report = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || report.contains("Non-2xx") {
        bail!("wrk against {url} failed: {report}");
    }
    let requests: f64 = report
        .lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|rate| rate.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's report: {report}"))?;
    Ok(requests * 1_000.0)
}
