//! The response side of WSGI: `start_response`, `write`, and moving body
//! bytes into Apache's output filters.

use super::events;
use super::file_wrapper::FileRegion;
use super::flusher::{self, Attempt, Deferred};
use super::{rules, type_name, ConnectionLock, SameThread};
use crate::httpd::{consts, ffi, pool};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, Weak};

/// Body bytes are held in the brigade up to this size before being passed
/// on, so small writes become few large network writes.
const PASS_THRESHOLD: usize = 64 * 1024;

/// Body items at least this large are handed to Apache in place rather
/// than copied.
const ZERO_COPY_MIN: usize = 32 * 1024;

struct Output {
    r: *mut ffi::request_rec,
    bb: *mut ffi::apr_bucket_brigade,
}

struct State {
    /// None once the request has finished: later writes raise.
    output: Option<Output>,
    status: Option<(u16, String)>,
    headers: Vec<(String, String)>,
    /// The Content-Length the application declared, if any.
    content_length: Option<u64>,
    /// Body bytes accepted so far (after any cut to Content-Length).
    sent: u64,
    /// Body bytes dropped because they went beyond the declared
    /// Content-Length (reported once the response is complete).
    dropped: u64,
    /// Whether status and headers have gone down the output filters; from
    /// then on the response can only be completed or cut short.
    committed: bool,
    buffered: usize,
    /// Bytes objects that buckets in the brigade point into; released
    /// once a flush has written them. Empty whenever `output` is None, so
    /// that dropping a finished State never needs the GIL.
    pinned: Vec<Py<PyBytes>>,
    /// Streamed bytes wait in the brigade and the flusher is armed to send
    /// them if the application does not come back soon.
    deferred: bool,
    /// Why a flush made by the flusher thread failed; the application
    /// learns of it at its next write.
    failed: Option<ffi::apr_status_t>,
}

// SAFETY: `output` points at the request being handled and its brigade;
// it is only used while the handler runs (finish() or discard() drop it
// before the handler returns), behind the mutex, so uses never overlap.
unsafe impl Send for State {}

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
    pub fn new(r: *mut ffi::request_rec, connection: ConnectionLock) -> Self {
        // SAFETY: r is the live request; the brigade lives in its pool and
        // uses the connection's bucket allocator, as output filters expect.
        let bb = unsafe { ffi::apr_brigade_create((*r).pool, (*(*r).connection).bucket_alloc) };
        let state = State {
            output: Some(Output { r, bb }),
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
    /// dropped. Large items are not copied: Apache reads them from the
    /// bytes object, which is kept alive until a flush has written them.
    pub fn send(&self, py: Python<'_>, bytes: &Bound<'_, PyBytes>, streamed: bool) -> PyResult<()> {
        let mut state = self.lock(py);
        if let Some(status) = state.failed {
            return Err(write_failed(status));
        }
        let output = state.body_output()?;
        let data = bytes.as_bytes();
        let offered = data.len() as u64;
        let data = &data[..state.allowed(offered) as usize];
        let zero_copy = data.len() >= ZERO_COPY_MIN;
        if zero_copy {
            // SAFETY: the brigade and request are live (see State). The
            // immortal bucket points into the bytes object's buffer, which
            // is immutable and stays alive in `pinned` until a flush has
            // written the bucket (or the request's brigade is dropped).
            unsafe {
                let alloc = (*(*output.r).connection).bucket_alloc;
                let bucket = ffi::apr_bucket_immortal_create(data.as_ptr().cast(), data.len(), alloc);
                ffi::wsgi_rs_brigade_append(output.bb, bucket);
            }
        } else if !data.is_empty() {
            // SAFETY: the brigade and request are live (see State); with no
            // flush callback apr_brigade_write only copies `data` into heap
            // buckets, so it never touches the network.
            unsafe {
                ffi::apr_brigade_write(output.bb, None, std::ptr::null_mut(), data.as_ptr().cast(), data.len());
            }
        }
        if zero_copy {
            state.pinned.push(bytes.clone().unbind());
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

    /// Appends a region of a regular file as a file bucket: Apache reads
    /// it (or sendfile()s it) while writing, with no copy through Python.
    pub fn send_file(&self, py: Python<'_>, region: FileRegion) -> PyResult<()> {
        let mut state = self.lock(py);
        let output = state.body_output()?;
        let len = state.allowed(region.len);
        if len > 0 {
            let r = output.r;
            // SAFETY: r and the brigade are live. The File is moved into the
            // request pool, so the descriptor stays open until the pool is
            // destroyed, which Apache does only after the response has been
            // written (the end-of-request bucket follows the data). The
            // apr_file_t made by apr_os_file_put does not own the
            // descriptor, so it is closed exactly once, by the File.
            unsafe {
                let file = pool::alloc((*r).pool, region.file);
                let mut fd = (*file).as_raw_fd();
                let mut apr_file: *mut ffi::apr_file_t = std::ptr::null_mut();
                let flags = (ffi::APR_FOPEN_READ | ffi::APR_FOPEN_SENDFILE_ENABLED) as i32;
                let status = ffi::apr_os_file_put(&mut apr_file, &mut fd, flags, (*r).pool);
                if status != consts::APR_SUCCESS {
                    return Err(PyOSError::new_err(format!("cannot hand the file to Apache (APR status {status})")));
                }
                ffi::apr_brigade_insert_file(output.bb, apr_file, region.offset as _, len as _, (*r).pool);
            }
        }
        state.sent += len;
        Ok(())
    }

    /// Ends a successful response: headers if none went out yet (empty
    /// body), then whatever is buffered, then end-of-stream. The brigade
    /// is returned rather than passed, so the handler can send it after
    /// letting go of the GIL: one GIL hand-off fewer per request, and
    /// Apache sees the whole of a list body at once and can compute its
    /// Content-Length.
    pub fn finish(&self, py: Python<'_>) -> PyResult<FinalPass> {
        let mut state = self.lock(py);
        if let Some(status) = state.failed {
            return Err(write_failed(status));
        }
        let output = state.body_output()?;
        let (r, bb) = (output.r, output.bb);
        // SAFETY: as in send(); the EOS bucket comes from the connection's
        // allocator and is owned by the brigade once appended. With buckets
        // pointing into Python objects, a flush makes the pass write
        // everything before returning, so the objects can go after.
        unsafe {
            let alloc = (*(*r).connection).bucket_alloc;
            if !state.pinned.is_empty() {
                ffi::wsgi_rs_brigade_append(bb, ffi::apr_bucket_flush_create(alloc));
            }
            ffi::wsgi_rs_brigade_append(bb, ffi::apr_bucket_eos_create(alloc));
        }
        if !state.committed {
            state.commit_headers();
        }
        state.output = None;
        Ok(FinalPass { r, bb, pinned: std::mem::take(&mut state.pinned) })
    }

    /// `(sent, declared)` when the application sent fewer body bytes than
    /// the Content-Length it declared, for a response that has a body.
    pub fn shortfall(&self, py: Python<'_>) -> Option<(u64, u64)> {
        let state = self.lock(py);
        let output = state.output.as_ref()?;
        let declared = state.content_length?;
        let (code, _) = state.status.as_ref()?;
        // SAFETY: r is live while output is set (see State).
        let head = unsafe { (*output.r).header_only } != 0;
        let bodyless = head || matches!(code, 100..=199 | 204 | 304);
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
    /// so the headers go out if they have not, the chunked encoding is left
    /// unterminated and the connection closed.
    pub fn abort(&self, py: Python<'_>) {
        let mut state = self.lock(py);
        // Whatever the application produced goes out first (headers too, if
        // they have not), with a flush, so that no bucket still points into
        // a Python object once the response is cut.
        if state.status.is_some() && state.output.is_some() {
            let _ = state.pass(py, true);
        }
        if let Some(output) = state.output.take() {
            // SAFETY: request and brigade are live; an error bucket with
            // 502 is Apache's signal (used by mod_proxy) that the body
            // broke, which stops the final chunk from being written.
            unsafe {
                let c = (*output.r).connection;
                (*c).keepalive = consts::AP_CONN_CLOSE;
                let alloc = (*c).bucket_alloc;
                let error = ffi::ap_bucket_error_create(502, std::ptr::null(), (*output.r).pool, alloc);
                ffi::wsgi_rs_brigade_append(output.bb, error);
                ffi::wsgi_rs_brigade_append(output.bb, ffi::apr_bucket_eos_create(alloc));
                let (r, bb) = (SameThread(output.r), SameThread(output.bb));
                py.detach(move || ffi::ap_pass_brigade((*r.get()).output_filters, bb.get()));
            }
            // Whether or not that pass could write, no filter reads the
            // buckets again: the connection is closing.
            state.pinned.clear();
        }
    }

    /// Forgets the response without sending it (an error before anything
    /// went out: Apache sends its error page instead).
    pub fn discard(&self, py: Python<'_>) {
        let mut state = self.lock(py);
        if let Some(output) = state.output.take() {
            // SAFETY: the brigade is live; its buckets are freed unsent.
            unsafe { ffi::apr_brigade_cleanup(output.bb.cast()) };
            state.pinned.clear();
        }
    }
}

/// The last brigade of a response, to be passed once the application's
/// objects are done with the request.
pub struct FinalPass {
    r: *mut ffi::request_rec,
    bb: *mut ffi::apr_bucket_brigade,
    /// Dropped after the pass, without the GIL: pyo3 defers the decrefs
    /// to the next time a thread holds it.
    pinned: Vec<Py<PyBytes>>,
}

// SAFETY: the pointers are only used by send(), on the thread that runs
// the handler, after every Python object has released the request.
unsafe impl Send for FinalPass {}

impl FinalPass {
    /// Passes the brigade down the output filters. Call without the GIL:
    /// this may wait for a slow client.
    pub fn send(self) -> ffi::apr_status_t {
        // SAFETY: the request and its brigade are live until the handler
        // returns, and nothing else touches them after finish().
        let status = unsafe { ffi::ap_pass_brigade((*self.r).output_filters, self.bb) };
        drop(self.pinned);
        status
    }
}

impl State {
    /// The output, once start_response has given a status.
    fn body_output(&self) -> PyResult<&Output> {
        let Some(output) = self.output.as_ref() else {
            return Err(PyRuntimeError::new_err("the response has already been completed"));
        };
        if self.status.is_none() {
            return Err(PyRuntimeError::new_err(
                "the application returned a body without calling start_response() first",
            ));
        }
        Ok(output)
    }

    /// How many of `len` more body bytes fit the declared Content-Length.
    fn allowed(&self, len: u64) -> u64 {
        match self.content_length {
            Some(declared) => len.min(declared.saturating_sub(self.sent)),
            None => len,
        }
    }

    /// Copies status and headers into the request (first pass only).
    fn commit_headers(&mut self) {
        let (Some(output), Some((code, line))) = (self.output.as_ref(), self.status.as_ref()) else {
            return;
        };
        let r = output.r;
        // SAFETY: r is live; every string is copied into its pool (as the
        // Latin-1 bytes the header is sent as), so Apache's tables never
        // point at Rust memory.
        unsafe {
            (*r).status = i32::from(*code);
            (*r).status_line = pool::latin1_dup((*r).pool, line);
            for (name, value) in &self.headers {
                let value_c = pool::latin1_dup((*r).pool, value);
                if name.eq_ignore_ascii_case("content-type") {
                    ffi::ap_set_content_type(r, value_c);
                } else {
                    ffi::apr_table_add((*r).headers_out, pool::latin1_dup((*r).pool, name), value_c);
                }
            }
        }
        self.committed = true;
    }

    /// Sends the headers of a streamed response into the output filters
    /// ahead of its body. Nothing is written yet, but Apache now knows the
    /// body comes in parts: it frames it as it would any streamed body
    /// (chunked on HTTP/1.1) instead of giving a Content-Length to those
    /// applications that happen to finish within the flush delay.
    fn start_stream(&mut self) {
        self.commit_headers();
        let output = self.output.as_ref().expect("start_stream() follows body_output()");
        // SAFETY: request and empty brigade are live and ours (see State).
        // Without data or a flush bucket no filter writes to the network,
        // so this does not wait and needs no GIL hand-off.
        unsafe {
            let empty = ffi::apr_brigade_create((*output.r).pool, (*(*output.r).connection).bucket_alloc);
            ffi::ap_pass_brigade((*output.r).output_filters, empty);
        }
    }

    /// Passes the brigade down the output filters with the GIL released.
    fn pass(&mut self, py: Python<'_>, flush: bool) -> PyResult<()> {
        let status = py.detach(|| self.pass_brigade(flush));
        if status == consts::APR_SUCCESS {
            // A flush has written every bucket, pinned ones included.
            if flush {
                self.pinned.clear();
            }
            Ok(())
        } else {
            Err(write_failed(status))
        }
    }

    /// Headers first if they have not gone yet, then the brigade, down the
    /// output filters. Needs no GIL; may wait for a slow client.
    fn pass_brigade(&mut self, flush: bool) -> ffi::apr_status_t {
        if !self.committed {
            self.commit_headers();
        }
        let output = self.output.as_ref().expect("pass() follows body_output()");
        let (r, bb) = (output.r, output.bb);
        self.buffered = 0;
        if flush {
            self.deferred = false;
        }
        // SAFETY: request and brigade are live (see State), and whoever
        // calls this holds the state lock, so no other thread is using
        // them; the brigade is emptied after the pass so it can be reused.
        unsafe {
            if flush {
                ffi::wsgi_rs_brigade_append(bb, ffi::apr_bucket_flush_create((*(*r).connection).bucket_alloc));
            }
            let status = ffi::ap_pass_brigade((*r).output_filters, bb);
            ffi::apr_brigade_cleanup(bb.cast());
            status
        }
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
        let status = state.pass_brigade(true);
        if status != consts::APR_SUCCESS {
            state.failed = Some(status);
        }
        // The pinned bytes objects are now written, but releasing them
        // needs the GIL: the request thread does it at its next pass.
        Attempt::Done
    }
}

fn write_failed(status: ffi::apr_status_t) -> PyErr {
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
        slf.getattr("write")
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
