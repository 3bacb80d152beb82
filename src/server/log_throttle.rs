//! Log lines about what clients do wrong, bounded: a flood of bad requests must not fill the disk, or
//! bury the one line that matters. A `LogThrottle` lets a few lines through per period and counts
//! the rest, so the next line that passes can say how many were left out.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LogThrottle {
    /// Lines let through per period.
    burst: u32,
    period: Duration,
    state: Mutex<Window>,
}

struct Window {
    started: Option<Instant>,
    let_through: u32,
    /// What happened since the last line let through (weights added up).
    unlogged: u64,
}

impl LogThrottle {
    pub const fn new(burst: u32, period: Duration) -> LogThrottle {
        LogThrottle {
            burst,
            period,
            state: Mutex::new(Window {
                started: None,
                let_through: 0,
                unlogged: 0,
            }),
        }
    }

    /// Counts an event of `weight` (1, or e.g. the fields it skipped). `Some(total)` when it may be
    /// logged, `total` adding up its weight and that of every event left out before it.
    pub fn admit(&self, weight: u64) -> Option<u64> {
        self.admit_at(Instant::now(), weight)
    }

    fn admit_at(&self, now: Instant, weight: u64) -> Option<u64> {
        let mut window = self.state.lock().unwrap_or_else(|e| e.into_inner());
        window.unlogged = window.unlogged.saturating_add(weight);
        if window
            .started
            .is_none_or(|started| now.duration_since(started) >= self.period)
        {
            window.started = Some(now);
            window.let_through = 0;
        }
        if window.let_through >= self.burst {
            return None;
        }
        window.let_through += 1;
        Some(std::mem::take(&mut window.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_per_period_and_the_next_line_counts_those_left_out() {
        let throttle = LogThrottle::new(2, Duration::from_secs(1));
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(throttle.admit_at(at(0), 1), Some(1));
        assert_eq!(throttle.admit_at(at(10), 1), Some(1));
        for ms in 20..1_000 {
            assert_eq!(throttle.admit_at(at(ms), 1), None);
        }
        // 980 left out, and this one.
        assert_eq!(throttle.admit_at(at(1_000), 1), Some(981));
        assert_eq!(throttle.admit_at(at(1_001), 5), Some(5));
        assert_eq!(throttle.admit_at(at(1_002), 5), None);
    }
}
