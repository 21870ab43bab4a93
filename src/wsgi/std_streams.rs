//! sys.stdout, sys.stderr, sys.stdin and `wsgi.errors` in a process that
//! serves WSGI. Nobody reads the process's own stdout, so output goes to
//! the error log (see log_stream); `WSGIRestrictStdout`/`WSGIRestrictStdin`
//! instead make the streams raise, for sites that want accidental use of
//! them caught.

use super::log_stream::{Lines, LogStream, Target};
use super::logging::RequestLog;
use crate::config::InterpreterConfig;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use std::sync::{Arc, Mutex, OnceLock};

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

/// The lines of sys.stdout and sys.stderr, reopened at each request in
/// case an application closed them.
static PROCESS_LINES: OnceLock<Vec<Arc<Lines>>> = OnceLock::new();

/// Installs the streams the configuration asks for, and `sys.argv` as
/// mod_wsgi sets it (libraries that read `sys.argv[0]` need one element).
pub fn install(py: Python<'_>, settings: &InterpreterConfig) -> PyResult<()> {
    let sys = py.import("sys")?;
    sys.setattr("argv", vec!["mod_wsgi"])?;
    // Code that checks isinstance(stream, io.TextIOBase) finds a text stream.
    py.import("io")?.getattr("TextIOBase")?.call_method1("register", (py.get_type::<LogStream>(),))?;
    let mut all_lines = Vec::new();
    let mut log_stream = |name: &'static str| -> PyResult<Bound<'_, LogStream>> {
        let lines = Lines::new(name, Target::WritingThread);
        all_lines.push(lines.clone());
        Bound::new(py, LogStream::new(lines))
    };
    if settings.restrict_stdout == Some(true) {
        sys.setattr("stdout", Bound::new(py, RestrictedStream { name: "sys.stdout", directive: "WSGIRestrictStdout" })?)?;
    } else {
        sys.setattr("stdout", log_stream("<stdout>")?)?;
    }
    sys.setattr("stderr", log_stream("<stderr>")?)?;
    if settings.restrict_stdin == Some(true) {
        sys.setattr("stdin", Bound::new(py, RestrictedStream { name: "sys.stdin", directive: "WSGIRestrictStdin" })?)?;
    }
    let _ = PROCESS_LINES.set(all_lines);
    Ok(())
}

/// `wsgi.errors` of one request. Its lines carry the request's client
/// address whichever thread writes them; once the request is over, a
/// stream an application kept writes to the process log.
pub struct RequestErrors<'py> {
    stream: Bound<'py, LogStream>,
}

impl<'py> RequestErrors<'py> {
    pub fn enter(py: Python<'py>, log: Arc<dyn RequestLog>) -> PyResult<Self> {
        for lines in PROCESS_LINES.get().into_iter().flatten() {
            lines.reopen();
        }
        let lines = Lines::new("<wsgi.errors>", Target::Request(Mutex::new(Some(log))));
        Ok(Self { stream: Bound::new(py, LogStream::new(lines))? })
    }

    pub fn stream(&self) -> Bound<'py, PyAny> {
        self.stream.clone().into_any()
    }

    /// Logs what the application left unterminated, then detaches the
    /// stream from the finished request.
    pub fn finish(&self) {
        self.stream.get().lines().finish(self.stream.py());
    }
}
