//! Loading WSGI scripts into the interpreter: once per process, again when
//! the file changes. A script is compiled from source at the interpreter's
//! optimisation level and never cached as .pyc, as with mod_wsgi.

use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::PyModule;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

struct LoadedScript {
    /// The file's mtime (APR microseconds) when it was loaded.
    mtime: i64,
    module: Py<PyModule>,
}

/// One lock for all scripts: loading is rare, and a script executing while
/// the GIL passes to another thread must not be loaded twice.
static SCRIPTS: Mutex<BTreeMap<String, LoadedScript>> = Mutex::new(BTreeMap::new());

/// The module for `path`. With `reload_mtime` (WSGIScriptReloading On,
/// the default), a script whose mtime differs from the one it was loaded
/// with is loaded again; with None it is loaded once per process.
pub fn load<'py>(py: Python<'py>, path: &str, reload_mtime: Option<i64>) -> PyResult<Bound<'py, PyModule>> {
    // lock_py_attached waits with the GIL released, so a thread that holds
    // the lock and gives up the GIL inside the script cannot deadlock us.
    let mut scripts = SCRIPTS.lock_py_attached(py).unwrap_or_else(|e| e.into_inner());
    if let Some(loaded) = scripts.get(path) {
        if reload_mtime.is_none_or(|mtime| mtime == loaded.mtime) {
            return Ok(loaded.module.bind(py).clone());
        }
    }
    let mtime = match reload_mtime {
        Some(mtime) => mtime,
        None => file_mtime(path)?,
    };
    let reloaded = scripts.contains_key(path);
    let module = execute(py, path).inspect_err(|_| {
        LOADS_FAILED.fetch_add(1, Ordering::Relaxed);
    })?;
    LOADS_SUCCEEDED.fetch_add(1, Ordering::Relaxed);
    scripts.insert(path.to_owned(), LoadedScript { mtime, module: module.clone().unbind() });
    if reloaded {
        if let Some(hook) = ON_RELOAD.get() {
            hook(path);
        }
    }
    Ok(module)
}

/// Scripts loaded and failed to load in this process, for a daemon's
/// startup-timeout: whether its application ever came up.
static LOADS_SUCCEEDED: AtomicU64 = AtomicU64::new(0);
static LOADS_FAILED: AtomicU64 = AtomicU64::new(0);

/// (succeeded, failed) loads so far.
pub fn load_counts() -> (u64, u64) {
    (LOADS_SUCCEEDED.load(Ordering::Relaxed), LOADS_FAILED.load(Ordering::Relaxed))
}

/// Called after a script changed on disk was loaded again: a daemon
/// process uses it to have itself replaced, so that modules the script
/// imports are loaded afresh too.
static ON_RELOAD: OnceLock<fn(&str)> = OnceLock::new();

pub fn on_reload(hook: fn(&str)) {
    let _ = ON_RELOAD.set(hook);
}

/// `WSGIImportScript`: loads `path` as a request for it later would, so
/// that request finds it already loaded.
pub fn preload(py: Python<'_>, path: &str) -> PyResult<()> {
    load_current(py, path, true).map(drop)
}

/// The module for `path` when no directory walk has looked at the file
/// (the access and authentication scripts): with `reloading`, the file's
/// mtime is read now and a changed script loaded again, as [`load`] does.
/// A missing file is an OSError either way.
pub fn load_current<'py>(py: Python<'py>, path: &str, reloading: bool) -> PyResult<Bound<'py, PyModule>> {
    let mtime = py.detach(|| file_mtime(path))?;
    load(py, path, reloading.then_some(mtime))
}

/// A file's mtime in APR's unit (microseconds since the epoch), the value
/// the directory walk puts in `r->finfo.mtime`.
fn file_mtime(path: &str) -> PyResult<i64> {
    let modified = std::fs::metadata(path)?.modified()?;
    let since_epoch = modified.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Ok(since_epoch.as_micros() as i64)
}

/// A stable module name per path, so pickled objects and tracebacks
/// refer to the same module across reloads.
fn module_name(path: &str) -> String {
    // FNV-1a: dependency-free and stable across processes and builds.
    let hash = path
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("_wsgi_rs_{hash:016x}")
}

fn execute<'py>(py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyModule>> {
    let source = py.detach(|| std::fs::read(path))?;
    let name = module_name(path);
    let module = PyModule::new(py, &name)?;
    module.setattr("__file__", path)?;
    let builtins = py.import("builtins")?;
    let code = compile(py, source, path, &builtins)?;
    let sys_modules = py.import("sys")?.getattr("modules")?;
    sys_modules.set_item(&name, &module)?;
    let globals = module.dict();
    if let Err(err) = builtins.getattr("exec")?.call1((code, &globals)) {
        let _ = sys_modules.del_item(&name);
        return Err(err);
    }
    Ok(module)
}

/// The code object of a script's source, at the interpreter's own level
/// (WSGIPythonOptimize), with no `__future__` flags inherited, its coding
/// declaration honoured: what `compile(source, path, "exec",
/// dont_inherit=True)` gives. Called through the C API because the builtin
/// first checks whether its argument is an AST node, which builds the `ast`
/// module's hundred-odd types on its first call in a process: several
/// times the cost of compiling a small script, on the way to the first
/// response.
fn compile<'py>(py: Python<'py>, source: Vec<u8>, path: &str, builtins: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let text = match std::ffi::CString::new(source) {
        Ok(text) => text,
        // A NUL byte: the builtin raises what this Python version raises
        // for that (ValueError or SyntaxError).
        Err(nul) => {
            let source = pyo3::types::PyBytes::new(py, &nul.into_vec());
            return builtins.getattr("compile")?.call1((source, path, "exec"));
        }
    };
    let filename = pyo3::types::PyString::new(py, path);
    // SAFETY: the GIL is held (py); text is NUL-terminated and outlives
    // the call; filename is a live str; null flags mean none inherited;
    // -1 is the interpreter's optimisation level. The result is a new
    // reference or null with an exception set, which from_owned_ptr_or_err
    // takes over either way.
    unsafe {
        let code = pyo3::ffi::Py_CompileStringObject(
            text.as_ptr(),
            filename.as_ptr(),
            pyo3::ffi::Py_file_input,
            std::ptr::null_mut(),
            -1,
        );
        Bound::from_owned_ptr_or_err(py, code)
    }
}
