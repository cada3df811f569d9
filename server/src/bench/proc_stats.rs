//! CPU time and resident memory of a process, from Linux's /proc.

use std::time::Duration;

/// A snapshot of a process's resources.
#[derive(Debug, Clone, Copy)]
pub struct ProcStats {
    /// User + system CPU time.
    pub cpu: Duration,
    /// User-space CPU time alone (the part the server's own code costs;
    /// the rest is the kernel's, mostly TCP).
    pub user: Duration,
    /// Resident set size, bytes.
    pub rss: u64,
}

/// Clock ticks per second for /proc/PID/stat (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

/// Reads the stats of `pid`, or `None` if /proc does not have them.
pub fn read(pid: u32) -> Option<ProcStats> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(ProcStats {
        cpu: Duration::from_millis((utime + stime) * 1000 / TICKS_PER_SECOND),
        user: Duration::from_millis(utime * 1000 / TICKS_PER_SECOND),
        rss: rss_kb * 1024,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_our_own_process() {
        let stats = super::read(std::process::id()).expect("/proc is mounted");
        assert!(stats.rss > 0);
    }
}
