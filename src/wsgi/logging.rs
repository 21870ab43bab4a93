//! Where the WSGI core's messages go, without knowing which transport
//! carries the request: a [`RequestLog`] for lines about one request (the
//! transport adds the client address), and the process log for the rest.
//! Tracebacks become one log line per line of text.

use pyo3::prelude::*;
use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::OnceLock;

/// The severities the core logs at; each transport maps them to its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Crit,
    Err,
    Warning,
    Notice,
    Info,
}

/// Log lines about one request.
pub trait RequestLog: Send + Sync {
    fn write(&self, level: Level, text: &str);
}

/// Lines that belong to no request: set once per process by the transport.
static PROCESS_LOG: OnceLock<fn(Level, &str)> = OnceLock::new();

pub fn set_process_log(log: fn(Level, &str)) {
    let _ = PROCESS_LOG.set(log);
}

/// Writes to the process log (to stderr if no transport has set one up).
pub fn process(level: Level, text: &str) {
    match PROCESS_LOG.get() {
        Some(log) => log(level, text),
        None => eprintln!("{text}"),
    }
}

thread_local! {
    // The log of the request this thread is running the application for,
    // so that output to sys.stdout/sys.stderr carries its client address.
    // Const-initialised with no destructor: nothing is left registered
    // that could outlive this DSO when Apache unloads it on restart.
    static CURRENT: Cell<Option<NonNull<dyn RequestLog>>> = const { Cell::new(None) };
}

/// Marks the calling thread as running the application for a request
/// until dropped.
pub struct CurrentRequest(());

impl CurrentRequest {
    /// # Safety
    /// `log` must stay valid until the returned guard is dropped, and the
    /// guard must be dropped on this thread.
    pub unsafe fn enter(log: &dyn RequestLog) -> Self {
        // SAFETY: only the lifetime is erased; the caller keeps `log`
        // alive for as long as the pointer is set (until drop).
        let erased: &'static dyn RequestLog = unsafe { std::mem::transmute(log) };
        CURRENT.with(|c| c.set(Some(NonNull::from(erased))));
        CurrentRequest(())
    }
}

impl Drop for CurrentRequest {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(None));
    }
}

/// Writes `text` to the log of the request the calling thread is running,
/// or to the process log outside a request.
pub fn current(level: Level, text: &str) {
    match CURRENT.with(Cell::get) {
        // SAFETY: the pointer is set only while a CurrentRequest guard of
        // this thread lives, and its creator vouched for the log until then.
        Some(log) => unsafe { log.as_ref() }.write(level, text),
        None => process(level, text),
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

/// Logs `headline` and then the traceback of `err`, with the GIL released
/// while the lines are written.
pub fn log_exception(py: Python<'_>, log: &dyn RequestLog, headline: &str, err: &PyErr) {
    let text = format!("{headline}\n{}", format_exception(py, err));
    py.detach(|| log.write(Level::Err, &text));
}
