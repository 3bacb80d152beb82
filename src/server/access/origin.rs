//! Pages of other sites. A browser sends every page's requests with the user's network position:
//! without a check, any site a user visits could `fetch(…, {mode: 'no-cors'})` points into a
//! Signalboard on `127.0.0.1`, or open its live feed from a page of its own. Browsers name the page
//! a request comes from in `Origin`; the write endpoints and the live feed refuse (403) a request
//! whose `Origin` is another site's. Producers (Telegraf, curl, Influx clients) send no `Origin`
//! and are unaffected.

use crate::server::error::ApiError;
use axum::http::{header, HeaderMap};

/// Allowed: no `Origin` (not a browser, or a same-origin GET), or one whose host and port are the
/// ones the request was sent to (`Host`), whichever the scheme.
pub fn check_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = String::from_utf8_lossy(origin.as_bytes());
    let host = headers
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()));
    let authority = origin
        .split_once("://")
        .map(|(_, authority)| authority.trim_end_matches('/'));
    match (authority, host) {
        (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(&host) => Ok(()),
        _ => Err(ApiError::CrossOrigin(origin.into_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&'static str>, host: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static(host));
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_static(origin));
        }
        headers
    }

    #[test]
    fn only_pages_of_the_same_host_and_port_may_write() {
        for allowed in [
            headers(None, "127.0.0.1:3000"),
            headers(Some("http://127.0.0.1:3000"), "127.0.0.1:3000"),
            headers(Some("https://Board.example"), "board.example"),
        ] {
            assert!(check_origin(&allowed).is_ok(), "{allowed:?}");
        }
        for refused in [
            headers(Some("https://evil.example"), "127.0.0.1:3000"),
            headers(Some("http://127.0.0.1:3001"), "127.0.0.1:3000"),
            headers(Some("null"), "127.0.0.1:3000"),
            headers(Some("http://127.0.0.1:3000.evil.example"), "127.0.0.1:3000"),
        ] {
            let error = check_origin(&refused).unwrap_err();
            assert_eq!(error.status(), axum::http::StatusCode::FORBIDDEN);
        }
    }
}
