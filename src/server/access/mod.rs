//! Who may do what. With no token stored, everything is open: a server on loopback needs no set-up
//! (and one serving beyond it refuses to start without a token, unless told `--no-auth`). Once a
//! token exists, every API and the dashboard need one, presented the way clients already send it,
//! and of a scope that allows the request: reads (history, signals, the live feed, the page, its
//! server functions) need `read`, writes need `write`; `admin` may do both. Only `/healthz`, the
//! sign-in page and the site's static files are open to all. Independently of tokens, pages of
//! other sites may neither write nor watch (`origin.rs`).

mod command;
mod origin;
pub mod signin;
pub mod tokens;

use crate::server::error::ApiError;
use crate::server::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
pub use command::run as token_command;
pub use origin::check_origin;
use tokens::Scope;

/// The dashboard's cookie: the read token it signed in with (HttpOnly, SameSite=Strict).
pub const COOKIE: &str = "signalboard_token";

/// Lets a request through that presents a token allowed to read.
pub async fn require_read(State(state): State<AppState>, request: Request, next: Next) -> Response {
    require(&state, Scope::Read, request, next).await
}

/// Admits a write (`Intake::admit`) that presents a token allowed to write (within its write rate)
/// and finds a place among `max-concurrent-writes`: each holds its body, up to `max-body-bytes`, so
/// together they never hold more than the product of the two. Past that place, 503 + Retry-After
/// at once.
pub async fn admit_write(
    state: &AppState,
    secret: Option<String>,
) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
    let place = state
        .writes_in_flight
        .try_acquire()
        .map_err(|_| ApiError::Overloaded)?;
    authorize(state, Scope::Write, secret).await?;
    Ok(place)
}

/// Lets a request through that comes from no other site's page and presents an `admin` token:
/// the alert rules, which make the server call URLs.
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    require_from_here(&state, Scope::Admin, request, next).await
}

/// Lets a request through that comes from no other site's page and presents a token allowed to
/// write (within its write rate): annotations.
pub async fn require_write(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    require_from_here(&state, Scope::Write, request, next).await
}

async fn require_from_here(
    state: &AppState,
    needed: Scope,
    request: Request,
    next: Next,
) -> Response {
    match check_origin(request.headers()) {
        Ok(()) => require(state, needed, request, next).await,
        Err(e) => e.into_response(),
    }
}

/// Who made a request, as its handler (a server function) may ask: the scope of the token it
/// presented, or `None` where no token is required.
#[derive(Clone, Copy, Debug)]
pub struct Caller(pub Option<Scope>);

impl Caller {
    /// Whether the caller may do what `needed` allows, or the error that says why not.
    pub fn may(self, needed: Scope) -> Result<(), ApiError> {
        match self.0 {
            Some(scope) if !scope.allows(needed) => Err(ApiError::Forbidden(format!(
                "this needs a token of scope {}",
                needed.name()
            ))),
            _ => Ok(()),
        }
    }
}

async fn require(state: &AppState, needed: Scope, mut request: Request, next: Next) -> Response {
    // A person opening the dashboard is shown the sign-in page, not a JSON error.
    let is_page = request.method() == Method::GET && request.uri().path() == "/";
    match authorize(state, needed, presented(&request)).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(ApiError::Unauthorized) if is_page => Redirect::to("/signin").into_response(),
        Err(e) => e.into_response(),
    }
}

async fn authorize(
    state: &AppState,
    needed: Scope,
    secret: Option<String>,
) -> Result<Caller, ApiError> {
    let tokens = &state.tokens;
    if !tokens.required().await? {
        return Ok(Caller(None));
    }
    let secret = secret.ok_or(ApiError::Unauthorized)?;
    let holder = tokens.check(&secret).await?.ok_or(ApiError::Unauthorized)?;
    if !holder.scope.allows(needed) {
        return Err(ApiError::Forbidden(format!(
            "the token {:?} may {} only, and this request needs {}",
            holder.name,
            holder.scope.name(),
            needed.name()
        )));
    }
    if needed == Scope::Write {
        tokens
            .take_write(&holder)
            .map_err(|retry_after| ApiError::RateLimited {
                token: holder.name.clone(),
                retry_after,
            })?;
    }
    Ok(Caller(Some(holder.scope)))
}

/// The token a request presents, as clients send it: `Authorization: Bearer T` or `Token T`
/// (InfluxDB v2 clients, Telegraf), basic auth's password or the `p` query parameter (InfluxDB v1
/// clients), or the dashboard's cookie.
pub fn presented(request: &Request) -> Option<String> {
    let headers = request.headers();
    if let Some(authorization) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (kind, credentials) = authorization.split_once(' ')?;
        let credentials = credentials.trim();
        return match kind.to_ascii_lowercase().as_str() {
            "bearer" | "token" => Some(credentials.to_owned()),
            "basic" => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(credentials)
                    .ok()?;
                let decoded = String::from_utf8(decoded).ok()?;
                decoded
                    .split_once(':')
                    .map(|(_, password)| password.to_owned())
            }
            _ => None,
        };
    }
    if let Some(query) = request.uri().query() {
        let password = form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == "p");
        if let Some((_, password)) = password {
            return Some(password.into_owned());
        }
    }
    cookie(headers, COOKIE)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// What every answer tells the browser: no sniffing of types, no referrer beyond the site, never in
/// a frame; and, unless the answer set its own (the pages do), a policy that runs nothing.
pub fn add_security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
        ));
}

/// The dashboard's policy: its own scripts, the inline ones Leptos marks with this response's
/// `nonce`, and WebAssembly compiled from them (`wasm-unsafe-eval`; no `eval` of text).
pub fn page_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(header: Option<(&str, &str)>, uri: &str) -> Request {
        let mut builder = Request::builder().uri(uri);
        if let Some((name, value)) = header {
            builder = builder.header(name, value);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn tokens_are_found_where_each_kind_of_client_sends_them() {
        let basic = base64::engine::general_purpose::STANDARD.encode("user:sb_basic");
        for (header, uri, expected) in [
            (
                Some(("authorization", "Bearer sb_bearer")),
                "/",
                "sb_bearer",
            ),
            (Some(("authorization", "Token sb_influx")), "/", "sb_influx"),
            (
                Some(("authorization", format!("Basic {basic}").leak() as &str)),
                "/",
                "sb_basic",
            ),
            (None, "/write?db=x&u=user&p=sb_query", "sb_query"),
            (
                Some(("cookie", "theme=dark; signalboard_token=sb_cookie")),
                "/",
                "sb_cookie",
            ),
        ] {
            assert_eq!(presented(&request(header, uri)).as_deref(), Some(expected));
        }
        assert_eq!(presented(&request(None, "/api/signals")), None);
    }
}
