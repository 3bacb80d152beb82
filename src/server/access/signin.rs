//! The dashboard's sign-in: a page that takes a read (or admin) token and keeps it in an HttpOnly,
//! SameSite=Strict cookie, which the page, its server functions and its WebSocket then present. Plain
//! HTML, no WebAssembly: it must work before anything else does.

use crate::server::access::{check_origin, tokens::Scope, COOKIE};
use crate::server::AppState;
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

/// How long the dashboard stays signed in: 30 days.
const SIGNED_IN_SECS: u32 = 30 * 24 * 3600;

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
}

/// `GET /signin`.
pub async fn page() -> Response {
    form(StatusCode::OK, None)
}

/// `POST /signin`: a valid read or admin token signs in, and goes to the dashboard.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    form_data: Result<Form<SignIn>, FormRejection>,
) -> Response {
    // Another site's page may not sign a visitor in with a token of its choosing.
    if let Err(e) = check_origin(&headers) {
        return e.into_response();
    }
    let Ok(Form(SignIn { token })) = form_data else {
        return form(StatusCode::BAD_REQUEST, Some("Paste an access token."));
    };
    let token = token.trim();
    match state.tokens.check(token).await {
        Ok(Some(holder)) if holder.scope.allows(Scope::Read) => {
            let cookie = format!(
                "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={SIGNED_IN_SECS}"
            );
            signed(cookie, "/")
        }
        Ok(Some(_)) => form(
            StatusCode::FORBIDDEN,
            Some("This token may only write: sign in with a read or admin token."),
        ),
        Ok(None) => form(StatusCode::UNAUTHORIZED, Some("This token is not valid.")),
        Err(e) => e.into_response(),
    }
}

/// `POST /signout`: forgets the cookie.
pub async fn sign_out(headers: HeaderMap) -> Response {
    if let Err(e) = check_origin(&headers) {
        return e.into_response();
    }
    signed(
        format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        "/signin",
    )
}

/// A redirect (303, so the browser follows with GET) that sets `cookie`.
fn signed(cookie: String, to: &'static str) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The sign-in form, with `problem` said above it. Nothing a client sent is written into the page.
fn form(status: StatusCode, problem: Option<&'static str>) -> Response {
    let problem = problem
        .map(|p| format!(r#"<p class="problem" role="alert">{p}</p>"#))
        .unwrap_or_default();
    let page = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>Sign in · Signalboard</title>
<link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
<link rel="stylesheet" href="/pkg/signalboard.css"/>
</head>
<body class="signin">
<main>
<h1>Signalboard</h1>
{problem}
<form method="post" action="/signin">
<label>Access token <input type="password" name="token" autocomplete="current-password" required autofocus/></label>
<button type="submit">Sign in</button>
</form>
<p class="hint">A token of scope read or admin: <code>signalboard token create --name NAME --scope read</code></p>
</main>
</body>
</html>"#
    );
    let mut response = (status, Html(page)).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}
