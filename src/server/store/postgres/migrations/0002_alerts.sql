-- Alert rules, their episodes, notifications and annotations: the tables of SQLite's
-- sqlite/migrations/0006_alerts.sql, which says what each is for.
CREATE TABLE alert_rules (
    id                BIGSERIAL PRIMARY KEY,
    spec              TEXT   NOT NULL,
    silenced_until_ms BIGINT,
    created_ms        BIGINT NOT NULL,
    updated_ms        BIGINT NOT NULL
);

CREATE TABLE alert_states (
    rule_id  BIGINT           NOT NULL,
    signal   TEXT             NOT NULL,
    since_ms BIGINT           NOT NULL,
    fired_ms BIGINT           NOT NULL,
    value    DOUBLE PRECISION,
    PRIMARY KEY (rule_id, signal)
);

CREATE TABLE notifications (
    id           BIGSERIAL PRIMARY KEY,
    rule_id      BIGINT NOT NULL,
    url          TEXT   NOT NULL,
    body         TEXT   NOT NULL,
    created_ms   BIGINT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_ms      BIGINT NOT NULL,
    delivered_ms BIGINT,
    given_up     TEXT
);
CREATE INDEX notifications_due ON notifications (next_ms) WHERE delivered_ms IS NULL AND given_up IS NULL;

CREATE TABLE notification_attempts (
    notification_id BIGINT NOT NULL,
    at_ms           BIGINT NOT NULL,
    outcome         TEXT   NOT NULL
);
CREATE INDEX notification_attempts_of ON notification_attempts (notification_id);

CREATE TABLE annotations (
    id      BIGSERIAL PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    end_ms  BIGINT,
    text    TEXT   NOT NULL,
    tags    TEXT   NOT NULL,
    signals TEXT   NOT NULL
);
CREATE INDEX annotations_time ON annotations (time_ms);
