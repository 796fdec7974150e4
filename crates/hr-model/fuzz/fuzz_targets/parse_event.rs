//! Arbitrary bytes into `parse_event`: it must never panic, every error must carry a
//! non-empty message and a bounded raw value, and whatever parses must write back out and
//! parse to the same event.
#![no_main]

use hr_model::{MAX_RAW_LEN, parse_event};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_event(data) {
        Ok(event) => {
            assert!(!event.patient_id.trim().is_empty());
            let json = event.to_json();
            assert_eq!(parse_event(json.as_bytes()).as_ref(), Ok(&event), "{json}");
        }
        Err(err) => {
            assert!(!err.code().is_empty());
            assert!(!err.to_string().is_empty());
            if let Some(raw) = err.raw() {
                assert!(raw.len() <= MAX_RAW_LEN + '…'.len_utf8(), "{raw}");
            }
        }
    }
});
