//! `sys.stdout`, `sys.stderr` and `wsgi.errors`: text streams whose lines
//! go to the error log, each with a `.buffer` that takes bytes, as the
//! `io.TextIOWrapper`s mod_wsgi installs do (UTF-8, errors replaced, line
//! buffered). They are registered as `io.TextIOBase` subclasses. A Rust
//! stream rather than a TextIOWrapper over a Rust buffer: print() then
//! costs two calls into this module instead of five.

use super::logging::{self, Level, RequestLog};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Which request a stream's lines are logged with (the transport then adds
/// the client address); without one they go to the process log.
pub enum Target {
    /// `sys.stdout`/`sys.stderr`: whichever request the writing thread is
    /// running the application for.
    WritingThread,
    /// `wsgi.errors`: its request, whichever thread writes, until the
    /// request ends (None from then on).
    Request(Mutex<Option<Arc<dyn RequestLog>>>),
}

/// What a text stream and its `.buffer` share: the line assembly.
pub struct Lines {
    name: &'static str,
    target: Target,
    /// Bytes after the last newline, held until the line is complete or
    /// the stream is flushed, so each log line carries a whole line.
    pending: Mutex<Vec<u8>>,
    /// Set by close(). Writes then raise ValueError as on any closed file;
    /// see [`Lines::reopen`] for why that does not last.
    closed: AtomicBool,
}

impl Lines {
    pub fn new(name: &'static str, target: Target) -> Arc<Self> {
        Arc::new(Self { name, target, pending: Mutex::new(Vec::new()), closed: AtomicBool::new(false) })
    }

    /// Closing the error log is not something an application can really
    /// do: a process stream is opened again when the next request starts,
    /// so later output is not lost.
    pub fn reopen(&self) {
        if self.closed.load(Ordering::Relaxed) {
            self.closed.store(false, Ordering::Relaxed);
        }
    }

    /// Detaches a request's stream from its finished request, logging what
    /// it still held.
    pub fn finish(&self, py: Python<'_>) {
        self.flush(py, true);
        if let Target::Request(log) = &self.target {
            *log.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    fn check_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(PyValueError::new_err("I/O operation on closed file."));
        }
        Ok(())
    }

    /// Appends `bytes`, logging the lines they complete.
    fn write(&self, py: Python<'_>, bytes: &[u8]) -> PyResult<()> {
        self.check_open()?;
        let completes_a_line = bytes.contains(&b'\n');
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(bytes);
        if completes_a_line {
            self.flush(py, false);
        }
        Ok(())
    }

    /// Logs the complete lines held (everything, if `all`), with the GIL
    /// released: the write to the log file may block.
    fn flush(&self, py: Python<'_>, all: bool) {
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

    fn emit(&self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        match &self.target {
            Target::WritingThread => logging::current(Level::Err, &text),
            // Written under the lock, so the request cannot end (and its
            // log go) in the middle.
            Target::Request(log) => match &*log.lock().unwrap_or_else(|e| e.into_inner()) {
                Some(log) => log.write(Level::Err, &text),
                None => logging::process(Level::Err, &text),
            },
        }
    }

    fn close(&self, py: Python<'_>) {
        if !self.closed.load(Ordering::Relaxed) {
            self.flush(py, true);
            self.closed.store(true, Ordering::Relaxed);
        }
    }
}

/// io.UnsupportedOperation (an OSError and a ValueError), what Python's
/// own streams raise for operations they cannot do.
fn unsupported(py: Python<'_>, message: &str) -> PyErr {
    match py.import("io").and_then(|io| io.getattr("UnsupportedOperation")) {
        Ok(class) => match class.call1((message,)) {
            Ok(err) => PyErr::from_value(err),
            Err(err) => err,
        },
        Err(err) => err,
    }
}

/// There is no descriptor to write to; code probing for one expects
/// io.UnsupportedOperation.
fn no_descriptor(py: Python<'_>) -> PyErr {
    unsupported(py, "the error log has no file descriptor")
}

/// The text stream.
#[pyclass(module = "mod_wsgi_rs", frozen)]
pub struct LogStream {
    lines: Arc<Lines>,
    /// `.buffer`, made when first asked for.
    buffer: PyOnceLock<Py<LogBuffer>>,
}

impl LogStream {
    pub fn new(lines: Arc<Lines>) -> Self {
        Self { lines, buffer: PyOnceLock::new() }
    }

    pub fn lines(&self) -> &Arc<Lines> {
        &self.lines
    }
}

#[pymethods]
impl LogStream {
    /// Text Python cannot encode as UTF-8 (lone surrogates) is replaced.
    fn write(&self, py: Python<'_>, text: &Bound<'_, PyString>) -> PyResult<usize> {
        let text = text.to_string_lossy();
        self.lines.write(py, text.as_bytes())?;
        Ok(text.chars().count())
    }

    fn writelines(&self, py: Python<'_>, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(py, line?.cast::<PyString>()?)?;
        }
        Ok(())
    }

    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.lines.check_open()?;
        self.lines.flush(py, true);
        Ok(())
    }

    fn close(&self, py: Python<'_>) {
        self.lines.close(py);
    }

    #[getter]
    fn closed(&self) -> bool {
        self.lines.closed.load(Ordering::Relaxed)
    }

    #[getter]
    fn buffer(&self, py: Python<'_>) -> PyResult<Py<LogBuffer>> {
        self.buffer
            .get_or_try_init(py, || Py::new(py, LogBuffer { lines: self.lines.clone() }))
            .map(|b| b.clone_ref(py))
    }

    #[getter]
    fn name(&self) -> &'static str {
        self.lines.name
    }

    #[getter]
    fn encoding(&self) -> &'static str {
        "utf-8"
    }

    #[getter]
    fn errors(&self) -> &'static str {
        "replace"
    }

    #[getter]
    fn line_buffering(&self) -> bool {
        true
    }

    #[getter]
    fn write_through(&self) -> bool {
        true
    }

    #[getter]
    fn newlines(&self, py: Python<'_>) -> Py<PyAny> {
        py.None()
    }

    #[getter]
    fn mode(&self) -> &'static str {
        "w"
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

    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        Err(no_descriptor(py))
    }

    fn detach(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Err(unsupported(py, "the error log has no separate buffer to detach"))
    }

    // What a TextIOWrapper over a write-only buffer answers to reads and
    // seeks: io.UnsupportedOperation.
    #[pyo3(signature = (*_args))]
    fn read(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<Py<PyAny>> {
        Err(unsupported(py, "not readable"))
    }

    #[pyo3(signature = (*_args))]
    fn readline(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<Py<PyAny>> {
        Err(unsupported(py, "not readable"))
    }

    #[pyo3(signature = (*_args))]
    fn readlines(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<Py<PyAny>> {
        Err(unsupported(py, "not readable"))
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Err(unsupported(py, "not readable"))
    }

    #[pyo3(signature = (*_args))]
    fn seek(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<Py<PyAny>> {
        Err(unsupported(py, "underlying stream is not seekable"))
    }

    fn tell(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Err(unsupported(py, "underlying stream is not seekable"))
    }

    fn __repr__(&self) -> String {
        format!("<mod_wsgi_rs.LogStream name='{}' encoding='utf-8'>", self.lines.name)
    }
}

/// `.buffer`: the same lines, written as bytes.
#[pyclass(module = "mod_wsgi_rs", frozen)]
pub struct LogBuffer {
    lines: Arc<Lines>,
}

#[pymethods]
impl LogBuffer {
    /// Takes any bytes-like object, as a binary file's write() does.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        if let Ok(bytes) = data.cast::<PyBytes>() {
            self.lines.write(py, bytes.as_bytes())?;
            return Ok(bytes.as_bytes().len());
        }
        let buffer = pyo3::buffer::PyBuffer::<u8>::get(data)?;
        let bytes = buffer.to_vec(py)?;
        self.lines.write(py, &bytes)?;
        Ok(bytes.len())
    }

    fn writelines(&self, py: Python<'_>, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(py, &line?)?;
        }
        Ok(())
    }

    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.lines.check_open()?;
        self.lines.flush(py, true);
        Ok(())
    }

    fn close(&self, py: Python<'_>) {
        self.lines.close(py);
    }

    #[getter]
    fn closed(&self) -> bool {
        self.lines.closed.load(Ordering::Relaxed)
    }

    #[getter]
    fn name(&self) -> &'static str {
        self.lines.name
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

    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        Err(no_descriptor(py))
    }
}
