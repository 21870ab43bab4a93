//! `wsgi.errors` and traceback logging: Python text into Apache's error
//! log, one log line per line of text.

use super::{RequestSlot, SameThread};
use crate::httpd::{consts, ffi, log};
use pyo3::prelude::*;
use std::sync::Mutex;

/// The file-like object behind `wsgi.errors`. Text is held until a newline
/// (or flush) so each log line carries a whole line of output.
#[pyclass(module = "mod_wsgi_rs", frozen)]
pub struct ErrorLog {
    request: RequestSlot,
    server: usize,
    pending: Mutex<String>,
}

impl ErrorLog {
    pub fn new(r: *mut ffi::request_rec) -> Self {
        // SAFETY: r is the live request being handled.
        let server = unsafe { (*r).server } as usize;
        Self { request: RequestSlot::new(r), server, pending: Mutex::new(String::new()) }
    }

    pub fn finish(&self) {
        self.flush_pending(true);
        self.request.clear();
    }

    fn emit(&self, text: &str) {
        match self.request.get() {
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
