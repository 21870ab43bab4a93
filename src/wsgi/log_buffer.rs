//! The binary writer under `sys.stdout`, `sys.stderr` and `wsgi.errors`:
//! bytes in, lines out to Apache's error log. The text streams applications
//! see are `io.TextIOWrapper`s over it (see std_streams), so `.buffer`,
//! `encoding` and the rest behave as Python's own streams do.

use super::errors::current_request;
use super::RequestSlot;
use crate::httpd::{consts, ffi, log};
use pyo3::prelude::*;
use pyo3::types::PyString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Which request a [`LogBuffer`]'s lines are logged with (Apache then adds
/// the client address); without one they are plain server lines.
pub(crate) enum Requests {
    /// `sys.stdout`/`sys.stderr`: whichever request the writing thread is
    /// running the application for.
    OfWritingThread,
    /// `wsgi.errors`: the request set in the slot by the thread that owns
    /// this stream, whichever thread writes.
    InSlot(RequestSlot),
}

#[pyclass(module = "mod_wsgi_rs", frozen)]
pub struct LogBuffer {
    name: &'static str,
    requests: Requests,
    /// The main server, for lines written outside any request.
    server: usize,
    /// Bytes after the last newline, held until the line is complete or
    /// the stream is flushed, so each log line carries a whole line.
    pending: Mutex<Vec<u8>>,
    /// Set by close(). Closing the error log is not something an
    /// application can really do, so the stream opens again when the next
    /// request starts (see [`LogBuffer::reopen`]) and later output is not
    /// lost; until then writes raise as on any closed file.
    closed: AtomicBool,
}

impl LogBuffer {
    pub(crate) fn new(name: &'static str, requests: Requests, s: *const ffi::server_rec) -> Self {
        Self { name, requests, server: s as usize, pending: Mutex::new(Vec::new()), closed: AtomicBool::new(false) }
    }

    pub(crate) fn slot(&self) -> Option<&RequestSlot> {
        match &self.requests {
            Requests::InSlot(slot) => Some(slot),
            Requests::OfWritingThread => None,
        }
    }

    pub fn reopen(&self) {
        if self.closed.load(Ordering::Relaxed) {
            self.closed.store(false, Ordering::Relaxed);
        }
    }

    fn emit(&self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let r = match &self.requests {
            Requests::InSlot(slot) => slot.get(),
            Requests::OfWritingThread => current_request(),
        };
        match r {
            Some(r) => log::request(r, consts::APLOG_ERR, &text),
            None => log::server(self.server as *const ffi::server_rec, consts::APLOG_ERR, &text),
        }
    }

    /// Logs the complete lines held (everything, if `all`), with the GIL
    /// released: the write to the log file may block.
    pub fn flush_pending(&self, py: Python<'_>, all: bool) {
        let ready = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let cut = if all { pending.len() } else { pending.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) };
            if cut == 0 {
                return;
            }
            pending.drain(..cut).collect::<Vec<u8>>()
        };
        py.detach(|| self.emit(&ready));
    }

    fn check_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(pyo3::exceptions::PyValueError::new_err("I/O operation on closed file."));
        }
        Ok(())
    }
}

#[pymethods]
impl LogBuffer {
    /// Takes any bytes-like object, as a binary file's write() does; a str
    /// is accepted too, encoded as UTF-8, for code that writes text to
    /// `.buffer` by mistake.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.check_open()?;
        let len = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(text) = data.cast::<PyString>() {
                let text = text.to_cow()?;
                pending.extend_from_slice(text.as_bytes());
                text.len()
            } else {
                let buffer = pyo3::buffer::PyBuffer::<u8>::get(data)?;
                let start = pending.len();
                pending.resize(start + buffer.len_bytes(), 0);
                buffer.copy_to_slice(py, &mut pending[start..])?;
                buffer.len_bytes()
            }
        };
        self.flush_pending(py, false);
        Ok(len)
    }

    fn writelines(&self, py: Python<'_>, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(py, &line?)?;
        }
        Ok(())
    }

    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.check_open()?;
        self.flush_pending(py, true);
        Ok(())
    }

    fn close(&self, py: Python<'_>) {
        if !self.closed.load(Ordering::Relaxed) {
            self.flush_pending(py, true);
            self.closed.store(true, Ordering::Relaxed);
        }
    }

    #[getter]
    pub fn closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    #[getter]
    fn name(&self) -> &'static str {
        self.name
    }

    #[getter]
    fn mode(&self) -> &'static str {
        "wb"
    }

    fn isatty(&self) -> bool {
        false
    }

    fn writable(&self) -> bool {
        true
    }

    fn readable(&self) -> bool {
        false
    }

    fn seekable(&self) -> bool {
        false
    }

    /// There is no descriptor to write to; io.UnsupportedOperation (an
    /// OSError) is what code probing for one expects.
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        let unsupported = py.import("io")?.getattr("UnsupportedOperation")?;
        Err(PyErr::from_value(unsupported.call1(("the error log has no file descriptor",))?))
    }
}
