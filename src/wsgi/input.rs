//! `wsgi.input`: the request body, read from the transport's
//! [`BodySource`] with the GIL released while waiting on the client.

use super::flusher::Deferred;
use super::transport::{BodyError, BodySource};
use super::{ConnectionLock, SameThread};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::PyBytes;
use std::mem::MaybeUninit;
use std::sync::{Mutex, Weak};

/// The most read from the transport at once.
const BLOCK: usize = 64 * 1024;

struct Body {
    /// None once the request has finished: the source belongs to it.
    source: Option<Box<dyn BodySource>>,
    /// Read from the client but not yet returned (readline's lookahead).
    buffered: Vec<u8>,
    /// Body bytes still to come, when the request declared a
    /// Content-Length (None for chunked bodies).
    remaining: Option<u64>,
    finished: bool,
    /// Why reading failed, kept so the caller can tell the application's
    /// own errors from a body that could not be read.
    failure: Option<BodyError>,
}

#[pyclass(module = "mod_wsgi_rs", frozen)]
pub struct Input {
    connection: ConnectionLock,
    /// The response's held streamed output, flushed before each wait for
    /// the client: an application that yields and then reads more of the
    /// body must not keep its reply waiting on the client's upload.
    output: Weak<dyn Deferred>,
    body: Mutex<Body>,
}

impl Input {
    pub fn new(source: Box<dyn BodySource>, connection: ConnectionLock, output: Weak<dyn Deferred>) -> Self {
        let remaining = source.declared_length();
        Self {
            connection,
            output,
            body: Mutex::new(Body { source: Some(source), buffered: Vec::new(), remaining, finished: false, failure: None }),
        }
    }

    /// Lets go of the request's body: later reads raise.
    pub fn finish(&self) {
        self.body.lock().unwrap_or_else(|e| e.into_inner()).source = None;
    }

    /// Why a body read failed, if one failed.
    pub fn failure(&self) -> Option<BodyError> {
        self.body.lock().unwrap_or_else(|e| e.into_inner()).failure.clone()
    }

    /// Reads up to `max` (> 0) bytes of the body into `dest` with the GIL
    /// released; 0 at the end of the body.
    ///
    /// # Safety
    /// `dest` must be valid for writes of `max` bytes, and not be memory
    /// another thread may touch while the GIL is released.
    unsafe fn read_into(&self, py: Python<'_>, body: &mut Body, dest: *mut u8, max: usize) -> PyResult<usize> {
        if let Some(failure) = &body.failure {
            return Err(PyOSError::new_err(failure.reason.clone()));
        }
        if body.source.is_none() {
            return Err(PyOSError::new_err("wsgi.input used after the request finished"));
        }
        if let Some(output) = self.output.upgrade() {
            // Busy means the flusher thread is writing it right now.
            py.detach(|| output.flush_deferred());
        }
        // Kept for the whole read: the flusher thread must not write to
        // this connection meanwhile.
        let _connection = self.connection.lock_py_attached(py).unwrap_or_else(|e| e.into_inner());
        let dest = SameThread(dest);
        while !body.finished {
            let source = body.source.as_mut().expect("checked above");
            let outcome = py.detach(move || {
                // SAFETY: the caller vouches for `max` writable bytes at
                // dest, touched by nothing else meanwhile; they are treated
                // as uninitialised.
                let dest = unsafe { std::slice::from_raw_parts_mut(dest.get().cast::<MaybeUninit<u8>>(), max) };
                source.read(dest)
            });
            let (len, eos) = match outcome {
                Ok(read) => read,
                Err(failure) => {
                    let reason = failure.reason.clone();
                    body.failure = Some(failure);
                    return Err(PyOSError::new_err(reason));
                }
            };
            body.finished = eos;
            if let Some(remaining) = body.remaining.as_mut() {
                *remaining = remaining.saturating_sub(len as u64);
            }
            if len > 0 {
                return Ok(len);
            }
        }
        Ok(0)
    }

    /// Reads one block into `body.buffered`; false at the end of the body.
    fn fill(&self, py: Python<'_>, body: &mut Body) -> PyResult<bool> {
        let start = body.buffered.len();
        body.buffered.reserve(BLOCK);
        let dest = body.buffered.spare_capacity_mut().as_mut_ptr().cast::<u8>();
        // SAFETY: `dest` is BLOCK bytes of spare capacity of a Vec that only
        // this call (holding the body's lock) touches.
        let len = unsafe { self.read_into(py, body, dest, BLOCK)? };
        // SAFETY: read_into initialised `len` bytes of the spare capacity.
        unsafe { body.buffered.set_len(start + len) };
        Ok(len > 0)
    }

    /// `n` bytes (fewer at the end of the body) read from the client
    /// straight into a new bytes object: the usual `read(CONTENT_LENGTH)`
    /// of a whole body costs one copy, not two.
    fn read_direct<'py>(&self, py: Python<'py>, body: &mut Body, n: usize) -> PyResult<Bound<'py, PyBytes>> {
        // SAFETY: a bytes object created with a null buffer has `n`
        // writable bytes; nobody else can see it until it is returned, so
        // filling it with the GIL released is sound. _PyBytes_Resize may
        // shrink it (only while its refcount is 1, as here) and on failure
        // frees it and sets an exception.
        unsafe {
            let mut obj = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), n as pyo3::ffi::Py_ssize_t);
            if obj.is_null() {
                return Err(PyErr::fetch(py));
            }
            let buf = pyo3::ffi::PyBytes_AsString(obj).cast::<u8>();
            let mut filled = 0;
            while filled < n {
                match self.read_into(py, body, buf.add(filled), (n - filled).min(BLOCK)) {
                    Ok(0) => break,
                    Ok(len) => filled += len,
                    Err(err) => {
                        pyo3::ffi::Py_DecRef(obj);
                        return Err(err);
                    }
                }
            }
            if filled < n && pyo3::ffi::_PyBytes_Resize(&mut obj, filled as pyo3::ffi::Py_ssize_t) != 0 {
                return Err(PyErr::fetch(py));
            }
            Ok(Bound::from_owned_ptr(py, obj).cast_into_unchecked())
        }
    }

    /// Up to `limit` bytes (all if None), ending after the first newline
    /// when `line` is set.
    fn take<'py>(&self, py: Python<'py>, limit: Option<usize>, line: bool) -> PyResult<Bound<'py, PyBytes>> {
        // Waiting with the GIL released: the holder may itself be waiting
        // for the GIL after reading from the client.
        let mut body = self.body.lock_py_attached(py).unwrap_or_else(|e| e.into_inner());
        // Whole reads of a body of known length skip the buffer.
        if !line && body.buffered.is_empty() && !body.finished {
            if let Some(remaining) = body.remaining.filter(|&r| r > 0) {
                let want = limit.map_or(remaining, |n| (n as u64).min(remaining)) as usize;
                if want > 0 {
                    return self.read_direct(py, &mut body, want);
                }
            }
        }
        let mut scanned = 0;
        loop {
            let available = body.buffered.len();
            let newline = line
                .then(|| body.buffered[scanned..].iter().position(|&b| b == b'\n'))
                .flatten()
                .map(|i| scanned + i + 1);
            let enough = limit.is_some_and(|n| available >= n);
            if newline.is_some() || enough {
                let end = newline.unwrap_or(available).min(limit.unwrap_or(available));
                return Ok(take_front(py, &mut body.buffered, end));
            }
            scanned = available;
            if !self.fill(py, &mut body)? {
                let end = limit.unwrap_or(available).min(available);
                return Ok(take_front(py, &mut body.buffered, end));
            }
        }
    }
}

/// The first `end` bytes of `buffered` as a bytes object, removed from it.
fn take_front<'py>(py: Python<'py>, buffered: &mut Vec<u8>, end: usize) -> Bound<'py, PyBytes> {
    let bytes = PyBytes::new(py, &buffered[..end]);
    if end == buffered.len() {
        buffered.clear();
    } else {
        buffered.drain(..end);
    }
    bytes
}

fn size_limit(size: Option<isize>) -> Option<usize> {
    size.filter(|&n| n >= 0).map(|n| n as usize)
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        self.take(py, size_limit(size), false)
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        self.take(py, size_limit(size), true)
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = size_limit(hint).filter(|&n| n > 0);
        let mut lines = Vec::new();
        let mut total = 0;
        loop {
            let line = self.take(py, None, true)?;
            if line.as_bytes().is_empty() {
                break;
            }
            total += line.as_bytes().len();
            lines.push(line);
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.take(py, None, true)?;
        Ok((!line.as_bytes().is_empty()).then_some(line))
    }

    /// PEP 3333 says applications should not close the input; some do
    /// anyway, so it is accepted and ignored, as mod_wsgi does.
    fn close(&self) {}
}
