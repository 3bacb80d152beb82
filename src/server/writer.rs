//! The single writer. Handlers never touch the database for writes: they queue their validated points
//! here and wait. One task owns the write path and commits everything queued so far in one transaction
//! (group commit), so a burst of a thousand small requests costs one commit, not a thousand. Only after
//! the commit does it answer the waiting requests and publish the points live: a 2xx always means stored.

use crate::model::Point;
use crate::server::domain::DataPoint;
use crate::server::error::ApiError;
use crate::server::live::LiveFeed;
use crate::server::store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Upper bound on the points of one group commit, so one transaction stays short and memory bounded.
const MAX_GROUP_POINTS: usize = 50_000;

struct WriteJob {
    points: Vec<DataPoint>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The handlers' side of the queue.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<WriteJob>,
}

impl Writer {
    /// Starts the writer task. `queue_capacity` bounds how many requests may wait for a commit; past it
    /// `write` fails fast with `Overloaded` instead of buffering without limit.
    /// The task ends once every `Writer` is dropped and the queue is drained.
    pub fn spawn(store: Store, live: LiveFeed, queue_capacity: usize) -> (Writer, JoinHandle<()>) {
        let (queue, jobs) = mpsc::channel(queue_capacity.max(1));
        let task = tokio::spawn(run(store, live, jobs));
        (Writer { queue }, task)
    }

    /// Queues `points` and returns once they are committed.
    pub async fn write(&self, points: Vec<DataPoint>) -> Result<usize, ApiError> {
        let count = points.len();
        let (done, committed) = oneshot::channel();
        self.queue
            .try_send(WriteJob { points, done })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => ApiError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => ApiError::ShuttingDown,
            })?;
        committed.await.map_err(|_| ApiError::ShuttingDown)??;
        Ok(count)
    }
}

async fn run(store: Store, live: LiveFeed, mut jobs: mpsc::Receiver<WriteJob>) {
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
        let all: Vec<&DataPoint> = group.iter().flat_map(|job| &job.points).collect();
        let result = store.write(&all).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, points, "group commit failed; nothing of it was stored");
        }
        let publish = result.is_ok() && live.has_subscribers();
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
            live.publish(published);
        }
    }
}
