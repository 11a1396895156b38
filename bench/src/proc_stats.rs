//! CPU time and memory of processes, from /proc (Linux).
use std::collections::HashMap;
use std::sync::OnceLock;

/// CPU time in clock ticks (user + system, including waited-for children such as step processes).
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuTimes {
    ticks: u64,
}

impl CpuTimes {
    pub fn millis(&self) -> f64 {
        self.ticks as f64 * 1000.0 / ticks_per_second() as f64
    }

    pub fn since(&self, before: &CpuTimes) -> CpuTimes {
        CpuTimes {
            ticks: self.ticks.saturating_sub(before.ticks),
        }
    }
}

fn ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

fn ticks_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<u64> = stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime, stime, cutime, cstime are fields 14–17 of the line.
    Some(fields.get(10..14)?.iter().sum())
}

pub fn process_cpu(pid: u32) -> CpuTimes {
    CpuTimes {
        ticks: ticks_of(pid).unwrap_or(0),
    }
}

/// Every PostgreSQL process on the machine, by pid.
pub fn postgres_cpu() -> HashMap<u32, CpuTimes> {
    let mut all = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let is_postgres = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim() == "postgres")
            .unwrap_or(false);
        if is_postgres {
            if let Some(ticks) = ticks_of(pid) {
                all.insert(pid, CpuTimes { ticks });
            }
        }
    }
    all
}

/// What PostgreSQL spent between two looks (processes that ended in between are not counted).
pub fn since_all(now: &HashMap<u32, CpuTimes>, before: &HashMap<u32, CpuTimes>) -> CpuTimes {
    CpuTimes {
        ticks: now
            .iter()
            .map(|(pid, t)| t.since(&before.get(pid).copied().unwrap_or_default()).ticks)
            .sum(),
    }
}

/// A memory figure from /proc/<pid>/status, e.g. `VmRSS:` or `VmHWM:` (peak), in KiB.
pub fn rss_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
