//! Building the WSGI environ from the request: the CGI variables Apache
//! computes, the path split done by translate_name, and the `wsgi.*` keys.

use super::file_wrapper::FileWrapper;
use crate::httpd::{consts, ffi, pool};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use std::ffi::{c_char, CStr};
use std::sync::atomic::{AtomicU64, Ordering};
use pyo3::sync::PyOnceLock;
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// What the configuration contributes to the environ of one request.
pub struct EnvironSettings<'a> {
    pub callable_object: &'a str,
    pub pass_authorization: bool,
    pub script_reloading: bool,
    /// REQUEST_METHOD to show instead of the real one (HEAD run as GET).
    pub method: Option<&'static str>,
}

/// Variables Apache's environment table carries that an application must
/// not see.
const HIDDEN: &[&str] = &["PATH"];

/// PEP 3333 native strings: bytes from the wire are decoded as Latin-1,
/// which maps every byte to one code point and never fails.
fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    // SAFETY: PyUnicode_DecodeLatin1 reads exactly `len` bytes and cannot
    // fail except on memory exhaustion, which pyo3 turns into a panic here
    // as it does for every other allocation.
    unsafe {
        Bound::from_owned_ptr(
            py,
            pyo3::ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast(), bytes.len() as _, std::ptr::null()),
        )
        .cast_into_unchecked()
    }
}

/// # Safety
/// `p` must be null or a NUL-terminated string that outlives the call.
unsafe fn c_latin1<'py>(py: Python<'py>, p: *const c_char) -> Bound<'py, PyString> {
    if p.is_null() {
        PyString::new(py, "")
    } else {
        // SAFETY: guaranteed by the caller.
        latin1(py, unsafe { CStr::from_ptr(p) }.to_bytes())
    }
}

/// `(wsgi.multithread, wsgi.multiprocess)` for this MPM.
fn mpm_model() -> (bool, bool) {
    static MODEL: OnceLock<(bool, bool)> = OnceLock::new();
    *MODEL.get_or_init(|| {
        let query = |code| {
            let mut value = 0;
            // SAFETY: ap_mpm_query writes one int for a known query code.
            unsafe { ffi::ap_mpm_query(code, &mut value) };
            value != consts::AP_MPMQ_NOT_SUPPORTED
        };
        (query(consts::AP_MPMQ_IS_THREADED), query(consts::AP_MPMQ_IS_FORKED))
    })
}

/// Fills Apache's CGI variables into `r->subprocess_env`. Called without
/// the GIL, before the environ is built.
///
/// # Safety
/// `r` must be the live request being handled.
pub unsafe fn prepare(r: *mut ffi::request_rec) {
    // SAFETY: guaranteed by the caller. The CGI variables include
    // PATH_TRANSLATED, which applications written for CGI still read;
    // SCRIPT_NAME and PATH_INFO are replaced in build().
    unsafe {
        ffi::ap_add_common_vars(r);
        ffi::ap_add_cgi_vars(r);
    }
}

/// The environ dict for request `r`.
///
/// # Safety
/// `r` must be the live request being handled, after [`prepare`].
pub unsafe fn build<'py>(
    py: Python<'py>,
    r: *mut ffi::request_rec,
    settings: &EnvironSettings<'_>,
    input: Bound<'py, PyAny>,
    errors: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let environ = template(py)?.copy()?;
    // SAFETY (whole block): r is live; every pointer read is a field Apache
    // filled for this request, and table entries are NUL-terminated.
    unsafe {
        let elts = ffi::apr_table_elts((*r).subprocess_env);
        let entries = std::slice::from_raw_parts(
            (*elts).elts as *const ffi::apr_table_entry_t,
            (*elts).nelts as usize,
        );
        for entry in entries {
            if entry.key.is_null() {
                continue;
            }
            let key = CStr::from_ptr(entry.key).to_bytes();
            if HIDDEN.iter().any(|h| h.as_bytes() == key) {
                continue;
            }
            environ.set_item(key_string(py, key), c_latin1(py, entry.val))?;
        }
        if settings.pass_authorization {
            let auth = ffi::apr_table_get((*r).headers_in, c"Authorization".as_ptr());
            if !auth.is_null() {
                environ.set_item("HTTP_AUTHORIZATION", c_latin1(py, auth))?;
            }
        }

        let uri = pool::str_from((*r).uri).unwrap_or_default();
        let path_info = pool::str_from((*r).path_info).unwrap_or_default();
        // SCRIPT_NAME is the URI without PATH_INFO; both are already
        // percent-decoded by Apache.
        let script_name = uri.strip_suffix(&*path_info).unwrap_or(&uri);
        match settings.method {
            Some(method) => environ.set_item("REQUEST_METHOD", method)?,
            None => environ.set_item("REQUEST_METHOD", c_latin1(py, (*r).method))?,
        }
        environ.set_item("mod_wsgi.request_id", request_id(py, r))?;
        environ.set_item("SERVER_PROTOCOL", c_latin1(py, (*r).protocol))?;
        environ.set_item("QUERY_STRING", c_latin1(py, (*r).args))?;
        environ.set_item("REQUEST_URI", c_latin1(py, (*r).unparsed_uri))?;
        environ.set_item("SCRIPT_NAME", latin1(py, script_name.as_bytes()))?;
        environ.set_item("PATH_INFO", latin1(py, path_info.as_bytes()))?;
    }

    let https = environ
        .get_item("HTTPS")?
        .map(|v| v.extract::<String>().unwrap_or_default().eq_ignore_ascii_case("on"))
        .unwrap_or(false);
    environ.set_item("wsgi.url_scheme", if https { "https" } else { "http" })?;
    environ.set_item("wsgi.input", input)?;
    environ.set_item("wsgi.errors", errors)?;
    environ.set_item("mod_wsgi.callable_object", settings.callable_object)?;
    environ.set_item("mod_wsgi.script_reloading", if settings.script_reloading { "1" } else { "0" })?;
    Ok(environ)
}

/// The keys every environ has with the same value, built once per process;
/// each request starts from a copy (a C-level dict copy, cheaper than
/// setting the keys one by one).
fn template(py: Python<'_>) -> PyResult<&Bound<'_, PyDict>> {
    static TEMPLATE: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    TEMPLATE
        .get_or_try_init(py, || {
            let (multithread, multiprocess) = mpm_model();
            let t = PyDict::new(py);
            t.set_item("GATEWAY_INTERFACE", "CGI/1.1")?;
            t.set_item("wsgi.version", (1, 0))?;
            t.set_item("wsgi.input_terminated", true)?;
            t.set_item("wsgi.multithread", multithread)?;
            t.set_item("wsgi.multiprocess", multiprocess)?;
            t.set_item("wsgi.run_once", false)?;
            t.set_item("wsgi.file_wrapper", py.get_type::<FileWrapper>())?;
            t.set_item("mod_wsgi.process_group", "")?;
            t.set_item("mod_wsgi.application_group", "")?;
            t.set_item("apache.version", apache_version())?;
            t.set_item("mod_wsgi_rs.version", env!("CARGO_PKG_VERSION"))?;
            Ok(t.unbind())
        })
        .map(|t| t.bind(py))
}

/// The str for an environ key from Apache's tables. The same few dozen
/// names come with every request, so their strings are made once and
/// reused; the cache is bounded, since clients choose header names.
fn key_string<'py>(py: Python<'py>, key: &[u8]) -> Bound<'py, PyString> {
    const MAX_CACHED: usize = 512;
    static KEYS: Mutex<BTreeMap<Vec<u8>, Py<PyString>>> = Mutex::new(BTreeMap::new());
    // Only used with the GIL held, so the lock is never contended.
    let mut keys = KEYS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(cached) = keys.get(key) {
        return cached.bind(py).clone();
    }
    let made = latin1(py, key);
    if keys.len() < MAX_CACHED {
        keys.insert(key.to_vec(), made.clone().unbind());
    }
    made
}

/// Apache's own version as `(major, minor, patch)`.
fn apache_version() -> (i32, i32, i32) {
    static VERSION: OnceLock<(i32, i32, i32)> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let mut version = std::mem::MaybeUninit::<ffi::ap_version_t>::zeroed();
        // SAFETY: ap_get_server_revision fills the struct it is given.
        let v = unsafe {
            ffi::ap_get_server_revision(version.as_mut_ptr());
            version.assume_init()
        };
        (v.major, v.minor, v.patch)
    })
}

/// An identifier for the request, for correlating application logs with
/// Apache's: the one Apache logs (`%L`) when it has made one, otherwise
/// one unique within the server's lifetime (pid, child start, counter).
///
/// # Safety
/// `r` must be the live request being handled.
unsafe fn request_id<'py>(py: Python<'py>, r: *mut ffi::request_rec) -> Bound<'py, PyString> {
    // SAFETY: r is live; log_id is null or a NUL-terminated pool string.
    let log_id = unsafe { (*r).log_id };
    if !log_id.is_null() {
        // SAFETY: as above.
        return unsafe { c_latin1(py, log_id) };
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static STARTED: OnceLock<u64> = OnceLock::new();
    let started = *STARTED.get_or_init(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    PyString::new(py, &format!("{:x}-{:x}-{:x}", std::process::id(), started, n))
}
