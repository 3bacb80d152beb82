//! Signalboard: producers push samples, the server stores them, a browser dashboard draws them live.
//!
//! One crate, two builds: `ssr` is the server (axum, sqlx, the Leptos renderer), `hydrate` is the
//! dashboard's WebAssembly. `model`, `api` and `app` compile into both; `server` only into the first,
//! beside a client of it, `producer` (`signalboard produce`, and `serve --demo`), and `edge`, which takes
//! writes like the server and forwards them to one. The benchmark is
//! the binary's (`src/main.rs`).
//! A point's journey: `server::ingest` → `server::writer` → `server::store` and `server::live` →
//! `api` / `server::query` → `ui`.

#![recursion_limit = "256"]

pub mod api;
pub mod app;
pub mod downsample;
pub mod model;
pub mod ui;

#[cfg(feature = "ssr")]
pub mod config;
#[cfg(feature = "ssr")]
pub mod edge;
#[cfg(feature = "ssr")]
pub mod producer;
#[cfg(feature = "ssr")]
pub mod server;

/// The WebAssembly entry point: takes over the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(ui::dashboard::Dashboard);
}
