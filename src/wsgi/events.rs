//! What the `mod_wsgi` module reports about requests: the per-request
//! `request_data()` dict and `active_requests`, the events published to
//! `subscribe_events`/`subscribe_shutdown` callbacks, and the counters
//! behind `process_metrics()`. Event arguments are built only while someone
//! is subscribed, so an application that never subscribes pays for a dict
//! per request and nothing more.

use super::logging::{self, format_exception, Level};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The lists and dict the `mod_wsgi` module exposes under the same names;
/// applications may also change them directly, as under mod_wsgi.
pub struct Subscriptions {
    pub event_callbacks: Py<PyList>,
    pub shutdown_callbacks: Py<PyList>,
    pub active_requests: Py<PyDict>,
}

static SUBSCRIPTIONS: PyOnceLock<Subscriptions> = PyOnceLock::new();

/// When Python started serving in this process (`restart_time`).
static STARTED: OnceLock<(SystemTime, Instant)> = OnceLock::new();

pub fn register(py: Python<'_>, subscriptions: Subscriptions) {
    let _ = SUBSCRIPTIONS.set(py, subscriptions);
    let _ = STARTED.set((SystemTime::now(), Instant::now()));
}

pub fn subscriptions(py: Python<'_>) -> PyResult<&Subscriptions> {
    SUBSCRIPTIONS
        .get(py)
        .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("the mod_wsgi module is not set up in this process"))
}

static REQUESTS_DONE: AtomicU64 = AtomicU64::new(0);
static ACTIVE_REQUESTS: AtomicI64 = AtomicI64::new(0);
static BUSY_NANOS: AtomicU64 = AtomicU64::new(0);
static THREADS_NUMBERED: AtomicU32 = AtomicU32::new(0);
/// Requests served by each thread, indexed by thread_id - 1.
static THREAD_REQUESTS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

thread_local! {
    // mod_wsgi's thread_id: 1, 2, ... in the order threads first serve a
    // request. Const-initialised with no destructor (see interp).
    static THREAD_ID: Cell<u32> = const { Cell::new(0) };
    // The request_data dict and the request id of the request this thread
    // is serving: borrowed pointers, valid while the RequestScope that set
    // them lives.
    static CURRENT: Cell<(*mut pyo3::ffi::PyObject, *mut pyo3::ffi::PyObject)> =
        const { Cell::new((std::ptr::null_mut(), std::ptr::null_mut())) };
}

fn thread_id() -> u32 {
    THREAD_ID.with(|id| {
        if id.get() == 0 {
            id.set(THREADS_NUMBERED.fetch_add(1, Ordering::Relaxed) + 1);
        }
        id.get()
    })
}

fn epoch_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// `(user, system)` CPU seconds of the calling thread.
fn thread_cpu() -> (f64, f64) {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; on failure the
    // zeroed struct reads as no time used.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}

/// The request_data dict of the request the calling thread serves.
pub fn current_request_data(py: Python<'_>) -> Option<Bound<'_, PyDict>> {
    current(py).map(|(data, _)| data)
}

/// The request_data dict and request id of the request the calling thread
/// serves.
fn current(py: Python<'_>) -> Option<(Bound<'_, PyDict>, Bound<'_, PyAny>)> {
    let (data, request_id) = CURRENT.with(Cell::get);
    // SAFETY: non-null pointers are objects a live RequestScope of this
    // thread holds references to; this thread holds the GIL.
    (!data.is_null()).then(|| unsafe {
        (Bound::from_borrowed_ptr(py, data).cast_into_unchecked(), Bound::from_borrowed_ptr(py, request_id))
    })
}

/// Publishes response_started when the application calls start_response.
pub fn response_started(
    py: Python<'_>,
    status: &Bound<'_, PyAny>,
    headers: &Bound<'_, PyAny>,
    exc_info: Option<&Bound<'_, PyAny>>,
) {
    let Some(subscriptions) = SUBSCRIPTIONS.get(py) else { return };
    let callbacks = subscriptions.event_callbacks.bind(py);
    let Some((data, request_id)) = current(py).filter(|_| !callbacks.is_empty()) else { return };
    let event = PyDict::new(py);
    let filled = (|| -> PyResult<()> {
        event.set_item("request_id", request_id)?;
        event.set_item("request_data", data)?;
        event.set_item("response_status", status)?;
        event.set_item("response_headers", headers)?;
        event.set_item("exception_info", exc_info.map_or_else(|| py.None().into_bound(py), |e| e.clone()))
    })();
    match filled {
        Ok(()) => publish(py, "response_started", callbacks, &event),
        Err(err) => log_callback_error(py, "response_started", &err),
    }
}

/// Calls each callback of `callbacks` as `callback(name, **event)`. A dict
/// returned is merged into the event (how a request_started subscriber
/// replaces application_object); an exception is logged and the next
/// callback still runs.
fn publish(py: Python<'_>, name: &str, callbacks: &Bound<'_, PyList>, event: &Bound<'_, PyDict>) {
    // A copy, so a callback that subscribes another one does not change
    // the list being walked.
    for callback in callbacks.to_tuple().iter() {
        match callback.call((name,), Some(event)) {
            Ok(result) => {
                if let Ok(update) = result.cast::<PyDict>() {
                    if let Err(err) = event.update(update.as_mapping()) {
                        log_callback_error(py, name, &err);
                    }
                }
            }
            Err(err) => log_callback_error(py, name, &err),
        }
    }
}

fn log_callback_error(py: Python<'_>, name: &str, err: &PyErr) {
    let text = format!("exception in a mod_wsgi '{name}' event callback\n{}", format_exception(py, err));
    py.detach(|| logging::process(Level::Err, &text));
}

/// One request as the `mod_wsgi` module sees it, from just before the
/// application is called until its iterable is closed.
pub struct RequestScope<'py> {
    request_id: Bound<'py, PyAny>,
    data: Bound<'py, PyDict>,
    thread_id: u32,
    request_start: f64,
    /// Where the request waited for a daemon; zero in embedded mode.
    queue: DaemonQueue,
    application_start: Instant,
    /// The wall-clock time of application_start, read only for
    /// subscribers (see [`Self::started_at`]).
    started_at: Option<SystemTime>,
    /// Thread CPU at the start, taken only for subscribers.
    cpu_start: Option<(f64, f64)>,
    finished: bool,
}

/// How a request reached the daemon that runs it: daemon mode's transport
/// puts these in the environ as mod_wsgi does (`mod_wsgi.queue_start`,
/// `mod_wsgi.daemon_start` in microseconds, `mod_wsgi.daemon_connects`,
/// `mod_wsgi.daemon_restarts`), and the events carry them. Embedded mode
/// has no daemon queue: all zero.
#[derive(Default, Clone, Copy)]
struct DaemonQueue {
    queue_start: f64,
    daemon_start: f64,
    connects: u64,
    restarts: u64,
}

impl DaemonQueue {
    /// Read only for subscribers, before the application can change the
    /// environ.
    fn of(environ: &Bound<'_, PyDict>) -> Self {
        let number = |key: &str| -> Option<u64> {
            let value = environ.get_item(key).ok().flatten()?;
            value.extract::<String>().ok()?.parse().ok()
        };
        let seconds = |key| number(key).map_or(0.0, |micros| micros as f64 / 1e6);
        Self {
            queue_start: seconds("mod_wsgi.queue_start"),
            daemon_start: seconds("mod_wsgi.daemon_start"),
            connects: number("mod_wsgi.daemon_connects").unwrap_or(0),
            restarts: number("mod_wsgi.daemon_restarts").unwrap_or(0),
        }
    }
}

impl<'py> RequestScope<'py> {
    /// Registers the request in `active_requests` and publishes
    /// request_started; returns the application to call, which a
    /// subscriber may have replaced (a wrapper).
    pub fn begin(
        py: Python<'py>,
        environ: &Bound<'py, PyDict>,
        application: Bound<'py, PyAny>,
        callable_object: &str,
        request_start: f64,
    ) -> PyResult<(Self, Bound<'py, PyAny>)> {
        let subscriptions = subscriptions(py)?;
        let request_id = environ
            .get_item(pyo3::intern!(py, "mod_wsgi.request_id"))?
            .unwrap_or_else(|| py.None().into_bound(py));
        let data = PyDict::new(py);
        subscriptions.active_requests.bind(py).set_item(&request_id, &data)?;
        CURRENT.with(|c| c.set((data.as_ptr(), request_id.as_ptr())));
        ACTIVE_REQUESTS.fetch_add(1, Ordering::Relaxed);
        let callbacks = subscriptions.event_callbacks.bind(py);
        let mut scope = Self {
            request_id,
            data,
            thread_id: thread_id(),
            request_start,
            queue: DaemonQueue::default(),
            application_start: Instant::now(),
            started_at: None,
            cpu_start: None,
            finished: false,
        };
        if callbacks.is_empty() {
            return Ok((scope, application));
        }
        scope.cpu_start = Some(thread_cpu());
        scope.started_at = Some(SystemTime::now());
        scope.queue = DaemonQueue::of(environ);
        let event = scope.event(py)?;
        event.set_item("request_environ", environ)?;
        event.set_item("application_object", &application)?;
        event.set_item("callable_object", callable_object)?;
        event.set_item("daemon_connects", scope.queue.connects)?;
        event.set_item("daemon_restarts", scope.queue.restarts)?;
        publish(py, "request_started", callbacks, &event);
        let application = event.get_item("application_object")?.unwrap_or(application);
        Ok((scope, application))
    }

    /// The arguments every request event carries.
    fn event(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let event = PyDict::new(py);
        event.set_item("request_id", &self.request_id)?;
        event.set_item("thread_id", self.thread_id)?;
        event.set_item("request_data", &self.data)?;
        event.set_item("server_pid", std::process::id())?;
        event.set_item("request_start", self.request_start)?;
        event.set_item("queue_start", self.queue.queue_start)?;
        event.set_item("daemon_start", self.queue.daemon_start)?;
        event.set_item("application_start", epoch_seconds(self.started_at()))?;
        Ok(event)
    }

    /// When the application was called. Read at the start for a request
    /// that had subscribers then; one that got its first subscriber while
    /// it ran works it out from the monotonic clock.
    fn started_at(&self) -> SystemTime {
        self.started_at.unwrap_or_else(|| SystemTime::now() - self.application_start.elapsed())
    }

    /// Publishes request_exception for an exception the application raised.
    pub fn exception(&self, py: Python<'py>, err: &PyErr) {
        let Ok(subscriptions) = subscriptions(py) else { return };
        let callbacks = subscriptions.event_callbacks.bind(py);
        if callbacks.is_empty() {
            return;
        }
        let event = PyDict::new(py);
        let traceback = err.traceback(py).map(|t| t.into_any()).unwrap_or_else(|| py.None().into_bound(py));
        let filled = (|| -> PyResult<()> {
            event.set_item("request_id", &self.request_id)?;
            event.set_item("request_data", &self.data)?;
            let exc_info = PyTuple::new(py, [err.get_type(py).into_any(), err.value(py).clone().into_any(), traceback])?;
            event.set_item("exception_info", exc_info)
        })();
        match filled {
            Ok(()) => publish(py, "request_exception", callbacks, &event),
            Err(err) => log_callback_error(py, "request_exception", &err),
        }
    }

    /// Ends the request: counters, active_requests, and request_finished
    /// with the status the application gave (0 if it never called
    /// start_response).
    pub fn finish(mut self, py: Python<'py>, status: u16) {
        self.finished = true;
        let elapsed = self.application_start.elapsed();
        self.leave(py, elapsed.as_nanos() as u64);
        let Ok(subscriptions) = subscriptions(py) else { return };
        let callbacks = subscriptions.event_callbacks.bind(py);
        if callbacks.is_empty() {
            return;
        }
        let filled = (|| -> PyResult<Bound<'py, PyDict>> {
            let event = self.event(py)?;
            let finish = epoch_seconds(self.started_at()) + elapsed.as_secs_f64();
            event.set_item("application_finish", finish)?;
            event.set_item("application_time", elapsed.as_secs_f64())?;
            event.set_item("status", status)?;
            if let Some((user0, system0)) = self.cpu_start {
                let (user1, system1) = thread_cpu();
                let (user, system) = ((user1 - user0).max(0.0), (system1 - system0).max(0.0));
                event.set_item("cpu_user_time", user)?;
                event.set_item("cpu_system_time", system)?;
                event.set_item("cpu_time", user + system)?;
            }
            Ok(event)
        })();
        match filled {
            Ok(event) => publish(py, "request_finished", callbacks, &event),
            Err(err) => log_callback_error(py, "request_finished", &err),
        }
    }

    fn leave(&self, py: Python<'py>, busy_nanos: u64) {
        CURRENT.with(|c| c.set((std::ptr::null_mut(), std::ptr::null_mut())));
        ACTIVE_REQUESTS.fetch_sub(1, Ordering::Relaxed);
        REQUESTS_DONE.fetch_add(1, Ordering::Relaxed);
        BUSY_NANOS.fetch_add(busy_nanos, Ordering::Relaxed);
        {
            let mut counts = THREAD_REQUESTS.lock().unwrap_or_else(|e| e.into_inner());
            let index = self.thread_id as usize - 1;
            if counts.len() <= index {
                counts.resize(index + 1, 0);
            }
            counts[index] += 1;
        }
        if let Ok(subscriptions) = subscriptions(py) {
            let active = subscriptions.active_requests.bind(py);
            if active.del_item(&self.request_id).is_err() {
                // The application removed it itself; nothing to undo.
            }
        }
    }
}

impl Drop for RequestScope<'_> {
    /// A scope not finished explicitly (an early return) still leaves
    /// active_requests and the counters right.
    fn drop(&mut self) {
        if !self.finished {
            let py = self.data.py();
            self.leave(py, self.application_start.elapsed().as_nanos() as u64);
        }
    }
}

/// Publishes process_stopping to the event and the shutdown subscribers;
/// called once, with the GIL, just before the interpreter is finalised.
pub fn publish_process_stopping(py: Python<'_>) {
    let Ok(subscriptions) = subscriptions(py) else { return };
    let event = PyDict::new(py);
    // mod_wsgi's reason for an embedded process; daemons give theirs.
    if event.set_item("shutdown_reason", "").is_err() {
        return;
    }
    publish(py, "process_stopping", subscriptions.event_callbacks.bind(py), &event);
    publish(py, "process_stopping", subscriptions.shutdown_callbacks.bind(py), &event);
}

/// `mod_wsgi.process_metrics()`: figures this process knows for certain.
pub fn process_metrics(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let metrics = PyDict::new(py);
    let (started_at, started) = *STARTED.get_or_init(|| (SystemTime::now(), Instant::now()));
    let now = SystemTime::now();
    metrics.set_item("pid", std::process::id())?;
    metrics.set_item("request_count", REQUESTS_DONE.load(Ordering::Relaxed))?;
    metrics.set_item("request_busy_time", BUSY_NANOS.load(Ordering::Relaxed) as f64 / 1e9)?;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct; on failure it stays zeroed.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let (rss, peak) = rss_bytes();
    metrics.set_item("memory_max_rss", peak)?;
    metrics.set_item("memory_rss", rss)?;
    metrics.set_item("cpu_user_time", secs(usage.ru_utime))?;
    metrics.set_item("cpu_system_time", secs(usage.ru_stime))?;
    metrics.set_item("restart_time", epoch_seconds(started_at))?;
    metrics.set_item("current_time", epoch_seconds(now))?;
    metrics.set_item("running_time", started.elapsed().as_secs())?;
    metrics.set_item("active_requests", ACTIVE_REQUESTS.load(Ordering::Relaxed))?;
    let counts = THREAD_REQUESTS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    metrics.set_item("request_threads", counts.len())?;
    let threads = PyList::empty(py);
    for (index, count) in counts.iter().enumerate() {
        let entry = PyDict::new(py);
        entry.set_item("thread_id", index + 1)?;
        entry.set_item("request_count", count)?;
        threads.append(entry)?;
    }
    metrics.set_item("threads", threads)?;
    Ok(metrics)
}

/// `(current, peak)` resident set size in bytes, from /proc/self/status
/// (VmRSS, VmHWM): read together they are consistent, where getrusage's
/// peak lags behind the current size.
fn rss_bytes() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |k| k * 1024)
    };
    let rss = kib("VmRSS:");
    (rss, kib("VmHWM:").max(rss))
}
