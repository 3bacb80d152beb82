//! The bundled producer (`signalboard produce`, and `serve --demo`): samples on a fixed schedule,
//! posted as JSON, from a simulation of a handful of signals with different shapes (smooth,
//! wandering, periodic, stepped, spiky) or from this machine itself (`host.rs`, `--host`).
//!
//! It never loses a point while the server is away: samples wait in a spool (`spool/`: a directory
//! with `--spool`, so a restart of the producer loses nothing either) until a POST of them is
//! acknowledged (`delivery.rs`), and since storing the same (signal, timestamp) twice overwrites,
//! resending is harmless. `signalboard edge` (`src/edge.rs`) spools and delivers the same way. Timestamps come from the schedule, not from when the loop happens to run, so a stall
//! makes no gap.

mod delivery;
mod host;
pub mod spool;
mod stdin;

pub use delivery::{Delivery, Upstream};
pub use host::HostSampler;
pub use stdin::run_stdin;

use crate::model::Sample;
use std::collections::BTreeMap;
use std::f64::consts::TAU;
use std::time::Duration;

/// The shapes, in the order signals are assigned to them.
const SHAPES: [&str; 5] = ["sine", "random_walk", "sawtooth", "noisy_step", "spikes"];

/// Generates sample values. Deterministic for a seed, so tests can rely on its shapes.
pub struct Simulation {
    names: Vec<String>,
    walks: Vec<f64>,
    rng: fastrand::Rng,
}

impl Simulation {
    pub fn new(signals: u32, seed: u64) -> Simulation {
        let names = (0..signals as usize)
            .map(|i| match i / SHAPES.len() {
                0 => format!("demo.{}", SHAPES[i]),
                round => format!("demo.{}.{}", SHAPES[i % SHAPES.len()], round + 1),
            })
            .collect::<Vec<_>>();
        Simulation {
            walks: vec![50.0; names.len()],
            names,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The sample at `t_ms`: every signal's value at that instant.
    pub fn sample(&mut self, t_ms: i64) -> Sample {
        let t = t_ms as f64 / 1000.0;
        let mut signals = BTreeMap::new();
        for (i, name) in self.names.iter().enumerate() {
            // Each copy of a shape gets its own phase, so the charts differ.
            let phase = i as f64 * 0.7;
            let value = match i % SHAPES.len() {
                0 => 50.0 + 25.0 * (TAU * t / 60.0 + phase).sin(),
                1 => {
                    let step = (self.rng.f64() - 0.5) * 2.0;
                    // Pulled gently back to 50 so the walk stays on the chart.
                    self.walks[i] += step - (self.walks[i] - 50.0) * 0.01;
                    self.walks[i]
                }
                2 => ((t + phase * 10.0) % 30.0) / 30.0 * 100.0,
                3 => {
                    let level = if ((t + phase * 10.0) / 20.0) as i64 % 2 == 0 {
                        20.0
                    } else {
                        80.0
                    };
                    level + (self.rng.f64() - 0.5) * 6.0
                }
                _ => {
                    let spike = self.rng.f64() < 0.02;
                    10.0 + self.rng.f64() * 2.0 + if spike { 80.0 } else { 0.0 }
                }
            };
            signals.insert(name.clone(), hundredths(value));
        }
        Sample {
            timestamp: t_ms,
            signals,
        }
    }
}

/// A reading to two decimal places, as a sensor or a `top` reports it: more digits would be
/// noise, and they cost storage (a closed block keeps a few decimals in a byte or two).
pub fn hundredths(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Where a producer's samples come from.
pub enum Source {
    Simulation(Simulation),
    Host(HostSampler),
}

impl Source {
    fn sample(&mut self, t_ms: i64) -> Sample {
        match self {
            Source::Simulation(simulation) => simulation.sample(t_ms),
            Source::Host(host) => host.sample(t_ms),
        }
    }
}

/// Runs until the process ends: `rate` samples a second from `source`, delivered to `upstream`.
pub async fn run(upstream: Upstream, mut source: Source, rate: f64) -> anyhow::Result<()> {
    let period = Duration::from_secs_f64(1.0 / rate.clamp(0.001, 1_000.0));
    let mut delivery = Delivery::open(upstream).await?;
    let start = chrono::Utc::now().timestamp_millis();
    let mut ticks = tokio::time::interval(period);
    // After a stall, produce the missed ticks at once: their timestamps come from the schedule anyway.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for n in 0u64.. {
        ticks.tick().await;
        let t_ms = start + (n as f64 * period.as_secs_f64() * 1000.0) as i64;
        delivery.spool().push_sample(&source.sample(t_ms)).await?;
        delivery.deliver().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_every_shape_then_number_the_copies() {
        let sim = Simulation::new(7, 1);
        assert_eq!(
            sim.names,
            [
                "demo.sine",
                "demo.random_walk",
                "demo.sawtooth",
                "demo.noisy_step",
                "demo.spikes",
                "demo.sine.2",
                "demo.random_walk.2"
            ]
        );
    }

    #[test]
    fn samples_carry_every_signal_with_finite_values_in_range() {
        let mut sim = Simulation::new(10, 42);
        for k in 0..1000 {
            let sample = sim.sample(1_795_687_200_000 + k * 1000);
            assert_eq!(sample.signals.len(), 10);
            for (name, v) in &sample.signals {
                assert!(v.is_finite() && (-50.0..=150.0).contains(v), "{name} = {v}");
            }
        }
    }
}
