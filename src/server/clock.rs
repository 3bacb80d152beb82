//! The time as the server sees it. Everything that asks for "now" — a sample's receive time, "too far
//! ahead", default ranges, retention, which rollups a range reads — asks the one clock the server was
//! given, as influxdb3's `TimeProvider` is passed around: a server runs on the system's clock, a test
//! on one that stands where the test puts it, so it can write "yesterday" without a century of
//! retention.

use crate::server::domain::Timestamp;
use std::fmt;
use std::sync::{Arc, Mutex};

pub trait Clock: fmt::Debug + Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

pub type SharedClock = Arc<dyn Clock>;

/// The system's clock.
#[derive(Debug)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that shows the time it was set to, until it is set again.
#[derive(Debug)]
pub struct FixedClock(Mutex<Timestamp>);

impl FixedClock {
    pub fn at(t: Timestamp) -> FixedClock {
        FixedClock(Mutex::new(t))
    }

    pub fn set(&self, t: Timestamp) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = t;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The system's clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}
