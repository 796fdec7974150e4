//! A keyed event-time window engine: watermarks, timers, idleness and allowed lateness as a pure
//! library, generic over the key and the aggregate.
#![deny(missing_docs)]
