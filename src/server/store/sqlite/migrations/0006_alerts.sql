-- Alert rules, their open episodes, the notifications they send, and annotations
-- (`server/alerts/`). The same tables in PostgreSQL (postgres/migrations/0002_alerts.sql).

-- A rule's definition is its JSON (`alerts::RuleSpec`): what it watches and when it fires change
-- with the product, the table does not.
CREATE TABLE alert_rules (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    spec              TEXT    NOT NULL,
    -- Notifications are held back until then (epoch ms); states are still tracked.
    silenced_until_ms INTEGER,
    created_ms        INTEGER NOT NULL,
    updated_ms        INTEGER NOT NULL
);

-- One row per rule and signal that is firing: an episode. No row: ok (or pending, which each server
-- keeps in memory). A server inserts the row, or deletes it, only if it was not already so: the one
-- whose statement changed it sends the notification, so an episode fires once, across restarts and
-- across the servers sharing a database.
CREATE TABLE alert_states (
    rule_id   INTEGER NOT NULL,
    signal    TEXT    NOT NULL,
    -- When the condition began to hold, and when the rule fired.
    since_ms  INTEGER NOT NULL,
    fired_ms  INTEGER NOT NULL,
    value     REAL,
    PRIMARY KEY (rule_id, signal)
);

-- The outbox: a notification stays here until its webhook answered 2xx (or refused it for good),
-- so a restart loses none. `next_ms` is when it may be tried next; a server sending it moves that
-- ahead first, so no other takes it meanwhile.
CREATE TABLE notifications (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id      INTEGER NOT NULL,
    url          TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    created_ms   INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_ms      INTEGER NOT NULL,
    delivered_ms INTEGER,
    given_up     TEXT
);
CREATE INDEX notifications_due ON notifications (next_ms) WHERE delivered_ms IS NULL AND given_up IS NULL;

-- Every delivery attempt and what came of it.
CREATE TABLE notification_attempts (
    notification_id INTEGER NOT NULL,
    at_ms           INTEGER NOT NULL,
    outcome         TEXT    NOT NULL
);
CREATE INDEX notification_attempts_of ON notification_attempts (notification_id);

-- Marks on the charts: an instant or a span, with text; `tags` and `signals` are JSON arrays
-- (no signals: every chart).
CREATE TABLE annotations (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms  INTEGER NOT NULL,
    end_ms   INTEGER,
    text     TEXT    NOT NULL,
    tags     TEXT    NOT NULL,
    signals  TEXT    NOT NULL
);
CREATE INDEX annotations_time ON annotations (time_ms);
