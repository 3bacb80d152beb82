//! `signalboard produce --stdin`: lines from standard input become samples, so a shell script or a
//! serial-port reader is a producer with a pipe. A line is either Influx line protocol
//! (`measurement[,tag=v] field=value [ns timestamp]`) or `name value [epoch ms]`; a line without a
//! timestamp is stamped when it is read. Lines are sent in batches (at most `BATCH_LINES`, or what
//! arrived within a second) and, at the end of the input, until all are delivered.

use super::{Delivery, Upstream};
use crate::config::Limits;
use crate::model::Sample;
use crate::server::domain::Timestamp;
use crate::server::lineproto::{self, Precision};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// How long lines may wait for a batch to fill, and how many make one.
const BATCH_WAIT: Duration = Duration::from_secs(1);
const BATCH_LINES: usize = 1_000;

/// Reads standard input to its end, delivering what it reads to `upstream`; returns once all of it
/// was delivered (or refused by the server, which is logged).
pub async fn run_stdin(upstream: Upstream) -> anyhow::Result<()> {
    let mut delivery = Delivery::open(upstream).await?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut waiting = 0;
    loop {
        match tokio::time::timeout(BATCH_WAIT, lines.next_line()).await {
            Ok(Ok(Some(line))) => match sample_of(&line, Timestamp::now()) {
                Ok(Some(sample)) => {
                    delivery.spool().push_sample(&sample).await?;
                    waiting += 1;
                    if waiting < BATCH_LINES {
                        continue;
                    }
                }
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!("skipping a line that is neither line protocol nor `name value [ms]`: {e}: {line:?}");
                    continue;
                }
            },
            // Quiet for a while: send what there is.
            Err(_) => {}
            Ok(Ok(None)) | Ok(Err(_)) => break,
        }
        waiting = 0;
        delivery.deliver().await?;
    }
    while !delivery.deliver().await? {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A line as a sample; `None` for a blank line or a comment.
fn sample_of(line: &str, now: Timestamp) -> Result<Option<Sample>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let is_line_protocol = words.nth(1).is_some_and(|fields| fields.contains('='));
    if is_line_protocol {
        let parsed = lineproto::parse(
            line,
            Precision::Nanoseconds,
            now,
            &Limits::default(),
            &lineproto::NameCache::default(),
        )?;
        let timestamp = parsed
            .points
            .first()
            .map_or(now.millis(), |p| p.timestamp.millis());
        let signals = parsed
            .points
            .into_iter()
            .map(|p| (p.signal.into_string(), p.value.get()))
            .collect();
        return Ok(Some(Sample { timestamp, signals }));
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let (name, value, timestamp) = match words[..] {
        [name, value] => (name, value, now.millis()),
        [name, value, ms] => (
            name,
            value,
            ms.parse().map_err(|_| format!("{ms:?} is not epoch ms"))?,
        ),
        _ => return Err("expected 2 or 3 words".into()),
    };
    let value: f64 = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number"))?;
    let signals = BTreeMap::from([(name.to_owned(), value)]);
    Ok(Some(Sample { timestamp, signals }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_either_kind_become_samples() {
        let now = Timestamp::from_millis(1_795_687_200_000).unwrap();
        let sample = |line| sample_of(line, now).unwrap().unwrap();
        let simple = sample("boiler.temp 71.5 1795687199000");
        assert_eq!(simple.timestamp, 1_795_687_199_000);
        assert_eq!(simple.signals["boiler.temp"], 71.5);
        assert_eq!(sample("boiler.temp -3").timestamp, now.millis());
        let lp = sample("cpu,host=a usage=0.5,up=true 1795687199000000000");
        assert_eq!(lp.timestamp, 1_795_687_199_000);
        assert_eq!(lp.signals["cpu.usage{host=a}"], 0.5);
        assert_eq!(lp.signals["cpu.up{host=a}"], 1.0);
        assert_eq!(sample_of("  # a comment", now), Ok(None));
        assert!(sample_of("just-a-word", now).is_err());
        assert!(sample_of("temp warm", now).is_err());
    }
}
