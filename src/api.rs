//! The dashboard's server functions. Both builds compile this file: the browser gets a stub that POSTs to
//! the server, the server the body below, which reads through the same `server::query` as the REST API.

use crate::model::{AlertOverview, Annotation, History, PageFigures, RuleSpec, SignalInfo};
use crate::ui::view::View;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
fn state() -> Result<crate::server::AppState, ServerFnError> {
    use_context::<crate::server::AppState>()
        .ok_or_else(|| ServerFnError::new("server state is missing from the Leptos context"))
}

/// The points between `from` and `to` (epoch ms), for the given signals or all; with `max_points`,
/// decimated to at most that many per signal, each bucket's extremes kept.
#[server]
pub async fn read_history(
    from: i64,
    to: i64,
    signals: Option<Vec<String>>,
    max_points: Option<usize>,
) -> Result<History, ServerFnError> {
    use crate::server::query;
    let state = state()?;
    let range = query::range_from_millis(from, to, signals).map_err(ServerFnError::new)?;
    let cap = state.limits.max_raw_points;
    let max_points = max_points.map(|n| n.clamp(query::MIN_MAX_POINTS, cap));
    query::history(&state.store, range, max_points, cap)
        .await
        .map_err(ServerFnError::new)
}

/// Every alert rule with its pending and firing signals, and the annotations touching `from..=to`.
#[server]
pub async fn read_alerts(from: i64, to: i64) -> Result<AlertOverview, ServerFnError> {
    use crate::server::alerts;
    let state = state()?;
    let rules = alerts::rules(&state).await.map_err(ServerFnError::new)?;
    let annotations = alerts::annotations_between(&state, from, to)
        .await
        .map_err(ServerFnError::new)?;
    Ok(AlertOverview { rules, annotations })
}

/// Whether the request comes from this site's page and its caller may do what `needed` allows.
#[cfg(feature = "ssr")]
async fn allowed(needed: crate::server::access::tokens::Scope) -> Result<(), ServerFnError> {
    use crate::server::access::{check_origin, Caller};
    let (headers, axum::Extension(caller)): (axum::http::HeaderMap, axum::Extension<Caller>) =
        leptos_axum::extract().await?;
    check_origin(&headers).map_err(ServerFnError::new)?;
    caller.may(needed).map_err(ServerFnError::new)
}

/// Creates a rule (`id` `None`) or replaces rule `id`; needs an admin token. Returns its id. (The
/// mutating functions take JSON: a URL-encoded form would carry the numbers inside a rule as
/// strings.)
#[server(input = leptos::server_fn::codec::Json)]
pub async fn save_rule(id: Option<i64>, spec: RuleSpec) -> Result<i64, ServerFnError> {
    use crate::server::access::tokens::Scope;
    allowed(Scope::Admin).await?;
    crate::server::alerts::save_rule(&state()?, id, spec)
        .await
        .map_err(ServerFnError::new)
}

/// Deletes a rule; needs an admin token.
#[server(input = leptos::server_fn::codec::Json)]
pub async fn delete_rule(id: i64) -> Result<(), ServerFnError> {
    use crate::server::access::tokens::Scope;
    allowed(Scope::Admin).await?;
    crate::server::alerts::delete_rule(&state()?, id)
        .await
        .map_err(ServerFnError::new)
}

/// Holds a rule's notifications back until `until_ms` (`None`: no longer); needs an admin token.
#[server(input = leptos::server_fn::codec::Json)]
pub async fn silence_rule(id: i64, until_ms: Option<i64>) -> Result<(), ServerFnError> {
    use crate::server::access::tokens::Scope;
    allowed(Scope::Admin).await?;
    crate::server::alerts::silence_rule(&state()?, id, until_ms)
        .await
        .map_err(ServerFnError::new)
}

/// Adds an annotation; needs a token allowed to write.
#[server(input = leptos::server_fn::codec::Json)]
pub async fn annotate(annotation: Annotation) -> Result<i64, ServerFnError> {
    use crate::server::access::tokens::Scope;
    allowed(Scope::Write).await?;
    crate::server::alerts::add_annotation(&state()?, annotation)
        .await
        .map_err(ServerFnError::new)
}

/// What the page measured of itself, kept as `signalboard.browser.*` signals where the server's
/// `browser-signals` setting allows; `false` when it does not, and the page stops sending.
#[server(input = leptos::server_fn::codec::Json)]
pub async fn report_page_health(figures: PageFigures) -> Result<bool, ServerFnError> {
    use crate::server::access::tokens::Scope;
    allowed(Scope::Read).await?;
    crate::server::metrics::own_signals::write_page_figures(&state()?, &figures)
        .await
        .map_err(ServerFnError::new)
}

/// The size the server draws a chart at: the browser redraws at its real width once it takes over.
pub const PICTURE_SIZE: (u32, u32) = (1000, 200);

/// Most charts the server draws into one page (an overlay of more is drawn by the browser alone).
pub const SERVER_PICTURES: usize = crate::ui::view::DEFAULT_CHARTS;

/// What a page opens with: every signal with its last point, and the server's pictures (SVG) of the
/// view's charts, by chart: the signal's name, or `overlay`. The pictures reach the browser as the
/// page's markup only: the field is not serialized, so the resource the page hydrates from carries
/// none of it twice, and hydration leaves the markup in place.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Opening {
    pub signals: Vec<SignalInfo>,
    #[serde(skip)]
    pub pictures: Vec<(String, String)>,
}

#[server]
pub async fn open_view(view: View) -> Result<Opening, ServerFnError> {
    use crate::downsample::bucket_width;
    use crate::server::query;
    use crate::ui::board::SeriesData;
    use crate::ui::plot::svg;

    let state = state()?;
    let signals = state.store.signals().await.map_err(ServerFnError::new)?;
    let names: Vec<String> = signals.iter().map(|s| s.signal.clone()).collect();
    // Only signals that exist are drawn, and only the first few on the server: a URL naming
    // thousands makes a page of a few charts, the browser drawing the rest as they scroll into view.
    let charted: Vec<String> = view
        .charted(&names)
        .into_iter()
        .filter(|name| names.binary_search_by(|n| n.as_str().cmp(name)).is_ok())
        .map(str::to_owned)
        .collect();
    if charted.is_empty() || (view.overlay && charted.len() > SERVER_PICTURES) {
        return Ok(Opening {
            signals,
            pictures: Vec::new(),
        });
    }
    let charted: Vec<String> = charted.into_iter().take(SERVER_PICTURES).collect();
    let (from, to) = view.bounds(state.clock.now().millis());
    let range =
        query::range_from_millis(from, to, Some(charted.clone())).map_err(ServerFnError::new)?;
    let cap = state.limits.max_raw_points;
    let max_points = 4 * PICTURE_SIZE.0 as usize;
    let mut history = query::history(&state.store, range, Some(max_points), cap)
        .await
        .map_err(ServerFnError::new)?;
    let data: Vec<(String, SeriesData)> = charted
        .into_iter()
        .map(|name| {
            let points = history
                .series
                .iter_mut()
                .find(|s| s.signal == name)
                .map(|s| {
                    let data = SeriesData::new(
                        std::mem::take(&mut s.timestamps),
                        std::mem::take(&mut s.values),
                    );
                    match s.downsampled {
                        true => data.decimated_into(bucket_width(from, to, max_points)),
                        false => data,
                    }
                })
                .unwrap_or_default();
            (name, points)
        })
        .collect();
    // A picture that cannot be drawn is left out: the canvas draws that chart once the page is live.
    let draw = |chart: &str, series: &[&SeriesData]| {
        svg(series, from, to, view.theme, PICTURE_SIZE)
            .inspect_err(|e| tracing::warn!(chart, error = %e, "cannot draw the chart's picture"))
            .ok()
            .map(|svg| (chart.to_owned(), svg))
    };
    let pictures = if view.overlay {
        let all: Vec<&SeriesData> = data.iter().map(|(_, d)| d).collect();
        draw("overlay", &all).into_iter().collect()
    } else {
        data.iter()
            .filter_map(|(name, d)| draw(name, &[d]))
            .collect()
    };
    Ok(Opening { signals, pictures })
}
