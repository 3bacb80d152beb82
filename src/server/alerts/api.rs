//! The JSON API of alerting: rules on `/api/alerts` (reading needs `read`; creating, editing,
//! silencing and deleting need `admin`, since a rule makes the server call a URL), and annotations
//! on `/api/annotations` (reading `read`, adding `write`).

use super::rule::RuleSpec;
use super::Alerts;
use crate::model::{AlertRule, Annotation};
use crate::server::access;
use crate::server::domain::Timestamp;
use crate::server::error::ApiError;
use crate::server::store::{AttemptRecord, NewAnnotation};
use crate::server::AppState;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// Most annotations one answer holds.
const MAX_ANNOTATIONS: i64 = 10_000;
/// Longest annotation text, most tags and signals on one, longest tag or signal (characters).
const MAX_TEXT: usize = 1_000;
const MAX_LABELS: usize = 100;
const MAX_LABEL: usize = 200;

pub fn routes(state: &AppState) -> Router<AppState> {
    let read = from_fn_with_state(state.clone(), access::require_read);
    let admin = from_fn_with_state(state.clone(), access::require_admin);
    let write = from_fn_with_state(state.clone(), access::require_write);
    Router::new()
        .route(
            "/api/alerts",
            get(list)
                .route_layer(read.clone())
                .merge(post(create).route_layer(admin.clone())),
        )
        .route(
            "/api/alerts/{id}",
            put(edit).merge(delete(remove)).route_layer(admin.clone()),
        )
        .route("/api/alerts/{id}/silence", post(silence).route_layer(admin))
        .route(
            "/api/alerts/{id}/deliveries",
            get(deliveries).route_layer(read.clone()),
        )
        .route(
            "/api/annotations",
            get(annotations)
                .route_layer(read)
                .merge(post(annotate).route_layer(write)),
        )
}

#[derive(Serialize)]
struct Created {
    id: i64,
}

fn alerts(state: &AppState) -> &Alerts {
    &state.alerts
}

fn body_text(body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    let body = body.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    String::from_utf8(body.to_vec()).map_err(|_| ApiError::BadRequest("body is not UTF-8".into()))
}

fn rule_id(path: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|r| ApiError::BadRequest(r.body_text()))
}

/// `GET /api/alerts`: every rule with its pending and firing signals.
async fn list(State(state): State<AppState>) -> Result<Json<Vec<AlertRule>>, ApiError> {
    Ok(Json(rules(&state).await?))
}

/// Every rule with its pending and firing signals, by id.
pub async fn rules(state: &AppState) -> Result<Vec<AlertRule>, ApiError> {
    let records = state.store.alert_rules().await?;
    let mut states = alerts(state).states();
    let views = records
        .into_iter()
        .filter_map(|record| {
            let spec = RuleSpec::parse(&record.spec).ok()?;
            Some(AlertRule {
                id: record.id,
                spec,
                silenced_until_ms: record.silenced_until_ms,
                created_ms: record.created_ms,
                updated_ms: record.updated_ms,
                states: states.remove(&record.id).unwrap_or_default(),
            })
        })
        .collect();
    Ok(views)
}

/// `POST /api/alerts`: a new rule → `201 {"id"}`.
async fn create(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let spec = RuleSpec::parse(&body_text(body)?).map_err(ApiError::BadRequest)?;
    let id = save_rule(&state, None, spec).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

/// `PUT /api/alerts/{id}`: replaces a rule; its episodes end (without notifications).
async fn edit(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Created>, ApiError> {
    let id = rule_id(path)?;
    let spec = RuleSpec::parse(&body_text(body)?).map_err(ApiError::BadRequest)?;
    Ok(Json(Created {
        id: save_rule(&state, Some(id), spec).await?,
    }))
}

/// Stores a new rule (`id` `None`) or replaces rule `id`, and evaluates by the new rules from then
/// on. Returns the rule's id.
pub async fn save_rule(state: &AppState, id: Option<i64>, spec: RuleSpec) -> Result<i64, ApiError> {
    spec.check().map_err(ApiError::BadRequest)?;
    let json = serde_json::to_string(&spec).expect("a rule serialises");
    let now = state.clock.now().millis();
    let id = match id {
        Some(id) => {
            if !state.store.update_alert_rule(id, &json, now).await? {
                return Err(ApiError::NotFound(format!("/api/alerts/{id}")));
            }
            id
        }
        None => {
            let most = state.limits.max_alert_rules;
            if state.store.alert_rule_count().await? >= most as i64 {
                return Err(ApiError::BadRequest(format!(
                    "the database holds {most} rules, the most it may (setting max-alert-rules)"
                )));
            }
            state.store.create_alert_rule(&json, now).await?
        }
    };
    alerts(state).reload().await?;
    Ok(id)
}

/// `DELETE /api/alerts/{id}` → 204.
async fn remove(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    delete_rule(&state, rule_id(path)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes rule `id` and its episodes.
pub async fn delete_rule(state: &AppState, id: i64) -> Result<(), ApiError> {
    if !state.store.delete_alert_rule(id).await? {
        return Err(ApiError::NotFound(format!("/api/alerts/{id}")));
    }
    alerts(state).reload().await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Silence {
    /// Until when (epoch ms); `null` lifts the silence.
    until_ms: Option<i64>,
}

/// `POST /api/alerts/{id}/silence` `{"until_ms": T}`: no notifications until then.
async fn silence(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let id = rule_id(path)?;
    let silence: Silence = serde_json::from_str(&body_text(body)?)
        .map_err(|e| ApiError::BadRequest(format!("silence: {e}")))?;
    silence_rule(&state, id, silence.until_ms).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Holds rule `id`'s notifications back until `until_ms` (`None`: no longer).
pub async fn silence_rule(
    state: &AppState,
    id: i64,
    until_ms: Option<i64>,
) -> Result<(), ApiError> {
    if !state.store.silence_alert_rule(id, until_ms).await? {
        return Err(ApiError::NotFound(format!("/api/alerts/{id}")));
    }
    Ok(())
}

/// `GET /api/alerts/{id}/deliveries`: every attempt to send the rule's notifications.
async fn deliveries(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<Vec<AttemptRecord>>, ApiError> {
    let id = rule_id(path)?;
    Ok(Json(state.store.notification_attempts(id).await?))
}

/// `POST /api/annotations` `{time, end?, text, tags?, signals?}` → `201 {"id"}`.
async fn annotate(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let annotation: Annotation = serde_json::from_str(&body_text(body)?)
        .map_err(|e| ApiError::BadRequest(format!("annotation: {e}")))?;
    let id = add_annotation(&state, annotation).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

/// Checks and stores an annotation; returns its id.
pub async fn add_annotation(state: &AppState, a: Annotation) -> Result<i64, ApiError> {
    let bad = |why: String| ApiError::BadRequest(why);
    Timestamp::from_millis(a.time).map_err(|e| bad(format!("time: {e}")))?;
    if let Some(end) = a.end {
        Timestamp::from_millis(end).map_err(|e| bad(format!("end: {e}")))?;
        if end < a.time {
            return Err(bad("end is before time".into()));
        }
    }
    let chars = |s: &str| s.chars().count();
    if a.text.trim().is_empty() || chars(&a.text) > MAX_TEXT {
        return Err(bad(format!("text must be 1 to {MAX_TEXT} characters")));
    }
    for labels in [&a.tags, &a.signals] {
        if labels.len() > MAX_LABELS || labels.iter().any(|l| chars(l) > MAX_LABEL) {
            return Err(bad(format!(
                "at most {MAX_LABELS} tags and signals, each of {MAX_LABEL} characters at most"
            )));
        }
    }
    let most = state.limits.max_annotations;
    if state.store.annotation_count().await? >= most as i64 {
        return Err(bad(format!(
            "the database holds {most} annotations, the most it may (setting max-annotations)"
        )));
    }
    Ok(state
        .store
        .annotate(&NewAnnotation {
            time_ms: a.time,
            end_ms: a.end,
            text: a.text,
            tags: serde_json::to_string(&a.tags).expect("strings serialise"),
            signals: serde_json::to_string(&a.signals).expect("strings serialise"),
        })
        .await?)
}

#[derive(Deserialize)]
struct Between {
    from: i64,
    to: i64,
}

/// `GET /api/annotations?from=MS&to=MS`: those touching the range, by time.
async fn annotations(
    State(state): State<AppState>,
    range: Result<Query<Between>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Annotation>>, ApiError> {
    let Query(Between { from, to }) = range?;
    Ok(Json(annotations_between(&state, from, to).await?))
}

/// The annotations touching `from..=to`, by time.
pub async fn annotations_between(
    state: &AppState,
    from: i64,
    to: i64,
) -> Result<Vec<Annotation>, ApiError> {
    let records = state.store.annotations(from, to, MAX_ANNOTATIONS).await?;
    let parse = |json: &str| serde_json::from_str(json).unwrap_or_default();
    Ok(records
        .into_iter()
        .map(|r| Annotation {
            id: r.id,
            time: r.time_ms,
            end: r.end_ms,
            tags: parse(&r.tags),
            signals: parse(&r.signals),
            text: r.text,
        })
        .collect())
}
