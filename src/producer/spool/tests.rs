use super::*;

/// Records are of one size: timestamps of 13 digits.
const T0: i64 = 1_700_000_000_000;

fn record(t: i64) -> String {
    format!(r#"{{"timestamp":{},"signals":{{"s":1.0}}}}"#, T0 + t)
}

/// A record's bytes in a segment: its header and its JSON.
fn size() -> u64 {
    record(0).len() as u64 + 12
}

fn timestamp(json: &[u8]) -> i64 {
    let sample: Sample = serde_json::from_slice(json).unwrap();
    sample.timestamp - T0
}

fn timestamps(records: &[Spooled]) -> Vec<i64> {
    records
        .iter()
        .map(|r| timestamp(r.json.as_bytes()))
        .collect()
}

async fn filled(dir: Option<&Path>, max_bytes: u64, records: i64) -> Spool {
    let spool = Spool::open(dir, max_bytes, false).await.unwrap();
    for t in 0..records {
        spool.push(1, record(t)).await.unwrap();
    }
    spool
}

/// The log alone, its records uncompressed, all of one size.
fn filled_log(dir: &Path, max_bytes: u64, records: i64) -> Log {
    let mut log = Log::open(dir, max_bytes, false).unwrap();
    for t in 0..records {
        log.append(1, record(t).as_bytes()).unwrap();
    }
    log
}

fn logged(log: &Log) -> Vec<i64> {
    let records = log.oldest(u64::MAX).unwrap();
    records.iter().map(|r| timestamp(&r.payload)).collect()
}

/// Every segment file in `dir`, oldest first.
fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn records_come_back_oldest_first_within_the_points_asked_for() {
    for dir in [Some(tempfile::tempdir().unwrap()), None] {
        let spool = filled(dir.as_ref().map(|d| d.path()), 1 << 20, 10).await;
        let first = spool.oldest(4).await.unwrap();
        assert_eq!(timestamps(&first), [0, 1, 2, 3]);
        spool.acknowledge(first[3].end, 4).await.unwrap();
        assert_eq!(
            timestamps(&spool.oldest(100).await.unwrap()),
            [4, 5, 6, 7, 8, 9]
        );
        assert_eq!(spool.stats().waiting_points, 6);
    }
}

#[tokio::test]
async fn what_was_acknowledged_stays_acknowledged_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let spool = filled(Some(dir.path()), 1 << 20, 10).await;
    let first = spool.oldest(3).await.unwrap();
    spool.acknowledge(first[2].end, 3).await.unwrap();
    drop(spool);
    let reopened = Spool::open(Some(dir.path()), 1 << 20, false).await.unwrap();
    assert_eq!(reopened.stats().waiting_points, 7);
    assert_eq!(
        timestamps(&reopened.oldest(100).await.unwrap()),
        [3, 4, 5, 6, 7, 8, 9]
    );
}

#[tokio::test]
async fn a_full_spool_drops_the_oldest_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let disk = filled(Some(dir.path()), 64 << 10, 5_000).await;
    // In memory the same.
    let memory = filled(None, 16 << 10, 5_000).await;
    for (spool, max_bytes) in [(disk, 64 << 10), (memory, 16 << 10)] {
        let stats = spool.stats();
        assert!(stats.bytes <= max_bytes, "{stats:?}");
        assert_eq!(stats.waiting_points + stats.dropped_points, 5_000);
        assert!(stats.dropped_points >= 3_000, "{stats:?}");
        let kept = timestamps(&spool.oldest(u64::MAX).await.unwrap());
        assert_eq!(kept.len() as u64, stats.waiting_points);
        assert_eq!(*kept.last().unwrap(), 4_999, "the newest are kept");
        assert!(
            kept.windows(2).all(|w| w[1] == w[0] + 1),
            "in order, no hole"
        );
    }
}

#[test]
fn a_torn_tail_loses_only_the_record_it_cut() {
    let dir = tempfile::tempdir().unwrap();
    drop(filled_log(dir.path(), 1 << 20, 100));
    let last = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let mut reopened = Log::open(dir.path(), 1 << 20, false).unwrap();
    assert_eq!(logged(&reopened), (0..99).collect::<Vec<_>>());
    assert_eq!(reopened.damaged_bytes, size() - 5);
    assert!(last.with_extension("damaged").exists());
    // Appending goes on after the good part.
    reopened.append(1, record(100).as_bytes()).unwrap();
    let kept = logged(&reopened);
    assert_eq!((kept.len(), kept.last()), (100, Some(&100)));
}

#[test]
fn damage_inside_the_log_costs_the_rest_of_that_segment_only() {
    let dir = tempfile::tempdir().unwrap();
    // 4 KiB segments: 400 records make six of them.
    drop(filled_log(dir.path(), 32 << 10, 400));
    let files = segments(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    let mut bytes = std::fs::read(&files[1]).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&files[1], &bytes).unwrap();
    let reopened = Log::open(dir.path(), 32 << 10, false).unwrap();
    let per_segment = (4096 / size()) as i64;
    let first_lost = per_segment + 100 / size() as i64;
    let expected: Vec<i64> = (0..first_lost).chain(2 * per_segment..400).collect();
    assert_eq!(logged(&reopened), expected);
    assert_eq!(reopened.waiting_points, expected.len() as u64);
    assert_eq!(
        reopened.damaged_bytes,
        (per_segment as u64 - 100 / size()) * size()
    );
}

#[tokio::test]
async fn delivered_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let spool = filled(Some(dir.path()), 32 << 10, 400).await;
    assert!(segments(dir.path()).len() >= 3);
    loop {
        let batch = spool.oldest(50).await.unwrap();
        let Some(last) = batch.last() else { break };
        spool
            .acknowledge(last.end, batch.len() as u64)
            .await
            .unwrap();
    }
    assert_eq!(segments(dir.path()).len(), 1, "only the one appended to");
    assert_eq!(spool.stats().waiting_points, 0);
}
