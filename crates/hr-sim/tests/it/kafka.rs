//! Records reach a real broker, keyed by patient, and a consumer reads them back.
