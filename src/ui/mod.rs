//! The dashboard. `view` is what it shows (and the URL), `board` its state, `axis` how numbers and
//! times read, `gaps` where data is missing; the other files are its parts. `live_client` (browser only) keeps the board fed from
//! history and the live feed.

pub mod alerts;
pub mod axis;
pub mod board;
pub mod chart;
pub mod dashboard;
pub mod gaps;
pub mod health;
pub mod plot;
pub mod signal_list;
pub mod toolbar;
pub mod view;

#[cfg(feature = "hydrate")]
mod browser;
#[cfg(feature = "hydrate")]
mod live_client;
