//! Which raised record detects which injection: matching by patient, kind and overlap,
//! repeats, false raised records, and injections covered by an alarm still on.

use std::collections::{BTreeMap, BTreeSet};

use hr_model::{Episode, EpisodeKind, EpisodeState};

use super::{FalseRaised, ScoreOptions, ScoredInjection, detected_at};

/// Raised records once per episode id, with their detection times, in detection order (ties by
/// id, for a stable result).
pub(super) fn raised_once<'a>(
    episodes: &'a [Episode],
    options: &ScoreOptions,
) -> Vec<(i64, &'a Episode)> {
    let mut raised: BTreeMap<&str, &Episode> = BTreeMap::new();
    for e in episodes.iter().filter(|e| e.state == EpisodeState::Raised) {
        raised.entry(&e.episode_id).or_insert(e);
    }
    let mut raised: Vec<(i64, &Episode)> = raised
        .into_values()
        .map(|e| (detected_at(e, options), e))
        .collect();
    raised.sort_by(|a, b| (a.0, &a.1.episode_id).cmp(&(b.0, &b.1.episode_id)));
    raised
}

/// Lets each raised record, in the order given, detect the injection it matches (or count as a
/// repeat of it); returns the records that match none.
pub(super) fn detect(
    injected: &mut [ScoredInjection],
    raised: &[(i64, &Episode)],
    tolerance: i64,
) -> Vec<FalseRaised> {
    let mut by_key: BTreeMap<(String, EpisodeKind), Vec<usize>> = BTreeMap::new();
    for (i, inj) in injected.iter().enumerate() {
        by_key
            .entry((inj.patient_id.clone(), inj.kind))
            .or_default()
            .push(i);
    }
    let mut false_raised = Vec::new();
    for &(at, e) in raised {
        let candidates = by_key
            .get(&(e.patient_id.clone(), e.kind))
            .map_or(&[][..], Vec::as_slice);
        match pick(injected, candidates, e, tolerance) {
            Some(i) => {
                let inj = &mut injected[i];
                if inj.detected {
                    inj.repeats += 1;
                } else {
                    inj.detected = true;
                    inj.episode_id = Some(e.episode_id.clone());
                    inj.detected_at_ms = Some(at);
                    inj.delay_ms = Some(at - inj.observed_start_ms);
                }
            }
            None => false_raised.push(FalseRaised {
                episode: e.clone(),
                detected_at_ms: at,
            }),
        }
    }
    false_raised
}

/// The injection the raised record `e` goes to among `candidates` (indices into `injected`, by
/// start): one that its window, widened by `tolerance` on both sides, overlaps.
fn pick(
    injected: &[ScoredInjection],
    candidates: &[usize],
    e: &Episode,
    tolerance: i64,
) -> Option<usize> {
    let overlapping = candidates.iter().copied().filter(|&i| {
        let inj = &injected[i];
        e.window_start - tolerance < inj.end_ms && e.window_end + tolerance > inj.start_ms
    });
    // An undetected candidate first (the earliest), else the earliest detected one.
    overlapping
        .clone()
        .find(|&i| !injected[i].detected)
        .or_else(|| overlapping.clone().next())
}

/// Marks detected, and covered, each injection left undetected that began while an alarm of its
/// patient and kind was still on: raised by a record of `raised` that is not among
/// `false_raised`, and not cleared (in `episodes`) before the injection's start.
pub(super) fn mark_covered(
    injected: &mut [ScoredInjection],
    raised: &[(i64, &Episode)],
    false_raised: &[FalseRaised],
    episodes: &[Episode],
) {
    let mut cleared_at: BTreeMap<&str, i64> = BTreeMap::new();
    for e in episodes.iter().filter(|e| e.state == EpisodeState::Cleared) {
        cleared_at.entry(&e.episode_id).or_insert(e.window_end);
    }
    let false_ids: BTreeSet<&str> = false_raised
        .iter()
        .map(|f| f.episode.episode_id.as_str())
        .collect();
    for inj in injected.iter_mut().filter(|i| !i.detected) {
        let open = raised.iter().find(|(_, e)| {
            !false_ids.contains(e.episode_id.as_str())
                && e.patient_id == inj.patient_id
                && e.kind == inj.kind
                && e.window_start <= inj.start_ms
                && cleared_at
                    .get(e.episode_id.as_str())
                    .is_none_or(|&end| end > inj.start_ms)
        });
        if let Some((_, e)) = open {
            inj.detected = true;
            inj.covered_by = Some(e.episode_id.clone());
        }
    }
}
