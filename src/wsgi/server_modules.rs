//! The `mod_wsgi` and `apache` Python modules applications import to learn
//! about the server they run in (`mod_wsgi.process_group`,
//! `apache.mpm_name`, ...), with the contents mod_wsgi 4.9 gives them.
//! Both are in `sys.modules` before any WSGI or import script runs.

use super::events::{self, Subscriptions};
use super::file_wrapper::FileWrapper;
use super::transport::server_facts;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyModule};

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
    let facts = server_facts();
    let m = PyModule::new(py, "mod_wsgi")?;
    m.add("version", MOD_WSGI_API_VERSION)?;
    m.add("process_group", &facts.process_group)?;
    // The main interpreter's name in mod_wsgi, until the process is given
    // its group (app_group::host).
    m.add("application_group", "")?;
    m.add("maximum_processes", facts.maximum_processes)?;
    m.add("threads_per_process", facts.threads_per_process)?;
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
    let facts = server_facts();
    let m = PyModule::new(py, "apache")?;
    m.add("version", facts.apache_version)?;
    m.add("maximum_processes", facts.apache_maximum_processes)?;
    m.add("threads_per_process", facts.apache_threads_per_process)?;
    m.add("description", &facts.description)?;
    m.add("mpm_name", &facts.mpm_name)?;
    m.add("build_date", &facts.build_date)?;
    Ok(m)
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

/// The daemon process groups' figures, those of the status page, as the
/// dict its JSON format decodes to: every group's in an Apache child, its
/// own group's in a daemon process. Apache's scoreboard, which mod_wsgi
/// reports here under `WSGIServerMetrics On`, is not read.
#[pyfunction]
fn server_metrics(py: Python<'_>) -> PyResult<Py<PyAny>> {
    match server_facts().server_metrics_json {
        // One shape for the page and for this: decode the page's own text.
        Some(render) => Ok(py.import("json")?.call_method1("loads", (render(),))?.unbind()),
        None => Ok(py.None()),
    }
}
