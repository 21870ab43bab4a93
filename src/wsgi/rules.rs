//! What `start_response` accepts, as pure functions (unit-tested): a
//! header that reaches Apache with a CR or LF in it would let the
//! application, or whoever controls its data, split the response.

/// Parses a WSGI status string (`"200 OK"`, or a bare `"200"`) into its
/// code. The reason phrase may hold any Latin-1 text except control
/// characters.
pub fn parse_status(status: &str) -> Result<u16, String> {
    let bytes = status.as_bytes();
    let code_ok = bytes.len() >= 3
        && bytes[..3].iter().all(u8::is_ascii_digit)
        && bytes[0] != b'0'
        && (bytes.len() == 3 || bytes[3] == b' ');
    if !code_ok {
        return Err(format!(
            "status {status:?} must start with a three-digit code (100-999) followed by a \
             space and a reason phrase, e.g. \"200 OK\""
        ));
    }
    if let Some(c) = status.chars().find(|&c| c.is_control() || u32::from(c) > 0xff) {
        return Err(format!(
            "status {status:?} contains {c:?}; a status line must be printable Latin-1 text"
        ));
    }
    Ok(status[..3].parse().expect("three ASCII digits"))
}

/// Checks one response header. Names are HTTP tokens; values are Latin-1
/// text without CR, LF or NUL.
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    // What nearly every header is, checked a byte at a time; anything else
    // goes through the checks below, which say what is wrong.
    let plain_value = |b: u8| b.is_ascii() && !matches!(b, b'\r' | b'\n' | b'\0');
    if !name.is_empty() && name.bytes().all(is_token_byte) && value.bytes().all(plain_value) {
        return Ok(());
    }
    if name.is_empty() {
        return Err("header name must not be empty".to_owned());
    }
    if let Some(c) = name.chars().find(|&c| !is_token_char(c)) {
        return Err(format!(
            "header name {name:?} contains {c:?}; names may hold only letters, digits and \
             !#$%&'*+-.^_`|~"
        ));
    }
    if let Some(c) = value.chars().find(|&c| matches!(c, '\r' | '\n' | '\0')) {
        return Err(format!(
            "value of header {name:?} contains {c:?}; CR, LF and NUL are not allowed in \
             header values"
        ));
    }
    if let Some(c) = value.chars().find(|&c| u32::from(c) > 0xff) {
        return Err(format!(
            "value of header {name:?} contains {c:?}, which is not Latin-1; encode it \
             (for example RFC 8187 or percent-encoding)"
        ));
    }
    Ok(())
}

/// Parses the value of a Content-Length header the application set; the
/// handler holds the body to it, so it must be a plain decimal count.
pub fn parse_content_length(value: &str) -> Result<u64, String> {
    let digits = value.trim_matches([' ', '\t']);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("Content-Length {value:?} must be a non-negative decimal integer"));
    }
    digits.parse().map_err(|_| format!("Content-Length {value:?} is too large"))
}

fn is_token_char(c: char) -> bool {
    c.is_ascii() && is_token_byte(c as u8)
}

fn is_token_byte(b: u8) -> bool {
    TOKEN_BYTES[usize::from(b)]
}

/// RFC 9110's tchar, as a table: checked for every byte of every header
/// name an application sends.
static TOKEN_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    #[test]
    fn content_length_is_a_plain_decimal_count() {
        assert_eq!(super::parse_content_length("0"), Ok(0));
        assert_eq!(super::parse_content_length(" 1234 "), Ok(1234));
        for bad in ["", "-1", "+1", "1.0", "0x10", "12 34", "abc", "99999999999999999999999"] {
            assert!(super::parse_content_length(bad).is_err(), "{bad:?}");
        }
    }

    use super::*;

    #[test]
    fn statuses_accepted() {
        assert_eq!(parse_status("200 OK"), Ok(200));
        assert_eq!(parse_status("404 Not Found"), Ok(404));
        assert_eq!(parse_status("200"), Ok(200));
        assert_eq!(parse_status("599 Caf\u{e9}"), Ok(599));
    }

    #[test]
    fn statuses_rejected() {
        for bad in ["20 OK", "abc", "200OK", "2000 OK", "099 Low", "", " 200 OK", "200 O\nK", "200 \u{7f}", "200 \u{100}"] {
            assert!(parse_status(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn headers_accepted() {
        assert!(check_header("Content-Type", "text/plain; charset=utf-8").is_ok());
        assert!(check_header("X-Caf\u{e9}-Free", "x").is_err());
        assert!(check_header("X-Latin", "caf\u{e9}").is_ok());
        assert!(check_header("X-Empty", "").is_ok());
    }

    #[test]
    fn headers_rejected_with_reason() {
        let cases = [
            ("", "x", "must not be empty"),
            ("X Y", "x", "contains ' '"),
            ("X:Y", "x", "contains ':'"),
            ("X\r\nSet-Cookie", "x", "contains '\\r'"),
            ("X", "a\r\nSet-Cookie: b", "CR, LF and NUL"),
            ("X", "a\nb", "CR, LF and NUL"),
            ("X", "a\0b", "CR, LF and NUL"),
            ("X", "\u{20ac}", "not Latin-1"),
        ];
        for (name, value, expected) in cases {
            let err = check_header(name, value).unwrap_err();
            assert!(err.contains(expected), "{name:?}: {value:?}: {err}");
        }
    }
}
