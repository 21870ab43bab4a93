//! WSGIPythonHashSeed: "random" or a decimal integer from 0 to 4294967295.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/config.rs"]
mod config;
// config.rs refers to the daemon-mode and application-group types.
#[allow(dead_code)]
#[path = "../../src/daemon_config.rs"]
mod daemon_config;
#[allow(dead_code)]
#[path = "../../src/daemon_lifecycle.rs"]
mod daemon_lifecycle;
#[allow(dead_code)]
#[path = "../../src/application_group.rs"]
mod application_group;

use config::HashSeed;

/// The oracle: plain ASCII digits (no sign, no spaces) whose value, leading
/// zeros aside, fits in 32 bits.
fn expected_seed(value: &str) -> Option<u32> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = value.trim_start_matches('0');
    if significant.len() > 10 {
        return None;
    }
    let n = significant.bytes().fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
    u32::try_from(n).ok()
}

fuzz_target!(|value: &str| {
    match config::parse_hash_seed(value) {
        Ok(HashSeed::Random) => assert_eq!(value, "random"),
        Ok(seed @ HashSeed::Fixed(n)) => {
            assert_eq!(expected_seed(value), Some(n), "{value:?} read as {n}");
            // What the log line prints parses back to the same seed, and is
            // the value without its leading zeros.
            let shown = seed.to_string();
            assert_eq!(config::parse_hash_seed(&shown), Ok(seed));
            let significant = value.trim_start_matches('0');
            assert_eq!(shown, if significant.is_empty() { "0" } else { significant });
        }
        Err(message) => {
            assert_ne!(value, "random");
            assert_eq!(expected_seed(value), None, "{value:?} rejected: {message}");
            assert!(message.starts_with("WSGIPythonHashSeed: "), "{message}");
            assert!(message.contains(&format!("'{}'", value.escape_default())), "{message}");
            assert!(!message.contains(['\n', '\r', '\0']), "{message:?}");
        }
    }
});
