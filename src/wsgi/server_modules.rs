//! The `mod_wsgi` and `apache` Python modules applications import to learn
//! about the server they run in (`mod_wsgi.process_group`,
//! `apache.mpm_name`, ...), with the contents mod_wsgi 4.9 gives them.
//! Both are in `sys.modules` before any WSGI or import script runs.

use super::events::{self, Subscriptions};
use super::file_wrapper::FileWrapper;
use crate::httpd::{consts, ffi, pool};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyModule};
use std::mem::MaybeUninit;

/// The mod_wsgi API level the `mod_wsgi` module promises: the attributes
/// and functions of mod_wsgi 4.9.4's module, with its event arguments.
pub const MOD_WSGI_API_VERSION: (u32, u32, u32) = (4, 9, 4);

/// Creates both modules and puts them in `sys.modules`.
pub fn install(py: Python<'_>) -> PyResult<()> {
    let modules = py.import("sys")?.getattr("modules")?;
    modules.set_item("mod_wsgi", mod_wsgi(py)?)?;
    modules.set_item("apache", apache(py)?)?;
    Ok(())
}

fn mod_wsgi(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let m = PyModule::new(py, "mod_wsgi")?;
    m.add("version", MOD_WSGI_API_VERSION)?;
    // Embedded mode in the main interpreter: mod_wsgi's names for that.
    m.add("process_group", "")?;
    m.add("application_group", "")?;
    let (processes, threads) = mpm_capacity();
    m.add("maximum_processes", processes)?;
    m.add("threads_per_process", threads)?;
    m.add("FileWrapper", py.get_type::<FileWrapper>())?;
    let subscriptions = Subscriptions {
        event_callbacks: PyList::empty(py).unbind(),
        shutdown_callbacks: PyList::empty(py).unbind(),
        active_requests: PyDict::new(py).unbind(),
    };
    m.add("event_callbacks", subscriptions.event_callbacks.bind(py))?;
    m.add("shutdown_callbacks", subscriptions.shutdown_callbacks.bind(py))?;
    m.add("active_requests", subscriptions.active_requests.bind(py))?;
    events::register(py, subscriptions);
    m.add_function(wrap_pyfunction!(subscribe_events, &m)?)?;
    m.add_function(wrap_pyfunction!(subscribe_shutdown, &m)?)?;
    m.add_function(wrap_pyfunction!(request_data, &m)?)?;
    m.add_function(wrap_pyfunction!(process_metrics, &m)?)?;
    m.add_function(wrap_pyfunction!(server_metrics, &m)?)?;
    Ok(m)
}

fn apache(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let m = PyModule::new(py, "apache")?;
    let mut version = MaybeUninit::<ffi::ap_version_t>::uninit();
    // SAFETY: ap_get_server_revision fills the whole struct.
    let version = unsafe {
        ffi::ap_get_server_revision(version.as_mut_ptr());
        version.assume_init()
    };
    m.add("version", (version.major, version.minor, version.patch))?;
    let (processes, threads) = mpm_capacity();
    m.add("maximum_processes", processes)?;
    m.add("threads_per_process", threads)?;
    // SAFETY: the three return static NUL-terminated strings (or null).
    let (description, mpm_name, build_date) =
        unsafe { (ffi::ap_get_server_description(), ffi::ap_show_mpm(), ffi::ap_get_server_built()) };
    for (name, value) in [("description", description), ("mpm_name", mpm_name), ("build_date", build_date)] {
        // SAFETY: as above.
        m.add(name, unsafe { pool::str_from(value) }.unwrap_or_default().into_owned())?;
    }
    Ok(m)
}

/// `(processes, threads per process)` the MPM may run: its configured
/// maximum of child processes, and the threads per child on threaded
/// MPMs; at least 1 each. (mod_wsgi reports the number of child slots used
/// so far instead, which depends on when it was asked.)
fn mpm_capacity() -> (i32, i32) {
    let query = |code: u32| {
        let mut value = 0;
        // SAFETY: ap_mpm_query writes one int for a known query code.
        let status = unsafe { ffi::ap_mpm_query(code as _, &mut value) };
        (status == consts::APR_SUCCESS).then_some(value)
    };
    let supported = |code: u32| query(code).is_some_and(|v| v != consts::AP_MPMQ_NOT_SUPPORTED);
    let threads = if supported(ffi::AP_MPMQ_IS_THREADED) { query(ffi::AP_MPMQ_MAX_THREADS).unwrap_or(1) } else { 1 };
    let processes = if supported(ffi::AP_MPMQ_IS_FORKED) { query(ffi::AP_MPMQ_MAX_DAEMONS).unwrap_or(1) } else { 1 };
    (processes.max(1), threads.max(1))
}

/// Calls `callback(event_name, **arguments)` for every event this process
/// publishes (request_started, response_started, request_finished,
/// request_exception, process_stopping).
#[pyfunction]
fn subscribe_events(py: Python<'_>, callback: Bound<'_, PyAny>) -> PyResult<()> {
    events::subscriptions(py)?.event_callbacks.bind(py).append(callback)
}

/// Calls `callback("process_stopping", shutdown_reason=...)` once when
/// this process exits, before the interpreter is finalised.
#[pyfunction]
fn subscribe_shutdown(py: Python<'_>, callback: Bound<'_, PyAny>) -> PyResult<()> {
    events::subscriptions(py)?.shutdown_callbacks.bind(py).append(callback)
}

/// The dict of the request the calling thread is serving, shared with the
/// event callbacks (`request_data` in their arguments).
#[pyfunction]
fn request_data(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    events::current_request_data(py).ok_or_else(|| PyRuntimeError::new_err("no active request for thread"))
}

/// Figures about this process, under mod_wsgi's keys.
#[pyfunction]
fn process_metrics(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    events::process_metrics(py)
}

/// mod_wsgi returns None unless `WSGIServerMetrics On`, a directive
/// mod_wsgi_rs does not support: the scoreboard is not read.
#[pyfunction]
fn server_metrics(py: Python<'_>) -> Py<PyAny> {
    py.None()
}
