//! The one application group a process hosts. Its main interpreter is the
//! only one there is, so the first group the process is given (by the
//! configuration when it starts, else by its first request that names
//! one) is the group of every application it runs; a request for another
//! group is refused rather than run beside it in the same interpreter.

use pyo3::prelude::*;
use std::sync::Mutex;

/// None until the process is given its group.
static HOSTED: Mutex<Option<String>> = Mutex::new(None);

/// Makes `name` this process's group, unless it already has one, and
/// shows it as `mod_wsgi.application_group`. Returns the group hosted.
pub fn host(py: Python<'_>, name: &str) -> String {
    let mut hosted = HOSTED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(current) = hosted.as_ref() {
        return current.clone();
    }
    *hosted = Some(name.to_owned());
    // mod_wsgi's module attribute names the interpreter it is imported in.
    if let Ok(module) = py.import("sys").and_then(|sys| sys.getattr("modules")?.get_item("mod_wsgi")) {
        let _ = module.setattr("application_group", name);
    }
    name.to_owned()
}

/// The application group a request runs in: the one it asks for
/// (`requested`, resolved by the transport), which becomes the process's
/// if it has none yet, or, when it asks for none, the process's. Err
/// names the group the process hosts when the request asks for another.
pub fn enter(py: Python<'_>, requested: Option<&str>) -> Result<String, String> {
    match requested {
        Some(name) => {
            let hosted = host(py, name);
            if hosted == name {
                Ok(hosted)
            } else {
                Err(hosted)
            }
        }
        None => Ok(HOSTED.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default()),
    }
}
