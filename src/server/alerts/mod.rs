//! Alerting: rules evaluated on the server on every committed point (`evaluate.rs`), episodes and
//! notifications stored (`store/alerts.rs`), webhooks delivered from an outbox (`notify.rs`), and
//! the JSON API (`api.rs`), annotations included.
//!
//! The writer hands each commit's points to `Alerts::observe` before it answers: evaluation is a
//! hash lookup per point and a comparison per rule watching it, so it stays on the commit path
//! rather than costing a copy of every point to another task. What it decides (an episode starts
//! or ends) goes to a task that stores it with its notification and annotation in one
//! transaction, and that wakes the notifier.

mod api;
mod evaluate;
mod notify;
pub mod rule;

pub use api::{
    add_annotation, annotations_between, delete_rule, routes, rules, save_rule, silence_rule,
};

use crate::model::AlertState;
use crate::server::clock::SharedClock;
use crate::server::domain::DataPoint;
use crate::server::store::{Aftermath, Episode, NewAnnotation, Outgoing, Store, StoreError};
use evaluate::{Change, Evaluator, Rule, Status};
use rule::RuleSpec;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;

/// How often silences are checked for no-data rules.
const TICK: Duration = Duration::from_secs(1);

/// The server's alerting: cheap to clone, one per server.
#[derive(Clone)]
pub struct Alerts(Arc<Shared>);

struct Shared {
    store: Store,
    clock: SharedClock,
    evaluator: Mutex<Evaluator>,
    /// Whether any rule exists: without one, a commit costs one load.
    any_rules: AtomicBool,
    changes: mpsc::UnboundedSender<Change>,
    /// Wakes the notifier when a notification was queued.
    queued: Notify,
}

impl Alerts {
    /// Loads the rules and their firing episodes and starts the tasks that store changes, tick
    /// for silences and send notifications; they run until `tasks` is shut down (before the store
    /// closes, or they would find it closed).
    pub async fn start(
        store: Store,
        clock: SharedClock,
    ) -> Result<(Alerts, JoinSet<()>), StoreError> {
        let Loaded {
            rules,
            episodes,
            signals,
        } = load(&store).await?;
        let evaluator = Evaluator::new(rules, episodes, signals);
        let (changes, incoming) = mpsc::unbounded_channel();
        let alerts = Alerts(Arc::new(Shared {
            any_rules: AtomicBool::new(evaluator.has_rules()),
            evaluator: Mutex::new(evaluator),
            store,
            clock,
            changes,
            queued: Notify::new(),
        }));
        let mut tasks = JoinSet::new();
        tasks.spawn(record_changes(alerts.clone(), incoming));
        tasks.spawn(tick(alerts.clone()));
        tasks.spawn(notify::deliver(alerts.clone()));
        Ok((alerts, tasks))
    }

    /// The points of a commit.
    pub fn observe(&self, points: &[&DataPoint]) {
        if !self.0.any_rules.load(Ordering::Relaxed) {
            return;
        }
        let mut changes = Vec::new();
        {
            let mut evaluator = self.evaluator();
            for p in points {
                let (t, v) = (p.timestamp.millis(), p.value.get());
                evaluator.observe(p.signal.as_str(), t, v, &mut changes);
            }
        }
        self.send(changes);
    }

    /// Re-reads the rules (one was created, edited or deleted).
    async fn reload(&self) -> Result<(), StoreError> {
        let Loaded {
            rules,
            episodes,
            signals,
        } = load(&self.0.store).await?;
        let mut evaluator = self.evaluator();
        evaluator.replace_rules(rules, episodes, signals);
        self.0
            .any_rules
            .store(evaluator.has_rules(), Ordering::Relaxed);
        Ok(())
    }

    fn evaluator(&self) -> std::sync::MutexGuard<'_, Evaluator> {
        self.0.evaluator.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, changes: Vec<Change>) {
        for change in changes {
            // The receiver lives as long as the server.
            let _ = self.0.changes.send(change);
        }
    }
}

/// The rules, their firing episodes, and — when there are rules — when each stored signal last
/// reported (without rules nothing needs it, and a database may hold a million signals).
async fn load(store: &Store) -> Result<Loaded, StoreError> {
    let mut rules = Vec::new();
    for record in store.alert_rules().await? {
        match RuleSpec::parse(&record.spec) {
            Ok(spec) => rules.push(Rule {
                id: record.id,
                spec,
            }),
            Err(e) => tracing::error!(
                rule = record.id,
                "skipping a stored rule that no longer reads: {e}"
            ),
        }
    }
    let signals = match rules.is_empty() {
        true => Vec::new(),
        false => store
            .signals()
            .await?
            .into_iter()
            .map(|s| (s.signal, s.last_timestamp))
            .collect(),
    };
    let episodes = store.alert_episodes().await?;
    Ok(Loaded {
        rules,
        episodes,
        signals,
    })
}

/// What `load` reads.
struct Loaded {
    rules: Vec<Rule>,
    episodes: Vec<Episode>,
    /// Each signal's name and its newest point's time.
    signals: Vec<(String, i64)>,
}

/// Checks silences every `TICK`.
async fn tick(alerts: Alerts) {
    let mut ticks = tokio::time::interval(TICK);
    loop {
        ticks.tick().await;
        let now = alerts.0.clock.now().millis();
        let mut changes = Vec::new();
        alerts.evaluator().tick(now, &mut changes);
        alerts.send(changes);
    }
}

/// Stores each change with what it leaves behind, in order; a change the database refuses for
/// now is tried again, so an episode is never left unrecorded.
async fn record_changes(alerts: Alerts, mut incoming: mpsc::UnboundedReceiver<Change>) {
    while let Some(change) = incoming.recv().await {
        let mut wait = Duration::from_millis(100);
        loop {
            match record(&alerts, &change).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, "storing an alert change failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

async fn record(alerts: &Alerts, change: &Change) -> Result<(), StoreError> {
    let store = &alerts.0.store;
    let now = alerts.0.clock.now().millis();
    let (rule_id, signal) = match change {
        Change::Fire(e) => (e.rule_id, e.signal.as_str()),
        Change::Resolve {
            rule_id, signal, ..
        } => (*rule_id, signal.as_str()),
    };
    // The rule as it is now, and whether it is silenced (a deleted rule's change is dropped).
    let Some(record) = store.alert_rule(rule_id).await? else {
        return Ok(());
    };
    let Ok(spec) = RuleSpec::parse(&record.spec) else {
        return Ok(());
    };
    let silenced = record.silenced_until_ms.is_some_and(|until| until > now);
    let notice = notify::Notice::of(rule_id, &spec, signal, change);
    let aftermath = Aftermath {
        notification: spec
            .webhook
            .as_ref()
            .filter(|_| !silenced)
            .map(|url| Outgoing {
                rule_id,
                url: url.clone(),
                body: notice.body(spec.slack),
                created_ms: now,
            }),
        annotation: NewAnnotation {
            time_ms: notice.at_ms,
            end_ms: None,
            text: notice.summary(),
            tags: serde_json::json!(["alert", notice.state]).to_string(),
            signals: serde_json::json!([signal]).to_string(),
        },
    };
    let changed = match change {
        Change::Fire(episode) => store.fire(episode, &aftermath).await?,
        Change::Resolve { .. } => store.resolve(rule_id, signal, &aftermath).await?,
    };
    if changed && aftermath.notification.is_some() {
        alerts.0.queued.notify_one();
    }
    Ok(())
}

impl Alerts {
    /// Each rule's non-ok states, by signal, keyed by rule id.
    fn states(&self) -> std::collections::BTreeMap<i64, Vec<AlertState>> {
        let evaluator = self.evaluator();
        let mut states: std::collections::BTreeMap<i64, Vec<AlertState>> = Default::default();
        for (rule, signal, status) in evaluator.states() {
            let view = match status {
                Status::Pending { since, value } => AlertState {
                    signal: signal.to_owned(),
                    state: "pending".into(),
                    since_ms: since,
                    fired_ms: None,
                    value: Some(value),
                },
                Status::Firing {
                    since,
                    fired,
                    value,
                } => AlertState {
                    signal: signal.to_owned(),
                    state: "firing".into(),
                    since_ms: since,
                    fired_ms: Some(fired),
                    value,
                },
            };
            states.entry(rule).or_default().push(view);
        }
        for of_rule in states.values_mut() {
            of_rule.sort_by(|a, b| a.signal.cmp(&b.signal));
        }
        states
    }
}
