//! WSGIPythonWarnings: the module's rule for a `-W` filter, and the promise
//! behind it: every filter it accepts is one Python's warnings module
//! accepts too (category names aside, which only Python can resolve), so
//! none is dropped at start-up with "Invalid -W option ignored".
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

use config::InterpreterConfig;

const ACTIONS: [&str; 6] = ["default", "error", "ignore", "always", "module", "once"];

/// The documented rule: at most five fields; an action that is a non-empty
/// prefix of an action name; a line number, if given, of at most 32 bits.
fn module_accepts(value: &str) -> bool {
    let fields: Vec<&str> = value.split(':').collect();
    if fields.len() > 5 {
        return false;
    }
    let action = fields[0].trim();
    if action.is_empty() || !ACTIONS.iter().any(|a| a.starts_with(action)) {
        return false;
    }
    match fields.get(4).map(|l| l.trim()) {
        None | Some("") => true,
        Some(lineno) => {
            let digits = lineno.strip_prefix('+').unwrap_or(lineno);
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits.trim_start_matches('0').len() <= 10
                && digits.bytes().fold(0u64, |n, b| n.saturating_mul(10).saturating_add(u64::from(b - b'0')))
                    <= u64::from(u32::MAX)
        }
    }
}

/// str.isspace() of CPython 3.11 (Unicode 14): what str.strip() removes.
fn python_space(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | '\u{1c}'..='\u{1f}' | ' ' | '\u{85}' | '\u{a0}'
        | '\u{1680}' | '\u{2000}'..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}'
        | '\u{3000}')
}

/// warnings._setoption of CPython 3.11, without the category lookup.
fn python_accepts(value: &str) -> bool {
    let parts: Vec<&str> = value.split(':').map(|p| p.trim_matches(python_space)).collect();
    if parts.len() > 5 {
        return false;
    }
    let action = parts[0];
    if !(action.is_empty() || action == "all" || ACTIONS.iter().any(|a| a.starts_with(action))) {
        return false;
    }
    match parts.get(4) {
        None | Some(&"") => true,
        // int() also takes non-ASCII decimal digits; give those the benefit
        // of the doubt rather than model them.
        Some(lineno) if !lineno.is_ascii() => true,
        Some(lineno) => {
            // int(): a sign, then digits with single underscores between
            // them; negative numbers are refused by _setoption.
            let (negative, digits) = match lineno.as_bytes()[0] {
                b'+' => (false, &lineno[1..]),
                b'-' => (true, &lineno[1..]),
                _ => (false, *lineno),
            };
            let well_formed = !digits.is_empty()
                && !digits.starts_with('_')
                && !digits.ends_with('_')
                && !digits.contains("__")
                && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_');
            well_formed && (!negative || digits.bytes().all(|b| b == b'0' || b == b'_'))
        }
    }
}

fuzz_target!(|value: &str| {
    let expected = module_accepts(value);
    match config::parse_warning_filter(value) {
        Ok(filter) => {
            assert!(expected, "{value:?} accepted");
            assert!(python_accepts(value), "{value:?} accepted but Python would ignore it");
            // Passed to Python exactly as written.
            assert_eq!(filter, value);
            let mut interpreter = InterpreterConfig::default();
            interpreter.set("WSGIPythonWarnings", value).unwrap();
            interpreter.set("WSGIPythonWarnings", value).unwrap();
            assert_eq!(interpreter.warnings, vec![filter.clone(), filter.clone()]);
            assert_eq!(interpreter.given()[0], format!("WSGIPythonWarnings {filter}"));
        }
        Err(message) => {
            assert!(!expected, "{value:?} rejected: {message}");
            let quoted = format!("WSGIPythonWarnings: invalid filter '{}': ", value.escape_default());
            assert!(message.starts_with(&quoted), "{message}");
            assert!(message.len() > quoted.len(), "{message}");
            assert!(!message.contains(['\n', '\r', '\0']), "{message:?}");
        }
    }
});
