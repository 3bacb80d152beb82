//! One signal's chart: a `<canvas>` that plotters draws on in the browser, redrawn when the signal's data
//! changes or the window slides. The server renders the empty canvas; its data attributes let tests (and
//! curious users) see what the chart holds.

use crate::ui::board::SeriesHandle;
use crate::ui::format_value;
use leptos::html::Canvas;
use leptos::prelude::*;

#[component]
pub fn Chart(handle: SeriesHandle, now: RwSignal<i64>) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    #[cfg(feature = "hydrate")]
    {
        let data = handle.data.clone();
        Effect::new(move |_| {
            let now = now.get();
            let Some(canvas) = canvas.get() else { return };
            data.with(|d| {
                if let Err(e) = draw::draw(&canvas, d, now) {
                    leptos::logging::warn!("chart draw failed: {e}");
                }
            });
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = now;
    let data = handle.data;
    let points = {
        let data = data.clone();
        move || data.with(|d| d.len())
    };
    let last_timestamp = {
        let data = data.clone();
        move || data.with(|d| d.last().map(|(t, _)| t))
    };
    let last_value = move || data.with(|d| d.last().map(|(_, v)| format_value(v)));
    let title = handle.name.clone();
    view! {
        <article
            class="chart"
            data-signal=handle.name
            data-points=points
            data-last-ts=last_timestamp
        >
            <header>
                <h2>{title}</h2>
                <span class="last-value">{last_value}</span>
            </header>
            <canvas node_ref=canvas></canvas>
        </article>
    }
}

#[cfg(feature = "hydrate")]
mod draw {
    use crate::downsample::m4;
    use crate::model::DASHBOARD_WINDOW_MS;
    use crate::ui::board::SeriesData;
    use crate::ui::format_value;
    use plotters::prelude::*;
    use plotters_canvas::CanvasBackend;
    use std::borrow::Cow;
    use web_sys::HtmlCanvasElement;

    const LINE: RGBColor = RGBColor(37, 99, 235);
    const GRID: RGBColor = RGBColor(226, 232, 240);
    /// Time-axis tick spacing: every 10 minutes of the hour-long window.
    const TICK_MS: i64 = 10 * 60 * 1000;

    /// Draws the last hour up to `now`. The canvas' pixel size follows its CSS size, so the chart is
    /// sharp at any width.
    pub fn draw(
        canvas: &HtmlCanvasElement,
        data: &SeriesData,
        now: i64,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let (width, height) = (canvas.client_width(), canvas.client_height());
        if width <= 0 || height <= 0 {
            return Ok(()); // not laid out (hidden): nothing to see, nothing to draw
        }
        if canvas.width() != width as u32 || canvas.height() != height as u32 {
            canvas.set_width(width as u32);
            canvas.set_height(height as u32);
        }
        let from = now - DASHBOARD_WINDOW_MS;
        let start = data.timestamps.partition_point(|&t| t < from);
        let (times, values) = (&data.timestamps[start..], &data.values[start..]);
        let (low, high) = y_range(values);
        // plotters costs ~180 ns per point drawn: past four points per pixel column, draw each column's
        // first, lowest, highest and last instead; the picture is the same, spikes included.
        let columns = width as usize;
        let (times, values) = if times.len() > 4 * columns {
            let (t, v, _) = m4(times, values, from, now, 4 * columns);
            (Cow::Owned(t), Cow::Owned(v))
        } else {
            (Cow::Borrowed(times), Cow::Borrowed(values))
        };

        let backend = CanvasBackend::with_canvas_object(canvas.clone())
            .ok_or("the canvas has no 2D context")?;
        let root = backend.into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(22)
            .y_label_area_size(56)
            .build_cartesian_2d(
                (from..now).with_key_points(time_ticks(from, now)),
                low..high,
            )?;
        chart
            .configure_mesh()
            .y_labels(5)
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&|t| clock(*t))
            .y_label_formatter(&|v| format_value(*v))
            .draw()?;
        let line = LINE.stroke_width(2);
        chart.draw_series(LineSeries::new(
            times.iter().copied().zip(values.iter().copied()),
            line,
        ))?;
        // The newest point, marked: visible even when it is the only one.
        if let (Some(&t), Some(&v)) = (times.last(), values.last()) {
            chart.draw_series(std::iter::once(Circle::new((t, v), 3, LINE.filled())))?;
        }
        root.present()?;
        Ok(())
    }

    /// The visible values' range with a little air, never empty.
    fn y_range(values: &[f64]) -> (f64, f64) {
        let (low, high) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
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

    /// Ticks on round ten minutes (:00, :10, …), not wherever the sliding window happens to start.
    fn time_ticks(from: i64, to: i64) -> Vec<i64> {
        let first = from.div_euclid(TICK_MS) * TICK_MS + TICK_MS;
        (0..)
            .map(|k| first + k * TICK_MS)
            .take_while(|&t| t <= to)
            .collect()
    }

    /// `HH:MM` in the browser's time zone.
    fn clock(t: i64) -> String {
        let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(t as f64));
        format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
    }
}
