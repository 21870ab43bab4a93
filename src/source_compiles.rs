//! Counting the modules a process compiles from source while it starts,
//! and how long that takes, for the line it logs when ready to serve.
//!
//! importlib compiles a module's source with the builtin `compile()`,
//! which raises the audit event `compile` with the source's file name;
//! the next event on the same thread (`exec` of the new code object, as
//! a rule) marks the end of the compilation. An audit hook registered
//! before the interpreter starts sees every one, including the modules
//! imported while Python itself initialises, and costs nothing per
//! import that is loaded from a cache. Audit hooks cannot be removed:
//! once the process is ready, the hook only returns (its cost is measured
//! in BENCHMARKS.md).

use pyo3::ffi as py;
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// From this many modules compiled without being cached, the ready line
/// comes with a notice naming the remedy. A start with a working cache
/// compiles none the second time; a small application in a directory its
/// user cannot write compiles a handful at every start, which is cheap.
pub const NOTICE_THRESHOLD: usize = 20;

static COUNTING: AtomicBool = AtomicBool::new(false);
/// Each file compiled, with the nanoseconds its compilation took.
static COMPILED: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

thread_local! {
    // When this thread's current compilation began (CLOCK_MONOTONIC ns,
    // 0 when none) and its index in COMPILED. Const-initialised, no
    // destructor (see interp.rs).
    static COMPILE_STARTED: Cell<(u64, usize)> = const { Cell::new((0, 0)) };
}

unsafe extern "C" {
    // Declared here because pyo3's ffi does not. CPython documents it as
    // callable before Py_Initialize; the hook then sees every event.
    fn PySys_AddAuditHook(
        hook: unsafe extern "C" fn(*const c_char, *mut py::PyObject, *mut c_void) -> c_int,
        user_data: *mut c_void,
    ) -> c_int;
}

fn monotonic_nanos() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(now.tv_nsec as u64).max(1)
}

/// Starts counting. Call once, before Py_InitializeFromConfig.
pub fn install() {
    COUNTING.store(true, Ordering::Release);
    // SAFETY: the hook matches Py_AuditHookFunction and takes no data;
    // registering before initialisation is allowed.
    unsafe { PySys_AddAuditHook(on_audit_event, std::ptr::null_mut()) };
}

unsafe extern "C" fn on_audit_event(event: *const c_char, args: *mut py::PyObject, _: *mut c_void) -> c_int {
    if !COUNTING.load(Ordering::Relaxed) {
        return 0;
    }
    let _ = std::panic::catch_unwind(|| {
        let (started, index) = COMPILE_STARTED.replace((0, 0));
        if started != 0 {
            let took = monotonic_nanos().saturating_sub(started);
            if let Some(entry) = COMPILED.lock().unwrap_or_else(|e| e.into_inner()).get_mut(index) {
                entry.1 += took;
            }
        }
        // SAFETY: CPython passes the event's name as a C string.
        if unsafe { CStr::from_ptr(event) }.to_bytes() != b"compile" {
            return;
        }
        // SAFETY: the hook runs with the GIL held; `args` is the event's
        // tuple (source, filename), the item a borrowed reference that
        // is only read here, and the UTF-8 buffer belongs to it.
        let file = unsafe {
            let name = py::PyTuple_GetItem(args, 1);
            if name.is_null() || py::PyUnicode_Check(name) == 0 {
                py::PyErr_Clear();
                return;
            }
            let mut len = 0;
            let utf8 = py::PyUnicode_AsUTF8AndSize(name, &mut len);
            if utf8.is_null() {
                py::PyErr_Clear();
                return;
            }
            String::from_utf8_lossy(std::slice::from_raw_parts(utf8.cast::<u8>(), len as usize)).into_owned()
        };
        // compile() of strings (namedtuple, dataclasses...) names no .py.
        if file.ends_with(".py") {
            let mut compiled = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
            compiled.push((file, 0));
            COMPILE_STARTED.set((monotonic_nanos(), compiled.len() - 1));
        }
    });
    0
}

/// What was compiled from source while the process started.
pub struct Compiled {
    pub files: Vec<String>,
    pub time: Duration,
}

/// Stops counting and returns what was counted, leaving out `scripts`:
/// WSGI scripts are compiled from source at every load by design (they are
/// not imported, so nothing caches them), whatever the cache.
pub fn finish(scripts: &std::collections::BTreeSet<String>) -> Compiled {
    COUNTING.store(false, Ordering::Release);
    let mut compiled = std::mem::take(&mut *COMPILED.lock().unwrap_or_else(|e| e.into_inner()));
    compiled.retain(|(file, _)| !scripts.contains(file));
    Compiled {
        time: Duration::from_nanos(compiled.iter().map(|(_, nanos)| nanos).sum()),
        files: compiled.into_iter().map(|(file, _)| file).collect(),
    }
}

/// How many of `compiled` now have a cache file written since `since`,
/// where Python (sys.pycache_prefix and the level included) looks for it.
pub fn count_cached(py: pyo3::Python<'_>, compiled: &Compiled, since: SystemTime) -> usize {
    use pyo3::prelude::*;
    if compiled.files.is_empty() {
        return 0;
    }
    // importlib.util.cache_from_source is this function of the import
    // system's frozen core, which is always loaded: taking it from there
    // imports nothing (importlib.util would bring contextlib and warnings
    // with it, on the way to the first request).
    let Ok(cache_from_source) = py
        .import("sys")
        .and_then(|sys| sys.getattr("modules")?.get_item("_frozen_importlib_external")?.getattr("cache_from_source"))
    else {
        return 0;
    };
    compiled
        .files
        .iter()
        .filter(|file| {
            let cached: Option<String> = cache_from_source.call1((file.as_str(),)).and_then(|c| c.extract()).ok();
            cached
                .and_then(|c| std::fs::metadata(c).and_then(|m| m.modified()).ok())
                .is_some_and(|written| written >= since)
        })
        .count()
}

/// The ready line's part about compilation, and the notice to log beside
/// it when too many modules compiled without being cached.
pub fn describe(compiled: &Compiled, cached: usize, level: u8, cache: &str) -> (String, Option<String>) {
    let count = compiled.files.len();
    if count == 0 {
        return ("compiled from source while starting: 0 modules".to_owned(), None);
    }
    let modules = if count == 1 { "module" } else { "modules" };
    let summary = format!(
        "compiled from source while starting: {count} {modules} at level {level} in {} ms, {cached} written to the bytecode cache",
        compiled.time.as_millis()
    );
    let uncached = count - cached.min(count);
    let notice = (uncached >= NOTICE_THRESHOLD).then(|| {
        format!(
            "{uncached} modules were compiled from source at optimisation level {level} while this process \
             started and could not be cached ({cache}), so every process start compiles them again; give \
             the processes a bytecode cache they can write (WSGIPythonPycachePrefix) or precompile them \
             (make precompile)"
        )
    });
    (summary, notice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(n: usize) -> Compiled {
        Compiled { files: (0..n).map(|i| format!("/srv/m{i}.py")).collect(), time: Duration::from_millis(42) }
    }

    #[test]
    fn the_notice_names_the_remedy_only_for_uncached_compiles_from_the_threshold() {
        let (line, notice) = describe(&compiled(0), 0, 2, "none");
        assert_eq!(line, "compiled from source while starting: 0 modules");
        assert!(notice.is_none());
        let (line, notice) = describe(&compiled(1), 0, 1, "none");
        assert_eq!(line, "compiled from source while starting: 1 module at level 1 in 42 ms, 0 written to the bytecode cache");
        assert!(notice.is_none());
        let (_, notice) = describe(&compiled(300), 300 - NOTICE_THRESHOLD + 1, 2, "/c/www-data");
        assert!(notice.is_none(), "{notice:?}");
        let (line, notice) = describe(&compiled(300), 300 - NOTICE_THRESHOLD, 2, "none");
        assert!(line.contains("300 modules at level 2"), "{line}");
        let notice = notice.expect("a notice at the threshold");
        assert!(notice.starts_with("20 modules were compiled from source at optimisation level 2"), "{notice}");
        assert!(notice.contains("(none)") && notice.contains("WSGIPythonPycachePrefix") && notice.contains("make precompile"), "{notice}");
    }
}
