//! `wsgi.input`: the request body, read through Apache's input filters
//! with the GIL released while waiting on the client.

use super::{RequestSlot, SameThread};
use crate::httpd::ffi;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::PyBytes;
use std::sync::Mutex;

const BLOCK: usize = 64 * 1024;

struct Body {
    /// Read from the client but not yet returned (readline's lookahead).
    buffered: Vec<u8>,
    /// ap_should_client_block must be called once before the first read;
    /// it is also what sends `100 Continue` when the client asked for it.
    started: bool,
    finished: bool,
}

#[pyclass(module = "mod_wsgi_rs", frozen)]
pub struct Input {
    request: RequestSlot,
    body: Mutex<Body>,
}

impl Input {
    pub fn new(r: *mut ffi::request_rec) -> Self {
        Self {
            request: RequestSlot::new(r),
            body: Mutex::new(Body { buffered: Vec::new(), started: false, finished: false }),
        }
    }

    pub fn finish(&self) {
        self.request.clear();
    }

    /// Reads one block from the client into `body.buffered`; false at the
    /// end of the body.
    fn fill(&self, py: Python<'_>, body: &mut Body) -> PyResult<bool> {
        if body.finished {
            return Ok(false);
        }
        let r = self
            .request
            .get()
            .ok_or_else(|| PyOSError::new_err("wsgi.input used after the request finished"))?;
        let started = body.started;
        let mut block = vec![0u8; BLOCK];
        let buf = SameThread(block.as_mut_ptr());
        let r = SameThread(r);
        let read = py.detach(move || {
            let r = r.get();
            // SAFETY: r is live (the slot is set only while the handler
            // runs); ap_setup_client_block was called by the handler before
            // the application started; `block` has BLOCK writable bytes.
            unsafe {
                if !started && ffi::ap_should_client_block(r) == 0 {
                    return 0;
                }
                ffi::ap_get_client_block(r, buf.get().cast(), BLOCK)
            }
        });
        body.started = true;
        match read {
            n if n > 0 => {
                body.buffered.extend_from_slice(&block[..n as usize]);
                Ok(true)
            }
            0 => {
                body.finished = true;
                Ok(false)
            }
            _ => {
                body.finished = true;
                Err(PyOSError::new_err(
                    "error reading the request body (client disconnected or timed out)",
                ))
            }
        }
    }

    /// Up to `limit` bytes (all if None), ending after the first newline
    /// when `line` is set.
    fn take(&self, py: Python<'_>, limit: Option<usize>, line: bool) -> PyResult<Vec<u8>> {
        // Waiting with the GIL released: the holder may itself be waiting
        // for the GIL after reading from the client.
        let mut body = self.body.lock_py_attached(py).unwrap_or_else(|e| e.into_inner());
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
                return Ok(body.buffered.drain(..end).collect());
            }
            scanned = available;
            if !self.fill(py, &mut body)? {
                let end = limit.unwrap_or(available).min(available);
                return Ok(body.buffered.drain(..end).collect());
            }
        }
    }
}

fn size_limit(size: Option<isize>) -> Option<usize> {
    size.filter(|&n| n >= 0).map(|n| n as usize)
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.take(py, size_limit(size), false)?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.take(py, size_limit(size), true)?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = size_limit(hint).filter(|&n| n > 0);
        let mut lines = Vec::new();
        let mut total = 0;
        loop {
            let line = self.take(py, None, true)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.push(PyBytes::new(py, &line));
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
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }

    /// PEP 3333 says applications should not close the input; some do
    /// anyway, so it is accepted and ignored, as mod_wsgi does.
    fn close(&self) {}
}
