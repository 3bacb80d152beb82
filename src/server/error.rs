//! The one error type of the HTTP layer. Every handler returns `Result<_, ApiError>`, and this file alone
//! decides which status and which `{"error": …}` body each failure becomes.

use crate::model::ErrorBody;
use crate::server::log_throttle::LogThrottle;
use crate::server::store::StoreError;
use axum::extract::rejection::QueryRejection;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or invalid; the message says what and where.
    #[error("{0}")]
    BadRequest(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// More points in one request than the whole write queue may hold.
    #[error("the request holds {points} points, more than the write queue's {limit} (setting write-queue-points)")]
    TooManyPoints { points: usize, limit: usize },
    #[error("the request took longer than {} s (setting request-timeout-secs)", .deadline.as_secs())]
    RequestTimeout { deadline: std::time::Duration },
    /// A browser request from a page of another site, to an endpoint that changes or streams data.
    #[error("requests from pages of another origin ({0}) are refused here")]
    CrossOrigin(String),
    /// Tokens are required and the request presents none, or one that is not valid.
    #[error("an access token is required: send Authorization: Bearer TOKEN (or Token TOKEN)")]
    Unauthorized,
    /// The token presented may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The token's write rate is used up for now.
    #[error("the token {token:?} writes faster than its rate (setting token-write-rate)")]
    RateLimited { token: String, retry_after: u64 },
    /// No route and no file of the site answers this path.
    #[error("nothing here: {0}")]
    NotFound(String),
    #[error("unsupported content type {found:?}: expected {expected}")]
    UnsupportedMediaType {
        found: String,
        expected: &'static str,
    },
    /// The write queue is full: the client should retry after a short pause.
    #[error("server is busy: the write queue is full, retry shortly")]
    Overloaded,
    /// The database failed; nothing of the request was stored. The client learns whether retrying
    /// may help, never the database's own words (those go to the log).
    #[error("{}", match .0 {
        StoreError::Unavailable(_) => "the database is unavailable: retry shortly",
        _ => "internal error: the database failed (see the server's log)",
    })]
    Store(#[from] StoreError),
    /// An edge's spool could not take the points (its disk failed or is full); nothing was
    /// spooled, and the client may retry.
    #[error("the edge's spool cannot take points ({0}): retry shortly")]
    Spool(std::io::Error),
    #[error("server is shutting down")]
    ShuttingDown,
    /// An answer could not be encoded (a bug, not the client's fault).
    #[error("the answer could not be encoded: {0}")]
    Encoding(String),
}

/// A query string that does not fit its parameters: 400 with axum's words for what is wrong.
impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl ApiError {
    /// A short fixed name for what went wrong: the `reason` label of the refusal metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "invalid",
            ApiError::PayloadTooLarge { .. } => "body_too_large",
            ApiError::TooManyPoints { .. } => "too_many_points",
            ApiError::RequestTimeout { .. } => "timeout",
            ApiError::CrossOrigin(_) => "cross_origin",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::NotFound(_) => "not_found",
            ApiError::UnsupportedMediaType { .. } => "media_type",
            ApiError::Overloaded => "queue_full",
            ApiError::Store(StoreError::Unavailable(_)) => "database_unavailable",
            ApiError::Store(_) => "database_failed",
            ApiError::Spool(_) => "spool_failed",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::Encoding(_) => "encoding",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::CrossOrigin(_) | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge { .. } | ApiError::TooManyPoints { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Overloaded
            | ApiError::Store(StoreError::Unavailable(_))
            | ApiError::Spool(_)
            | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(_) | ApiError::Encoding(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let error = self.to_string();
        // What the log says: the database's own words where the client gets only a summary.
        let refusal = Refusal {
            reason: self.reason(),
            detail: match &self {
                ApiError::Store(cause) => cause.to_string(),
                _ => error.clone(),
            },
        };
        let mut response = (status, Json(ErrorBody { error })).into_response();
        let headers = response.headers_mut();
        match self {
            // Every 503 here is transient: tell well-behaved clients when to come back.
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::RateLimited { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            ApiError::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"signalboard\""),
                );
            }
            _ => {}
        }
        response.extensions_mut().insert(refusal);
        response
    }
}

/// Why a request was answered with an error, carried on the answer to the outermost layer
/// (`intake::guard`), which knows the route and logs and counts it.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub reason: &'static str,
    pub detail: String,
}

/// Longest detail or path a log line repeats: a client's words may be long, and hostile.
const LOGGED_CHARS: usize = 300;

/// Logs an error answer with its reason: refusals (4xx) and failures (5xx) each at most
/// `LOG_BURST` lines a minute, the next line saying how many were left out, so a flood of bad
/// requests can neither fill the disk nor hide a failure.
pub fn log_answer(method: &Method, target: &str, status: StatusCode, refusal: Option<&Refusal>) {
    const LOG_BURST: u32 = 60;
    static REFUSED: LogThrottle = LogThrottle::new(LOG_BURST, Duration::from_secs(60));
    static FAILED: LogThrottle = LogThrottle::new(LOG_BURST, Duration::from_secs(60));
    let throttle = match status {
        _ if status.is_server_error() => &FAILED,
        _ if status.is_client_error() => &REFUSED,
        _ => return,
    };
    let Some(count) = throttle.admit(1) else {
        return;
    };
    let unlogged = count - 1;
    let target: String = target.chars().take(LOGGED_CHARS).collect();
    let (reason, detail) = match refusal {
        Some(refusal) => (
            refusal.reason,
            refusal.detail.chars().take(LOGGED_CHARS).collect(),
        ),
        None => ("", String::new()),
    };
    let status = status.as_u16();
    if status >= 500 {
        tracing::error!(status, %method, target, reason, detail, unlogged, "request failed");
    } else {
        tracing::info!(status, %method, target, reason, detail, unlogged, "request refused");
    }
}

/// InfluxDB's clients read an error from `{"code": …, "message": …}`: on its endpoints, an error
/// answer carries both (and `error`, as every Signalboard error does), so a client's exception says
/// what was wrong. Errors made before the handler (a token, the write rate) are reshaped too.
pub async fn influx_shape(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (status, "").into_response();
    };
    let Ok(ErrorBody { error }) = serde_json::from_slice(&bytes) else {
        return Response::from_parts(parts, bytes.into());
    };
    let code = match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not found",
        StatusCode::PAYLOAD_TOO_LARGE => "request too large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported media type",
        StatusCode::TOO_MANY_REQUESTS => "too many requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ if status.is_server_error() => "internal error",
        _ => "invalid",
    };
    let body = serde_json::json!({"code": code, "message": error, "error": error});
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Json(body).into_response().into_body())
}
