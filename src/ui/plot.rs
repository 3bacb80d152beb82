//! The picture of a chart, on any plotters backend: the browser paints it on a `<canvas>`, the server
//! renders the same picture as SVG into the page, so data is visible before the WebAssembly has loaded
//! and the canvas takes over in place.

use crate::downsample::m4;
use crate::ui::axis::{format_value, time_label, time_ticks};
use crate::ui::board::SeriesData;
use crate::ui::view::Theme;
use plotters::chart::ChartState;
use plotters::coord::cartesian::Cartesian2d;
use plotters::coord::combinators::WithKeyPoints;
use plotters::coord::types::{RangedCoordf64, RangedCoordi64};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use std::borrow::Cow;
use std::sync::Arc;

/// Line colours, in legend order; the legend's swatches use the same list.
pub const PALETTE: [(u8, u8, u8); 8] = [
    (37, 99, 235),
    (220, 38, 38),
    (22, 163, 74),
    (217, 119, 6),
    (147, 51, 234),
    (8, 145, 178),
    (219, 39, 119),
    (101, 163, 13),
];

/// The plot area's left and right edge in pixels from the picture's left.
pub type PlotSpan = (f64, f64);

/// One series' points in the window: borrowed, or decimated copies.
type Visible<'a> = (Cow<'a, [i64]>, Cow<'a, [f64]>);

/// A chart's coordinates: time (with round ticks) across, values up.
type Coords = Cartesian2d<WithKeyPoints<RangedCoordi64>, RangedCoordf64>;

/// What a painted picture is of, kept between frames: when the next frame only adds points within the
/// same window and value range, they are drawn on top of this picture with the same coordinates
/// (plotters' chart state) instead of rebuilding the chart.
pub struct Painted {
    state: ChartState<Arc<Coords>>,
    /// The plot area's horizontal span, which maps the pointer back to time.
    pub span: PlotSpan,
    window: (i64, i64),
    values: (f64, f64),
    theme: Theme,
    size: (u32, u32),
    /// Per series: its revision, and how many of its points the picture holds.
    drawn: Vec<(u64, usize)>,
}

/// Paints `series` over `from..=to` (times labelled for a clock `offset` ms east of UTC) from scratch.
pub fn paint<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    series: &[&SeriesData],
    from: i64,
    to: i64,
    theme: Theme,
    offset: i64,
) -> Result<Painted, String> {
    let failed = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let (width, height) = root.dim_in_pixel();
    let (background, grid, text) = match theme {
        Theme::Light => (WHITE, RGBColor(226, 232, 240), RGBColor(71, 85, 105)),
        Theme::Dark => (
            RGBColor(15, 23, 42),
            RGBColor(51, 65, 85),
            RGBColor(203, 213, 225),
        ),
    };
    // plotters costs ~180 ns per point drawn: past four points per pixel column, draw each column's
    // first, lowest, highest and last instead; the picture is the same, spikes included.
    let columns = width.max(1) as usize;
    let visible: Vec<Visible> = series
        .iter()
        .map(|d| {
            let (times, values) = d.within(from, to);
            if times.len() > 4 * columns {
                let (t, v, _) = m4(times, values, from, to, 4 * columns);
                (Cow::Owned(t), Cow::Owned(v))
            } else {
                (Cow::Borrowed(times), Cow::Borrowed(values))
            }
        })
        .collect();
    let (low, high) = y_range(visible.iter().flat_map(|(_, v)| v.iter().copied()));
    let (step, ticks) = time_ticks(from, to, (width / 110).max(2) as usize, offset);

    root.fill(&background).map_err(failed)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(8)
        .x_label_area_size(22)
        .y_label_area_size(56)
        .build_cartesian_2d((from..to).with_key_points(ticks), low..high)
        .map_err(failed)?;
    chart
        .configure_mesh()
        .y_labels(5)
        .bold_line_style(grid)
        .light_line_style(TRANSPARENT)
        .axis_style(grid)
        .label_style(("sans-serif", 12).into_font().color(&text))
        .x_label_formatter(&|t| time_label(*t, step, offset))
        .y_label_formatter(&|v| format_value(*v))
        .draw()
        .map_err(failed)?;
    for (i, (times, values)) in visible.iter().enumerate() {
        let points = times.iter().copied().zip(values.iter().copied());
        draw_line(&mut chart, i, points).map_err(failed)?;
        // A lone point, marked: a line of one point would not show.
        if let ([t], [v]) = (&times[..], &values[..]) {
            chart
                .draw_series(std::iter::once(Circle::new(
                    (*t, *v),
                    3,
                    colour(i).filled(),
                )))
                .map_err(failed)?;
        }
    }
    let (x_range, _) = chart.plotting_area().get_pixel_range();
    root.present().map_err(failed)?;
    Ok(Painted {
        state: chart.into_shared_chart_state(),
        span: (f64::from(x_range.start), f64::from(x_range.end)),
        window: (from, to),
        values: (low, high),
        theme,
        size: (width, height),
        drawn: drawn(series),
    })
}

/// Draws only what `series` gained since `painted` was drawn, on top of it, and records it there, if
/// that is all that changed: the same window, size and theme, points only appended, and every new one
/// inside the picture's value range. `None`: the chart must be painted afresh.
pub fn extend<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    painted: &mut Painted,
    series: &[&SeriesData],
    (from, to): (i64, i64),
    theme: Theme,
) -> Option<Result<(), String>> {
    let unchanged = painted.window == (from, to)
        && painted.theme == theme
        && painted.size == root.dim_in_pixel()
        && painted.drawn.len() == series.len();
    let appended = series
        .iter()
        .zip(&painted.drawn)
        .all(|(d, &(revision, n))| {
            d.revision == revision
                && d.len() >= n
                && d.timestamps[n..].iter().all(|&t| t <= to)
                && d.values[n..]
                    .iter()
                    .all(|v| (painted.values.0..=painted.values.1).contains(v))
        });
    if !(unchanged && appended) {
        return None;
    }
    let mut chart = painted.state.clone().restore(&root);
    for (i, (d, &(_, n))) in series.iter().zip(&painted.drawn).enumerate() {
        // From the last point drawn, so the line joins up.
        let start = n.saturating_sub(1);
        let points = d.timestamps[start..]
            .iter()
            .copied()
            .zip(d.values[start..].iter().copied())
            .filter(|&(t, _)| t >= from);
        if let Err(e) = draw_line(&mut chart, i, points) {
            return Some(Err(e.to_string()));
        }
    }
    painted.drawn = drawn(series);
    Some(Ok(()))
}

/// Per series: its revision, and how many of its points a picture of it holds.
fn drawn(series: &[&SeriesData]) -> Vec<(u64, usize)> {
    series.iter().map(|d| (d.revision, d.len())).collect()
}

/// The `i`th series' line through `points`.
fn draw_line<DB: DrawingBackend, CT: CoordTranslate<From = (i64, f64)>>(
    chart: &mut ChartContext<'_, DB, CT>,
    i: usize,
    points: impl Iterator<Item = (i64, f64)>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart.draw_series(LineSeries::new(points, colour(i).stroke_width(2)))?;
    Ok(())
}

/// The `i`th series' colour.
fn colour(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

/// The picture as an SVG document of `width` × `height`, for the server-rendered page.
#[cfg(feature = "ssr")]
pub fn svg(
    series: &[&SeriesData],
    from: i64,
    to: i64,
    theme: Theme,
    (width, height): (u32, u32),
) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        // The server cannot know the reader's time zone: UTC until the canvas takes over.
        paint(root, series, from, to, theme, 0)?;
    }
    Ok(out)
}

/// The values' range with a little air, never empty.
fn y_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if high > low {
        (high - low) * 0.08
    } else {
        low.abs().max(1.0) * 0.1
    };
    (low - pad, high + pad)
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    #[test]
    fn the_server_draws_the_same_picture_as_svg_without_system_fonts() {
        let mut data = SeriesData::default();
        for i in 0..100 {
            data.insert(1_795_687_200_000 + i * 1000, (i as f64 / 10.0).sin());
        }
        let svg = svg(
            &[&data],
            1_795_687_200_000,
            1_795_687_300_000,
            Theme::Light,
            (800, 200),
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..50]);
        assert!(svg.contains("<polyline"), "the line is drawn");
        assert!(svg.contains("10:00"), "the time axis is labelled");
    }
}
