//! What the WSGI core is told about a request Apache is handling in this
//! process: its CGI variables and where its log lines go.

use super::request_vars;
use crate::config::RequestSettings;
use crate::httpd::{consts, ffi, log, pool};
use crate::wsgi::logging::{Level, RequestLog};
use std::borrow::Cow;
use std::ffi::{c_char, c_int, CStr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// SCRIPT_NAME as `ap_add_cgi_vars` splits it: the URI up to where
/// PATH_INFO starts, or the whole URI when there is no PATH_INFO or the
/// script is run by mod_include. (The environ's own SCRIPT_NAME is
/// cgi_variables' split.)
///
/// # Safety
/// `r` must be the live request being handled.
pub(super) unsafe fn apache_script_name(r: *mut ffi::request_rec) -> *const c_char {
    // SAFETY: r is live; uri and path_info are its NUL-terminated strings,
    // and the copy is made in its pool.
    unsafe {
        let path_info = c_bytes((*r).path_info);
        if path_info.is_empty() || c_bytes((*r).protocol) == b"INCLUDED" {
            (*r).uri
        } else {
            let len = ffi::ap_find_path_info((*r).uri, (*r).path_info);
            ffi::apr_pstrndup((*r).pool, (*r).uri, len.max(0) as usize)
        }
    }
}

/// One of Apache's strings, or empty for null (as reading a null value
/// out of a table gives).
pub(super) fn c_str<'a>(p: *const c_char) -> &'a CStr {
    if p.is_null() {
        c""
    } else {
        // SAFETY: Apache's strings are NUL-terminated and live in the
        // request pool, which outlives every use here (see cgi_variables).
        unsafe { CStr::from_ptr(p) }
    }
}

/// The bytes of one of Apache's strings (see [`c_str`]).
pub(super) fn c_bytes<'a>(p: *const c_char) -> &'a [u8] {
    c_str(p).to_bytes()
}

/// The request's CGI variables, in the order the core applies them: what
/// Apache's table of the request's environment holds, then the variables
/// of [`request_vars::append`] (also put into that table with
/// `WSGIExportCGIVariables On`), then what this module decides itself.
/// Called without the GIL: PATH_TRANSLATED takes a sub-request. The
/// slices point into the request pool; `scratch` holds the few made here.
///
/// # Safety
/// `r` must be the live request, in its handler; the result must not
/// outlive the handler call.
pub unsafe fn cgi_variables<'a>(
    r: *mut ffi::request_rec,
    settings: &RequestSettings<'_>,
    method: Option<&'static str>,
    scratch: &'a mut Scratch,
) -> Vec<(&'a [u8], &'a [u8])> {
    // SAFETY (whole block): r is live; every pointer read is a field Apache
    // filled for this request, and table entries are NUL-terminated.
    unsafe {
        let elts = ffi::apr_table_elts((*r).subprocess_env);
        let entries = std::slice::from_raw_parts((*elts).elts as *const ffi::apr_table_entry_t, (*elts).nelts as usize);
        // The table's variables, the CGI ones and the eight at most
        // added below.
        let mut vars: Vec<(&[u8], &[u8])> = Vec::with_capacity(entries.len() + request_vars::most_appended(r) + 8);
        for entry in entries {
            if !entry.key.is_null() {
                vars.push((c_bytes(entry.key), c_bytes(entry.val)));
            }
        }
        request_vars::append(r, &mut vars, settings.path_translated, settings.export_cgi_variables);
        if settings.pass_authorization {
            let auth = ffi::apr_table_get((*r).headers_in, c"Authorization".as_ptr());
            if !auth.is_null() {
                vars.push((b"HTTP_AUTHORIZATION", c_bytes(auth)));
                if settings.export_cgi_variables {
                    // As mod_wsgi leaves it, for log formats.
                    ffi::apr_table_setn((*r).subprocess_env, c"HTTP_AUTHORIZATION".as_ptr(), auth);
                }
            }
        }
        let method = method.map_or_else(|| c_bytes((*r).method), str::as_bytes);
        vars.push((b"REQUEST_METHOD", method));
        vars.push((b"mod_wsgi.request_id", request_id(r, &mut scratch.request_id)));
        vars.push((b"SERVER_PROTOCOL", c_bytes((*r).protocol)));
        vars.push((b"QUERY_STRING", c_bytes((*r).args)));
        vars.push((b"REQUEST_URI", c_bytes((*r).unparsed_uri)));
        // SCRIPT_NAME is the URI without PATH_INFO; both are already
        // percent-decoded by Apache.
        let uri = c_bytes((*r).uri);
        let path_info = c_bytes((*r).path_info);
        let script_name = uri.strip_suffix(path_info).unwrap_or(uri);
        vars.push((b"SCRIPT_NAME", script_name));
        vars.push((b"PATH_INFO", path_info));
        vars
    }
}

/// Strings [`cgi_variables`] makes rather than finds in the request.
#[derive(Default)]
pub struct Scratch {
    request_id: String,
}

/// An identifier for the request, for correlating application logs with
/// Apache's: the one Apache logs (`%L`) when it has made one, otherwise
/// one unique within the server's lifetime (pid, child start, counter).
///
/// # Safety
/// `r` must be the live request being handled.
unsafe fn request_id<'a>(r: *mut ffi::request_rec, made: &'a mut String) -> &'a [u8] {
    // SAFETY: r is live; log_id is null or a NUL-terminated pool string.
    let log_id = unsafe { (*r).log_id };
    if !log_id.is_null() {
        return c_bytes(log_id);
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // Taken at the first request of the process (Apache children and
    // daemons are forked before they serve any): getpid is a system call.
    static STARTED: OnceLock<(u32, u64)> = OnceLock::new();
    let (pid, started) = *STARTED.get_or_init(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        (std::process::id(), now.map_or(0, |d| d.as_micros() as u64))
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // PID-START-COUNTER in hex, written without the formatting machinery,
    // which costs more than the rest of this function.
    made.clear();
    // Three hex numbers of up to 16 digits and two dashes, in one allocation.
    made.reserve(50);
    for (i, part) in [u64::from(pid), started, n].into_iter().enumerate() {
        if i > 0 {
            made.push('-');
        }
        push_hex(made, part);
    }
    made.as_bytes()
}

fn push_hex(out: &mut String, value: u64) {
    let digits = (64 - value.leading_zeros()).div_ceil(4).max(1);
    for shift in (0..digits).rev() {
        out.push(char::from_digit(((value >> (shift * 4)) & 0xf) as u32, 16).unwrap_or('0'));
    }
}

/// Apache's log level for a core level.
pub fn apache_level(level: Level) -> c_int {
    match level {
        Level::Crit => consts::APLOG_CRIT,
        Level::Err => consts::APLOG_ERR,
        Level::Warning => consts::APLOG_WARNING,
        Level::Notice => consts::APLOG_NOTICE,
        Level::Info => consts::APLOG_INFO,
    }
}

/// Log lines of one request, through ap_log_rerror (which adds the client
/// address), for as long as the request runs; afterwards (an application
/// thread that kept a stream) as plain server lines.
pub struct ApacheRequestLog {
    request: Mutex<*mut ffi::request_rec>,
    server: usize,
}

// SAFETY: the pointer is only dereferenced under the mutex while set, and
// the handler clears it (finish) before the request ends; Apache allows a
// request to be logged from any thread.
unsafe impl Send for ApacheRequestLog {}
// SAFETY: as above.
unsafe impl Sync for ApacheRequestLog {}

impl ApacheRequestLog {
    pub fn new(r: *mut ffi::request_rec) -> Self {
        // SAFETY: r is the live request being handled.
        let server = unsafe { (*r).server } as usize;
        Self { request: Mutex::new(r), server }
    }

    /// Detaches the log from the finished request.
    pub fn finish(&self) {
        *self.request.lock().unwrap_or_else(|e| e.into_inner()) = std::ptr::null_mut();
    }
}

impl RequestLog for ApacheRequestLog {
    fn write(&self, level: Level, text: &str) {
        let r = self.request.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_null() {
            log::server(self.server as *const ffi::server_rec, apache_level(level), text);
        } else {
            log::request(*r, apache_level(level), text);
        }
    }
}

/// The script path Apache mapped the request to (after the directory walk
/// split off PATH_INFO), and the file's type and mtime.
///
/// # Safety
/// `r` must be the live request being handled.
pub unsafe fn script_file<'a>(r: *mut ffi::request_rec) -> (Cow<'a, str>, ffi::apr_filetype_e, i64) {
    // SAFETY: guaranteed by the caller; the name stays in the request pool
    // for as long as the request runs.
    unsafe {
        (
            pool::str_from((*r).filename).unwrap_or_default(),
            (*r).finfo.filetype,
            (*r).finfo.mtime,
        )
    }
}
