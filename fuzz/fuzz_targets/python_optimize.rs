//! WSGIPythonOptimize: exactly "0", "1" and "2" are levels, nothing else.
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

fuzz_target!(|value: &str| {
    let expected = match value {
        "0" => Some(0),
        "1" => Some(1),
        "2" => Some(2),
        _ => None,
    };
    match config::parse_python_optimize(value) {
        Ok(level) => {
            assert_eq!(Some(level.get()), expected, "{value:?} accepted");
            // The level prints as the text it was parsed from.
            assert_eq!(level.to_string(), value);
        }
        Err(message) => {
            assert_eq!(expected, None, "{value:?} rejected: {message}");
            assert!(message.starts_with("WSGIPythonOptimize: "), "{message}");
            // The value is quoted escaped, so a control character cannot
            // break the log line.
            assert!(message.contains(&format!("'{}'", value.escape_default())), "{message}");
            assert!(!message.contains(['\n', '\r', '\0']), "{message:?}");
        }
    }
});
