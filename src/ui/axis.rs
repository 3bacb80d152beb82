//! Readable axes: time ticks on round local times whatever the window, labels that say what changes
//! between them, and numbers with SI prefixes. Pure functions (the browser's time-zone offset is a
//! parameter), tested natively.

use crate::model::{DAY, HOUR, MINUTE, SECOND};

/// Tick spacings a time axis may use, finest first.
const STEPS: [i64; 22] = [
    SECOND,
    2 * SECOND,
    5 * SECOND,
    10 * SECOND,
    15 * SECOND,
    30 * SECOND,
    MINUTE,
    2 * MINUTE,
    5 * MINUTE,
    10 * MINUTE,
    15 * MINUTE,
    20 * MINUTE,
    30 * MINUTE,
    HOUR,
    2 * HOUR,
    3 * HOUR,
    6 * HOUR,
    12 * HOUR,
    DAY,
    2 * DAY,
    7 * DAY,
    30 * DAY,
];

/// A year, nominally: what a spacing of whole years is compared and labelled by.
pub const YEAR: i64 = 365 * DAY;

/// Spacings past a month, in whole years: ticks on the 1st of January of years divisible by them.
const YEARS: [i64; 11] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 10_000];

/// Ticks for `from..=to`, at most `max_ticks`, on round times of the local clock (`offset` ms east of
/// UTC): returns the spacing and the ticks. Any window, up to the ten thousand years a timestamp can
/// span, gets at most `max_ticks` ticks.
pub fn time_ticks(from: i64, to: i64, max_ticks: usize, offset: i64) -> (i64, Vec<i64>) {
    let max_ticks = max_ticks.max(1);
    let span = to.saturating_sub(from).max(1);
    let fits = |step: i64| span / step < max_ticks as i64;
    if let Some(step) = STEPS.iter().copied().find(|&s| fits(s)) {
        let local = from + offset;
        let first = local - local.rem_euclid(step) + step - offset;
        let ticks = (0..)
            .map(|k| first + k * step)
            .take_while(|&t| t <= to)
            .take(max_ticks)
            .collect();
        return (step, ticks);
    }
    let years = YEARS
        .iter()
        .copied()
        .find(|&n| fits(n * YEAR))
        .unwrap_or(YEARS[YEARS.len() - 1]);
    let year_of = |t: i64| civil_date((t + offset).div_euclid(DAY)).0;
    let first = year_of(from).div_euclid(years) * years;
    let ticks = (0..)
        .map(|k| (first + k * years, 1, 1))
        .map(|date| days_from_civil(date) * DAY - offset)
        .skip_while(|&t| t < from)
        .take_while(|&t| t <= to)
        .take(max_ticks)
        .collect();
    (years * YEAR, ticks)
}

/// A tick's label: the time of day for ticks within a day (with seconds when they are that close),
/// the date at midnight and for ticks a day or more apart.
pub fn time_label(t: i64, step: i64, offset: i64) -> String {
    let local = t + offset;
    let (_, month, day) = civil_date(local.div_euclid(DAY));
    let of_day = local.rem_euclid(DAY);
    let (h, m, s) = (
        of_day / HOUR,
        of_day % HOUR / MINUTE,
        of_day % MINUTE / SECOND,
    );
    if step >= YEAR {
        format!("{}", civil_date(local.div_euclid(DAY)).0)
    } else if step >= DAY || of_day == 0 {
        format!("{day} {}", MONTHS[month as usize - 1])
    } else if step < MINUTE {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}")
    }
}

/// A full local date and time, for the crosshair and the custom range: `2026-11-27 14:05:09`.
pub fn date_time(t: i64, offset: i64) -> String {
    let local = t + offset;
    let (year, month, day) = civil_date(local.div_euclid(DAY));
    let of_day = local.rem_euclid(DAY);
    format!(
        "{year}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        of_day / HOUR,
        of_day % HOUR / MINUTE,
        of_day % MINUTE / SECOND
    )
}

/// UTC in RFC 3339 with milliseconds: `2026-11-27T14:05:09.250Z`.
pub fn rfc3339(t: i64) -> String {
    format!(
        "{}.{:03}Z",
        date_time(t, 0).replace(' ', "T"),
        t.rem_euclid(SECOND)
    )
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Year, month and day of a count of days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The civil date's count of days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil((year, month, day): (i64, i64, i64)) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A value as the dashboard prints it: at most four significant digits, SI prefixes past a thousand
/// and below a thousandth (`1.23k`, `45.6M`, `12.5µ`), no trailing zeros; beyond the prefixes,
/// scientific notation (`1.7e308`, `4.941e-324`).
pub fn format_value(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v.is_finite() {
            "0".into()
        } else {
            v.to_string()
        };
    }
    if !(1e-12..1e15).contains(&v.abs()) {
        let text = format!("{v:.3e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        return format!("{mantissa}e{exponent}");
    }
    const PREFIXES: [(f64, &str); 8] = [
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "k"),
        (1.0, ""),
        (1e-3, "m"),
        (1e-6, "µ"),
        (1e-9, "n"),
    ];
    let magnitude = v.abs();
    let (scale, prefix) = if (1e-3..1e3).contains(&magnitude) {
        (1.0, "")
    } else {
        PREFIXES
            .iter()
            .copied()
            .find(|&(scale, _)| magnitude >= scale)
            .unwrap_or(PREFIXES[PREFIXES.len() - 1])
    };
    let scaled = v / scale;
    // Four significant digits: 1234, 123.4, 12.34, 1.234, 0.1234 (below 1 only without a prefix).
    let decimals = match scaled.abs() {
        m if m >= 1000.0 => 0,
        m if m >= 100.0 => 1,
        m if m >= 10.0 => 2,
        m if m >= 1.0 => 3,
        _ => 4,
    };
    let text = format!("{scaled:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}{prefix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-26 10:00:00 UTC.
    const T: i64 = 1_795_687_200_000;

    #[test]
    fn ticks_fall_on_round_local_times() {
        // An hour: every 10 minutes at most 8 ticks.
        let (step, ticks) = time_ticks(T - HOUR + 1, T, 8, 0);
        assert_eq!(step, 10 * MINUTE);
        assert_eq!(ticks.len(), 6);
        assert!(ticks.iter().all(|t| t % (10 * MINUTE) == 0));
        assert_eq!(ticks.last(), Some(&T));
        // Thirty days: a tick a week, at local midnight in UTC+1.
        let offset = HOUR;
        let (step, ticks) = time_ticks(T - 30 * DAY, T, 8, offset);
        assert_eq!(step, 7 * DAY);
        assert!(ticks.iter().all(|t| (t + offset) % DAY == 0));
        // Five seconds: second ticks.
        assert_eq!(time_ticks(T, T + 5_000, 8, 0).0, SECOND);
    }

    #[test]
    fn any_window_gets_a_bounded_count_of_ticks_on_new_years() {
        let last = crate::model::LAST_TIMESTAMP_MS;
        for (from, to) in [
            (0, last),
            (T - 3 * YEAR, T),
            (T - 60 * DAY, T),
            (0, i64::MAX),
        ] {
            for max_ticks in [1, 2, 9, 30] {
                let (step, ticks) = time_ticks(from, to, max_ticks, HOUR);
                // A narrow chart may find no round time in its window; one of usual width does.
                assert!(
                    (max_ticks < 9 || !ticks.is_empty()) && ticks.len() <= max_ticks,
                    "{from}..{to} at {max_ticks}: {} ticks",
                    ticks.len()
                );
                assert!(ticks.iter().all(|t| (from..=to).contains(t)));
                if step >= YEAR {
                    // 1 January, local midnight.
                    assert!(ticks.iter().all(|&t| time_label(t, DAY, HOUR) == "1 Jan"));
                }
            }
        }
        // All of time at 1,000 pixels: a tick every thousand years, labelled with the year.
        let (step, ticks) = time_ticks(0, last, 9, 0);
        assert_eq!(step, 1_000 * YEAR);
        let labels: Vec<String> = ticks.iter().map(|&t| time_label(t, step, 0)).collect();
        assert_eq!(
            labels,
            ["2000", "3000", "4000", "5000", "6000", "7000", "8000", "9000"]
        );
    }

    #[test]
    fn labels_say_what_changes() {
        assert_eq!(time_label(T, 10 * MINUTE, 0), "10:00");
        assert_eq!(time_label(T + 5_000, 5 * SECOND, 0), "10:00:05");
        assert_eq!(time_label(T, DAY, 0), "26 Nov");
        // Local midnight in UTC-5 is 05:00 UTC; a 6-hour tick there shows the date.
        assert_eq!(time_label(T - 5 * HOUR, 6 * HOUR, -5 * HOUR), "26 Nov");
        assert_eq!(date_time(T + 9_000, 0), "2026-11-26 10:00:09");
        assert_eq!(date_time(0, 0), "1970-01-01 00:00:00");
        assert_eq!(date_time(951_782_400_000, 0), "2000-02-29 00:00:00");
    }

    #[test]
    fn values_are_short_and_si_prefixed() {
        for (v, text) in [
            (71.5, "71.5"),
            (3.0, "3"),
            (0.0, "0"),
            (-2.125, "-2.125"),
            (22.0, "22"),
            (1234567.0, "1.235M"),
            (999.4, "999.4"),
            (1500.0, "1.5k"),
            (0.25, "0.25"),
            (0.0001234, "123.4µ"),
            (-4.2e9, "-4.2G"),
            (1e-12, "0.001n"),
            (1.7e308, "1.7e308"),
            (-f64::MAX, "-1.798e308"),
            (5e-324, "4.941e-324"),
            (2.5e15, "2.5e15"),
        ] {
            assert_eq!(format_value(v), text, "{v}");
        }
    }
}
