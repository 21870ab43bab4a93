//! One response header as given to start_response, and the value of a
//! Content-Length header. The first input byte says how many of the
//! following bytes are the name (moved back to a character boundary); the
//! rest is the value.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/wsgi/rules.rs"]
mod rules;

/// RFC 9110 tchar.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn check_header(name: &str, value: &str) {
    let name_ok = !name.is_empty() && name.chars().all(is_tchar);
    let value_ok = !value.contains(['\r', '\n', '\0']) && value.chars().all(|c| c <= '\u{ff}');
    match rules::check_header(name, value) {
        Ok(()) => {
            assert!(name_ok, "name {name:?} accepted");
            assert!(value_ok, "value {value:?} accepted");
            // Nothing that could end the header line or start another.
            assert!(!name.contains([':', ' ', '\r', '\n', '\0']));
            assert!(!value.contains(['\r', '\n', '\0']));
            // Latin-1, so each character is one byte on the wire.
            assert!(value.chars().all(|c| u32::from(c) <= 0xff));
        }
        Err(message) => {
            assert!(!(name_ok && value_ok), "{name:?}: {value:?} rejected: {message}");
            assert!(!message.is_empty());
            // The error says which part is wrong.
            if !name_ok {
                assert!(message.starts_with("header name "), "{message}");
            } else {
                assert!(message.starts_with(&format!("value of header {name:?} ")), "{message}");
            }
            assert!(!message.contains(['\n', '\r', '\0']), "{message:?}");
        }
    }
}

fn check_content_length(value: &str) {
    let digits = value.trim_matches(|c| c == ' ' || c == '\t');
    let plain = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    let significant = digits.trim_start_matches('0');
    match rules::parse_content_length(value) {
        Ok(n) => {
            assert!(plain, "{value:?} accepted");
            // The number is the digits, whatever the leading zeros.
            assert_eq!(n.to_string(), if significant.is_empty() { "0" } else { significant });
        }
        Err(message) => {
            // Refused only when not a plain count, or more than 64 bits hold.
            let too_large = plain && (significant.len() > 20 || significant.parse::<u64>().is_err());
            assert!(!plain || too_large, "{value:?} rejected: {message}");
            assert!(message.starts_with(&format!("Content-Length {value:?} ")), "{message}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let text = match std::str::from_utf8(rest) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap(),
    };
    let mut at = usize::from(split).min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let (name, value) = text.split_at(at);
    check_header(name, value);
    check_content_length(value);
    check_content_length(text);
});
