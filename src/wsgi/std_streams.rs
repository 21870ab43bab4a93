//! sys.stdout, sys.stderr, sys.stdin and `wsgi.errors` in an Apache child.
//! Apache's own stdout is not a place anyone reads, so output goes to the
//! error log, through `io.TextIOWrapper`s over a [`LogBuffer`] as under
//! mod_wsgi (UTF-8, errors replaced, line buffered, `.buffer` for bytes).
//! `WSGIRestrictStdout`/`WSGIRestrictStdin` instead make the streams raise,
//! for sites that want accidental use of them caught.

use super::log_buffer::{LogBuffer, Requests};
use super::RequestSlot;
use crate::config::InterpreterConfig;
use crate::httpd::ffi;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use std::cell::Cell;

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

/// `io.TextIOWrapper(buffer, "utf-8", "replace", None, line_buffering=True,
/// write_through=True)`: each line reaches the buffer, and so the log, as
/// soon as it is complete, and text Python cannot encode is replaced rather
/// than raising in the middle of a request.
fn text_stream<'py>(py: Python<'py>, buffer: Bound<'py, LogBuffer>) -> PyResult<Bound<'py, PyAny>> {
    py.import("io")?.getattr("TextIOWrapper")?.call1((buffer, "utf-8", "replace", py.None(), true, true))
}

/// The buffers under sys.stdout and sys.stderr, reopened at each request
/// in case an application closed them.
static PROCESS_BUFFERS: PyOnceLock<Vec<Py<LogBuffer>>> = PyOnceLock::new();

/// Installs the streams the configuration asks for, and `sys.argv` as
/// mod_wsgi sets it (libraries that read `sys.argv[0]` need one element).
pub fn install(py: Python<'_>, s: *mut ffi::server_rec, settings: &InterpreterConfig) -> PyResult<()> {
    let sys = py.import("sys")?;
    sys.setattr("argv", vec!["mod_wsgi"])?;
    let mut buffers = Vec::new();
    let mut log_stream = |name: &'static str| -> PyResult<Bound<'_, PyAny>> {
        let buffer = Bound::new(py, LogBuffer::new(name, Requests::OfWritingThread, s))?;
        buffers.push(buffer.clone().unbind());
        text_stream(py, buffer)
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
    let _ = PROCESS_BUFFERS.set(py, buffers);
    Ok(())
}

thread_local! {
    // This thread's wsgi.errors stream and its buffer: strong references
    // taken once and never released (the thread lives as long as the
    // child). Const-initialised with no destructor, so nothing is left
    // registered that could outlive this DSO.
    static THREAD_ERRORS: Cell<(*mut pyo3::ffi::PyObject, *mut pyo3::ffi::PyObject)> =
        const { Cell::new((std::ptr::null_mut(), std::ptr::null_mut())) };
}

/// `wsgi.errors` for the request a thread is running: one text stream per
/// Apache thread, made once and pointed at each request in turn (making an
/// `io.TextIOWrapper` costs several microseconds, a noticeable part of a
/// small request). Its lines carry the request's client address whichever
/// thread writes them; once the request is over, a stream an application
/// kept writes plain server lines.
pub struct RequestErrors<'py> {
    stream: Bound<'py, PyAny>,
    buffer: Bound<'py, LogBuffer>,
}

impl<'py> RequestErrors<'py> {
    pub fn enter(py: Python<'py>, r: *mut ffi::request_rec) -> PyResult<Self> {
        if let Some(buffers) = PROCESS_BUFFERS.get(py) {
            buffers.iter().for_each(|b| b.get().reopen());
        }
        let (stream, buffer) = match THREAD_ERRORS.with(Cell::get) {
            (stream, buffer) if !stream.is_null() => {
                // SAFETY: both pointers are the strong references stored
                // below by this thread, never released, so still valid;
                // this thread holds the GIL.
                unsafe {
                    (
                        Bound::from_borrowed_ptr(py, stream),
                        Bound::from_borrowed_ptr(py, buffer).cast_into_unchecked::<LogBuffer>(),
                    )
                }
            }
            _ => {
                let requests = Requests::InSlot(RequestSlot::new(std::ptr::null_mut()));
                // SAFETY: r is the live request; its server outlives it.
                let buffer = Bound::new(py, LogBuffer::new("<wsgi.errors>", requests, unsafe { (*r).server }))?;
                let stream = text_stream(py, buffer.clone())?;
                THREAD_ERRORS.with(|c| c.set((stream.clone().into_ptr(), buffer.clone().into_any().into_ptr())));
                (stream, buffer)
            }
        };
        buffer.get().reopen();
        if let Some(slot) = buffer.get().slot() {
            slot.set(r);
        }
        Ok(Self { stream, buffer })
    }

    pub fn stream(&self) -> &Bound<'py, PyAny> {
        &self.stream
    }

    /// Logs what the application left unterminated, then detaches the
    /// stream from the finished request.
    pub fn finish(&self) {
        let py = self.stream.py();
        let flushed = self.stream.call_method0(pyo3::intern!(py, "flush"));
        // A stream that cannot flush although its buffer is open was
        // detached from it by the application: the next request gets a
        // new one. (A closed one opens again by itself.)
        if flushed.is_err() && !self.buffer.get().closed() {
            THREAD_ERRORS.with(|c| {
                let (stream, buffer) = c.replace((std::ptr::null_mut(), std::ptr::null_mut()));
                // SAFETY: the strong references stored in enter(); this
                // thread holds the GIL, and self keeps both objects alive.
                unsafe {
                    pyo3::ffi::Py_DecRef(stream);
                    pyo3::ffi::Py_DecRef(buffer);
                }
            });
        }
        self.buffer.get().flush_pending(py, true);
        if let Some(slot) = self.buffer.get().slot() {
            slot.clear();
        }
    }
}
