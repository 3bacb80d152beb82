//! The picture of a chart, on any plotters backend: the browser paints it on a `<canvas>`, the server
//! renders the same picture as SVG into the page, so data is visible before the WebAssembly has loaded
//! and the canvas takes over in place.

use crate::downsample::m4;
use crate::ui::axis::{format_value, time_label, time_ticks};
use crate::ui::board::SeriesData;
use crate::ui::gaps::{gap_threshold, segments};
use crate::ui::view::Theme;
use plotters::chart::ChartState;
use plotters::coord::cartesian::Cartesian2d;
use plotters::coord::combinators::WithKeyPoints;
use plotters::coord::types::{RangedCoordf64, RangedCoordi64};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use std::borrow::Cow;
use std::sync::Arc;

/// The picture's margin and the width of the value labels' area, in pixels.
const MARGIN: u32 = 8;
const Y_LABEL_AREA: u32 = 56;
/// Pixels per time label, about: labels follow the width.
const TICK_SPACING: u32 = 75;

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

/// A run of one series' points between gaps, in the window: borrowed, or decimated copies.
type Run<'a> = (Cow<'a, [i64]>, Cow<'a, [f64]>);

/// One series as drawn: the longest step its line bridges, and its runs between gaps.
struct Line<'a> {
    threshold: i64,
    runs: Vec<Run<'a>>,
}

/// A chart's coordinates: time (with round ticks) across, values up.
type Coords = Cartesian2d<WithKeyPoints<RangedCoordi64>, RangedCoordf64>;

/// What a painted picture is of, kept between frames: when the next frame only adds points within the
/// same window and value range, they are drawn on top of this picture with the same coordinates
/// (plotters' chart state) instead of rebuilding the chart.
pub struct Painted {
    state: ChartState<Arc<Coords>>,
    /// Where times and values are on the picture: its window and value axis, and the plot area's
    /// span, which maps the pointer back to time and places what the page draws over it.
    pub frame: Frame,
    theme: Theme,
    size: (u32, u32),
    /// Per series: its revision, and how many of its points the picture holds.
    drawn: Vec<(u64, usize)>,
    /// Per series: the longest step its line bridges; a longer one is a gap.
    thresholds: Vec<i64>,
    /// The levels the value axis was made to hold.
    levels: Vec<f64>,
    /// Gaps in the picture, all series together.
    pub gaps: usize,
}

/// Paints `series` over `from..=to` (times labelled for a clock `offset` ms east of UTC) from scratch,
/// on a value axis that also holds `levels`.
pub fn paint<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    series: &[&SeriesData],
    from: i64,
    to: i64,
    theme: Theme,
    offset: i64,
    levels: &[f64],
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
    // first, lowest, highest and last instead; the picture is the same, spikes included. Each run
    // between gaps is decimated on its own, so a gap stays a gap.
    let columns = width.max(1) as usize;
    let lines: Vec<Line> = series
        .iter()
        .map(|d| {
            let (times, values) = d.within(from, to);
            let threshold = gap_threshold(times, d.bucket);
            let runs = segments(times, threshold)
                .map(|run| {
                    let (times, values) = (&times[run.clone()], &values[run]);
                    if times.len() > 4 * columns {
                        let (t, v, _) = m4(times, values, from, to, 4 * columns);
                        (Cow::Owned(t), Cow::Owned(v))
                    } else {
                        (Cow::Borrowed(times), Cow::Borrowed(values))
                    }
                })
                .collect();
            Line { threshold, runs }
        })
        .collect();
    // The value axis holds the points and the levels drawn over them (alert thresholds).
    let axis = ValueAxis::of(
        lines
            .iter()
            .flat_map(|line| line.runs.iter().flat_map(|(_, v)| v.iter().copied()))
            .chain(levels.iter().copied()),
    );
    let (low, high) = (axis.low, axis.high);
    let plot_width = width.saturating_sub(Y_LABEL_AREA + 2 * MARGIN);
    let labels = (plot_width / TICK_SPACING + 1).max(2) as usize;
    let (step, ticks) = time_ticks(from, to, labels, offset);

    root.fill(&background).map_err(failed)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(MARGIN)
        .x_label_area_size(22)
        .y_label_area_size(Y_LABEL_AREA)
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
        .y_label_formatter(&|v| axis.label(*v))
        .draw()
        .map_err(failed)?;
    for (i, line) in lines.iter().enumerate() {
        for (times, values) in &line.runs {
            draw_run(&mut chart, i, times, values, &axis).map_err(failed)?;
        }
    }
    let (x_range, y_range) = chart.plotting_area().get_pixel_range();
    root.present().map_err(failed)?;
    let span = (f64::from(x_range.start), f64::from(x_range.end));
    Ok(Painted {
        state: chart.into_shared_chart_state(),
        frame: Frame {
            span,
            top: f64::from(y_range.start),
            bottom: f64::from(y_range.end),
            window: (from, to),
            axis,
        },
        theme,
        size: (width, height),
        drawn: drawn(series),
        levels: levels.to_vec(),
        thresholds: lines.iter().map(|line| line.threshold).collect(),
        gaps: lines
            .iter()
            .map(|line| line.runs.len().saturating_sub(1))
            .sum(),
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
    (theme, levels): (Theme, &[f64]),
) -> Option<Result<(), String>> {
    let unchanged = painted.frame.window == (from, to)
        && painted.theme == theme
        && painted.levels == levels
        && painted.size == root.dim_in_pixel()
        && painted.drawn.len() == series.len();
    let appended = series
        .iter()
        .zip(&painted.drawn)
        .all(|(d, &(revision, n))| {
            d.revision == revision
                && d.len() >= n
                && d.timestamps[n..].iter().all(|&t| t <= to)
                && d.values[n..].iter().all(|&v| painted.frame.axis.holds(v))
        });
    if !(unchanged && appended) {
        return None;
    }
    let mut chart = painted.state.clone().restore(&root);
    for (i, (d, &(_, n))) in series.iter().zip(&painted.drawn).enumerate() {
        let threshold = painted.thresholds[i];
        let first_new = n.max(from_index(d, from));
        if first_new >= d.len() {
            continue;
        }
        // From the last point drawn, so the line joins up, unless a silence lies between: then
        // the new points start a line of their own.
        let previous = n
            .checked_sub(1)
            .filter(|_| first_new == n)
            .map(|last| d.timestamps[last])
            .filter(|&t| t >= from);
        let joins = previous.is_some_and(|t| d.timestamps[n] - t <= threshold);
        let start = if joins { n - 1 } else { first_new };
        let (times, values) = (&d.timestamps[start..], &d.values[start..]);
        let runs: Vec<_> = segments(times, threshold).collect();
        painted.gaps += runs.len() - 1 + usize::from(previous.is_some() && !joins);
        for run in runs {
            let (times, values) = (&times[run.clone()], &values[run]);
            if let Err(e) = draw_run(&mut chart, i, times, values, &painted.frame.axis) {
                return Some(Err(e.to_string()));
            }
        }
    }
    painted.drawn = drawn(series);
    Some(Ok(()))
}

/// The index of the first of `d`'s points at or after `from`.
fn from_index(d: &SeriesData, from: i64) -> usize {
    d.timestamps.partition_point(|&t| t < from)
}

/// Per series: its revision, and how many of its points a picture of it holds.
fn drawn(series: &[&SeriesData]) -> Vec<(u64, usize)> {
    series.iter().map(|d| (d.revision, d.len())).collect()
}

/// The `i`th series' line through one run of points; a run of one point, between two gaps, is a
/// dot (a line of one point would not show).
fn draw_run<DB: DrawingBackend, CT: CoordTranslate<From = (i64, f64)>>(
    chart: &mut ChartContext<'_, DB, CT>,
    i: usize,
    times: &[i64],
    values: &[f64],
    axis: &ValueAxis,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let points = times
        .iter()
        .copied()
        .zip(values.iter().map(|&v| axis.scaled(v)));
    if let ([t], [v]) = (times, values) {
        let dot = Circle::new((*t, axis.scaled(*v)), 3, colour(i).filled());
        chart.draw_series(std::iter::once(dot))?;
    } else {
        chart.draw_series(LineSeries::new(points, colour(i).stroke_width(2)))?;
    }
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
        paint(root, series, from, to, theme, 0, &[])?;
    }
    Ok(out)
}

/// A picture's plot area in pixels and what it spans: where a time or a value is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame {
    pub span: PlotSpan,
    pub top: f64,
    pub bottom: f64,
    pub window: (i64, i64),
    axis: ValueAxis,
}

impl Frame {
    /// The pixel column of time `t`, clamped to the plot area.
    pub fn x(&self, t: i64) -> f64 {
        let ((left, right), (from, to)) = (self.span, self.window);
        let fraction = (t.clamp(from, to) - from) as f64 / (to - from).max(1) as f64;
        left + fraction * (right - left)
    }

    /// The pixel row of value `v`, if it lies on the value axis.
    pub fn y(&self, v: f64) -> Option<f64> {
        let (low, high, scaled) = (self.axis.low, self.axis.high, self.axis.scaled(v));
        (low..=high)
            .contains(&scaled)
            .then(|| self.top + (high - scaled) / (high - low) * (self.bottom - self.top))
    }
}

/// The value axis: the values' range with a little air, never empty, drawn in a space scaled by
/// `10^exponent`. Any finite value can be stored, and `±1.7e308` or `5e-324` are beyond what the
/// chart's arithmetic survives (the range's span overflows to infinity, and plotters' tick search
/// then never ends); scaled, every range is a few units wide and the labels are scaled back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ValueAxis {
    /// Powers of ten that drawn values are divided by: 0 for everyday magnitudes.
    exponent: i32,
    /// The bounds, scaled.
    low: f64,
    high: f64,
}

/// Magnitudes drawn as they are; past them the axis is scaled.
const UNSCALED: std::ops::RangeInclusive<f64> = 1e-100..=1e100;

impl ValueAxis {
    pub fn of(values: impl Iterator<Item = f64>) -> ValueAxis {
        let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if !low.is_finite() {
            return ValueAxis {
                exponent: 0,
                low: 0.0,
                high: 1.0,
            };
        }
        let magnitude = low.abs().max(high.abs());
        let exponent = if magnitude == 0.0 || UNSCALED.contains(&magnitude) {
            0
        } else {
            magnitude.log10().floor() as i32
        };
        let (low, high) = (times_ten_to(low, -exponent), times_ten_to(high, -exponent));
        let pad = if high > low {
            (high - low) * 0.08
        } else {
            low.abs().max(1.0) * 0.1
        };
        ValueAxis {
            exponent,
            low: low - pad,
            high: high + pad,
        }
    }

    /// A value as drawn.
    pub fn scaled(&self, v: f64) -> f64 {
        times_ten_to(v, -self.exponent)
    }

    /// The label of a drawn position: its value, even past what an `f64` holds (an axis padded
    /// beyond ±1.8e308), where mantissa and exponent are written apart.
    pub fn label(&self, v: f64) -> String {
        let value = times_ten_to(v, self.exponent);
        if value.is_finite() {
            return format_value(value);
        }
        let (mut mantissa, mut exponent) = (v, self.exponent);
        while mantissa.abs() >= 10.0 {
            mantissa /= 10.0;
            exponent += 1;
        }
        format!("{}e{exponent}", format_value(mantissa))
    }

    /// Whether `v` lies inside the axis' range.
    pub fn holds(&self, v: f64) -> bool {
        (self.low..=self.high).contains(&self.scaled(v))
    }
}

/// `x · 10^exponent`, in two factors: `10^±308` and beyond do not fit one `f64`.
fn times_ten_to(x: f64, exponent: i32) -> f64 {
    if exponent == 0 {
        return x;
    }
    let half = exponent / 2;
    x * 10f64.powi(half) * 10f64.powi(exponent - half)
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

    /// The value labels of a chart of `values`, as the server draws it.
    fn value_labels(values: &[f64]) -> Vec<String> {
        let mut data = SeriesData::default();
        for (i, &v) in values.iter().enumerate() {
            data.insert(1_795_687_200_000 + i as i64 * 1000, v);
        }
        let svg = svg(
            &[&data],
            1_795_687_200_000,
            1_795_687_210_000,
            Theme::Light,
            (800, 200),
        )
        .unwrap();
        // Value labels are right-aligned on the left of the plot: `text-anchor="end"`.
        svg.split("<text")
            .filter(|t| t.contains("text-anchor=\"end\""))
            .filter_map(|t| Some(t.split_once('>')?.1.split_once('<')?.0.trim().to_owned()))
            .collect()
    }

    #[test]
    fn the_largest_and_smallest_values_draw_with_labelled_axes() {
        for values in [
            vec![1.7e308],
            vec![-1.7e308, 1.7e308],
            vec![f64::MAX, f64::MIN],
            vec![5e-324],
            vec![0.0, 5e-324],
            vec![-5e-324, 5e-324],
            vec![71.5, 71.5],
            vec![0.0, 1e-200, 1e200],
        ] {
            let labels = value_labels(&values);
            assert!(
                (2..=12).contains(&labels.len()),
                "{values:?}: labels {labels:?}"
            );
            assert!(
                labels.iter().all(|l| l.len() <= 12 && !l.contains("inf")),
                "{values:?}: labels {labels:?}"
            );
        }
        let huge = value_labels(&[-1.7e308, 1.7e308]);
        assert!(huge.iter().any(|l| l.contains("e308")), "{huge:?}");
    }

    /// The x positions of the time labels of a chart `width` wide over a window of `span` ms.
    fn time_label_positions(width: u32, span: i64) -> Vec<f64> {
        let mut data = SeriesData::default();
        data.insert(1_795_687_200_000, 1.0);
        let svg = svg(
            &[&data],
            1_795_687_200_000 - span,
            1_795_687_200_000,
            Theme::Light,
            (width, 200),
        )
        .unwrap();
        svg.split("<text")
            .filter(|t| t.contains("text-anchor=\"middle\""))
            .filter_map(|t| t.split_once("x=\"")?.1.split_once('"')?.0.parse().ok())
            .collect()
    }

    #[test]
    fn time_labels_follow_the_width_about_one_per_hundred_pixels() {
        for width in [400, 480, 1_000, 1_600] {
            for span in [5 * 60_000, 3_600_000, 86_400_000] {
                let xs = time_label_positions(width, span);
                assert!(xs.len() >= 2, "{width} px, {span} ms: {xs:?}");
                let spacing = xs[1] - xs[0];
                assert!(
                    (70.0..=200.0).contains(&spacing),
                    "{width} px, {span} ms: labels {spacing} px apart ({xs:?})"
                );
            }
        }
        // The example: five minutes at 1,000 px, a label every 30 s, ~90 px apart.
        let xs = time_label_positions(1_000, 5 * 60_000);
        assert_eq!(xs.len(), 10, "{xs:?}");
    }

    /// The polylines of a chart of `times` (a point a second with silences), as the server draws it.
    fn lines_drawn(times: &[i64], bucket: i64) -> usize {
        let values = times.iter().map(|&t| (t as f64 / 7_000.0).sin()).collect();
        let data = SeriesData::new(times.to_vec(), values).decimated_into(bucket);
        let (from, to) = (times[0], *times.last().unwrap());
        let svg = svg(&[&data], from, to, Theme::Light, (800, 200)).unwrap();
        // The series' lines, not the grid's: those of the first colour.
        svg.split("<polyline")
            .filter(|line| line.to_uppercase().contains("#2563EB"))
            .count()
    }

    #[test]
    fn a_silence_is_drawn_as_a_gap_and_jitter_is_not() {
        let t0 = 1_795_687_200_000;
        let jittery: Vec<i64> = (0..300).map(|k| t0 + k * 1_000 + (k * 37) % 300).collect();
        assert_eq!(lines_drawn(&jittery, 0), 1);
        let silent: Vec<i64> = jittery
            .iter()
            .copied()
            .filter(|t| !(t0 + 100_000..t0 + 220_000).contains(t))
            .collect();
        assert_eq!(lines_drawn(&silent, 0), 2, "two minutes of silence");
        // Decimated into 10-second buckets: the same silence, the same gap.
        let mut decimated = Vec::new();
        for b in (0..30).filter(|b| !(10..22).contains(b)) {
            let start = t0 + b * 10_000;
            decimated.extend([start + 300, start + 4_000, start + 6_500, start + 9_800]);
        }
        assert_eq!(lines_drawn(&decimated, 10_000), 2);
    }

    #[test]
    fn an_axis_holds_its_values_and_scales_only_when_it_must() {
        let everyday = ValueAxis::of([20.0, 80.0].into_iter());
        assert_eq!(everyday.exponent, 0);
        assert!(everyday.low < 20.0 && everyday.high > 80.0);
        for values in [[-1.7e308, 1.7e308], [0.0, 5e-324], [3e-150, 4e-150]] {
            let axis = ValueAxis::of(values.into_iter());
            assert_ne!(axis.exponent, 0);
            assert!((axis.high - axis.low).is_finite() && axis.high - axis.low < 100.0);
            assert!(values.iter().all(|&v| axis.holds(v)), "{values:?}");
        }
    }
}
