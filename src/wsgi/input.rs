//! `wsgi.input`: the request body, read through Apache's input filters
//! with the GIL released while waiting on the client.

use super::flusher::Deferred;
use super::{ConnectionLock, RequestSlot, SameThread};
use crate::httpd::{consts, ffi};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::PyBytes;
use std::ffi::c_int;
use std::sync::{Mutex, Weak};

/// The most read from the input filters at once.
const BLOCK: usize = 64 * 1024;

struct Body {
    /// Read from the client but not yet returned (readline's lookahead).
    buffered: Vec<u8>,
    /// Body bytes still to come, when the request declared a
    /// Content-Length (None for chunked bodies).
    remaining: Option<u64>,
    finished: bool,
    /// Why reading failed: the status the handler should end with and the
    /// reason, kept so the handler can tell the application's own errors
    /// from a body that could not be read.
    failure: Option<(c_int, String)>,
}

#[pyclass(module = "mod_wsgi_rs", frozen)]
pub struct Input {
    request: RequestSlot,
    connection: ConnectionLock,
    /// The response's held streamed output, flushed before each wait for
    /// the client: an application that yields and then reads more of the
    /// body must not keep its reply waiting on the client's upload.
    output: Weak<dyn Deferred>,
    body: Mutex<Body>,
}

impl Input {
    pub fn new(r: *mut ffi::request_rec, connection: ConnectionLock, output: Weak<dyn Deferred>) -> Self {
        // SAFETY: r is the live request; ap_setup_client_block has set
        // read_chunked and, for a declared length, remaining.
        let remaining = unsafe { ((*r).read_chunked == 0).then(|| (*r).remaining.max(0) as u64) };
        Self {
            request: RequestSlot::new(r),
            connection,
            output,
            body: Mutex::new(Body { buffered: Vec::new(), remaining, finished: false, failure: None }),
        }
    }

    pub fn finish(&self) {
        self.request.clear();
    }

    /// The status and reason of a failed body read, if one failed.
    pub fn failure(&self) -> Option<(c_int, String)> {
        self.body.lock().unwrap_or_else(|e| e.into_inner()).failure.clone()
    }

    /// Reads up to `max` (> 0) bytes of the body into `dest` with the GIL
    /// released; 0 at the end of the body. The HTTP input filter sends
    /// `100 Continue` on the first read if the client asked for it,
    /// de-chunks, and enforces LimitRequestBody.
    ///
    /// # Safety
    /// `dest` must be valid for writes of `max` bytes, and not be memory
    /// another thread may touch while the GIL is released.
    unsafe fn read_into(&self, py: Python<'_>, body: &mut Body, dest: *mut u8, max: usize) -> PyResult<usize> {
        if let Some((_, reason)) = &body.failure {
            return Err(PyOSError::new_err(reason.clone()));
        }
        let r = self
            .request
            .get()
            .ok_or_else(|| PyOSError::new_err("wsgi.input used after the request finished"))?;
        let (r, dest) = (SameThread(r), SameThread(dest));
        if let Some(output) = self.output.upgrade() {
            // Busy means the flusher thread is writing it right now.
            py.detach(|| output.flush_deferred());
        }
        // Kept for the whole read: the flusher thread must not write to
        // this connection meanwhile.
        let _connection = self.connection.lock_py_attached(py).unwrap_or_else(|e| e.into_inner());
        while !body.finished {
            let (status, len, eos) = py.detach(move || {
                let r = r.get();
                // SAFETY: r is live (the slot is set only while the handler
                // runs). The brigade lives in the request pool; a READBYTES
                // read returns at most `max` bytes, and flatten copies at
                // most `max` into `dest`, which the caller vouches for.
                unsafe {
                    let bb = ffi::apr_brigade_create((*r).pool, (*(*r).connection).bucket_alloc);
                    let status = ffi::ap_get_brigade(
                        (*r).input_filters,
                        bb,
                        consts::AP_MODE_READBYTES,
                        consts::APR_BLOCK_READ,
                        max as ffi::apr_off_t,
                    );
                    let mut len = max;
                    let eos = ffi::wsgi_rs_brigade_ends_with_eos(bb) != 0;
                    if status != consts::APR_SUCCESS
                        || ffi::apr_brigade_flatten(bb, dest.get().cast(), &mut len) != consts::APR_SUCCESS
                    {
                        len = 0;
                    }
                    ffi::apr_brigade_destroy(bb);
                    (status, len, eos)
                }
            });
            if status != consts::APR_SUCCESS {
                let failure = read_failure(status);
                body.failure = Some(failure.clone());
                return Err(PyOSError::new_err(failure.1));
            }
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

/// The handler status and the OSError text for a failed read. Apache's
/// HTTP input filter answers some failures itself (413 over
/// LimitRequestBody, 400 for broken chunking) and reports AP_FILTER_ERROR;
/// anything else is the connection failing under us.
fn read_failure(status: c_int) -> (c_int, String) {
    if status == consts::AP_FILTER_ERROR {
        return (
            consts::AP_FILTER_ERROR,
            "request body rejected by Apache (over LimitRequestBody, or malformed)".to_owned(),
        );
    }
    if status == consts::APR_TIMEUP {
        return (
            consts::HTTP_REQUEST_TIME_OUT,
            "timed out waiting for the request body (Apache's Timeout)".to_owned(),
        );
    }
    if status == consts::APR_INCOMPLETE || status == consts::APR_EOF {
        return (
            consts::HTTP_BAD_REQUEST,
            "the client closed the connection before sending the whole request body".to_owned(),
        );
    }
    let mut text = [0u8; 256];
    // SAFETY: apr_strerror writes a NUL-terminated message of at most the
    // given size into the buffer and returns it.
    let reason = unsafe {
        let p = ffi::apr_strerror(status, text.as_mut_ptr().cast(), text.len());
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    };
    (consts::HTTP_BAD_REQUEST, format!("error reading the request body: {reason}"))
}
