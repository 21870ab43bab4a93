//! `wsgi.errors` and traceback logging: Python text into Apache's error
//! log, one log line per line of text.

use super::{RequestSlot, SameThread};
use crate::httpd::{consts, ffi, log};
use pyo3::prelude::*;
use std::cell::Cell;
use std::sync::Mutex;

thread_local! {
    // The request this thread is running the application for, so that
    // output to sys.stdout/sys.stderr is logged with its client address.
    // Const-initialised with no destructor, like interp's thread state.
    static CURRENT_REQUEST: Cell<*mut ffi::request_rec> = const { Cell::new(std::ptr::null_mut()) };
}

/// Marks the calling thread as running the application for `r` until
/// dropped.
pub struct CurrentRequest(());

impl CurrentRequest {
    pub fn enter(r: *mut ffi::request_rec) -> Self {
        CURRENT_REQUEST.with(|c| c.set(r));
        CurrentRequest(())
    }
}

impl Drop for CurrentRequest {
    fn drop(&mut self) {
        CURRENT_REQUEST.with(|c| c.set(std::ptr::null_mut()));
    }
}

/// The request the calling thread is running the application for.
pub fn current_request() -> Option<*mut ffi::request_rec> {
    Some(CURRENT_REQUEST.with(Cell::get)).filter(|r| !r.is_null())
}

/// Whose output an [`ErrorLog`] carries.
enum Owner {
    /// `wsgi.errors` of one request: logged with that request while it
    /// runs, as plain server lines if the application keeps it after.
    Request(RequestSlot),
    /// `sys.stdout`/`sys.stderr`: logged with whichever request the
    /// writing thread is running, if any.
    Process,
}

/// A text stream whose lines go to Apache's error log. Text is held until a
/// newline (or flush) so each log line carries a whole line of output.
#[pyclass(module = "mod_wsgi_rs", frozen)]
pub struct ErrorLog {
    owner: Owner,
    server: usize,
    pending: Mutex<String>,
}

impl ErrorLog {
    pub fn for_request(r: *mut ffi::request_rec) -> Self {
        // SAFETY: r is the live request being handled.
        let server = unsafe { (*r).server } as usize;
        Self { owner: Owner::Request(RequestSlot::new(r)), server, pending: Mutex::new(String::new()) }
    }

    /// The stream installed as sys.stdout and sys.stderr; `s` is the main
    /// server, used for output outside any request.
    pub fn for_process(s: *mut ffi::server_rec) -> Self {
        Self { owner: Owner::Process, server: s as usize, pending: Mutex::new(String::new()) }
    }

    pub fn finish(&self) {
        self.flush_pending(true);
        if let Owner::Request(slot) = &self.owner {
            slot.clear();
        }
    }

    fn emit(&self, text: &str) {
        let r = match &self.owner {
            Owner::Request(slot) => slot.get(),
            Owner::Process => current_request(),
        };
        match r {
            Some(r) => log::request(r, consts::APLOG_ERR, text),
            None => log::server(self.server as *const ffi::server_rec, consts::APLOG_ERR, text),
        }
    }

    fn flush_pending(&self, all: bool) {
        let ready = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let cut = if all { pending.len() } else { pending.rfind('\n').map_or(0, |i| i + 1) };
            pending.drain(..cut).collect::<String>()
        };
        if !ready.is_empty() {
            self.emit(&ready);
        }
    }
}

#[pymethods]
impl ErrorLog {
    fn write(&self, py: Python<'_>, text: &str) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).push_str(text);
        py.detach(|| self.flush_pending(false));
        text.chars().count()
    }

    fn writelines(&self, py: Python<'_>, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(py, &line?.extract::<String>()?);
        }
        Ok(())
    }

    fn flush(&self, py: Python<'_>) {
        py.detach(|| self.flush_pending(true));
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

    #[getter]
    fn closed(&self) -> bool {
        false
    }

    #[getter]
    fn encoding(&self) -> &'static str {
        "utf-8"
    }

    #[getter]
    fn errors(&self) -> &'static str {
        "backslashreplace"
    }

    /// There is no descriptor to write to; io.UnsupportedOperation is what
    /// code probing for one expects.
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        let unsupported = py.import("io")?.getattr("UnsupportedOperation")?;
        Err(PyErr::from_value(unsupported.call1(("the error log has no file descriptor",))?))
    }
}

/// The traceback of `err` as text, as Python would print it.
pub fn format_exception(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py.import("traceback").and_then(|tb| {
        // pyo3 keeps the traceback beside the exception, so pass all three
        // parts rather than relying on the value's __traceback__.
        let traceback = err.traceback(py).map(|t| t.into_any()).unwrap_or_else(|| py.None().into_bound(py));
        let lines = tb
            .getattr("format_exception")?
            .call1((err.get_type(py), err.value(py), traceback))?;
        let lines: Vec<String> = lines.extract()?;
        Ok(lines.concat())
    });
    formatted.unwrap_or_else(|_| err.to_string())
}

/// Logs `headline` and then the traceback of `err`, tied to request `r`.
pub fn log_exception(py: Python<'_>, r: *mut ffi::request_rec, headline: &str, err: &PyErr) {
    let text = format!("{headline}\n{}", format_exception(py, err));
    let r = SameThread(r);
    py.detach(move || log::request(r.get(), consts::APLOG_ERR, &text));
}
