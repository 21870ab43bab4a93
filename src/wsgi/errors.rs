//! Which request the calling thread is serving, and tracebacks into
//! Apache's error log, one log line per line of text.

use super::SameThread;
use crate::httpd::{consts, ffi, log};
use pyo3::prelude::*;
use std::cell::Cell;

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
