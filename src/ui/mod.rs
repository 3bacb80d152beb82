//! The dashboard. `board` is its state, the other files its parts; `live_client` (browser only) keeps the
//! state fed from the live feed and history.

pub mod board;
pub mod chart;
pub mod dashboard;
pub mod signal_list;

#[cfg(feature = "hydrate")]
mod live_client;

/// A value as the dashboard prints it: enough digits to read, never a wall of them.
pub fn format_value(v: f64) -> String {
    let magnitude = v.abs();
    if magnitude != 0.0 && !(1e-3..1e6).contains(&magnitude) {
        format!("{v:.3e}")
    } else {
        let text = format!("{v:.3}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::format_value;

    #[test]
    fn values_are_short_and_exact_enough() {
        assert_eq!(format_value(71.5), "71.5");
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(-2.125), "-2.125");
        assert_eq!(format_value(1234567.0), "1.235e6");
        assert_eq!(format_value(0.0001), "1.000e-4");
    }
}
