//! What the page says about its own connection to Kafka, from the readers' and the broker
//! probe's state. Pure: the threads that read Kafka fill in these values (with ages they measure),
//! and [`connection`] turns them into one line a person reads, so a dead broker shows as such
//! instead of a page that silently stops changing.

use serde::Serialize;

/// Where a topic reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The broker's metadata does not list the topic (yet).
    WaitingForTopic,
    /// Subscribed, no partitions assigned yet.
    Joining,
    /// Partitions assigned.
    Reading,
    /// The consumer could not be created; retried.
    Failed,
}

/// One topic reader's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReaderSnap {
    /// The topic.
    pub topic: String,
    /// Where it is.
    pub phase: Phase,
    /// Records shown.
    pub records: u64,
    /// Records that could not be read (not JSON, required field missing).
    pub rejected: u64,
    /// Partitions assigned.
    pub partitions: usize,
    /// Milliseconds since its last record, if it had one.
    pub idle_ms: Option<u64>,
    /// The last consumer error or rejected record, if any.
    pub error: Option<String>,
    /// Milliseconds since that error.
    pub error_age_ms: Option<u64>,
}

/// The broker probe's view (a metadata request every couple of seconds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrokerSnap {
    /// The bootstrap servers.
    pub bootstrap: String,
    /// `None` before the first probe has answered or failed.
    pub reachable: Option<bool>,
    /// Milliseconds since the probe last succeeded, while it fails (or since start when it never
    /// did).
    pub down_ms: Option<u64>,
    /// The probe's last error.
    pub error: Option<String>,
}

/// How serious the connection status is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Reading.
    Ok,
    /// Not reading yet, or a record problem.
    Warn,
    /// The broker does not answer: the page shows what it had.
    Down,
}

/// One line for the page's status bar.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Connection {
    /// How serious.
    pub level: Level,
    /// What a person reads.
    pub message: String,
}

/// Consumer errors younger than this colour the status; older ones are history.
pub const RECENT_ERROR_MS: u64 = 30_000;

/// The status line: the broker first (nothing else matters while it is down), then the alerts
/// reader (`readers[0]`), then record problems on any reader.
pub fn connection(broker: &BrokerSnap, readers: &[ReaderSnap]) -> Connection {
    if let Some(unanswered) = broker_unanswered(broker) {
        return unanswered;
    }
    let Some(alerts) = readers.first() else {
        return Connection {
            level: Level::Warn,
            message: "No topic to read".into(),
        };
    };
    let base = match alerts_reading(alerts) {
        Ok(base) => base,
        Err(not_reading) => return not_reading,
    };
    let recent = readers
        .iter()
        .find(|r| r.error.is_some() && r.error_age_ms.is_some_and(|age| age < RECENT_ERROR_MS));
    match recent {
        Some(r) => Connection {
            level: Level::Warn,
            message: format!(
                "{base}; {}: {}",
                r.topic,
                r.error.as_deref().unwrap_or_default()
            ),
        },
        None => Connection {
            level: Level::Ok,
            message: base,
        },
    }
}

/// The status while the broker does not answer, or before the first probe has: `None` once it
/// answers.
fn broker_unanswered(broker: &BrokerSnap) -> Option<Connection> {
    let secs = |ms: u64| ms.div_ceil(1000);
    match broker.reachable {
        Some(false) => Some(Connection {
            level: Level::Down,
            message: format!(
                "Kafka broker {} unreachable{}{}; showing the last data received",
                broker.bootstrap,
                broker
                    .down_ms
                    .map(|ms| format!(" for {} s", secs(ms)))
                    .unwrap_or_default(),
                broker
                    .error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default(),
            ),
        }),
        None => Some(Connection {
            level: Level::Warn,
            message: format!("Connecting to Kafka at {}", broker.bootstrap),
        }),
        Some(true) => None,
    }
}

/// What the alerts reader is doing: `Ok` with the line for a reader that reads, `Err` with the
/// whole status for one that does not (waiting for its topic, failed, or joining its group).
fn alerts_reading(alerts: &ReaderSnap) -> Result<String, Connection> {
    match alerts.phase {
        Phase::WaitingForTopic => Err(Connection {
            level: Level::Warn,
            message: format!("Topic {} does not exist yet; waiting for it", alerts.topic),
        }),
        Phase::Failed => Err(Connection {
            level: Level::Down,
            message: format!(
                "Cannot read {}: {}",
                alerts.topic,
                alerts.error.as_deref().unwrap_or("consumer failed")
            ),
        }),
        Phase::Joining => Err(Connection {
            level: Level::Warn,
            message: format!("Joining the consumer group for {}", alerts.topic),
        }),
        Phase::Reading => Ok(match alerts.idle_ms {
            Some(ms) => format!(
                "Live: {} alerts read, the last {} s ago",
                alerts.records,
                ms / 1000
            ),
            None => format!("Live: waiting for the first alert on {}", alerts.topic),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(reachable: Option<bool>) -> BrokerSnap {
        BrokerSnap {
            bootstrap: "localhost:9092".into(),
            reachable,
            down_ms: Some(12_300),
            error: Some("Local: Broker transport failure".into()),
        }
    }

    fn reader(phase: Phase) -> ReaderSnap {
        ReaderSnap {
            topic: "heart_rate_alerts".into(),
            phase,
            records: 42,
            rejected: 0,
            partitions: 3,
            idle_ms: Some(2_500),
            error: None,
            error_age_ms: None,
        }
    }

    #[test]
    fn a_dead_broker_is_said_first() {
        let c = connection(&broker(Some(false)), &[reader(Phase::Reading)]);
        assert_eq!(c.level, Level::Down);
        assert_eq!(
            c.message,
            "Kafka broker localhost:9092 unreachable for 13 s (Local: Broker transport failure); \
             showing the last data received"
        );
        assert_eq!(connection(&broker(None), &[]).level, Level::Warn);
    }

    #[test]
    fn the_alert_reader_phase_shows_next() {
        let up = broker(Some(true));
        let c = connection(&up, &[reader(Phase::Reading)]);
        assert_eq!(
            (c.level, c.message.as_str()),
            (Level::Ok, "Live: 42 alerts read, the last 2 s ago")
        );
        let c = connection(&up, &[reader(Phase::WaitingForTopic)]);
        assert!(c.message.contains("does not exist yet"), "{}", c.message);
        let mut failed = reader(Phase::Failed);
        failed.error = Some("bad config".into());
        let c = connection(&up, &[failed]);
        assert_eq!(
            (c.level, c.message.as_str()),
            (Level::Down, "Cannot read heart_rate_alerts: bad config")
        );
        assert_eq!(
            connection(&up, &[reader(Phase::Joining)]).level,
            Level::Warn
        );
    }

    #[test]
    fn recent_record_problems_warn_and_old_ones_do_not() {
        let up = broker(Some(true));
        let mut episodes = reader(Phase::Reading);
        episodes.topic = "heart_rate_episodes".into();
        episodes.error = Some("offset 7: not a JSON object".into());
        episodes.error_age_ms = Some(1_000);
        let c = connection(&up, &[reader(Phase::Reading), episodes.clone()]);
        assert_eq!(c.level, Level::Warn);
        assert!(
            c.message
                .ends_with("heart_rate_episodes: offset 7: not a JSON object"),
            "{}",
            c.message
        );
        episodes.error_age_ms = Some(RECENT_ERROR_MS);
        assert_eq!(
            connection(&up, &[reader(Phase::Reading), episodes]).level,
            Level::Ok
        );
    }
}
