//! Engine configuration and its validation.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The largest window size, slide, delay, lateness or idle timeout accepted, in milliseconds
/// (about 36 million years). Together with [`EVENT_TIME_LIMIT_MS`] it keeps every sum the engine
/// forms inside `i64`.
pub const SPAN_LIMIT_MS: i64 = 1 << 60;

/// Event times must lie in `-EVENT_TIME_LIMIT_MS..=EVENT_TIME_LIMIT_MS` (about ±73 million years
/// around 1970); see [`crate::WindowEngine::process`].
pub const EVENT_TIME_LIMIT_MS: i64 = 1 << 61;

/// Which windows an event belongs to. Windows are aligned to the epoch (offset 0), as Flink's
/// assigners are by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WindowSpec {
    /// `[k * size, (k + 1) * size)`: every event in exactly one window.
    Tumbling {
        /// Window length in milliseconds.
        size_ms: i64,
    },
    /// Windows of `size_ms` starting every `slide_ms`: every event in `size / slide` windows
    /// (rounded up or down when `slide` does not divide `size`), computed from panes of
    /// `gcd(size, slide)` so that an event costs one aggregate update.
    Sliding {
        /// Window length in milliseconds.
        size_ms: i64,
        /// Distance between window starts in milliseconds; at most `size_ms`.
        slide_ms: i64,
    },
}

impl WindowSpec {
    /// `(size, slide)` in milliseconds; tumbling windows slide by their size.
    pub fn size_and_slide(&self) -> (i64, i64) {
        match *self {
            WindowSpec::Tumbling { size_ms } => (size_ms, size_ms),
            WindowSpec::Sliding { size_ms, slide_ms } => (size_ms, slide_ms),
        }
    }
}

/// Whose clock decides when a window fires and whether an event is late.
///
/// In every scope the clock is a bounded-out-of-orderness watermark, `max event time seen − delay −
/// 1 ms`; the scopes differ in whose events count towards "max seen".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatermarkScope {
    /// One watermark for the whole engine: the minimum over the assigned partitions' watermarks,
    /// leaving out partitions that are idle by processing time. This is what Flink's `KafkaSource`
    /// followed by a window operator does. Output depends on how partitions interleave and on the
    /// wall clock, so it exists for side-by-side checks against Flink.
    Global,
    /// One watermark per source partition. Output depends only on each partition's record sequence.
    Partition,
    /// One watermark per key: each key is its own clock, so a lagging key cannot make other keys'
    /// data late and a key whose clock runs ahead cannot make others' data late either. Output
    /// depends only on each partition's record sequence.
    Key,
}

/// The most panes a window may be cut into (size / gcd(size, slide)). Each open window of a key
/// holds that many panes at worst, so the bound keeps memory per key in the tens of kilobytes.
pub const MAX_PANES_PER_WINDOW: i64 = 10_000;

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs().max(1)
}

/// Everything that shapes an engine's output.
///
/// The default is one-minute tumbling windows, a 5 s out-of-orderness delay, no allowed lateness,
/// key-scoped watermarks and no idleness timeouts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Tumbling or sliding windows.
    pub window: WindowSpec,
    /// Bounded out-of-orderness `d`: the watermark trails the largest event time seen by `d + 1`
    /// ms, so a window `[start, end)` fires on the first event at or after `end + d`.
    pub out_of_orderness_ms: i64,
    /// Allowed lateness `L`: an event for a window that has fired still updates it, and re-fires it
    /// with `revision + 1`, while `end − 1 + L` is above the watermark. Later events are returned
    /// as [`crate::Outcome::Late`].
    pub allowed_lateness_ms: i64,
    /// Whose clock fires windows.
    pub scope: WatermarkScope,
    /// Key idleness in event time: a key that the engine has not heard from while its partition's
    /// largest event time moved on by more than this is reported as
    /// [`crate::Emission::KeyIdle`]. In [`WatermarkScope::Key`] its open windows are also closed
    /// and emitted, since nothing else would ever advance that key's clock. `None` disables it.
    pub key_idle_timeout_ms: Option<i64>,
    /// Partition idleness in processing time (Flink's `withIdleness`), for
    /// [`WatermarkScope::Global`] only: a partition without records for this long, as observed by
    /// [`crate::WindowEngine::on_processing_time`], stops holding the global watermark back until
    /// its next record. This is the one rule that reads the wall clock. `None` disables it.
    pub partition_idle_timeout: Option<Duration>,
}

impl EngineConfig {
    /// The default configuration, usable in `const` contexts.
    pub const fn new() -> Self {
        EngineConfig {
            window: WindowSpec::Tumbling { size_ms: 60_000 },
            out_of_orderness_ms: 5_000,
            allowed_lateness_ms: 0,
            scope: WatermarkScope::Key,
            key_idle_timeout_ms: None,
            partition_idle_timeout: None,
        }
    }

    /// Checks that the numbers make sense together.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first offending field: a window size or slide that is not
    /// positive, a slide larger than the size (events between windows would belong to none), a
    /// negative delay or lateness, a key idle timeout that is not positive, or any span above
    /// [`SPAN_LIMIT_MS`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (size, slide) = self.window.size_and_slide();
        let spans = [
            ("window size", size),
            ("window slide", slide),
            ("out_of_orderness_ms", self.out_of_orderness_ms),
            ("allowed_lateness_ms", self.allowed_lateness_ms),
            (
                "key_idle_timeout_ms",
                self.key_idle_timeout_ms.unwrap_or_default(),
            ),
        ];
        for (field, value) in spans {
            if value > SPAN_LIMIT_MS {
                return Err(ConfigError::TooLarge { field, value });
            }
        }
        if size <= 0 {
            return Err(ConfigError::NonPositiveSize { size_ms: size });
        }
        if slide <= 0 {
            return Err(ConfigError::NonPositiveSlide { slide_ms: slide });
        }
        if slide > size {
            return Err(ConfigError::SlideLargerThanSize {
                size_ms: size,
                slide_ms: slide,
            });
        }
        let panes = size / gcd(size, slide);
        if panes > MAX_PANES_PER_WINDOW {
            return Err(ConfigError::TooManyPanes {
                size_ms: size,
                slide_ms: slide,
                panes,
            });
        }
        if self.out_of_orderness_ms < 0 {
            return Err(ConfigError::Negative {
                field: "out_of_orderness_ms",
                value: self.out_of_orderness_ms,
            });
        }
        if self.allowed_lateness_ms < 0 {
            return Err(ConfigError::Negative {
                field: "allowed_lateness_ms",
                value: self.allowed_lateness_ms,
            });
        }
        if let Some(timeout) = self.key_idle_timeout_ms
            && timeout <= 0
        {
            return Err(ConfigError::NonPositiveKeyIdleTimeout {
                key_idle_timeout_ms: timeout,
            });
        }
        Ok(())
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Why an [`EngineConfig`] was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The window size is zero or negative.
    NonPositiveSize {
        /// The size given.
        size_ms: i64,
    },
    /// The window slide is zero or negative.
    NonPositiveSlide {
        /// The slide given.
        slide_ms: i64,
    },
    /// The slide exceeds the size, which would leave gaps that belong to no window.
    SlideLargerThanSize {
        /// The size given.
        size_ms: i64,
        /// The slide given.
        slide_ms: i64,
    },
    /// A delay or lateness is negative.
    Negative {
        /// The field.
        field: &'static str,
        /// The value given.
        value: i64,
    },
    /// The key idle timeout is zero or negative.
    NonPositiveKeyIdleTimeout {
        /// The timeout given.
        key_idle_timeout_ms: i64,
    },
    /// Size and slide cut each window into more than [`MAX_PANES_PER_WINDOW`] panes, which
    /// would make every event's windows too costly to keep (`1d` every `1ms` is 86 million).
    TooManyPanes {
        /// The size given.
        size_ms: i64,
        /// The slide given.
        slide_ms: i64,
        /// Panes per window: size / gcd(size, slide).
        panes: i64,
    },
    /// A span exceeds [`SPAN_LIMIT_MS`].
    TooLarge {
        /// The field.
        field: &'static str,
        /// The value given.
        value: i64,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NonPositiveSize { size_ms } => {
                write!(f, "window size must be positive, got {size_ms} ms")
            }
            ConfigError::NonPositiveSlide { slide_ms } => {
                write!(f, "window slide must be positive, got {slide_ms} ms")
            }
            ConfigError::SlideLargerThanSize { size_ms, slide_ms } => write!(
                f,
                "window slide ({slide_ms} ms) must not exceed the window size ({size_ms} ms)"
            ),
            ConfigError::Negative { field, value } => {
                write!(f, "{field} must not be negative, got {value}")
            }
            ConfigError::TooManyPanes {
                size_ms,
                slide_ms,
                panes,
            } => write!(
                f,
                "a {size_ms} ms window every {slide_ms} ms needs {panes} panes per window, more than \
                 the {MAX_PANES_PER_WINDOW} allowed: choose a slide that divides the size into fewer parts"
            ),
            ConfigError::NonPositiveKeyIdleTimeout {
                key_idle_timeout_ms,
            } => write!(
                f,
                "key_idle_timeout_ms must be positive, got {key_idle_timeout_ms}"
            ),
            ConfigError::TooLarge { field, value } => {
                write!(f, "{field} must be at most {SPAN_LIMIT_MS} ms, got {value}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_window(window: WindowSpec) -> EngineConfig {
        EngineConfig {
            window,
            ..EngineConfig::default()
        }
    }

    #[test]
    fn default_is_one_minute_tumbling_five_second_delay_key_scope() {
        let config = EngineConfig::default();
        assert_eq!(config.window, WindowSpec::Tumbling { size_ms: 60_000 });
        assert_eq!(config.out_of_orderness_ms, 5_000);
        assert_eq!(config.allowed_lateness_ms, 0);
        assert_eq!(config.scope, WatermarkScope::Key);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn refuses_sizes_that_make_no_windows() {
        assert_eq!(
            with_window(WindowSpec::Tumbling { size_ms: 0 }).validate(),
            Err(ConfigError::NonPositiveSize { size_ms: 0 })
        );
        assert_eq!(
            with_window(WindowSpec::Sliding {
                size_ms: 10,
                slide_ms: 20
            })
            .validate(),
            Err(ConfigError::SlideLargerThanSize {
                size_ms: 10,
                slide_ms: 20
            })
        );
        assert!(matches!(
            with_window(WindowSpec::Sliding {
                size_ms: 10,
                slide_ms: -1
            })
            .validate(),
            Err(ConfigError::NonPositiveSlide { .. })
        ));
        assert!(matches!(
            with_window(WindowSpec::Tumbling { size_ms: i64::MAX }).validate(),
            Err(ConfigError::TooLarge { .. })
        ));
    }

    #[test]
    fn refuses_windows_cut_into_too_many_panes() {
        let day = 86_400_000;
        let err = with_window(WindowSpec::Sliding {
            size_ms: day,
            slide_ms: 1,
        })
        .validate()
        .unwrap_err();
        assert_eq!(
            err,
            ConfigError::TooManyPanes {
                size_ms: day,
                slide_ms: 1,
                panes: day
            }
        );
        assert!(
            err.to_string().contains("86400000 panes per window"),
            "{err}"
        );
        // A slide that does not divide the size cuts panes of gcd(size, slide).
        let ok = with_window(WindowSpec::Sliding {
            size_ms: 60_000,
            slide_ms: 7_000,
        });
        assert_eq!(ok.validate(), Ok(()), "gcd 1 s: 60 panes");
        let fine = with_window(WindowSpec::Sliding {
            size_ms: 60_000,
            slide_ms: 10_001,
        });
        assert!(matches!(
            fine.validate(),
            Err(ConfigError::TooManyPanes { panes: 60_000, .. })
        ));
    }

    #[test]
    fn refuses_negative_delays_and_empty_idle_timeouts() {
        let config = EngineConfig {
            allowed_lateness_ms: -1,
            ..EngineConfig::default()
        };
        let err = config.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "allowed_lateness_ms must not be negative, got -1"
        );
        let config = EngineConfig {
            key_idle_timeout_ms: Some(0),
            ..EngineConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::NonPositiveKeyIdleTimeout { .. })
        ));
    }

    #[test]
    fn config_reads_from_json_with_defaults() {
        let config: EngineConfig = serde_json::from_str(
            r#"{"window":{"sliding":{"size_ms":60000,"slide_ms":10000}},"scope":"partition"}"#,
        )
        .unwrap();
        assert_eq!(
            config.window,
            WindowSpec::Sliding {
                size_ms: 60_000,
                slide_ms: 10_000
            }
        );
        assert_eq!(config.scope, WatermarkScope::Partition);
        assert_eq!(config.out_of_orderness_ms, 5_000);
    }
}
