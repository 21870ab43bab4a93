//! What a process does with Python once the interpreter is up, before it
//! serves requests.

use super::logging::{self, format_exception, Level};
use super::{app_group, events, script, server_modules, std_streams};
use crate::config::InterpreterConfig;
use crate::interp;
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::collections::BTreeSet;

/// Sets up the `mod_wsgi` and `apache` modules, applies the interpreter
/// directives that act on a running Python (only in an interpreter this
/// module started: mod_python's belongs to mod_python), then loads the
/// `WSGIImportScript` scripts. `application_group` is the group the
/// configuration gives this process, if it names one: the import scripts
/// and `mod_wsgi.application_group` see it from the start. The transport
/// has set the process log and the server facts before.
pub fn prepare(settings: &InterpreterConfig, application_group: Option<&str>, import_scripts: &BTreeSet<String>) {
    let own_interpreter = interp::is_ours();
    let outcome = interp::with_python(|py| {
        let log_failure = |what: &str, err: PyErr| {
            logging::process(Level::Err, &format!("{what}\n{}", format_exception(py, &err)));
        };
        if let Err(err) = server_modules::install(py) {
            log_failure("cannot set up the mod_wsgi and apache modules", err);
        }
        if let Some(name) = application_group {
            app_group::host(py, name);
        }
        if own_interpreter {
            interp::before_finalise(events::publish_process_stopping);
            if let Err(err) = std_streams::install(py, settings) {
                log_failure("cannot set up sys.stdout, sys.stderr and sys.stdin", err);
            }
            if let Err(err) = prepend_python_path(py, settings) {
                log_failure("cannot apply WSGIPythonPath", err);
            }
            if settings.restrict_signal != Some(false) {
                if let Err(err) = restrict_signal(py) {
                    log_failure("cannot apply WSGIRestrictSignal", err);
                }
            }
        }
        for path in import_scripts {
            match script::preload(py, path) {
                Ok(()) => logging::process(Level::Info, &format!("imported WSGI script {path}")),
                Err(err) => log_failure(&format!("failed to import WSGI script {path} (WSGIImportScript)"), err),
            }
        }
    });
    if let (Err(reason), false) = (outcome, import_scripts.is_empty()) {
        logging::process(
            Level::Err,
            &format!("WSGIImportScript not run: Python is not available in this process ({reason})"),
        );
    }
    // Ready to serve: what starting cost, compilation included.
    for (notice, line) in interp::startup_report(import_scripts) {
        logging::process(if notice { Level::Notice } else { Level::Info }, &line);
    }
}

/// `WSGIPythonPath`: each directory is added as a site directory (so its
/// .pth files are processed), and everything that added is moved to the
/// front of sys.path, ahead of the standard library and site-packages.
fn prepend_python_path(py: Python<'_>, settings: &InterpreterConfig) -> PyResult<()> {
    if settings.path.is_empty() {
        return Ok(());
    }
    let sys_path = py.import("sys")?.getattr("path")?.cast_into::<PyList>()?;
    let before: Vec<String> = sys_path.extract()?;
    let site = py.import("site")?;
    for dir in &settings.path {
        site.call_method1("addsitedir", (dir,))?;
    }
    let after: Vec<String> = sys_path.extract()?;
    let added = after.iter().filter(|p| !before.contains(p));
    let reordered: Vec<&String> = added.chain(before.iter()).collect();
    sys_path.call_method1("__setitem__", (pyo3::types::PySlice::full(py), reordered))?;
    Ok(())
}

/// `WSGIRestrictSignal On` (the default): signal handlers belong to
/// Apache, so `signal.signal()` from an application is ignored with a
/// warning in the log, and returns the handler in place.
///
/// The replacement goes into the built-in `_signal`, which `signal.signal`
/// calls (with the signal as an int) whenever it runs, imported before or
/// after this. Importing `signal` itself here would build its enums, an
/// eighth of a process's start-up, for applications that mostly never
/// import it.
fn restrict_signal(py: Python<'_>) -> PyResult<()> {
    let signal = py.import("_signal")?;
    let original = signal.getattr("getsignal")?.unbind();
    let replacement = pyo3::types::PyCFunction::new_closure(
        py,
        Some(c"signal"),
        Some(c"Ignored in mod_wsgi_rs (WSGIRestrictSignal On): signal handlers belong to Apache."),
        move |args, _kwargs| -> PyResult<Py<PyAny>> {
            let py = args.py();
            let signum = args.get_item(0)?;
            let message = format!(
                "signal.signal({signum}, ...) ignored: Apache owns signal handlers (WSGIRestrictSignal On)"
            );
            logging::current(Level::Warning, &message);
            Ok(original.bind(py).call1((signum,))?.unbind())
        },
    )?;
    signal.setattr("signal", replacement)
}
