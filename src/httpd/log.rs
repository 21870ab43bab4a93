//! Writing to Apache's error log under this module's tag (`[wsgi_rs:...]`),
//! so `LogLevel wsgi_rs:debug` applies per module.

use super::{ffi, module_index};
use std::ffi::{c_int, CString};

/// Log lines are C strings; a NUL inside a message would cut it short, so
/// it is shown as `\0` instead.
fn c_line(line: &str) -> CString {
    CString::new(line.replace('\0', "\\0")).expect("NULs were replaced")
}

/// One log call per line: Apache's log format puts the tag, pid and client
/// on each line, which keeps multi-line tracebacks greppable.
pub fn server(s: *const ffi::server_rec, level: c_int, message: &str) {
    for line in message.lines() {
        let line = c_line(line);
        // SAFETY: `s` is a server_rec Apache handed us (or null, which
        // ap_log_error_ accepts and treats as the main server); the format
        // is a literal "%s" matched by one NUL-terminated string argument.
        unsafe {
            ffi::ap_log_error_(
                c"mod_wsgi_rs.c".as_ptr(),
                0,
                module_index() as c_int,
                level,
                0,
                s,
                c"%s".as_ptr(),
                line.as_ptr(),
            )
        };
    }
}

/// Like [`server`], but tied to a request so Apache adds the client address.
pub fn request(r: *const ffi::request_rec, level: c_int, message: &str) {
    for line in message.lines() {
        let line = c_line(line);
        // SAFETY: `r` is the live request_rec of the current handler call;
        // the format is "%s" matched by one NUL-terminated string.
        unsafe {
            ffi::ap_log_rerror_(
                c"mod_wsgi_rs.c".as_ptr(),
                0,
                module_index() as c_int,
                level,
                0,
                r,
                c"%s".as_ptr(),
                line.as_ptr(),
            )
        };
    }
}
