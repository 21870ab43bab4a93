//! The daemon's watchdog: a thread without Python that looks at the
//! process four times a second and has it replaced when a time-based limit
//! of the group is reached (restart-interval, inactivity-timeout), when a
//! request has run longer than request-timeout (its stack and every other
//! thread's go to the error log, the request gets 504, the process is
//! replaced), when the GIL could not be taken for deadlock-timeout (stacks
//! logged, requests answered 504, the process exits at once: nothing can
//! run Python in it any more), or when the application has not loaded
//! within startup-timeout.
//!
//! Whether the GIL can be taken is told by a heartbeat thread that takes
//! it once a second; it also writes the Python stacks for request-timeout,
//! which needs the GIL (a request that is merely slow gives it up).

use super::channel::level_code;
use super::metrics::Reason;
use super::serve::{self, Server};
use super::wire::ToChild;
use crate::daemon_lifecycle::Drain;
use crate::interp;
use crate::wsgi::logging::{self, Level};
use crate::wsgi::script;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(250);
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Milliseconds since `EPOCH` when the heartbeat last held the GIL.
static LAST_BEAT: AtomicU64 = AtomicU64::new(0);
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Held (shared) while the heartbeat is in Python, and taken for good
/// before Python is finalised: a thread that asks for the GIL while the
/// interpreter finalises is ended by CPython on the spot, which a Rust
/// thread must never be.
static PYTHON_OPEN: RwLock<bool> = RwLock::new(true);

/// Stack dumps the heartbeat is to write: (why, the requests' threads).
static DUMPS: Mutex<Vec<(String, Vec<(u64, String)>)>> = Mutex::new(Vec::new());
static DUMP_WANTED: Condvar = Condvar::new();

static STARTUP_GIVEN_UP: AtomicBool = AtomicBool::new(false);

fn millis_since_epoch() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Starts the watchdog (and the heartbeat) if the group has a limit for it
/// to watch.
pub fn start(server: &'static Server) {
    let l = server.lifecycle;
    let needs_heartbeat = l.request_timeout.is_some() || l.deadlock_timeout.is_some();
    let needs_watchdog = needs_heartbeat
        || l.restart_interval.is_some()
        || l.inactivity_timeout.is_some()
        || l.startup_timeout.is_some();
    if needs_heartbeat {
        LAST_BEAT.store(millis_since_epoch(), Ordering::Relaxed);
        spawn("wsgi-heartbeat", heartbeat);
    }
    if needs_watchdog {
        spawn("wsgi-watchdog", move || watch(server));
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) {
    if let Err(err) = std::thread::Builder::new().name(name.to_owned()).spawn(body) {
        logging::process(Level::Err, &format!("cannot start the {name} thread: {err}; the group's timeouts are not watched"));
    }
}

/// Called once the workers are gone, before Python is finalised.
pub fn stop() {
    *PYTHON_OPEN.write().unwrap_or_else(|e| e.into_inner()) = false;
    DUMP_WANTED.notify_all();
}

fn heartbeat() {
    loop {
        {
            let open = PYTHON_OPEN.read().unwrap_or_else(|e| e.into_inner());
            if !*open {
                return;
            }
            let dumps = std::mem::take(&mut *DUMPS.lock().unwrap_or_else(|e| e.into_inner()));
            let _ = interp::with_python(|py| {
                LAST_BEAT.store(millis_since_epoch(), Ordering::Relaxed);
                for (why, requests) in dumps {
                    let stacks = python_stacks(py, &requests).unwrap_or_else(|err| format!("(cannot read the stacks: {err})\n"));
                    logging::process(Level::Err, &format!("{why}; Python stacks of the process's threads:\n{stacks}"));
                }
            });
        }
        let pending = DUMPS.lock().unwrap_or_else(|e| e.into_inner());
        if pending.is_empty() {
            let _ = DUMP_WANTED.wait_timeout(pending, HEARTBEAT);
        }
    }
}

/// Every thread's Python stack, most recent call last; the threads
/// running requests named by what they run.
fn python_stacks(py: Python<'_>, requests: &[(u64, String)]) -> PyResult<String> {
    let frames = py.import("sys")?.call_method0("_current_frames")?;
    let traceback = py.import("traceback")?;
    let threading = py.import("threading")?;
    let mut out = String::new();
    for item in frames.call_method0("items")?.try_iter()? {
        let (ident, frame): (u64, Bound<'_, PyAny>) = item?.extract()?;
        let label = match requests.iter().find(|(thread, _)| *thread == ident) {
            Some((_, what)) => format!("Thread {ident:#x}, {what}"),
            None => {
                let name = threading.getattr("_active")?.call_method1("get", (ident,))?;
                if name.is_none() {
                    format!("Thread {ident:#x}")
                } else {
                    format!("Thread {ident:#x} ({})", name.getattr("name")?)
                }
            }
        };
        out.push_str(&label);
        out.push_str(":\n");
        let lines: Vec<String> = traceback.call_method1("format_stack", (frame,))?.extract()?;
        for line in lines {
            out.push_str(&line);
        }
    }
    Ok(out)
}

fn watch(server: &'static Server) {
    let l = server.lifecycle;
    let name = &server.group.name;
    loop {
        std::thread::sleep(TICK);
        if server.stopping() {
            // Requests still finish while the process stops, and a GIL held
            // then would keep it from ending: only the deadlock check goes on.
            check_deadlock(server);
            continue;
        }
        if let Some(interval) = l.restart_interval.filter(|i| server.started.elapsed() >= *i) {
            serve::ask_to_be_replaced(
                server,
                &format!("restart-interval: it ran {} s", interval.as_secs()),
                Reason::RestartInterval,
                Drain::Graceful,
            );
        }
        if let Some(idle) = l.inactivity_timeout {
            let quiet = server.last_activity.lock().unwrap_or_else(|e| e.into_inner()).elapsed();
            let busy = server.connections().values().any(|held| held.running.is_some());
            if !busy && quiet >= idle {
                serve::ask_to_be_replaced(
                    server,
                    &format!("inactivity-timeout: no request for {} s", idle.as_secs()),
                    Reason::InactivityTimeout,
                    Drain::Graceful,
                );
            }
        }
        if let Some(limit) = l.startup_timeout {
            let (loaded, failed) = script::load_counts();
            if loaded == 0 && failed > 0 && server.started.elapsed() >= limit && !STARTUP_GIVEN_UP.swap(true, Ordering::Relaxed) {
                server.startup_failed.store(true, Ordering::Relaxed);
                serve::ask_to_be_replaced_failing(
                    server,
                    &format!(
                        "startup-timeout: its WSGI script failed to load {failed} time(s) and did not load within {} s",
                        limit.as_secs()
                    ),
                );
            }
        }
        if let Some(limit) = l.request_timeout {
            check_requests(server, name, limit);
        }
        check_deadlock(server);
    }
}

/// request-timeout: requests running longer are answered 504 and given
/// up on, their stacks logged, and the process replaced.
fn check_requests(server: &'static Server, name: &str, limit: Duration) {
    let mut late = Vec::new();
    for held in server.connections().values_mut() {
        let Some(running) = held.running.as_mut().filter(|r| !r.timed_out && r.since.elapsed() > limit) else { continue };
        running.timed_out = true;
        let ran = running.since.elapsed().as_secs_f64();
        late.push((held.conn.clone(), running.thread, running.script.clone(), running.client.clone(), ran));
    }
    if late.is_empty() {
        return;
    }
    let pid = std::process::id();
    let mut threads = Vec::new();
    for (conn, thread, script, client, ran) in &late {
        let text = format!(
            "daemon process group {name}: request for {script} ran for {ran:.1} s, more than request-timeout ({} s); \
             answered 504, and process {pid} is being replaced",
            limit.as_secs()
        );
        conn.abandon(504, ToChild::Log { level: level_code(Level::Err), text });
        threads.push((*thread, format!("request for {script} from {client}, {ran:.1} s")));
    }
    let why = format!("daemon process group {name}: process {pid}: {} request(s) ran longer than request-timeout", late.len());
    DUMPS.lock().unwrap_or_else(|e| e.into_inner()).push((why, threads));
    DUMP_WANTED.notify_all();
    serve::ask_to_be_replaced(server, "request-timeout", Reason::RequestTimeout, Drain::Graceful);
}

/// deadlock-timeout: the heartbeat has not had the GIL for that long.
fn check_deadlock(server: &'static Server) {
    let Some(limit) = server.lifecycle.deadlock_timeout else { return };
    let silent = Duration::from_millis(millis_since_epoch().saturating_sub(LAST_BEAT.load(Ordering::Relaxed)));
    if silent < limit || !*PYTHON_OPEN.read().unwrap_or_else(|e| e.into_inner()) {
        return;
    }
    let name = &server.group.name;
    let pid = std::process::id();
    logging::process(
        Level::Crit,
        &format!(
            "daemon process group {name}: process {pid}: the Python GIL could not be taken for {} s \
             (deadlock-timeout); its requests get 504 and it exits. Python stacks of its threads:\n{}",
            silent.as_secs(),
            stacks_without_gil()
        ),
    );
    for held in server.connections().values() {
        if let Some(running) = &held.running {
            let text = format!(
                "daemon process group {name}: request for {} cannot finish: process {pid} is deadlocked \
                 (deadlock-timeout, {} s); answered 504",
                running.script,
                limit.as_secs()
            );
            held.conn.abandon(504, ToChild::Log { level: level_code(Level::Err), text });
        }
    }
    server.count_replacement(Reason::DeadlockTimeout);
    // SAFETY: _exit ends the process at once; with the GIL held elsewhere
    // neither Python's finalisation nor exit functions could run.
    unsafe { libc::_exit(3) };
}

/// CPython's own dump of every thread's stack, which faulthandler uses on a
/// fatal signal: it needs no GIL.
type DumpTracebackThreads = unsafe extern "C" fn(
    fd: libc::c_int,
    interp: *mut pyo3::ffi::PyInterpreterState,
    current_tstate: *mut pyo3::ffi::PyThreadState,
) -> *const libc::c_char;

/// The dump function of the libpython in this process, looked up when needed:
/// 3.9 to 3.12 export `_Py_DumpTracebackThreads`, 3.13 hides it, 3.14 exports
/// it as `PyUnstable_DumpTracebackThreads`. Linking to it by name would make
/// the module fail to load under 3.13.
fn dump_traceback_threads() -> Option<DumpTracebackThreads> {
    for name in [c"PyUnstable_DumpTracebackThreads", c"_Py_DumpTracebackThreads"] {
        // SAFETY: dlsym with RTLD_DEFAULT searches the loaded objects for a
        // NUL-terminated name; a non-null result is that function.
        let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
        if !found.is_null() {
            // SAFETY: both names have this signature in every version exporting them.
            return Some(unsafe { std::mem::transmute::<*mut libc::c_void, DumpTracebackThreads>(found) });
        }
    }
    None
}

/// Every thread's stack read without the GIL, through a memory file.
fn stacks_without_gil() -> String {
    // SAFETY: memfd_create takes a NUL-terminated name; the descriptor is
    // owned by the File from here.
    let fd = unsafe { libc::memfd_create(c"wsgi-stacks".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return format!("(cannot make a memory file: {})", std::io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nothing else.
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: the interpreter is running (the process is stuck in it). The
    // dump reads thread states and frames without the GIL, as CPython's
    // fatal-error handler does; a thread changing its frames meanwhile can
    // make the text wrong, not the process unsafe: it only reads, writes
    // to `fd`, and the process exits right after.
    let Some(dump) = dump_traceback_threads() else {
        return "(this Python exports no function to read the stacks without the GIL)".to_owned();
    };
    let failure = unsafe { dump(fd, std::ptr::null_mut(), std::ptr::null_mut()) };
    use std::io::{Read, Seek};
    let mut text = String::new();
    let _ = file.seek(std::io::SeekFrom::Start(0)).and_then(|_| file.read_to_string(&mut text));
    if !failure.is_null() {
        // SAFETY: CPython returns a static NUL-terminated message.
        text.push_str(&unsafe { std::ffi::CStr::from_ptr(failure) }.to_string_lossy());
    }
    text
}
