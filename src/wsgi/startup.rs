//! What each child does with Python once the interpreter is up, before it
//! serves requests.

use super::errors::{format_exception, redirect_std_streams};
use super::script;
use crate::directives::server_config;
use crate::httpd::{consts, ffi, log};
use crate::interp;
use std::collections::BTreeSet;

/// Sends print() output to the error log (only in an interpreter this
/// module started: mod_python's belongs to mod_python) and loads the
/// `WSGIImportScript` scripts of the main server and every virtual host.
///
/// # Safety
/// `s` must be the main server_rec passed to child_init.
pub unsafe fn prepare_child(s: *mut ffi::server_rec) {
    let mut scripts = BTreeSet::new();
    let mut server = s;
    while !server.is_null() {
        // SAFETY: server walks Apache's list of server_recs, each with a
        // config this module created.
        unsafe {
            scripts.extend(server_config(server).import_scripts.iter().cloned());
            server = (*server).next;
        }
    }
    let own_interpreter = interp::is_ours();
    let outcome = interp::with_python(|py| {
        if own_interpreter {
            if let Err(err) = redirect_std_streams(py, s) {
                let text = format!("cannot send sys.stdout and sys.stderr to the error log\n{}", format_exception(py, &err));
                log::server(s, consts::APLOG_ERR, &text);
            }
        }
        for path in &scripts {
            match script::preload(py, path) {
                Ok(()) => log::server(s, consts::APLOG_INFO, &format!("imported WSGI script {path}")),
                Err(err) => {
                    let text = format!("failed to import WSGI script {path} (WSGIImportScript)\n{}", format_exception(py, &err));
                    log::server(s, consts::APLOG_ERR, &text);
                }
            }
        }
    });
    if let (Err(reason), false) = (outcome, scripts.is_empty()) {
        log::server(s, consts::APLOG_ERR, &format!("WSGIImportScript not run: Python is not available in this process ({reason})"));
    }
}
