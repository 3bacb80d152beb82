//! This machine's own signals, read from `/proc` once per sample: CPU use per core and in total,
//! load, memory and swap, and disk and network bytes per second. Counters become rates against the
//! previous sample, so the first sample carries only what needs no history.
//!
//! Every name carries `host=NAME`, so several machines can feed one server.

use super::hundredths;
use crate::model::Sample;
use std::collections::{BTreeMap, HashMap};

/// Reads the files a sample needs; in tests, fixed texts.
pub trait ProcFiles {
    fn read(&self, path: &str) -> Option<String>;
}

/// The real `/proc` and `/sys`.
pub struct System;

impl ProcFiles for System {
    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
}

/// Counters of the previous sample, by signal name: what rates are computed against.
pub struct HostSampler<F: ProcFiles = System> {
    files: F,
    host: String,
    previous: Option<Counters>,
}

/// Cumulative counters at one instant.
struct Counters {
    at_ms: i64,
    /// Per CPU (`total` for all): busy and all jiffies.
    cpu: BTreeMap<String, CpuTimes>,
    /// Per signal name: a byte counter.
    bytes: HashMap<String, u64>,
}

#[derive(Clone, Copy)]
struct CpuTimes {
    busy: u64,
    all: u64,
}

impl HostSampler<System> {
    pub fn new() -> HostSampler<System> {
        HostSampler::reading(System)
    }
}

impl Default for HostSampler<System> {
    fn default() -> Self {
        HostSampler::new()
    }
}

impl<F: ProcFiles> HostSampler<F> {
    pub fn reading(files: F) -> HostSampler<F> {
        let host = files
            .read("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        HostSampler {
            files,
            host,
            previous: None,
        }
    }

    /// The machine's signals at `t_ms`.
    pub fn sample(&mut self, t_ms: i64) -> Sample {
        let mut signals = BTreeMap::new();
        let host = &self.host;
        let name = |metric: &str, tags: &[(&str, &str)]| {
            let mut tags: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            tags.push(format!("host={host}"));
            tags.sort();
            format!("host.{metric}{{{}}}", tags.join(","))
        };
        if let Some(text) = self.files.read("/proc/loadavg") {
            for (metric, value) in ["load1", "load5", "load15"]
                .iter()
                .zip(text.split_whitespace())
            {
                if let Ok(v) = value.parse::<f64>() {
                    signals.insert(name(metric, &[]), v);
                }
            }
        }
        if let Some(text) = self.files.read("/proc/meminfo") {
            let kib = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                    .map(|v| v * 1024.0)
            };
            if let (Some(total), Some(available)) = (kib("MemTotal"), kib("MemAvailable")) {
                signals.insert(name("memory.used_bytes", &[]), total - available);
                signals.insert(name("memory.available_bytes", &[]), available);
            }
            if let (Some(total), Some(free)) = (kib("SwapTotal"), kib("SwapFree")) {
                signals.insert(name("swap.used_bytes", &[]), total - free);
            }
        }
        let counters = self.counters(t_ms, &name);
        if let Some(previous) = &self.previous {
            let seconds = (counters.at_ms - previous.at_ms) as f64 / 1000.0;
            for (cpu, now) in &counters.cpu {
                let Some(before) = previous.cpu.get(cpu) else {
                    continue;
                };
                let all = now.all.saturating_sub(before.all);
                if all > 0 {
                    let busy = now.busy.saturating_sub(before.busy);
                    signals.insert(
                        name("cpu.usage_percent", &[("cpu", cpu)]),
                        hundredths(100.0 * busy as f64 / all as f64),
                    );
                }
            }
            if seconds > 0.0 {
                for (signal, now) in &counters.bytes {
                    if let Some(before) = previous.bytes.get(signal) {
                        let rate = now.saturating_sub(*before) as f64 / seconds;
                        signals.insert(signal.clone(), hundredths(rate));
                    }
                }
            }
        }
        self.previous = Some(counters);
        Sample {
            timestamp: t_ms,
            signals,
        }
    }

    /// The cumulative counters now: CPU jiffies, disk sectors, network bytes.
    fn counters(&self, at_ms: i64, name: &impl Fn(&str, &[(&str, &str)]) -> String) -> Counters {
        let mut cpu = BTreeMap::new();
        for line in self.files.read("/proc/stat").unwrap_or_default().lines() {
            let mut fields = line.split_whitespace();
            let Some(label) = fields.next().and_then(|l| l.strip_prefix("cpu")) else {
                continue;
            };
            let times: Vec<u64> = fields.filter_map(|f| f.parse().ok()).collect();
            if times.len() < 4 {
                continue;
            }
            // user nice system idle iowait irq softirq steal; guest time is counted in user already.
            let all: u64 = times.iter().take(8).sum();
            let idle = times[3] + times.get(4).copied().unwrap_or(0);
            let label = if label.is_empty() { "total" } else { label };
            cpu.insert(
                label.to_owned(),
                CpuTimes {
                    busy: all - idle,
                    all,
                },
            );
        }
        let mut bytes = HashMap::new();
        let disks: Vec<String> = self
            .files
            .read("/proc/diskstats")
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        for line in &disks {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Whole disks only: partitions would count their bytes twice, loop and RAM disks none.
            let Some(&device) = fields.get(2) else {
                continue;
            };
            let whole = self
                .files
                .read(&format!("/sys/block/{device}/dev"))
                .is_some();
            if !whole
                || device.starts_with("loop")
                || device.starts_with("ram")
                || device.starts_with("zram")
            {
                continue;
            }
            let sectors = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
            if let (Some(read), Some(written)) = (sectors(5), sectors(9)) {
                bytes.insert(
                    name("disk.read_bytes_per_second", &[("device", device)]),
                    read * 512,
                );
                bytes.insert(
                    name("disk.write_bytes_per_second", &[("device", device)]),
                    written * 512,
                );
            }
        }
        for line in self
            .files
            .read("/proc/net/dev")
            .unwrap_or_default()
            .lines()
            .skip(2)
        {
            let Some((iface, counters)) = line.split_once(':') else {
                continue;
            };
            let iface = iface.trim();
            let fields: Vec<u64> = counters
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            if iface == "lo" || fields.len() < 9 {
                continue;
            }
            bytes.insert(
                name("net.receive_bytes_per_second", &[("interface", iface)]),
                fields[0],
            );
            bytes.insert(
                name("net.transmit_bytes_per_second", &[("interface", iface)]),
                fields[8],
            );
        }
        Counters { at_ms, cpu, bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Fixed file texts, changed between samples by the test.
    struct Fixture(RefCell<HashMap<&'static str, String>>);

    impl ProcFiles for &Fixture {
        fn read(&self, path: &str) -> Option<String> {
            self.0.borrow().get(path).cloned()
        }
    }

    fn files(stat: &str, disk_sectors: (u64, u64), net: (u64, u64)) -> Vec<(&'static str, String)> {
        vec![
            ("/proc/sys/kernel/hostname", "box\n".into()),
            ("/proc/loadavg", "0.50 0.25 0.10 1/98 28713\n".into()),
            (
                "/proc/meminfo",
                "MemTotal:       1000 kB\nMemFree:  10 kB\nMemAvailable:    400 kB\nSwapTotal: 100 kB\nSwapFree: 75 kB\n".into(),
            ),
            ("/proc/stat", stat.into()),
            (
                "/proc/diskstats",
                format!(
                    "   7       0 loop0 9 0 9 0 9 0 9 0 0 0 0\n 253 0 vda 1 0 {} 0 1 0 {} 0 0 0 0\n 253 1 vda1 1 0 {} 0 1 0 {} 0 0 0 0\n",
                    disk_sectors.0, disk_sectors.1, disk_sectors.0, disk_sectors.1
                ),
            ),
            ("/sys/block/vda/dev", "253:0\n".into()),
            ("/sys/block/loop0/dev", "7:0\n".into()),
            (
                "/proc/net/dev",
                format!(
                    "Inter-| head\n face | head\n    lo: 999 1 0 0 0 0 0 0 999 1 0 0 0 0 0 0\n  eth0: {} 1 0 0 0 0 0 0 {} 1 0 0 0 0 0 0\n",
                    net.0, net.1
                ),
            ),
        ]
    }

    #[test]
    fn a_second_sample_turns_counters_into_rates_and_names_carry_the_host() {
        let fixture = Fixture(RefCell::new(HashMap::new()));
        let set = |entries: Vec<(&'static str, String)>| fixture.0.borrow_mut().extend(entries);
        set(files(
            "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0 0 0\n",
            (1_000, 2_000),
            (5_000, 6_000),
        ));
        let mut sampler = HostSampler::reading(&fixture);
        let first = sampler.sample(10_000);
        assert_eq!(first.signals["host.load1{host=box}"], 0.5);
        assert_eq!(
            first.signals["host.memory.used_bytes{host=box}"],
            600.0 * 1024.0
        );
        assert_eq!(
            first.signals["host.swap.used_bytes{host=box}"],
            25.0 * 1024.0
        );
        assert!(
            !first.signals.keys().any(|k| k.contains("cpu.usage")),
            "no rate without history"
        );

        // Two seconds on: 100 of 200 jiffies busy; 10 sectors read, 20 written; 2,000 bytes in.
        set(files(
            "cpu  200 0 100 900 0 0 0 0 0 0\ncpu0 200 0 100 900 0 0 0 0 0 0\n",
            (1_010, 2_020),
            (7_000, 6_000),
        ));
        let second = sampler.sample(12_000);
        assert_eq!(
            second.signals["host.cpu.usage_percent{cpu=total,host=box}"],
            50.0
        );
        assert_eq!(
            second.signals["host.cpu.usage_percent{cpu=0,host=box}"],
            50.0
        );
        assert_eq!(
            second.signals["host.disk.read_bytes_per_second{device=vda,host=box}"],
            10.0 * 512.0 / 2.0
        );
        assert_eq!(
            second.signals["host.disk.write_bytes_per_second{device=vda,host=box}"],
            20.0 * 512.0 / 2.0
        );
        assert_eq!(
            second.signals["host.net.receive_bytes_per_second{host=box,interface=eth0}"],
            1_000.0
        );
        assert_eq!(
            second.signals["host.net.transmit_bytes_per_second{host=box,interface=eth0}"],
            0.0
        );
        assert!(!second
            .signals
            .keys()
            .any(|k| k.contains("loop0") || k.contains("vda1") || k.contains("interface=lo")));
    }

    #[test]
    fn this_machine_gives_finite_signals() {
        let mut sampler = HostSampler::new();
        sampler.sample(0);
        // Long enough for the kernel's CPU counters (100 ticks a second) to move.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let sample = sampler.sample(200);
        assert!(sample
            .signals
            .keys()
            .any(|k| k.starts_with("host.cpu.usage_percent{cpu=total")));
        assert!(sample.signals.values().all(|v| v.is_finite()));
    }
}
