//! The streaming job's health as the page shows it, from its Prometheus `/metrics` text.
//!
//! Pure: the scrape itself happens elsewhere; this reads the text and compares two scrapes. The
//! reader is lenient on purpose: the pipeline's metric set grows, so unknown series, comments,
//! `# TYPE` lines, timestamps and lines it cannot read are skipped, never an error. What it looks
//! for: `hr_records_total{outcome=...}` (counters; their sum over outcomes is the job's records,
//! their change per second its rate) and `hr_consumer_lag_records{partition=...}` (gauges; summed
//! over partitions).

use std::collections::BTreeMap;

use serde::Serialize;

/// One sample line: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name.
    pub name: String,
    /// Label name -> value, unescaped.
    pub labels: BTreeMap<String, String>,
    /// The value (`NaN`, `+Inf`, `-Inf` included).
    pub value: f64,
}

/// Reads every sample line of a Prometheus text exposition it can, skipping the rest.
///
/// # Example
/// ```
/// let s = hr_dashboard::parse_prometheus(
///     "# TYPE hr_records_total counter\nhr_records_total{outcome=\"parsed\"} 12 1700000000000\n",
/// );
/// assert_eq!(s[0].name, "hr_records_total");
/// assert_eq!(s[0].labels["outcome"], "parsed");
/// assert_eq!(s[0].value, 12.0);
/// ```
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    text.lines().filter_map(sample).collect()
}

fn sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(r) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(r)?;
        labels = parsed;
        rest = after;
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Reads `name="value",...}` and returns the labels and the text after the closing brace.
fn label_set(mut s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_owned();
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.insert(key, value);
        s = s[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

/// What one scrape said, reduced to what the page shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobScrape {
    /// Sum of `hr_records_total` over outcomes, if the job exports it.
    pub records_total: Option<f64>,
    /// `hr_records_total` per outcome.
    pub by_outcome: BTreeMap<String, f64>,
    /// Sum of `hr_consumer_lag_records` over partitions, if exported.
    pub lag_records: Option<f64>,
    /// Partitions reporting lag.
    pub partitions: usize,
}

impl JobScrape {
    /// Reduces a scrape's text.
    pub fn from_text(text: &str) -> Self {
        let mut s = Self {
            records_total: None,
            by_outcome: BTreeMap::new(),
            lag_records: None,
            partitions: 0,
        };
        for m in parse_prometheus(text) {
            if !m.value.is_finite() {
                continue;
            }
            match m.name.as_str() {
                "hr_records_total" => {
                    *s.records_total.get_or_insert(0.0) += m.value;
                    let outcome = m.labels.get("outcome").cloned().unwrap_or_default();
                    *s.by_outcome.entry(outcome).or_insert(0.0) += m.value;
                }
                "hr_consumer_lag_records" => {
                    *s.lag_records.get_or_insert(0.0) += m.value;
                    s.partitions += 1;
                }
                _ => {}
            }
        }
        s
    }
}

/// The job's health shown on the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobHealth {
    /// `ok` (answered), `unavailable` (did not answer or answered an error), `off` (no URL
    /// configured), `waiting` (no scrape yet).
    pub status: &'static str,
    /// Why it is unavailable.
    pub error: Option<String>,
    /// Records per second between the last two scrapes.
    pub rate_per_s: Option<f64>,
    /// The last scrape, when it answered.
    pub scrape: Option<JobScrape>,
}

impl JobHealth {
    /// No metrics URL configured.
    pub const OFF: Self = Self {
        status: "off",
        error: None,
        rate_per_s: None,
        scrape: None,
    };
    /// Not scraped yet.
    pub const WAITING: Self = Self {
        status: "waiting",
        error: None,
        rate_per_s: None,
        scrape: None,
    };

    /// The job did not answer.
    pub fn unavailable(error: impl Into<String>) -> Self {
        Self {
            status: "unavailable",
            error: Some(error.into()),
            rate_per_s: None,
            scrape: None,
        }
    }
}

/// Follows successive scrapes and works out the rate from the last two.
#[derive(Debug, Default)]
pub struct RateTracker {
    /// (scrape time in ms, records total) of the previous good scrape.
    last: Option<(u64, f64)>,
}

impl RateTracker {
    /// Takes a scrape made at `now_ms` (any monotonic millisecond clock) and says how the job is.
    /// A counter that went down (the job restarted) gives no rate for that interval.
    pub fn observe(&mut self, now_ms: u64, scrape: JobScrape) -> JobHealth {
        let rate = match (self.last, scrape.records_total) {
            (Some((t0, r0)), Some(r1)) if now_ms > t0 && r1 >= r0 => {
                Some((r1 - r0) * 1000.0 / (now_ms - t0) as f64)
            }
            _ => None,
        };
        self.last = scrape.records_total.map(|r| (now_ms, r));
        JobHealth {
            status: "ok",
            error: None,
            rate_per_s: rate,
            scrape: Some(scrape),
        }
    }

    /// The job did not answer: the next rate starts afresh.
    pub fn failed(&mut self, error: impl Into<String>) -> JobHealth {
        self.last = None;
        JobHealth::unavailable(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP hr_records_total Records by outcome.
# TYPE hr_records_total counter
hr_records_total{outcome="parsed"} 1000
hr_records_total{outcome="invalid",code="bad_json"} 7
hr_records_total{outcome="late"} 3 1700000000000
hr_consumer_lag_records{partition="0"} 10
hr_consumer_lag_records{partition="1"} 5.5
hr_consumer_lag_records{partition="2"} NaN
hr_windows_fired_total 99
process_resident_memory_bytes 1.2e7
weird line with {broken
hr_records_total{outcome="x\"y\\z"} 0
"#;

    #[test]
    fn reads_samples_and_skips_what_it_cannot() {
        let s = parse_prometheus(TEXT);
        assert_eq!(s.len(), 9);
        assert_eq!(s[1].labels["code"], "bad_json");
        assert_eq!(s[2].value, 3.0, "the timestamp is not the value");
        assert!(s[5].value.is_nan());
        assert_eq!(s[7].value, 1.2e7);
        assert_eq!(s[8].labels["outcome"], "x\"y\\z");
        assert!(parse_prometheus("no_value\n{x=\"1\"} 2\nm{a=\"1\" 2\n").is_empty());
        assert_eq!(parse_prometheus("up +Inf")[0].value, f64::INFINITY);
    }

    #[test]
    fn sums_records_and_lag() {
        let j = JobScrape::from_text(TEXT);
        assert_eq!(j.records_total, Some(1010.0));
        assert_eq!(j.by_outcome["invalid"], 7.0);
        assert_eq!(j.lag_records, Some(15.5), "NaN lag is skipped");
        assert_eq!(j.partitions, 2);
        let none = JobScrape::from_text("something_else 1\n");
        assert_eq!((none.records_total, none.lag_records), (None, None));
    }

    #[test]
    fn rate_from_two_scrapes_and_none_across_a_restart() {
        let mut r = RateTracker::default();
        let at =
            |n: f64| JobScrape::from_text(&format!("hr_records_total{{outcome=\"parsed\"}} {n}"));
        assert_eq!(r.observe(1_000, at(100.0)).rate_per_s, None);
        assert_eq!(r.observe(3_000, at(700.0)).rate_per_s, Some(300.0));
        assert_eq!(r.observe(4_000, at(5.0)).rate_per_s, None, "counter reset");
        assert_eq!(r.observe(5_000, at(15.0)).rate_per_s, Some(10.0));
        let h = r.failed("connection refused");
        assert_eq!(
            (h.status, h.error.as_deref()),
            ("unavailable", Some("connection refused"))
        );
        assert_eq!(r.observe(6_000, at(20.0)).rate_per_s, None);
    }
}
