//! sys.stdout, sys.stderr and sys.stdin in an Apache child. Apache's own
//! stdout is not a place anyone reads, so output goes to the error log;
//! `WSGIRestrictStdout`/`WSGIRestrictStdin` instead make the streams raise,
//! for sites that want accidental use of them caught.

use super::errors::ErrorLog;
use crate::config::InterpreterConfig;
use crate::httpd::ffi;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

/// A stream an application may not use: every read or write raises,
/// naming the directive that restricts it.
#[pyclass(module = "mod_wsgi_rs", frozen)]
pub struct RestrictedStream {
    name: &'static str,
    directive: &'static str,
}

impl RestrictedStream {
    fn refuse(&self) -> PyErr {
        PyOSError::new_err(format!("{} access restricted by {} On", self.name, self.directive))
    }
}

#[pymethods]
impl RestrictedStream {
    #[pyo3(signature = (*_args))]
    fn write(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        Err(self.refuse())
    }

    #[pyo3(signature = (*_args))]
    fn writelines(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        Err(self.refuse())
    }

    #[pyo3(signature = (*_args))]
    fn read(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        Err(self.refuse())
    }

    #[pyo3(signature = (*_args))]
    fn readline(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        Err(self.refuse())
    }

    #[pyo3(signature = (*_args))]
    fn readlines(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        Err(self.refuse())
    }

    fn fileno(&self) -> PyResult<i32> {
        Err(self.refuse())
    }

    /// Flushing nothing is harmless, and interpreter shutdown flushes
    /// sys.stdout whether or not anyone wrote to it.
    fn flush(&self) {}

    fn isatty(&self) -> bool {
        false
    }
}

/// Installs the streams the configuration asks for.
pub fn install(py: Python<'_>, s: *mut ffi::server_rec, settings: &InterpreterConfig) -> PyResult<()> {
    let sys = py.import("sys")?;
    let log = Bound::new(py, ErrorLog::for_process(s))?;
    if settings.restrict_stdout == Some(true) {
        sys.setattr("stdout", Bound::new(py, RestrictedStream { name: "sys.stdout", directive: "WSGIRestrictStdout" })?)?;
    } else {
        sys.setattr("stdout", &log)?;
    }
    sys.setattr("stderr", &log)?;
    if settings.restrict_stdin == Some(true) {
        sys.setattr("stdin", Bound::new(py, RestrictedStream { name: "sys.stdin", directive: "WSGIRestrictStdin" })?)?;
    }
    Ok(())
}
