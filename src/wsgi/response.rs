//! The response side of WSGI: `start_response`, `write`, and moving body
//! bytes to the transport's [`ResponseSink`].

use super::events;
use super::file_wrapper::FileRegion;
use super::flusher::{self, Attempt, Deferred};
use super::transport::ResponseSink;
use super::{rules, type_name, ConnectionLock};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::{MutexExt, PyOnceLock};
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use std::sync::{Arc, Mutex, Weak};

/// Body bytes are held in the sink up to this size before being passed
/// on, so small writes become few large network writes.
const PASS_THRESHOLD: usize = 64 * 1024;

/// Body items at least this large are handed to the transport in place
/// rather than copied.
const ZERO_COPY_MIN: usize = 32 * 1024;

struct State {
    /// None once the request has finished: later writes raise.
    output: Option<Box<dyn ResponseSink>>,
    status: Option<(u16, String)>,
    headers: Vec<(String, String)>,
    /// The Content-Length the application declared, if any.
    content_length: Option<u64>,
    /// Body bytes accepted so far (after any cut to Content-Length).
    sent: u64,
    /// Body bytes dropped because they went beyond the declared
    /// Content-Length (reported once the response is complete).
    dropped: u64,
    /// Whether status and headers have gone to the sink; from then on the
    /// response can only be completed or cut short.
    committed: bool,
    buffered: usize,
    /// Bytes objects that appended data points into; released once a
    /// flush has written them. Empty whenever `output` is None, so that
    /// dropping a finished State never needs the GIL.
    pinned: Vec<Py<PyBytes>>,
    /// Streamed bytes wait in the sink and the flusher is armed to send
    /// them if the application does not come back soon.
    deferred: bool,
    /// Why a flush made by the flusher thread failed; the application
    /// learns of it at its next write.
    failed: Option<i32>,
}

/// What the request thread and the flusher thread share.
struct Shared {
    state: Mutex<State>,
    /// Taken by the flusher, besides `state`, so it never writes while the
    /// application reads wsgi.input on the same connection.
    connection: ConnectionLock,
}

#[pyclass(module = "mod_wsgi_rs", frozen)]
pub struct StartResponse {
    shared: Arc<Shared>,
}

impl StartResponse {
    pub fn new(sink: Box<dyn ResponseSink>, connection: ConnectionLock) -> Self {
        let state = State {
            output: Some(sink),
            status: None,
            headers: Vec::new(),
            content_length: None,
            sent: 0,
            dropped: 0,
            committed: false,
            buffered: 0,
            pinned: Vec::new(),
            deferred: false,
            failed: None,
        };
        Self { shared: Arc::new(Shared { state: Mutex::new(state), connection }) }
    }

    /// A handle through which wsgi.input flushes held streamed output
    /// before it waits for the client.
    pub fn deferred_output(&self) -> Weak<dyn Deferred> {
        let this: Arc<dyn Deferred> = self.shared.clone();
        Arc::downgrade(&this)
    }

    /// The status code start_response was given, 0 if it was not called.
    pub fn status_code(&self, py: Python<'_>) -> u16 {
        self.lock(py).status.as_ref().map_or(0, |(code, _)| *code)
    }

    /// Whether the response has started on the wire.
    pub fn committed(&self, py: Python<'_>) -> bool {
        self.lock(py).committed
    }

    fn lock<'a>(&'a self, py: Python<'_>) -> std::sync::MutexGuard<'a, State> {
        // Waiting with the GIL released: the holder may be passing data to
        // the network with the GIL released and need it back afterwards.
        self.shared.state.lock_py_attached(py).unwrap_or_else(|e| e.into_inner())
    }

    /// Appends body bytes. A `streamed` item (from an iterator or
    /// `write()`) must reach the client even if the application then
    /// takes its time: it goes out with the next item, or within
    /// flusher::FLUSH_DELAY. Other bytes (a list body) may wait for the
    /// end of the response. Bytes beyond a declared Content-Length are
    /// dropped. Large items are not copied: the transport reads them from
    /// the bytes object, which is kept alive until a flush has written them.
    pub fn send(&self, py: Python<'_>, bytes: &Bound<'_, PyBytes>, streamed: bool) -> PyResult<()> {
        let mut state = self.lock(py);
        if let Some(status) = state.failed {
            return Err(write_failed(status));
        }
        state.check_body_allowed()?;
        let data = bytes.as_bytes();
        let offered = data.len() as u64;
        let data = &data[..state.allowed(offered) as usize];
        let zero_copy = data.len() >= ZERO_COPY_MIN;
        let output = state.output.as_mut().expect("checked by check_body_allowed");
        if zero_copy {
            // SAFETY: the bytes object's buffer is immutable and stays
            // alive in `pinned` until a flush has written it (or the sink
            // is discarded), as append_borrowed requires.
            unsafe { output.append_borrowed(data) };
            state.pinned.push(bytes.clone().unbind());
        } else if !data.is_empty() {
            output.append_copy(data);
        }
        state.sent += data.len() as u64;
        state.dropped += offered - data.len() as u64;
        state.buffered += data.len();
        // A large streamed item is written now: it is worth a write of its
        // own, and the bytes object it points into is released sooner.
        if (streamed && zero_copy) || state.buffered >= PASS_THRESHOLD {
            return state.pass(py, streamed);
        }
        if !streamed || state.deferred || data.is_empty() {
            return Ok(());
        }
        // Status and headers are final from the first streamed item on,
        // whether or not the flusher has sent them yet: an error after
        // this point cuts the response short rather than replacing it,
        // however fast the application was.
        if !state.committed {
            state.start_stream();
        }
        state.deferred = true;
        drop(state);
        if flusher::arm(self.deferred_output()) {
            Ok(())
        } else {
            self.lock(py).pass(py, true)
        }
    }

    /// Appends a region of a regular file, which the transport sends
    /// without a copy through Python.
    pub fn send_file(&self, py: Python<'_>, region: FileRegion) -> PyResult<()> {
        let mut state = self.lock(py);
        state.check_body_allowed()?;
        let len = state.allowed(region.len);
        if len > 0 {
            let region = FileRegion { len, ..region };
            let output = state.output.as_mut().expect("checked by check_body_allowed");
            output.append_file(region).map_err(PyOSError::new_err)?;
        }
        state.sent += len;
        Ok(())
    }

    /// Ends a successful response: headers if none went out yet (empty
    /// body), then whatever is buffered, then the end of the body. The
    /// sink is returned rather than sent, so the caller can send it after
    /// letting go of the GIL: one GIL hand-off fewer per request, and the
    /// transport sees the whole of a list body at once and can give it a
    /// Content-Length.
    pub fn finish(&self, py: Python<'_>) -> PyResult<FinalPass> {
        let mut state = self.lock(py);
        if let Some(status) = state.failed {
            return Err(write_failed(status));
        }
        state.check_body_allowed()?;
        if !state.committed {
            state.commit_headers();
        }
        let mut sink = state.output.take().expect("checked by check_body_allowed");
        // With data pointing into Python objects, a flush makes the final
        // send write everything before returning, so the objects can go
        // after it.
        sink.close(!state.pinned.is_empty());
        Ok(FinalPass { sink, pinned: std::mem::take(&mut state.pinned) })
    }

    /// `(sent, declared)` when the application sent fewer body bytes than
    /// the Content-Length it declared, for a response that has a body.
    pub fn shortfall(&self, py: Python<'_>) -> Option<(u64, u64)> {
        let state = self.lock(py);
        let output = state.output.as_ref()?;
        let declared = state.content_length?;
        let (code, _) = state.status.as_ref()?;
        let bodyless = output.head_only() || matches!(code, 100..=199 | 204 | 304);
        (!bodyless && state.sent < declared).then_some((state.sent, declared))
    }

    /// `(declared, dropped)` when the application produced more body bytes
    /// than the Content-Length it declared (the excess was not sent).
    pub fn excess(&self, py: Python<'_>) -> Option<(u64, u64)> {
        let state = self.lock(py);
        let declared = state.content_length?;
        (state.dropped > 0).then_some((declared, state.dropped))
    }

    /// Ends a response that cannot be completed once it has started: the
    /// client must see a truncated response, not a complete-looking one,
    /// so the headers go out if they have not and the transport cuts it.
    pub fn abort(&self, py: Python<'_>) {
        let mut state = self.lock(py);
        // Whatever the application produced goes out first (headers too, if
        // they have not), with a flush, so that nothing appended still
        // points into a Python object once the response is cut.
        if state.status.is_some() && state.output.is_some() {
            let _ = state.pass(py, true);
        }
        if let Some(mut sink) = state.output.take() {
            py.detach(|| sink.abort());
            // Whether or not that could write, nothing reads the appended
            // data again: the connection is closing.
            state.pinned.clear();
        }
    }

    /// Forgets the response without sending it (an error before anything
    /// went out: the transport sends its own error response instead).
    pub fn discard(&self, py: Python<'_>) {
        let mut state = self.lock(py);
        if let Some(mut sink) = state.output.take() {
            sink.discard();
            state.pinned.clear();
        }
    }
}

/// The last of a response, to be sent once the application's objects are
/// done with the request.
pub struct FinalPass {
    sink: Box<dyn ResponseSink>,
    /// Dropped after the send, without the GIL: pyo3 defers the decrefs
    /// to the next time a thread holds it.
    pinned: Vec<Py<PyBytes>>,
}

impl FinalPass {
    /// Sends it. Call without the GIL: this may wait for a slow client.
    pub fn send(mut self) -> i32 {
        let status = self.sink.send_final();
        drop(self.pinned);
        status
    }
}

impl State {
    /// Whether body bytes may be appended now: the response is not over and
    /// start_response has given a status.
    fn check_body_allowed(&self) -> PyResult<()> {
        if self.output.is_none() {
            return Err(PyRuntimeError::new_err("the response has already been completed"));
        }
        if self.status.is_none() {
            return Err(PyRuntimeError::new_err(
                "the application returned a body without calling start_response() first",
            ));
        }
        Ok(())
    }

    /// How many of `len` more body bytes fit the declared Content-Length.
    fn allowed(&self, len: u64) -> u64 {
        match self.content_length {
            Some(declared) => len.min(declared.saturating_sub(self.sent)),
            None => len,
        }
    }

    /// Gives status and headers to the sink (first pass only).
    fn commit_headers(&mut self) {
        let (Some(output), Some((code, line))) = (self.output.as_mut(), self.status.as_ref()) else {
            return;
        };
        output.set_head(*code, line, &self.headers);
        self.committed = true;
    }

    /// Sends the headers of a streamed response ahead of its body. Nothing
    /// is written yet, but the transport now knows the body comes in
    /// parts: it frames it as it would any streamed body (chunked on
    /// HTTP/1.1) instead of giving a Content-Length to those applications
    /// that happen to finish within the flush delay.
    fn start_stream(&mut self) {
        self.commit_headers();
        if let Some(output) = self.output.as_mut() {
            output.announce_stream();
        }
    }

    /// Passes what is appended to the network with the GIL released.
    fn pass(&mut self, py: Python<'_>, flush: bool) -> PyResult<()> {
        let outcome = py.detach(|| self.pass_output(flush));
        match outcome {
            Ok(()) => {
                // A flush has written everything, pinned data included.
                if flush {
                    self.pinned.clear();
                }
                Ok(())
            }
            Err(status) => Err(write_failed(status)),
        }
    }

    /// Headers first if they have not gone yet, then the body so far.
    /// Needs no GIL; may wait for a slow client.
    fn pass_output(&mut self, flush: bool) -> Result<(), i32> {
        if !self.committed {
            self.commit_headers();
        }
        self.buffered = 0;
        if flush {
            self.deferred = false;
        }
        self.output.as_mut().expect("pass() follows check_body_allowed()").pass(flush)
    }
}

impl Deferred for Shared {
    fn flush_deferred(&self) -> Attempt {
        // Never wait here: the request thread may hold either lock while
        // it waits for a slow client, and other responses are due too.
        let mut state = match self.state.try_lock() {
            Ok(state) => state,
            Err(std::sync::TryLockError::WouldBlock) => return Attempt::Busy,
            Err(std::sync::TryLockError::Poisoned(_)) => return Attempt::Done,
        };
        if !state.deferred || state.output.is_none() {
            return Attempt::Done;
        }
        let Ok(_connection) = self.connection.try_lock() else {
            return Attempt::Busy;
        };
        if let Err(status) = state.pass_output(true) {
            state.failed = Some(status);
        }
        // The pinned bytes objects are now written, but releasing them
        // needs the GIL: the request thread does it at its next pass.
        Attempt::Done
    }
}

fn write_failed(status: i32) -> PyErr {
    PyOSError::new_err(format!(
        "failed to write the response to the client (APR status {status}); \
         the client probably disconnected"
    ))
}

#[pymethods]
impl StartResponse {
    /// `start_response(status, response_headers, exc_info=None)`.
    #[pyo3(signature = (status, response_headers, exc_info=None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        response_headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let exc_info = exc_info.filter(|e| !e.is_none());
        if this.committed(py) {
            return match exc_info {
                // PEP 3333: with the response started, re-raise the error
                // given; the handler then cuts the response short.
                Some(info) => Err(PyErr::from_value(info.get_item(1)?)),
                None => Err(PyRuntimeError::new_err(
                    "start_response() called again after the response headers were sent",
                )),
            };
        }
        let status_arg = status;
        let status = status
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err(format!("status must be a str, not {}", type_name(status))))?;
        let status = status.to_str()?.to_owned();
        let code = rules::parse_status(&status).map_err(PyValueError::new_err)?;
        let headers = parse_headers(response_headers)?;
        let content_length = match headers.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
            Some((_, value)) => Some(rules::parse_content_length(value).map_err(PyValueError::new_err)?),
            None => None,
        };
        {
            let mut state = this.lock(py);
            state.status = Some((code, status));
            state.headers = headers;
            state.content_length = content_length;
        }
        events::response_started(py, status_arg, response_headers, exc_info);
        bound_write(slf)
    }

    /// The `write` callable start_response returns: sends like a streamed
    /// item.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err(format!("write() takes bytes, not {}", type_name(data))))?;
        self.send(py, bytes, true)
    }
}

/// `write` bound to `slf`, what start_response returns: the method's
/// descriptor is looked up in the type once, not at every request.
fn bound_write<'py>(slf: &Bound<'py, StartResponse>) -> PyResult<Bound<'py, PyAny>> {
    static WRITE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let py = slf.py();
    let descriptor = WRITE.get_or_try_init(py, || py.get_type::<StartResponse>().getattr("write").map(Bound::unbind))?;
    let descriptor = descriptor.bind(py);
    // SAFETY: both objects are live. A type's tp_descr_get, given the
    // descriptor, an instance and its type, returns a new reference (the
    // bound method) or null with an exception set.
    unsafe {
        let Some(bind) = (*pyo3::ffi::Py_TYPE(descriptor.as_ptr())).tp_descr_get else {
            return slf.getattr("write");
        };
        let bound = bind(descriptor.as_ptr(), slf.as_ptr(), pyo3::ffi::Py_TYPE(slf.as_ptr()).cast());
        Bound::from_owned_ptr_or_err(py, bound)
    }
}

fn parse_headers(headers: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let list = headers.cast::<PyList>().map_err(|_| {
        PyTypeError::new_err(format!("response headers must be a list, not {}", type_name(headers)))
    })?;
    let mut parsed = Vec::with_capacity(list.len());
    for item in list.iter() {
        let pair = item
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 2)
            .ok_or_else(|| {
                PyTypeError::new_err(format!(
                    "each response header must be a (name, value) tuple, got {}: {}",
                    type_name(&item),
                    item.repr().map(|r| r.to_string()).unwrap_or_default()
                ))
            })?;
        let text = |i: usize, what: &str| -> PyResult<String> {
            let part = pair.get_item(i)?;
            part.cast::<PyString>()
                .map_err(|_| PyTypeError::new_err(format!("header {what} must be a str, not {}", type_name(&part))))?
                .to_str()
                .map(str::to_owned)
        };
        let (name, value) = (text(0, "name")?, text(1, "value")?);
        rules::check_header(&name, &value).map_err(PyValueError::new_err)?;
        parsed.push((name, value));
    }
    Ok(parsed)
}
