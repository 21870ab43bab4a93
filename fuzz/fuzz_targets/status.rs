//! The status string given to start_response.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/wsgi/rules.rs"]
mod rules;

/// The accepted format: three ASCII digits, the first not 0, then nothing
/// or a space and a reason phrase; no control characters and nothing
/// beyond Latin-1 anywhere.
fn expected_code(status: &str) -> Option<u16> {
    let b = status.as_bytes();
    if b.len() < 3 || !(b'1'..=b'9').contains(&b[0]) || !b[1].is_ascii_digit() || !b[2].is_ascii_digit() {
        return None;
    }
    if b.len() > 3 && b[3] != b' ' {
        return None;
    }
    if status.chars().any(|c| c < ' ' || ('\u{7f}'..='\u{9f}').contains(&c) || c > '\u{ff}') {
        return None;
    }
    Some(b[..3].iter().fold(0, |n, d| n * 10 + u16::from(d - b'0')))
}

fuzz_target!(|status: &str| {
    match rules::parse_status(status) {
        Ok(code) => {
            assert!((100..=999).contains(&code), "{status:?} -> {code}");
            assert_eq!(expected_code(status), Some(code), "{status:?} accepted");
            assert!(status.starts_with(&code.to_string()));
            // What goes on the status line cannot split the response.
            assert!(!status.contains(['\r', '\n', '\0']));
        }
        Err(message) => {
            assert_eq!(expected_code(status), None, "{status:?} rejected: {message}");
            assert!(message.starts_with("status "), "{message}");
            // The status is quoted with its control characters escaped.
            assert!(message.contains(&format!("{status:?}")), "{message}");
            assert!(!message.contains(['\n', '\r', '\0']), "{message:?}");
        }
    }
});
