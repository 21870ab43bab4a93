//! The interpreter's lifecycle in an Apache child: starting CPython from
//! the configuration (or finding that mod_python already did), giving each
//! Apache thread one thread state for its whole life, and finalising.

use crate::config::{HashSeed, ServerConfig};
use crate::python_home::{self, PythonHome};
use crate::{pycache, pycache_setup, source_compiles};
use crate::httpd::{consts, ffi, log};
use pyo3::ffi as py;
use pyo3::prelude::*;
use std::cell::Cell;
use std::ffi::{c_void, CStr};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// What this child can do with Python, decided once in child_init.
pub enum Interpreter {
    /// We initialised CPython; we finalise it at child exit.
    Ours,
    /// Another module (mod_python) initialised it; we only use it.
    Borrowed,
    /// No usable interpreter; the reason goes into every refused request.
    Unavailable(String),
}

static INTERPRETER: OnceLock<Interpreter> = OnceLock::new();

/// The thread state Py_InitializeFromConfig created, parked so the child's
/// exit cleanup can take the GIL back for Py_FinalizeEx.
static MAIN_THREAD_STATE: AtomicPtr<py::PyThreadState> = AtomicPtr::new(std::ptr::null_mut());

thread_local! {
    // Const-initialised with no destructor: nothing is left registered
    // that could outlive this DSO when Apache unloads it on restart.
    static THREAD_STATE_PINNED: Cell<bool> = const { Cell::new(false) };
}

/// Leaves Python unstarted in this process, for `reason` (given back to
/// whatever asks for the interpreter).
pub fn leave_unstarted(reason: &str) {
    let _ = INTERPRETER.set(Interpreter::Unavailable(reason.to_owned()));
}

/// Called from child_init with the main server's configuration, and by a
/// daemon process with its group's. Should Python fail to start, the line
/// saying so begins with `who` and ends with `consequence`: what becomes of
/// this process's requests.
pub fn start(cfg: &ServerConfig, s: *mut ffi::server_rec, pchild: *mut ffi::apr_pool_t, who: &str, consequence: &str) {
    let pid = std::process::id();
    // SAFETY: ap_find_linked_module only walks Apache's module list.
    let mod_python = !unsafe { ffi::ap_find_linked_module(c"mod_python.c".as_ptr()) }.is_null();
    // SAFETY: Py_IsInitialized may be called at any time.
    let initialised = unsafe { py::Py_IsInitialized() } != 0;

    let state = if mod_python || initialised {
        let owner = if mod_python { "mod_python" } else { "another module" };
        if initialised {
            log::server(
                s,
                consts::APLOG_NOTICE,
                &format!(
                    "Python is owned by {owner} in this process; not initialising it. \
                     Interpreter directives not applied: {}{}",
                    directives_not_applied(cfg),
                    cache_not_applied(cfg, pchild),
                ),
            );
            Interpreter::Borrowed
        } else {
            let reason = format!("{owner} is loaded but did not initialise Python");
            log::server(s, consts::APLOG_ERR, &format!("{reason} in process {pid}"));
            Interpreter::Unavailable(reason)
        }
    } else {
        let cache = bytecode_cache(cfg, pchild);
        let since = SystemTime::now();
        source_compiles::install();
        match initialise(cfg, cache.dir()) {
            Ok(()) => {
                let _ = INTERPRETER.set(Interpreter::Ours);
                if cfg.interpreter.destroy_interpreter != Some(false) {
                    register_finalisation(pchild);
                    let _ = HOLD_EXIT_SIGNALS.set(!mpm_is_threaded());
                }
                remember_started(cfg, pid, cache, since);
                return;
            }
            Err(message) => {
                log::server(
                    s,
                    consts::APLOG_CRIT,
                    &format!("{who}Python failed to initialise in process {pid}: {message}; {consequence}"),
                );
                Interpreter::Unavailable(format!("initialisation failed: {message}"))
            }
        }
    };
    let _ = INTERPRETER.set(state);
}

fn directives_not_applied(cfg: &ServerConfig) -> String {
    let mut given: Vec<String> = cfg.python_optimize.iter().map(|l| format!("WSGIPythonOptimize {l}")).collect();
    given.extend(cfg.interpreter.given());
    if given.is_empty() {
        "none".to_owned()
    } else {
        given.join(", ")
    }
}

/// What an operator would expect of the bytecode cache and does not get
/// in an interpreter another module started.
fn cache_not_applied(cfg: &ServerConfig, pool: *mut ffi::apr_pool_t) -> String {
    let env = std::env::var("PYTHONOPTIMIZE").ok();
    let level = pycache::effective_level(cfg.python_optimize, env.as_deref());
    match pycache::prefix_for(cfg.interpreter.pycache_prefix.as_ref(), level, || pycache_setup::default_prefix(pool)) {
        Some(prefix) => format!(
            "; nor the bytecode cache under {prefix}: sys.pycache_prefix can only be set by whoever starts Python"
        ),
        None => String::new(),
    }
}

/// The Python version this module is linked against, as `"3.11"`.
fn linked_python_version() -> String {
    // SAFETY: Py_GetVersion may be called before initialisation; it returns
    // a static NUL-terminated string such as "3.11.2 (main, ...)".
    let full = unsafe { CStr::from_ptr(py::Py_GetVersion()) }.to_string_lossy();
    full.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// Starts CPython as `python -O`/`-OO` would, but without touching the
/// process's signal handlers (Apache owns them) or argv, and with the
/// interpreter directives applied.
fn initialise(cfg: &ServerConfig, pycache_prefix: Option<&str>) -> Result<(), String> {
    let settings = &cfg.interpreter;
    let home = match &settings.home {
        Some(home) => Some(python_home::check(home, &linked_python_version())?),
        None => None,
    };
    let mut config = MaybeUninit::<py::PyConfig>::uninit();
    // SAFETY: PyConfig_InitPythonConfig fully initialises the struct; the
    // int fields are set directly and the string fields through CPython's
    // setters, which copy; PyConfig_Clear frees what Init, the setters and
    // Py_InitializeFromConfig allocated, whatever the outcome.
    let status = unsafe {
        py::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let config = config.assume_init_mut();
        let status = configure(config, cfg, home.as_ref(), pycache_prefix);
        let status = if py::PyStatus_Exception(status) != 0 { status } else { py::Py_InitializeFromConfig(config) };
        py::PyConfig_Clear(config);
        status
    };
    // SAFETY: PyStatus_Exception only inspects the struct.
    if unsafe { py::PyStatus_Exception(status) } != 0 {
        return Err(describe_status(&status));
    }
    // threading records the thread that first imports it as the main
    // thread, and Py_FinalizeEx waits for that thread to finish. Imported
    // later from an Apache worker thread (logging, Flask and Django all do),
    // it would name a thread that never ends, and the child would hang at
    // exit until Apache killed it. Importing it here names this thread,
    // the one that finalises.
    // SAFETY: this thread holds the GIL right after a successful init; the
    // returned module reference is released at once.
    unsafe {
        let threading = py::PyImport_ImportModule(c"threading".as_ptr());
        if threading.is_null() {
            py::PyErr_Clear();
        } else {
            py::Py_DecRef(threading);
        }
    }
    // The initialising thread holds the GIL; hand it back so any Apache
    // thread can take it, and keep this thread state for finalisation.
    // SAFETY: this thread holds the GIL right after a successful init.
    let main = unsafe { py::PyEval_SaveThread() };
    MAIN_THREAD_STATE.store(main, Ordering::Release);
    Ok(())
}

/// Fills the PyConfig fields the directives decide.
///
/// # Safety
/// `config` must be initialised by PyConfig_InitPythonConfig.
unsafe fn configure(
    config: &mut py::PyConfig,
    cfg: &ServerConfig,
    home: Option<&PythonHome>,
    pycache_prefix: Option<&str>,
) -> py::PyStatus {
    let settings = &cfg.interpreter;
    config.optimization_level = cfg.python_optimize.map_or(0, |l| l.get().into());
    config.install_signal_handlers = 0;
    config.parse_argv = 0;
    if settings.dont_write_bytecode == Some(true) {
        config.write_bytecode = 0;
    }
    match settings.hash_seed {
        Some(HashSeed::Fixed(seed)) => {
            config.use_hash_seed = 1;
            config.hash_seed = seed.into();
        }
        // Randomised, as Python does by default (and unless PYTHONHASHSEED
        // says otherwise, which PyConfig has already read).
        Some(HashSeed::Random) | None => {}
    }
    let set_string = |config: &mut py::PyConfig, field: *mut *mut WideChar, value: &str| {
        let value = std::ffi::CString::new(value).unwrap_or_default();
        // SAFETY: field points into `config`; the setter decodes and copies.
        unsafe { py::PyConfig_SetBytesString(config, field, value.as_ptr()) }
    };
    let status = match home {
        // Started as the environment's interpreter, Python finds
        // pyvenv.cfg beside it and sets sys.prefix to the environment, as
        // running home/bin/python would.
        Some(PythonHome::VirtualEnv(path)) => {
            let field = &raw mut config.program_name;
            set_string(config, field, &format!("{path}/bin/python"))
        }
        Some(PythonHome::Prefix(path)) => {
            let field = &raw mut config.home;
            set_string(config, field, path)
        }
        None => ok_status(),
    };
    // SAFETY: PyStatus_Exception only inspects the struct.
    if unsafe { py::PyStatus_Exception(status) } != 0 {
        return status;
    }
    if let Some(prefix) = pycache_prefix {
        let field = &raw mut config.pycache_prefix;
        let status = set_string(config, field, prefix);
        // SAFETY: as above.
        if unsafe { py::PyStatus_Exception(status) } != 0 {
            return status;
        }
    }
    for warning in &settings.warnings {
        let wide = widen(warning);
        // SAFETY: warnoptions is an initialised list; Append copies the
        // NUL-terminated wide string.
        let status = unsafe { py::PyWideStringList_Append(&mut config.warnoptions, wide.as_ptr()) };
        // SAFETY: as above.
        if unsafe { py::PyStatus_Exception(status) } != 0 {
            return status;
        }
    }
    ok_status()
}

/// C's wchar_t on Linux: a 32-bit int holding one code point.
type WideChar = i32;

/// A NUL-terminated wide string.
fn widen(text: &str) -> Vec<WideChar> {
    text.chars().map(|c| c as WideChar).chain(std::iter::once(0)).collect()
}

fn ok_status() -> py::PyStatus {
    // SAFETY: PyStatus_Ok has no preconditions.
    unsafe { py::PyStatus_Ok() }
}

fn describe_status(status: &py::PyStatus) -> String {
    // SAFETY: func and err_msg are null or static C strings set by CPython.
    let text = |p: *const std::ffi::c_char| {
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    };
    // SAFETY: as above; PyStatus_IsExit only inspects the struct.
    if unsafe { py::PyStatus_IsExit(*status) } != 0 {
        return format!("CPython asked to exit with status {}", status.exitcode);
    }
    match (text(status.func), text(status.err_msg)) {
        (Some(func), Some(msg)) => format!("{func}: {msg}"),
        (None, Some(msg)) => msg,
        (Some(func), None) => func,
        (None, None) => "unknown error".to_owned(),
    }
}

/// The bytecode cache this process uses, decided before Python starts.
enum BytecodeCache {
    /// None configured (level 0 without WSGIPythonPycachePrefix, or Off).
    Off,
    /// This process's own directory, checked.
    Dir(String),
    /// One was configured but cannot be used safely; why.
    Unusable(String),
}

impl BytecodeCache {
    fn dir(&self) -> Option<&str> {
        match self {
            BytecodeCache::Dir(dir) => Some(dir),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            BytecodeCache::Off => "none".to_owned(),
            BytecodeCache::Dir(dir) => dir.clone(),
            BytecodeCache::Unusable(why) => format!("none: {why}"),
        }
    }
}

/// This process's directory under the cache prefix, if the configuration
/// gives one at the level Python will run at, and if it is this user's
/// alone (the Apache parent created it; see pycache::prepare).
fn bytecode_cache(cfg: &ServerConfig, pool: *mut ffi::apr_pool_t) -> BytecodeCache {
    let env = std::env::var("PYTHONOPTIMIZE").ok();
    let level = pycache::effective_level(cfg.python_optimize, env.as_deref());
    let Some(prefix) =
        pycache::prefix_for(cfg.interpreter.pycache_prefix.as_ref(), level, || pycache_setup::default_prefix(pool))
    else {
        return BytecodeCache::Off;
    };
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let dir = pycache::user_dir(&prefix, uid);
    match pycache::check(&prefix, &dir, uid) {
        Ok(()) => BytecodeCache::Dir(dir),
        Err(why) => BytecodeCache::Unusable(why),
    }
}

/// The line this process logs once it is ready to serve, kept from the
/// moment Python started until then (see [`startup_report`]).
struct Started {
    notice: bool,
    text: String,
    level: u8,
    cache: String,
    since: SystemTime,
}

static STARTED: Mutex<Option<Started>> = Mutex::new(None);

/// Prepares the process's startup line: the version and where the
/// optimisation level came from, the other settings and the bytecode
/// cache. At notice when the environment overrode WSGIPythonOptimize,
/// since that is the case an operator would otherwise never find.
fn remember_started(cfg: &ServerConfig, pid: u32, cache: BytecodeCache, since: SystemTime) {
    let (version, level) = with_python(|py| -> PyResult<(String, u8)> {
        let sys = py.import("sys")?;
        let version: String = sys.getattr("version")?.extract()?;
        let level: u8 = sys.getattr("flags")?.getattr("optimize")?.extract()?;
        Ok((version.split_whitespace().next().unwrap_or("").to_owned(), level))
    })
    .and_then(|r| r.map_err(|e| e.to_string()))
    .unwrap_or_else(|e| (format!("(version unknown: {e})"), 0));
    let configured = cfg.python_optimize.map(|l| l.get());
    let from_env = std::env::var("PYTHONOPTIMIZE").ok().filter(|v| !v.is_empty());
    let raised_by_env = level > configured.unwrap_or(0);
    let source = match (configured, &from_env, raised_by_env) {
        (Some(c), Some(e), true) => format!("WSGIPythonOptimize {c}, raised by PYTHONOPTIMIZE={e}"),
        (None, Some(e), true) => format!("PYTHONOPTIMIZE={e}"),
        (Some(c), _, _) => format!("WSGIPythonOptimize {c}"),
        (None, _, _) => "default".to_owned(),
    };
    let cache = cache.describe();
    let text = format!(
        "Python {version} initialised in process {pid}; optimisation level {level} ({source}); {}; \
         bytecode cache {cache}",
        describe_settings(cfg)
    );
    let notice = raised_by_env && configured.is_some();
    *STARTED.lock().unwrap_or_else(|e| e.into_inner()) = Some(Started { notice, text, level, cache, since });
}

/// The lines to log once the process is ready to serve (its import
/// scripts loaded), each with whether it is a notice: the startup line,
/// completed with what was compiled from source until now (the WSGI
/// `scripts` loaded left out), and the notice that names the remedy when
/// that was too much. Empty where this module did not start Python, and
/// after the first call.
pub fn startup_report(scripts: &std::collections::BTreeSet<String>) -> Vec<(bool, String)> {
    let Some(started) = STARTED.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return Vec::new();
    };
    let compiled = source_compiles::finish(scripts);
    let cached = with_python(|py| source_compiles::count_cached(py, &compiled, started.since)).unwrap_or(0);
    let (summary, notice) = source_compiles::describe(&compiled, cached, started.level, &started.cache);
    let mut lines = vec![(started.notice, format!("{}; {summary}", started.text))];
    lines.extend(notice.map(|n| (true, n)));
    lines
}

/// The other interpreter settings in effect, for the startup line.
fn describe_settings(cfg: &ServerConfig) -> String {
    let settings = &cfg.interpreter;
    let home = match &settings.home {
        Some(home) => python_home::check(home, &linked_python_version())
            .map(|h| h.describe())
            .unwrap_or_else(|e| e),
        None => "default".to_owned(),
    };
    let path = if settings.path.is_empty() { "none".to_owned() } else { settings.path.join(":") };
    let hash_seed = match settings.hash_seed {
        Some(seed) => seed.to_string(),
        None => "random".to_owned(),
    };
    let warnings = if settings.warnings.is_empty() { "none".to_owned() } else { settings.warnings.join(", ") };
    let on_off = |v: Option<bool>, default: bool| if v.unwrap_or(default) { "On" } else { "Off" };
    format!(
        "home {home}; python path {path}; hash seed {hash_seed}; warnings {warnings}; \
         dont write bytecode {}; restrict stdout {}; restrict stdin {}; restrict signal {}; \
         destroy interpreter {}",
        on_off(settings.dont_write_bytecode, false),
        on_off(settings.restrict_stdout, false),
        on_off(settings.restrict_stdin, false),
        on_off(settings.restrict_signal, true),
        on_off(settings.destroy_interpreter, true),
    )
}

/// Whether this process has Python to run applications in.
pub fn is_available() -> bool {
    matches!(INTERPRETER.get(), Some(Interpreter::Ours | Interpreter::Borrowed))
}

/// Runs `f` attached to the interpreter, or says why it cannot.
pub fn with_python<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Result<R, String> {
    match INTERPRETER.get() {
        Some(Interpreter::Ours | Interpreter::Borrowed) => {}
        Some(Interpreter::Unavailable(reason)) => return Err(reason.clone()),
        None => return Err("Python was not started in this process".to_owned()),
    }
    // Declared first, so dropped last: a held signal arrives once this
    // thread has let go of the interpreter.
    let _held = ExitSignalsHeld::new();
    pin_thread_state();
    Ok(Python::attach(f))
}

/// Whether SIGTERM and SIGHUP are held off while this process runs Python;
/// set in child_init when we finalise the interpreter on a non-threaded MPM.
static HOLD_EXIT_SIGNALS: OnceLock<bool> = OnceLock::new();

fn mpm_is_threaded() -> bool {
    let mut value = 0;
    // SAFETY: ap_mpm_query writes one int for a known query code.
    unsafe { ffi::ap_mpm_query(consts::AP_MPMQ_IS_THREADED, &mut value) };
    value != consts::AP_MPMQ_NOT_SUPPORTED
}

/// Holds off SIGTERM and SIGHUP on this thread while it runs Python, on
/// prefork. Prefork's handler for both ends the child on the spot, from
/// inside the signal handler, by destroying the child pool, whose cleanup
/// finalises Python (register_finalisation). If the signal lands while this
/// thread holds the GIL, that cleanup waits for the GIL this very thread
/// holds: the child hangs until Apache kills it ("still did not exit"), and
/// its atexit handlers never run. Held off, the signal is delivered when
/// the mask is restored, after the thread has detached: the request's
/// Python part completes and the child then exits and finalises cleanly,
/// as worker and event children do (their MPMs join the worker threads
/// before the child pool goes). Threaded MPMs take these signals on a
/// thread that never runs Python, so nothing is done for them.
struct ExitSignalsHeld {
    previous: Option<libc::sigset_t>,
}

impl ExitSignalsHeld {
    fn new() -> Self {
        if HOLD_EXIT_SIGNALS.get() != Some(&true) {
            return Self { previous: None };
        }
        // SAFETY: both sets are plain stack values initialised by
        // sigemptyset before use; pthread_sigmask changes only this
        // thread's mask and writes the old one into `previous`.
        unsafe {
            let mut exit_signals = MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigemptyset(exit_signals.as_mut_ptr());
            libc::sigaddset(exit_signals.as_mut_ptr(), libc::SIGTERM);
            libc::sigaddset(exit_signals.as_mut_ptr(), libc::SIGHUP);
            let mut previous = MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigemptyset(previous.as_mut_ptr());
            if libc::pthread_sigmask(libc::SIG_BLOCK, exit_signals.as_ptr(), previous.as_mut_ptr()) != 0 {
                return Self { previous: None };
            }
            Self { previous: Some(previous.assume_init()) }
        }
    }
}

impl Drop for ExitSignalsHeld {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            // SAFETY: restores the mask saved in new(); a signal that came
            // meanwhile is delivered now, with no Python state held here.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut()) };
        }
    }
}

/// Gives the calling Apache thread its own main-interpreter thread state,
/// once, and keeps it for the life of the thread: attaching is then a
/// lock acquisition rather than an allocation, and `threading.local` data
/// persists between requests on the same thread as it does under mod_wsgi.
///
/// With mod_python in the process this must happen before mod_python
/// first runs on the thread. mod_python keeps a pool of thread states that
/// it hands to whichever thread asks next, and the first one created on a
/// thread becomes that thread's PyGILState state; PyGILState_Ensure would
/// later find it while another thread is running on it, believe the GIL
/// already held, and run two threads in Python at once. Claiming the slot
/// first (from the create_request hook) keeps it ours.
pub fn pin_thread_state() {
    if !matches!(INTERPRETER.get(), Some(Interpreter::Ours | Interpreter::Borrowed)) {
        return;
    }
    THREAD_STATE_PINNED.with(|pinned| {
        if !pinned.get() {
            // SAFETY: the interpreter is initialised and this thread is not
            // attached (we attach only inside with_python, and mod_python
            // releases the GIL before a request ends). Ensure creates this
            // thread's state and takes the GIL; the matching Release is
            // deliberately never called, which keeps the state alive, and
            // SaveThread drops the GIL again.
            unsafe {
                py::PyGILState_Ensure();
                py::PyEval_SaveThread();
            }
            pinned.set(true);
        }
    });
}

/// Whether this module initialised the interpreter in this process.
pub fn is_ours() -> bool {
    matches!(INTERPRETER.get(), Some(Interpreter::Ours))
}

/// Whether another module owns the interpreter (its threads must then be
/// pinned before that module runs on them).
pub fn is_borrowed() -> bool {
    matches!(INTERPRETER.get(), Some(Interpreter::Borrowed))
}

/// What runs with the GIL just before Py_FinalizeEx: the request path's
/// shutdown callbacks, which must see a working interpreter.
static BEFORE_FINALISE: OnceLock<fn(Python<'_>)> = OnceLock::new();

pub fn before_finalise(f: fn(Python<'_>)) {
    let _ = BEFORE_FINALISE.set(f);
}

fn register_finalisation(pchild: *mut ffi::apr_pool_t) {
    unsafe extern "C" fn finalise(_: *mut c_void) -> ffi::apr_status_t {
        let _ = std::panic::catch_unwind(|| {
            let main = MAIN_THREAD_STATE.swap(std::ptr::null_mut(), Ordering::AcqRel);
            if main.is_null() {
                return;
            }
            // SAFETY: the child pool is destroyed after the MPM joined its
            // worker threads, so no thread is attached; `main` is the state
            // this thread parked after initialisation, so after
            // RestoreThread this thread holds the GIL (what assume_attached
            // requires). Py_FinalizeEx runs atexit handlers and clears
            // every thread state.
            unsafe {
                py::PyEval_RestoreThread(main);
                if let Some(f) = BEFORE_FINALISE.get() {
                    f(Python::assume_attached());
                }
                py::Py_FinalizeEx();
            }
        });
        0
    }
    // SAFETY: pchild lives until the child exits; the cleanup takes no data.
    unsafe {
        ffi::apr_pool_cleanup_register(
            pchild,
            std::ptr::null(),
            Some(finalise),
            Some(ffi::apr_pool_cleanup_null),
        )
    };
}
