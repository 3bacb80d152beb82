//! What alerting keeps in the database (`server/alerts/` decides what to keep): rules, firing
//! episodes, the notification outbox and its attempts, and annotations. Not on the ingest path, so
//! one set of statements serves both databases (SQLite reads `$1` and `RETURNING` as PostgreSQL
//! does); migrations sqlite/0006 and postgres/0002 say what each table is for.

use super::{Store, StoreError};

/// A stored rule: its definition as JSON (`alerts::RuleSpec`), and its silence.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct RuleRecord {
    pub id: i64,
    pub spec: String,
    pub silenced_until_ms: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A firing episode of a rule on one signal.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct Episode {
    pub rule_id: i64,
    pub signal: String,
    /// When the condition began to hold.
    pub since_ms: i64,
    pub fired_ms: i64,
    pub value: Option<f64>,
}

/// What a change of an episode leaves behind: a notification to send (if the rule has a webhook
/// and is not silenced) and an annotation for the charts.
pub struct Aftermath {
    pub notification: Option<Outgoing>,
    pub annotation: NewAnnotation,
}

/// A notification to queue.
pub struct Outgoing {
    pub rule_id: i64,
    pub url: String,
    pub body: String,
    pub created_ms: i64,
}

/// A notification taken from the outbox to send.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Due {
    pub id: i64,
    pub url: String,
    pub body: String,
    pub attempts: i64,
}

/// How an attempt to send a notification ended.
pub enum Attempt {
    Delivered,
    /// Worth another try at `next_ms`.
    Retry {
        next_ms: i64,
    },
    /// Never deliverable (the receiver refused it for good).
    GiveUp,
}

/// One delivery attempt, as recorded.
#[derive(Clone, Debug, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct AttemptRecord {
    pub notification_id: i64,
    pub at_ms: i64,
    pub outcome: String,
}

/// An annotation to store: `tags` and `signals` as JSON arrays.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAnnotation {
    pub time_ms: i64,
    pub end_ms: Option<i64>,
    pub text: String,
    pub tags: String,
    pub signals: String,
}

#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct AnnotationRecord {
    pub id: i64,
    pub time_ms: i64,
    pub end_ms: Option<i64>,
    pub text: String,
    pub tags: String,
    pub signals: String,
}

/// Stores an episode change's notification (if any) and annotation in the transaction `$tx`.
macro_rules! record_aftermath {
    ($tx:ident, $after:expr) => {{
        if let Some(n) = &$after.notification {
            let query = sqlx::query(NOTIFY_SQL).bind(n.rule_id).bind(&n.url);
            let query = query.bind(&n.body).bind(n.created_ms);
            query.execute(&mut *$tx).await?;
        }
        let a = &$after.annotation;
        let query = sqlx::query(ANNOTATE_SQL).bind(a.time_ms).bind(a.end_ms);
        let query = query.bind(&a.text).bind(&a.tags).bind(&a.signals);
        query.execute(&mut *$tx).await?;
    }};
}

const RULES_SQL: &str =
    "SELECT id, spec, silenced_until_ms, created_ms, updated_ms FROM alert_rules";
const NOTIFY_SQL: &str =
    "INSERT INTO notifications (rule_id, url, body, created_ms, next_ms) VALUES ($1, $2, $3, $4, $4)";
const ANNOTATE_SQL: &str = "INSERT INTO annotations (time_ms, end_ms, text, tags, signals) \
     VALUES ($1, $2, $3, $4, $5) RETURNING id";

impl Store {
    /// Every rule, by id.
    pub async fn alert_rules(&self) -> Result<Vec<RuleRecord>, StoreError> {
        let sql = format!("{RULES_SQL} ORDER BY id");
        on_pool!(self, reads, |pool| Ok(sqlx::query_as(&sql)
            .fetch_all(pool)
            .await?))
    }

    /// Rule `id`, if there is one.
    pub async fn alert_rule(&self, id: i64) -> Result<Option<RuleRecord>, StoreError> {
        let sql = format!("{RULES_SQL} WHERE id = $1");
        on_pool!(self, reads, |pool| Ok(sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?))
    }

    /// How many rules are stored.
    pub async fn alert_rule_count(&self) -> Result<i64, StoreError> {
        self.count("SELECT count(*) FROM alert_rules").await
    }

    /// Stores a new rule; returns its id.
    pub async fn create_alert_rule(&self, spec: &str, now_ms: i64) -> Result<i64, StoreError> {
        const SQL: &str = "INSERT INTO alert_rules (spec, created_ms, updated_ms) \
             VALUES ($1, $2, $2) RETURNING id";
        on_pool!(self, writes, |pool| Ok(sqlx::query_scalar(SQL)
            .bind(spec)
            .bind(now_ms)
            .fetch_one(pool)
            .await?))
    }

    /// Replaces a rule's definition; ends its episodes (they were of the old definition), without
    /// notifications. `false` when there is no such rule.
    pub async fn update_alert_rule(
        &self,
        id: i64,
        spec: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE alert_rules SET spec = $2, updated_ms = $3 WHERE id = $1";
        on_pool!(self, writes, |pool| {
            let mut tx = pool.begin().await?;
            let query = sqlx::query(SQL).bind(id).bind(spec).bind(now_ms);
            let changed = query.execute(&mut *tx).await?.rows_affected() == 1;
            sqlx::query("DELETE FROM alert_states WHERE rule_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(changed)
        })
    }

    /// Deletes a rule and its episodes; notifications already queued are still sent.
    pub async fn delete_alert_rule(&self, id: i64) -> Result<bool, StoreError> {
        on_pool!(self, writes, |pool| {
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query("DELETE FROM alert_rules WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM alert_states WHERE rule_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(deleted == 1)
        })
    }

    /// Holds a rule's notifications back until `until_ms` (`None`: no longer).
    pub async fn silence_alert_rule(
        &self,
        id: i64,
        until_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE alert_rules SET silenced_until_ms = $2 WHERE id = $1";
        on_pool!(self, writes, |pool| {
            let done = sqlx::query(SQL)
                .bind(id)
                .bind(until_ms)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Every firing episode.
    pub async fn alert_episodes(&self) -> Result<Vec<Episode>, StoreError> {
        const SQL: &str =
            "SELECT rule_id, signal, since_ms, fired_ms, value FROM alert_states ORDER BY rule_id";
        on_pool!(self, reads, |pool| Ok(sqlx::query_as(SQL)
            .fetch_all(pool)
            .await?))
    }

    /// Starts an episode, unless it is already firing (by this server before a restart, or by
    /// another): only then are its notification and annotation stored, with it, in one
    /// transaction. Returns whether this call started it.
    pub async fn fire(&self, episode: &Episode, after: &Aftermath) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO alert_states (rule_id, signal, since_ms, fired_ms, value) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (rule_id, signal) DO NOTHING";
        on_pool!(self, writes, |pool| {
            let mut tx = pool.begin().await?;
            let query = sqlx::query(SQL).bind(episode.rule_id).bind(&episode.signal);
            let query = query.bind(episode.since_ms).bind(episode.fired_ms);
            let started = query.bind(episode.value).execute(&mut *tx).await?;
            if started.rows_affected() == 1 {
                record_aftermath!(tx, after);
            }
            tx.commit().await?;
            Ok(started.rows_affected() == 1)
        })
    }

    /// Ends an episode, if it is firing: only then are the notification and annotation stored.
    /// Returns whether this call ended it.
    pub async fn resolve(
        &self,
        rule_id: i64,
        signal: &str,
        after: &Aftermath,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM alert_states WHERE rule_id = $1 AND signal = $2";
        on_pool!(self, writes, |pool| {
            let mut tx = pool.begin().await?;
            let ended = sqlx::query(SQL)
                .bind(rule_id)
                .bind(signal)
                .execute(&mut *tx)
                .await?;
            if ended.rows_affected() == 1 {
                record_aftermath!(tx, after);
            }
            tx.commit().await?;
            Ok(ended.rows_affected() == 1)
        })
    }

    /// Takes up to `limit` notifications due at `now_ms`, oldest first, moving them to `lease_ms`
    /// so that no other sender takes them while this one tries.
    pub async fn take_due_notifications(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Due>, StoreError> {
        // The outer `next_ms <= $1` is checked again on a row another server just leased: it
        // then no longer holds, and the row is not taken twice.
        const SQL: &str = "UPDATE notifications SET next_ms = $2 WHERE next_ms <= $1 \
             AND delivered_ms IS NULL AND given_up IS NULL AND id IN (SELECT id FROM notifications \
             WHERE next_ms <= $1 AND delivered_ms IS NULL AND given_up IS NULL ORDER BY id LIMIT $3) \
             RETURNING id, url, body, attempts";
        on_pool!(self, writes, |pool| {
            let mut due: Vec<Due> = sqlx::query_as(SQL)
                .bind(now_ms)
                .bind(lease_ms)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            due.sort_by_key(|d| d.id);
            Ok(due)
        })
    }

    /// Records an attempt to send notification `id` at `at_ms`, and what follows from it.
    pub async fn record_attempt(
        &self,
        id: i64,
        at_ms: i64,
        outcome: &str,
        attempt: Attempt,
    ) -> Result<(), StoreError> {
        const LOG_SQL: &str =
            "INSERT INTO notification_attempts (notification_id, at_ms, outcome) VALUES ($1, $2, $3)";
        let (sql, when) = match attempt {
            Attempt::Delivered => (
                "UPDATE notifications SET attempts = attempts + 1, delivered_ms = $2 WHERE id = $1",
                at_ms,
            ),
            Attempt::Retry { next_ms } => (
                "UPDATE notifications SET attempts = attempts + 1, next_ms = $2 WHERE id = $1",
                next_ms,
            ),
            Attempt::GiveUp => (
                "UPDATE notifications SET attempts = attempts + 1, next_ms = $2, given_up = $3 \
                 WHERE id = $1",
                at_ms,
            ),
        };
        on_pool!(self, writes, |pool| {
            let mut tx = pool.begin().await?;
            let update = sqlx::query(sql).bind(id).bind(when);
            // Every statement gets the three; the ones not using `$3` ignore it.
            let update = match sql.contains("$3") {
                true => update.bind(outcome),
                false => update,
            };
            update.execute(&mut *tx).await?;
            let log = sqlx::query(LOG_SQL).bind(id).bind(at_ms).bind(outcome);
            log.execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Deletes the notifications made before `before_ms` that are done with (delivered, or given
    /// up), with their attempts; returns the rows deleted. One still being sent stays, however old.
    pub async fn expire_notifications(&self, before_ms: i64) -> Result<u64, StoreError> {
        const ATTEMPTS_SQL: &str = "DELETE FROM notification_attempts WHERE notification_id IN \
             (SELECT id FROM notifications WHERE created_ms < $1 \
              AND (delivered_ms IS NOT NULL OR given_up IS NOT NULL))";
        const NOTIFICATIONS_SQL: &str = "DELETE FROM notifications WHERE created_ms < $1 \
             AND (delivered_ms IS NOT NULL OR given_up IS NOT NULL)";
        on_pool!(self, writes, |pool| {
            let mut tx = pool.begin().await?;
            let attempts = sqlx::query(ATTEMPTS_SQL).bind(before_ms);
            let attempts = attempts.execute(&mut *tx).await?.rows_affected();
            let done = sqlx::query(NOTIFICATIONS_SQL).bind(before_ms);
            let done = done.execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(attempts + done)
        })
    }

    /// The delivery attempts of a rule's notifications, oldest first.
    pub async fn notification_attempts(
        &self,
        rule_id: i64,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        const SQL: &str = "SELECT a.notification_id, a.at_ms, a.outcome \
             FROM notification_attempts a JOIN notifications n ON n.id = a.notification_id \
             WHERE n.rule_id = $1 ORDER BY a.at_ms, a.notification_id";
        on_pool!(self, reads, |pool| Ok(sqlx::query_as(SQL)
            .bind(rule_id)
            .fetch_all(pool)
            .await?))
    }

    /// Stores an annotation; returns its id.
    pub async fn annotate(&self, annotation: &NewAnnotation) -> Result<i64, StoreError> {
        on_pool!(self, writes, |pool| {
            let query = sqlx::query_scalar(ANNOTATE_SQL).bind(annotation.time_ms);
            let query = query.bind(annotation.end_ms).bind(&annotation.text);
            let query = query.bind(&annotation.tags).bind(&annotation.signals);
            Ok(query.fetch_one(pool).await?)
        })
    }

    /// How many annotations are stored.
    pub async fn annotation_count(&self) -> Result<i64, StoreError> {
        self.count("SELECT count(*) FROM annotations").await
    }

    async fn count(&self, sql: &'static str) -> Result<i64, StoreError> {
        on_pool!(self, reads, |pool| Ok(sqlx::query_scalar(sql)
            .fetch_one(pool)
            .await?))
    }

    /// The annotations that touch `from..=to` (an instant in it, or a span overlapping it), by
    /// time, at most `limit`.
    pub async fn annotations(
        &self,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<AnnotationRecord>, StoreError> {
        const SQL: &str = "SELECT id, time_ms, end_ms, text, tags, signals FROM annotations \
             WHERE time_ms <= $2 AND COALESCE(end_ms, time_ms) >= $1 ORDER BY time_ms, id LIMIT $3";
        on_pool!(self, reads, |pool| Ok(sqlx::query_as(SQL)
            .bind(from)
            .bind(to)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }
}
