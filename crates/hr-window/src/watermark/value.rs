//! The watermark as a value: an event time, or the explicit statement that an input is idle.

use serde::{Deserialize, Serialize};

/// What one input tells a clock that combines several inputs (arroyo's `Watermark`, Flink's
/// watermark plus its `markIdle` status): either "no event at or before this time is still
/// expected", or "nothing is arriving here, do not wait for me".
///
/// Inputs combine by minimum, and idle inputs take no part: a clock is as late as its slowest
/// active input, an input that has gone quiet cannot hold it back, and only when every input is
/// idle is the combination idle. A combining clock that is handed [`Watermark::Idle`] keeps the
/// event time it had; it never moves backwards.
///
/// In this crate the inputs are source partitions and the combining clock is the global
/// watermark of [`crate::WatermarkScope::Global`]; see
/// [`WindowEngine::global_input`](crate::WindowEngine::global_input).
///
/// # Example
///
/// ```
/// use hr_window::Watermark;
///
/// let fast = Watermark::EventTime(70_000);
/// let slow = Watermark::EventTime(10_000);
/// assert_eq!(fast.combine(slow), Watermark::EventTime(10_000));
///
/// // A quiet partition does not hold the others back...
/// assert_eq!(Watermark::min_of([fast, Watermark::Idle]), fast);
/// // ...and only when every input is quiet is the combination idle.
/// assert_eq!(Watermark::min_of([Watermark::Idle, Watermark::Idle]), Watermark::Idle);
/// assert_eq!(Watermark::min_of([]), Watermark::Idle);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Watermark {
    /// Epoch milliseconds at or before which no more events are expected. `i64::MIN` before an
    /// input has said anything, `i64::MAX` once it has ended.
    EventTime(i64),
    /// The input is idle: it takes no part in a combination until it speaks again.
    Idle,
}

impl Watermark {
    /// The minimum of two inputs, leaving out an idle one: both event times give the smaller,
    /// one event time gives that one, and two idle inputs give [`Watermark::Idle`].
    ///
    /// The operation is commutative and associative with [`Watermark::Idle`] as its identity, so
    /// any number of inputs combine in any order to the same result.
    #[must_use]
    pub const fn combine(self, other: Watermark) -> Watermark {
        match (self, other) {
            (Watermark::EventTime(a), Watermark::EventTime(b)) => {
                Watermark::EventTime(if a < b { a } else { b })
            }
            (Watermark::EventTime(t), Watermark::Idle)
            | (Watermark::Idle, Watermark::EventTime(t)) => Watermark::EventTime(t),
            (Watermark::Idle, Watermark::Idle) => Watermark::Idle,
        }
    }

    /// Combines any number of inputs with [`combine`](Self::combine): the smallest event time
    /// among the inputs that are not idle, or [`Watermark::Idle`] when there is none (no inputs,
    /// or all of them idle).
    #[must_use]
    pub fn min_of(inputs: impl IntoIterator<Item = Watermark>) -> Watermark {
        inputs
            .into_iter()
            .fold(Watermark::Idle, |acc, input| acc.combine(input))
    }

    /// The event time, or `None` for an idle input.
    pub const fn event_time(self) -> Option<i64> {
        match self {
            Watermark::EventTime(t) => Some(t),
            Watermark::Idle => None,
        }
    }

    /// Whether the input is idle.
    pub const fn is_idle(self) -> bool {
        matches!(self, Watermark::Idle)
    }
}

#[cfg(test)]
mod tests {
    use super::Watermark::{self, EventTime, Idle};

    const SAMPLES: [Watermark; 7] = [
        Idle,
        EventTime(i64::MIN),
        EventTime(-5),
        EventTime(0),
        EventTime(7),
        EventTime(64_999),
        EventTime(i64::MAX),
    ];

    #[test]
    fn two_event_times_combine_to_the_smaller() {
        assert_eq!(EventTime(3).combine(EventTime(9)), EventTime(3));
        assert_eq!(EventTime(9).combine(EventTime(3)), EventTime(3));
        assert_eq!(EventTime(-1).combine(EventTime(-1)), EventTime(-1));
        assert_eq!(
            EventTime(i64::MIN).combine(EventTime(i64::MAX)),
            EventTime(i64::MIN),
            "an input that has said nothing yet holds the combination at its minimum"
        );
    }

    #[test]
    fn an_idle_input_takes_no_part() {
        for w in SAMPLES {
            assert_eq!(w.combine(Idle), w, "{w:?}");
            assert_eq!(Idle.combine(w), w, "{w:?}");
        }
        assert_eq!(Idle.combine(Idle), Idle);
    }

    #[test]
    fn combination_is_commutative_and_associative() {
        for a in SAMPLES {
            for b in SAMPLES {
                assert_eq!(a.combine(b), b.combine(a), "{a:?} {b:?}");
                for c in SAMPLES {
                    assert_eq!(
                        a.combine(b).combine(c),
                        a.combine(b.combine(c)),
                        "{a:?} {b:?} {c:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn min_of_is_idle_only_without_an_active_input() {
        assert_eq!(Watermark::min_of([]), Idle);
        assert_eq!(Watermark::min_of([Idle, Idle, Idle]), Idle);
        assert_eq!(Watermark::min_of([Idle, EventTime(5), Idle]), EventTime(5));
        assert_eq!(
            Watermark::min_of([EventTime(9), Idle, EventTime(4), EventTime(6)]),
            EventTime(4)
        );
        // Order does not matter.
        assert_eq!(
            Watermark::min_of([EventTime(6), EventTime(4), Idle, EventTime(9)]),
            EventTime(4)
        );
    }

    #[test]
    fn accessors_tell_event_time_from_idle() {
        assert_eq!(EventTime(12).event_time(), Some(12));
        assert_eq!(Idle.event_time(), None);
        assert!(Idle.is_idle());
        assert!(!EventTime(i64::MIN).is_idle());
    }

    #[test]
    fn serialises_as_a_tagged_value() {
        assert_eq!(
            serde_json::to_string(&EventTime(5)).unwrap(),
            r#"{"event_time":5}"#
        );
        assert_eq!(serde_json::to_string(&Idle).unwrap(), r#""idle""#);
        assert_eq!(
            serde_json::from_str::<Watermark>(r#"{"event_time":-3}"#).unwrap(),
            EventTime(-3)
        );
    }
}
