//! Each fault produces what it claims, and the ground truth counts exactly what was sent.

use std::collections::HashMap;

use hr_sim::{Fault, FaultConfig, GroundTruth, MalformedKind, Record, SimConfig};

use crate::common::{MINUTE_MS, records_and_truth};

/// The pipeline's default out-of-orderness.
const BOUND_MS: i64 = 5_000;

fn run_with(faults: FaultConfig) -> (Vec<Record>, GroundTruth) {
    records_and_truth(SimConfig {
        seed: 77,
        patients: 10,
        duration_ms: Some(2 * 3_600_000),
        faults,
        ..SimConfig::default()
    })
}

fn count(records: &[Record], pred: impl Fn(&Fault) -> bool) -> u64 {
    records
        .iter()
        .filter(|r| r.fault.as_ref().is_some_and(&pred))
        .count() as u64
}

/// For every record, the largest event time delivered before it: overall and for its patient.
fn maxima_before(records: &[Record]) -> Vec<(i64, i64)> {
    let mut global = i64::MIN;
    let mut per_patient: HashMap<&str, i64> = HashMap::new();
    records
        .iter()
        .map(|r| {
            let own = per_patient.entry(&r.patient_id).or_insert(i64::MIN);
            let before = (global, *own);
            global = global.max(r.event_time_ms);
            *own = (*own).max(r.event_time_ms);
            before
        })
        .collect()
}

#[test]
fn nothing_is_injected_by_default() {
    let (records, truth) = run_with(FaultConfig::default());
    assert_eq!(truth.faults, hr_sim::FaultCounts::default());
    assert_eq!(truth.records, records.len() as u64);
    assert_eq!(truth.readings, truth.records);
    for (r, (global, _)) in records.iter().zip(maxima_before(&records)) {
        assert!(r.fault.is_none());
        assert!(r.event_time_ms > global, "in order");
        assert!(hr_model::parse_event(&r.payload).is_ok());
    }
}

#[test]
fn out_of_order_records_arrive_behind_newer_ones_within_the_bound() {
    let (records, truth) = run_with(FaultConfig {
        out_of_order: 0.05,
        ..FaultConfig::default()
    });
    let mut seen = 0;
    let mut behind_own_patient = 0;
    for (r, (global, own)) in records.iter().zip(maxima_before(&records)) {
        if r.fault == Some(Fault::OutOfOrder) {
            seen += 1;
            assert!(global > r.event_time_ms, "really out of order");
            assert!(
                global - r.event_time_ms <= 4_000,
                "within the 4 s default bound"
            );
            if own > r.event_time_ms {
                behind_own_patient += 1;
            }
        } else {
            assert!(
                global < r.event_time_ms,
                "only injected records are out of order"
            );
        }
        assert!(hr_model::parse_event(&r.payload).is_ok());
    }
    assert_eq!(seen, truth.faults.out_of_order);
    assert!(seen > 2_000, "{seen}");
    // A patient reads once a second, so delays above 1 s put a record behind its own patient's
    // next reading too, which is what a per-key watermark sees.
    assert!(
        behind_own_patient > seen / 2,
        "{behind_own_patient} of {seen}"
    );
}

#[test]
fn late_records_arrive_after_their_window_has_fired() {
    let (records, truth) = run_with(FaultConfig {
        late: 0.01,
        ..FaultConfig::default()
    });
    let mut seen = 0;
    for (r, (global, own)) in records.iter().zip(maxima_before(&records)) {
        if r.fault != Some(Fault::Late) {
            continue;
        }
        seen += 1;
        let window_end = r.event_time_ms - r.event_time_ms.rem_euclid(MINUTE_MS) + MINUTE_MS;
        // Flink fires [start, end) once the watermark (max - bound - 1) reaches end - 1, i.e.
        // once an event at end + bound has arrived: for the record's own patient (key-scoped
        // watermark) and for the whole stream (global watermark).
        assert!(own >= window_end + BOUND_MS, "late for its patient");
        assert!(global >= window_end + BOUND_MS, "late for the stream");
        assert!(hr_model::parse_event(&r.payload).is_ok());
    }
    assert_eq!(seen, truth.faults.late);
    assert!(seen > 400, "{seen}");
}

#[test]
fn malformed_records_cover_every_kind_and_fail_as_labelled() {
    let (records, truth) = run_with(FaultConfig {
        malformed: 0.05,
        ..FaultConfig::default()
    });
    let mut by_kind: HashMap<MalformedKind, u64> = HashMap::new();
    for r in &records {
        let parsed = hr_model::parse_event(&r.payload);
        match r.fault {
            Some(Fault::Malformed(kind)) => {
                assert_eq!(parsed.expect_err("malformed").code(), kind.code());
                *by_kind.entry(kind).or_default() += 1;
            }
            _ => assert!(parsed.is_ok()),
        }
    }
    for kind in MalformedKind::ALL {
        let n = by_kind.get(&kind).copied().unwrap_or(0);
        assert!(n > 100, "{kind}: {n}");
        assert_eq!(n, truth.faults.malformed.get(kind), "{kind}");
    }
    // A malformed record replaces its reading: no reading is lost or added.
    assert_eq!(truth.records, truth.readings);
}

#[test]
fn chosen_malformed_kinds_only() {
    let (records, truth) = run_with(FaultConfig {
        malformed: 0.1,
        malformed_kinds: vec![MalformedKind::NaiveTimestamp],
        ..FaultConfig::default()
    });
    let n = count(&records, |f| matches!(f, Fault::Malformed(_)));
    assert!(n > 1_000);
    assert_eq!(n, truth.faults.malformed.get(MalformedKind::NaiveTimestamp));
    assert_eq!(n, truth.faults.malformed_total());
}

#[test]
fn duplicates_repeat_the_previous_record() {
    let (records, truth) = run_with(FaultConfig {
        duplicate: 0.02,
        ..FaultConfig::default()
    });
    let mut seen = 0;
    for pair in records.windows(2) {
        if pair[1].fault == Some(Fault::Duplicate) {
            seen += 1;
            assert_eq!(pair[1].payload, pair[0].payload);
            assert_eq!(pair[1].patient_id, pair[0].patient_id);
        }
    }
    assert_eq!(seen, truth.faults.duplicate);
    assert!(seen > 1_000);
    assert_eq!(truth.records + truth.unsent, truth.readings + seen);
}

#[test]
fn silent_monitors_send_nothing_for_their_silences() {
    let (records, truth) = run_with(FaultConfig {
        silence_rate_per_hour: 2.0,
        silence_ms: 180_000,
        ..FaultConfig::default()
    });
    assert!(truth.faults.silences >= 10, "{}", truth.faults.silences);
    for p in &truth.patients {
        let times: Vec<i64> = records
            .iter()
            .filter(|r| r.patient_id == p.patient_id)
            .map(|r| r.event_time_ms)
            .collect();
        for s in &p.silences {
            assert_eq!(s.end_ms - s.start_ms, 180_000);
            assert!(!times.iter().any(|t| (s.start_ms..s.end_ms).contains(t)));
        }
        // Every missing reading (a gap longer than the 1 s reading interval, or a silence still
        // running at the end) is a silenced one.
        let tail = (truth.last_reading_ms.unwrap() - times.last().unwrap()) / 1000;
        let missing: i64 = times
            .windows(2)
            .map(|w| (w[1] - w[0]) / 1000 - 1)
            .sum::<i64>()
            + tail;
        assert_eq!(
            missing as u64, p.faults.silenced_readings,
            "{}",
            p.patient_id
        );
        assert_eq!(p.silences.len() as u64, p.faults.silences);
    }
    assert_eq!(
        truth.records,
        truth.readings - truth.faults.silenced_readings
    );
}

/// Per patient, the gaps between consecutive records' timestamps longer than the reading
/// interval (1 s here): `(last record before, first record after)`.
fn gaps(records: &[Record], patient_id: &str) -> Vec<(i64, i64)> {
    let times: Vec<i64> = records
        .iter()
        .filter(|r| r.patient_id == patient_id)
        .map(|r| r.event_time_ms)
        .collect();
    times
        .windows(2)
        .filter(|w| w[1] - w[0] > 1_000)
        .map(|w| (w[0], w[1]))
        .collect()
}

#[test]
fn silence_lengths_are_drawn_from_their_range() {
    let faults = FaultConfig {
        silence_rate_per_hour: 3.0,
        silence_ms: 40_000,
        silence_max_ms: Some(300_000),
        ..FaultConfig::default()
    };
    let (records, truth) = run_with(faults.clone());
    let lengths: Vec<i64> = truth
        .patients
        .iter()
        .flat_map(|p| p.silences.iter().map(|s| s.end_ms - s.start_ms))
        .collect();
    assert!(lengths.len() >= 20, "{} silences", lengths.len());
    assert!(
        lengths.iter().all(|l| (40_000..=300_000).contains(l)),
        "{lengths:?}"
    );
    // Spread over the range, not one length: both halves are used.
    assert!(lengths.iter().any(|&l| l < 170_000) && lengths.iter().any(|&l| l > 170_000));
    // Each silence is a gap in its monitor's records, and each gap a silence (or two back to
    // back, when the next one began at the first reading after the last).
    for p in &truth.patients {
        let last = truth.last_reading_ms.unwrap();
        for s in p.silences.iter().filter(|s| s.end_ms <= last) {
            assert!(
                gaps(&records, &p.patient_id)
                    .iter()
                    .any(|&(before, after)| before < s.start_ms && after >= s.end_ms),
                "{} {s:?}",
                p.patient_id
            );
        }
    }
    // Same seed, same silences.
    assert_eq!(run_with(faults).1, truth);
}

#[test]
fn a_fixed_length_range_is_the_fixed_length() {
    let fixed = FaultConfig {
        silence_rate_per_hour: 2.0,
        silence_ms: 90_000,
        ..FaultConfig::default()
    };
    let range = FaultConfig {
        silence_max_ms: Some(90_000),
        ..fixed.clone()
    };
    assert_eq!(run_with(fixed), run_with(range));
}

#[test]
fn an_unplugged_monitor_is_silent_for_exactly_its_planned_time() {
    let start = SimConfig::default().start_ms;
    let (records, truth) = run_with(FaultConfig {
        planned_silences: vec![
            "p004@10m+45s".parse().unwrap(),
            // Overlapping plans make one longer gap.
            "p006@20m+2m".parse().unwrap(),
            "p006@21m+3m".parse().unwrap(),
        ],
        clock_skew: vec![("p006".into(), 30_000)],
        ..FaultConfig::default()
    });
    assert_eq!(truth.faults.silences, 2);
    let p4 = &truth.patients[3];
    assert_eq!(p4.silences.len(), 1);
    let s = p4.silences[0];
    // p004 reads at 0.3 s past each second: the silence starts with the first reading missed.
    assert_eq!((s.start_ms, s.end_ms), (start + 600_300, start + 645_000));
    assert_eq!(gaps(&records, "p004"), [(start + 599_300, start + 645_300)]);
    assert_eq!(p4.faults.silenced_readings, 45);
    let p6 = &truth.patients[5];
    let skew = 30_000;
    assert_eq!(p6.silences.len(), 1);
    assert_eq!(
        (p6.silences[0].start_ms, p6.silences[0].end_ms),
        (start + 1_200_500 + skew, start + 1_440_000 + skew)
    );
    assert_eq!(gaps(&records, "p006").len(), 1);
    // Everyone else sends throughout.
    for p in ["p001", "p002", "p003", "p005", "p007"] {
        assert!(gaps(&records, p).is_empty(), "{p}");
    }
}

#[test]
fn planned_silences_are_validated() {
    let config = |plan: &str| SimConfig {
        faults: FaultConfig {
            planned_silences: vec![plan.parse().unwrap()],
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    };
    assert!(config("p010@1m+1m").validate().is_ok());
    assert_eq!(
        config("p011@1m+1m").validate(),
        Err(hr_sim::ConfigError::UnknownPatient("p011".into()))
    );
    assert!(matches!(
        config("p001@1m+0s").validate(),
        Err(hr_sim::ConfigError::BadPlannedSilence { .. })
    ));
    assert!(matches!(
        config("p001@-1m+10s").validate(),
        Err(hr_sim::ConfigError::BadPlannedSilence { .. })
    ));
    let range = SimConfig {
        faults: FaultConfig {
            silence_ms: 60_000,
            silence_max_ms: Some(59_999),
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    };
    assert!(matches!(
        range.validate(),
        Err(hr_sim::ConfigError::EmptyRange { .. })
    ));
}

#[test]
fn skewed_clocks_shift_only_their_own_timestamps() {
    let skews = vec![("p002".to_owned(), -90_000), ("p005".to_owned(), 30_000)];
    let (plain, plain_truth) = run_with(FaultConfig::default());
    let (skewed, truth) = run_with(FaultConfig {
        clock_skew: skews.clone(),
        ..FaultConfig::default()
    });
    assert_eq!(plain.len(), skewed.len());
    let skew_of = |id: &str| skews.iter().find(|(p, _)| p == id).map_or(0, |&(_, s)| s);
    for (a, b) in plain.iter().zip(&skewed) {
        assert_eq!(a.patient_id, b.patient_id);
        assert_eq!(a.heart_rate_bpm, b.heart_rate_bpm);
        let skew = skew_of(&a.patient_id);
        assert_eq!(b.event_time_ms, a.event_time_ms + skew);
        assert_eq!(b.reading_time_ms, a.reading_time_ms);
        assert_eq!(
            hr_model::parse_event(&b.payload).unwrap().event_time_ms,
            b.event_time_ms
        );
        if skew == 0 {
            assert_eq!(a.payload, b.payload);
        }
    }
    for (p, q) in plain_truth.patients.iter().zip(&truth.patients) {
        let skew = skew_of(&p.patient_id);
        assert_eq!(q.clock_skew_ms, skew);
        let records = skewed
            .iter()
            .filter(|r| r.patient_id == p.patient_id)
            .count() as u64;
        assert_eq!(q.faults.skewed, if skew == 0 { 0 } else { records });
        // Episodes are reported in the device's clock, like the data.
        for (e, f) in p.episodes.iter().zip(&q.episodes) {
            assert_eq!(f.start_ms, e.start_ms + skew);
            assert_eq!(f.plateau_end_ms, e.plateau_end_ms + skew);
        }
    }
}

#[test]
fn every_fault_at_once_adds_up() {
    let (records, truth) = run_with(FaultConfig {
        out_of_order: 0.02,
        late: 0.01,
        malformed: 0.02,
        duplicate: 0.01,
        silence_rate_per_hour: 1.0,
        clock_skew: vec![("p010".to_owned(), 45_000)],
        ..FaultConfig::default()
    });
    let f = &truth.faults;
    assert_eq!(count(&records, |f| *f == Fault::OutOfOrder), f.out_of_order);
    assert_eq!(count(&records, |f| *f == Fault::Late), f.late);
    assert_eq!(count(&records, |f| *f == Fault::Duplicate), f.duplicate);
    assert_eq!(
        count(&records, |f| matches!(f, Fault::Malformed(_))),
        f.malformed_total()
    );
    assert_eq!(
        count(&records, |_| true),
        f.out_of_order + f.late + f.duplicate + f.malformed_total()
    );
    assert_eq!(truth.records, records.len() as u64);
    assert_eq!(
        truth.records + truth.unsent,
        truth.readings - f.silenced_readings + f.duplicate
    );
    let dlq = records
        .iter()
        .filter(|r| hr_model::parse_event(&r.payload).is_err())
        .count();
    assert_eq!(dlq as u64, f.malformed_total());
    // Per-patient counts add up to the totals.
    let late: u64 = truth.patients.iter().map(|p| p.faults.late).sum();
    assert_eq!(late, f.late);
    let json: serde_json::Value = serde_json::from_str(&truth.to_json_pretty()).unwrap();
    assert_eq!(json["faults"]["late"], f.late);
    assert_eq!(json["patients"][9]["clock_skew_ms"], 45_000);
}
