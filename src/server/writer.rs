//! The single writer. Handlers never touch the database for writes: they queue their validated points
//! here and wait. One task owns the write path and commits everything queued so far in one transaction
//! (group commit), so a burst of a thousand small requests costs one commit, not a thousand. Only after
//! the commit does it answer the waiting requests and publish the points live: a 2xx always means stored.

use crate::config::Limits;
use crate::model::{Point, DAY};
use crate::server::alerts::Alerts;
use crate::server::clock::SharedClock;
use crate::server::domain::{DataPoint, SignalName};
use crate::server::error::ApiError;
use crate::server::live::LiveFeed;
use crate::server::metrics::{Reason, WriteMetrics};
use crate::server::store::{Relay, Rows, Store, StoreError};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// Upper bound on the points of one group commit, so one transaction stays short and memory bounded.
const MAX_GROUP_POINTS: usize = 50_000;

struct WriteJob {
    points: Vec<DataPoint>,
    /// The points as rows of their signals' ids.
    rows: Rows,
    done: oneshot::Sender<Result<(), StoreError>>,
    /// This job's share of the queue's room, given back once it is committed (or failed).
    _room: OwnedSemaphorePermit,
}

/// The handlers' side of the queue.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::UnboundedSender<WriteJob>,
    depth: QueueDepth,
    store: Store,
    limits: Arc<Limits>,
    clock: SharedClock,
    metrics: WriteMetrics,
}

impl Writer {
    /// Starts the writer task. `limits.write_queue_points` bounds the points waiting for a commit,
    /// all requests together; past it `write` fails fast with `Overloaded` instead of buffering.
    /// The task ends once every `Writer` is dropped and the queue is drained.
    pub fn spawn(
        store: Store,
        live: LiveFeed,
        alerts: Alerts,
        limits: Arc<Limits>,
        clock: SharedClock,
        metrics: WriteMetrics,
    ) -> (Writer, JoinHandle<()>) {
        let (queue, jobs) = mpsc::unbounded_channel();
        // With a database shared by several servers, what this one commits goes to the others too.
        let relay = store.start_relay({
            let live = live.clone();
            move |heard| live.deliver(heard)
        });
        let task = tokio::spawn(run(
            store.clone(),
            live,
            alerts,
            relay,
            metrics.clone(),
            jobs,
        ));
        let depth = QueueDepth {
            room: Arc::new(Semaphore::new(limits.write_queue_points)),
            limit: limits.write_queue_points,
        };
        let writer = Writer {
            queue,
            depth,
            store,
            limits,
            clock,
            metrics,
        };
        (writer, task)
    }

    /// Queues `points` and returns once they are committed.
    pub async fn write(&self, points: Vec<DataPoint>) -> Result<usize, ApiError> {
        let count = points.len();
        let queued = Instant::now();
        let written = self.queue_and_wait(points).await;
        match &written {
            Ok(_) => {
                let waited = queued.elapsed().as_secs_f64();
                self.metrics.write_seconds.observe(waited);
            }
            Err(e) => {
                let reason = Reason::of(e.reason());
                self.metrics
                    .refused
                    .get_or_create(&reason)
                    .inc_by(count as u64);
            }
        }
        written
    }

    async fn queue_and_wait(&self, points: Vec<DataPoint>) -> Result<usize, ApiError> {
        let count = points.len();
        self.admit_old_points(&points)?;
        let limit = self.depth.limit;
        let room = u32::try_from(count)
            .ok()
            .filter(|&n| n as usize <= limit)
            .ok_or(ApiError::TooManyPoints {
                points: count,
                limit,
            })?;
        let room = self
            .depth
            .room
            .clone()
            .try_acquire_many_owned(room)
            .map_err(|_| ApiError::Overloaded)?;
        let rows = self
            .store
            .to_rows(points.iter(), |new| self.admit_new_signals(new))
            .await?;
        let (done, committed) = oneshot::channel();
        self.queue
            .send(WriteJob {
                points,
                rows,
                done,
                _room: room,
            })
            .map_err(|_| ApiError::ShuttingDown)?;
        committed.await.map_err(|_| ApiError::ShuttingDown)??;
        Ok(count)
    }

    /// Points waiting for a commit, all requests together.
    pub fn queued_points(&self) -> usize {
        self.depth.points()
    }

    /// The queue's gauge, for `/metrics`.
    pub fn queue_depth(&self) -> QueueDepth {
        self.depth.clone()
    }

    /// Whether the writer task still takes jobs.
    pub fn is_running(&self) -> bool {
        !self.queue.is_closed()
    }

    /// Refuses a request with a point older than raw retention. Such a point could only go into the
    /// rollups, which add it to a minute's count and sum: they cannot tell a producer's resend (at
    /// least once, as producers deliver) from a new point, and would count it twice.
    fn admit_old_points(&self, points: &[DataPoint]) -> Result<(), ApiError> {
        let raw_ms = self.store.retention().raw_ms;
        let cutoff = self.clock.now().saturating_add(-raw_ms);
        match points.iter().find(|p| p.timestamp < cutoff) {
            None => Ok(()),
            Some(old) => Err(ApiError::BadRequest(format!(
                "signal {}: timestamp {} is older than the raw retention of {} days \
                 (setting raw-retention-days); older points cannot be written",
                old.signal,
                old.timestamp.millis(),
                raw_ms / DAY
            ))),
        }
    }

    /// Lets the signals `new` (distinct) be created, unless they are more than one request may
    /// create, or than the database may hold. Requests in flight at once may pass the total by
    /// what each creates: a soft ceiling.
    fn admit_new_signals(&self, new: &[&SignalName]) -> Result<(), ApiError> {
        let new = new.len();
        let per_request = self.limits.max_new_signals;
        if new > per_request {
            return Err(ApiError::BadRequest(format!(
                "the request creates {new} new signals; the limit per request is {per_request} \
                 (setting max-new-signals)"
            )));
        }
        let (known, total) = (self.store.signal_count(), self.limits.max_total_signals);
        if known + new > total {
            return Err(ApiError::BadRequest(format!(
                "the request creates {new} new signals, and the database holds {known} of at \
                 most {total} (setting max-total-signals)"
            )));
        }
        Ok(())
    }
}

/// The queue's room, in points: also a gauge that, unlike a `Writer`, does not keep the writer
/// task running.
#[derive(Clone)]
pub struct QueueDepth {
    /// A permit per point that may wait for a commit: the queue's memory has a stated ceiling
    /// whatever the size of the requests, and past it a request is refused at once.
    room: Arc<Semaphore>,
    /// `write-queue-points`.
    limit: usize,
}

impl QueueDepth {
    /// Points waiting for a commit, all requests together.
    pub fn points(&self) -> usize {
        self.limit.saturating_sub(self.room.available_permits())
    }
}

async fn run(
    store: Store,
    live: LiveFeed,
    alerts: Alerts,
    relay: Option<Relay>,
    metrics: WriteMetrics,
    mut jobs: mpsc::UnboundedReceiver<WriteJob>,
) {
    while let Some(first) = jobs.recv().await {
        let mut group = vec![first];
        let mut points = group[0].points.len();
        while points < MAX_GROUP_POINTS {
            match jobs.try_recv() {
                Ok(job) => {
                    points += job.points.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let rows = Rows::concat(group.iter_mut().map(|job| std::mem::take(&mut job.rows)));
        let started = Instant::now();
        let result = store.write_rows(rows).await;
        metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics.commit_points.observe(points as f64);
        match &result {
            // Rules are evaluated on what is committed, before anyone hears of it.
            Ok(()) => {
                metrics.accepted.inc_by(points as u64);
                let all: Vec<&DataPoint> = group.iter().flat_map(|job| &job.points).collect();
                alerts.observe(&all);
            }
            Err(e) => {
                metrics.commits_failed.inc();
                tracing::error!(error = %e, points, "group commit failed; nothing of it was stored")
            }
        }
        let publish = result.is_ok() && (live.has_subscribers() || relay.is_some());
        let mut published = Vec::new();
        for job in group {
            if publish {
                published.extend(job.points.into_iter().map(|p| Point {
                    signal: p.signal.into_string(),
                    timestamp: p.timestamp.millis(),
                    value: p.value.get(),
                }));
            }
            // A requester that gave up (client disconnected) is no error: its points are stored anyway.
            let _ = job.done.send(result.clone());
        }
        if publish {
            if let Some(relay) = &relay {
                relay.send(published.clone());
            }
            live.publish(published);
        }
    }
}
