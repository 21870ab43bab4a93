//! Building the WSGI environ: the CGI variables the transport supplies for
//! the request, then the `wsgi.*` keys and this server's own.

use super::file_wrapper::FileWrapper;
use super::transport::server_facts;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// What the configuration contributes to the environ of one request.
pub struct EnvironSettings<'a> {
    pub callable_object: &'a str,
    pub script_reloading: bool,
    /// The application group the request runs in ('' for %{GLOBAL}).
    pub application_group: &'a str,
}

/// Variables a transport may pass that an application must not see.
const HIDDEN: &[&[u8]] = &[b"PATH"];

/// PEP 3333 native strings: bytes from the wire are decoded as Latin-1,
/// which maps every byte to one code point and never fails.
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
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

/// The environ for a request whose CGI variables are `variables`, in
/// order (a later one replaces an earlier one of the same name).
pub fn build<'py>(
    py: Python<'py>,
    variables: &[(&[u8], &[u8])],
    settings: &EnvironSettings<'_>,
    input: Bound<'py, PyAny>,
    errors: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let environ = template(py)?.copy()?;
    let mut https = false;
    for (key, value) in variables {
        if HIDDEN.contains(key) {
            continue;
        }
        if *key == b"HTTPS" {
            https = value.eq_ignore_ascii_case(b"on");
        }
        environ.set_item(key_string(py, key), latin1(py, value))?;
    }
    environ.set_item("wsgi.url_scheme", if https { "https" } else { "http" })?;
    environ.set_item("wsgi.input", input)?;
    environ.set_item("wsgi.errors", errors)?;
    environ.set_item("mod_wsgi.callable_object", settings.callable_object)?;
    environ.set_item("mod_wsgi.script_reloading", if settings.script_reloading { "1" } else { "0" })?;
    // The template's '' is right for %{GLOBAL} and for no group at all.
    if !settings.application_group.is_empty() {
        environ.set_item("mod_wsgi.application_group", settings.application_group)?;
    }
    Ok(environ)
}

/// The keys every environ has with the same value, built once per process;
/// each request starts from a copy (a C-level dict copy, cheaper than
/// setting the keys one by one).
fn template(py: Python<'_>) -> PyResult<&Bound<'_, PyDict>> {
    static TEMPLATE: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    TEMPLATE
        .get_or_try_init(py, || {
            let facts = server_facts();
            let t = PyDict::new(py);
            t.set_item("GATEWAY_INTERFACE", "CGI/1.1")?;
            t.set_item("wsgi.version", (1, 0))?;
            t.set_item("wsgi.input_terminated", true)?;
            t.set_item("wsgi.multithread", facts.multithread)?;
            t.set_item("wsgi.multiprocess", facts.multiprocess)?;
            t.set_item("wsgi.run_once", false)?;
            t.set_item("wsgi.file_wrapper", py.get_type::<FileWrapper>())?;
            t.set_item("mod_wsgi.process_group", &facts.process_group)?;
            t.set_item("mod_wsgi.application_group", "")?;
            t.set_item("apache.version", facts.apache_version)?;
            t.set_item("mod_wsgi_rs.version", env!("CARGO_PKG_VERSION"))?;
            Ok(t.unbind())
        })
        .map(|t| t.bind(py))
}

/// The str for an environ key. The same few dozen names come with every
/// request, so their strings are made once and reused; the cache is
/// bounded, since clients choose header names.
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
