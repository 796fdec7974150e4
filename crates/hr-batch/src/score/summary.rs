//! The totals of a score: per kind, and the delays of the rate episodes.

use hr_model::EpisodeKind;

use super::{FalseRaised, KindSummary, Score, ScoredInjection};

/// The [`Score`] of the scored `injected`, the records in `false_raised`, and the number of
/// raised records read.
pub(super) fn summarise(
    injected: Vec<ScoredInjection>,
    false_raised: Vec<FalseRaised>,
    raised_records: usize,
) -> Score {
    let kinds = EpisodeKind::ALL
        .iter()
        .map(|&kind| kind_summary(kind, &injected, &false_raised))
        .collect();
    let rate_delays: Vec<i64> = injected
        .iter()
        .filter(|i| i.kind != EpisodeKind::SignalLoss)
        .filter_map(|i| i.delay_ms)
        .collect();
    Score {
        median_rate_delay_ms: median(&rate_delays),
        max_rate_delay_ms: rate_delays.iter().copied().max(),
        raised_records,
        injected,
        false_raised,
        kinds,
    }
}

/// The totals of `kind`.
fn kind_summary(
    kind: EpisodeKind,
    injected: &[ScoredInjection],
    false_raised: &[FalseRaised],
) -> KindSummary {
    let of_kind: Vec<&ScoredInjection> = injected.iter().filter(|i| i.kind == kind).collect();
    let delays: Vec<i64> = of_kind.iter().filter_map(|i| i.delay_ms).collect();
    KindSummary {
        kind,
        injected: of_kind.len(),
        detected: of_kind.iter().filter(|i| i.detected).count(),
        required: of_kind.iter().filter(|i| i.required).count(),
        required_detected: of_kind.iter().filter(|i| i.required && i.detected).count(),
        false_raised: false_raised
            .iter()
            .filter(|f| f.episode.kind == kind)
            .count(),
        repeats: of_kind.iter().map(|i| i.repeats).sum(),
        covered: of_kind.iter().filter(|i| i.covered_by.is_some()).count(),
        median_delay_ms: median(&delays),
        max_delay_ms: delays.iter().copied().max(),
    }
}

/// The median (the mean of the middle two for an even count), rounded down to a millisecond.
fn median(values: &[i64]) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]).div_euclid(2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[5]), Some(5));
        assert_eq!(median(&[9, 1, 5]), Some(5));
        assert_eq!(median(&[1, 2, 4, 10]), Some(3));
        assert_eq!(median(&[-3, -2]), Some(-3));
    }
}
