//! The standard `process_*` metrics (resident memory, CPU time, open files), read from
//! `/proc/self` at each scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::saturate;

/// `process_*` metrics, read from `/proc/self` at each scrape (Linux; elsewhere, or when
/// `/proc` is not mounted, they are left out).
#[derive(Debug)]
pub(super) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = ProcessStats::read();
        if let Some(rss) = stats.resident_bytes {
            let g = ConstGauge::new(saturate(rss));
            g.encode(encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                None,
                g.metric_type(),
            )?)?;
        }
        if let Some(cpu) = stats.cpu_seconds {
            let c = ConstCounter::new(cpu);
            c.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                c.metric_type(),
            )?)?;
        }
        if let Some(fds) = stats.open_fds {
            let g = ConstGauge::new(saturate(fds));
            g.encode(encoder.encode_descriptor(
                "process_open_fds",
                "Number of open file descriptors",
                None,
                g.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// What `/proc/self` says about this process; `None` where it could not be read.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct ProcessStats {
    resident_bytes: Option<u64>,
    cpu_seconds: Option<f64>,
    open_fds: Option<u64>,
}

impl ProcessStats {
    fn read() -> Self {
        let page = sysconf(libc::_SC_PAGESIZE);
        let ticks = sysconf(libc::_SC_CLK_TCK);
        let statm = std::fs::read_to_string("/proc/self/statm").ok();
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        Self {
            resident_bytes: statm
                .as_deref()
                .and_then(|s| parse_statm_resident(s, page?)),
            cpu_seconds: stat.as_deref().and_then(|s| parse_stat_cpu(s, ticks?)),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as u64),
        }
    }
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf takes an integer and returns an integer; it touches no memory of ours.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|v| *v > 0)
}

/// Resident bytes from `/proc/self/statm` (`size resident shared ...`, in pages).
fn parse_statm_resident(statm: &str, page_bytes: u64) -> Option<u64> {
    let pages: u64 = statm.split_ascii_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(page_bytes)
}

/// User + system CPU seconds from `/proc/self/stat`. The command name (field 2) is in
/// parentheses and may hold spaces or parentheses itself, so fields are counted from the last
/// `)`: utime and stime are fields 14 and 15, in clock ticks.
fn parse_stat_cpu(stat: &str, ticks_per_second: u64) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / ticks_per_second as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse_with_awkward_command_names() {
        // Field 2 holds spaces and a `)`; utime = 250 ticks, stime = 50 ticks.
        let stat = "4242 (hr job) x) S 1 4242 4242 0 -1 4194560 2260 0 0 0 250 50 0 0 20 0 5 0 \
                    1234 56789 1234 18446744073709551615";
        assert_eq!(parse_stat_cpu(stat, 100), Some(3.0));
        assert_eq!(parse_stat_cpu("garbage", 100), None);
        assert_eq!(parse_stat_cpu("1 (x) S 1 2", 100), None);
        assert_eq!(
            parse_statm_resident("5000 1200 300 1 0 900 0\n", 4096),
            Some(1200 * 4096)
        );
        assert_eq!(parse_statm_resident("5000", 4096), None);
    }
}
