//! The HTML shell around the one page, the dashboard. The server renders both; the browser hydrates
//! the dashboard (`crate::hydrate`).
//!
//! One page, so no client-side router: the server routes `/` here (`server::router`), and the
//! dashboard reads its view from the URL's query string.

use crate::ui::dashboard::Dashboard;
use leptos::prelude::*;

pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <title>"Signalboard"</title>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <link rel="stylesheet" href="/pkg/signalboard.css"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
            </head>
            <body>
                <Dashboard/>
            </body>
        </html>
    }
}

/// The page's Content-Security-Policy, naming the nonce Leptos puts on this response's inline scripts.
#[cfg(feature = "ssr")]
fn content_security_policy() {
    use axum::http::{header, HeaderValue};
    let nonce = leptos::nonce::use_nonce();
    let response = use_context::<leptos_axum::ResponseOptions>();
    if let (Some(nonce), Some(response)) = (nonce, response) {
        let policy = crate::server::access::page_policy(&nonce);
        if let Ok(policy) = HeaderValue::from_str(&policy) {
            response.insert_header(header::CONTENT_SECURITY_POLICY, policy);
        }
    }
}
