//! This process' own figures, read from Linux's `/proc/self` at each scrape, under the names every
//! Prometheus client library uses (`process_*`), so existing dashboards and alerts apply.

use std::fs;

/// Clock ticks a second in `/proc/self/stat`: `USER_HZ`, fixed at 100 by the kernel's ABI.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ProcessFigures {
    /// User and system CPU time since the process started.
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    /// The soft limit on open file descriptors.
    pub max_fds: u64,
    pub threads: u64,
}

impl ProcessFigures {
    /// The figures now; those that cannot be read (not Linux, or `/proc` hidden) stay 0.
    pub fn read() -> ProcessFigures {
        let mut figures = ProcessFigures::default();
        if let Ok(stat) = fs::read_to_string("/proc/self/stat") {
            figures.read_stat(&stat);
        }
        if let Ok(status) = fs::read_to_string("/proc/self/status") {
            figures.resident_bytes = status_kib(&status, "VmRSS:") * 1024;
        }
        if let Ok(fds) = fs::read_dir("/proc/self/fd") {
            figures.open_fds = fds.count() as u64;
        }
        if let Ok(limits) = fs::read_to_string("/proc/self/limits") {
            figures.max_fds = max_open_files(&limits);
        }
        figures
    }

    /// `/proc/self/stat`: after the command name (in parentheses, and which may hold spaces), the
    /// fields from the third on; utime and stime are the 14th and 15th, threads the 20th, vsize the
    /// 23rd.
    fn read_stat(&mut self, stat: &str) {
        let Some((_, after_name)) = stat.rsplit_once(')') else {
            return;
        };
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        self.cpu_seconds =
            (field(14).unwrap_or(0) + field(15).unwrap_or(0)) as f64 / TICKS_PER_SECOND;
        self.threads = field(20).unwrap_or(0);
        self.virtual_bytes = field(23).unwrap_or(0);
    }
}

/// The figure in kB of `key` (e.g. `VmRSS:`) in a `/proc/PID/status` text; 0 without one.
pub fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

fn max_open_files(limits: &str) -> u64 {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_a_command_name_holding_spaces_and_parentheses() {
        let mut figures = ProcessFigures::default();
        let stat = "42 (sb (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 \
                    12345 987654 300 18446744073709551615";
        figures.read_stat(stat);
        assert_eq!(figures.cpu_seconds, 3.0);
        assert_eq!(figures.threads, 7);
        assert_eq!(figures.virtual_bytes, 987654);
    }

    #[test]
    fn this_process_has_memory_and_open_files() {
        let figures = ProcessFigures::read();
        assert!(figures.resident_bytes > 0 && figures.virtual_bytes >= figures.resident_bytes);
        assert!(figures.open_fds > 0 && figures.max_fds >= figures.open_fds);
        assert!(figures.threads >= 1);
    }
}
