//! What each Apache child tells the WSGI core before it serves requests:
//! where process log lines go, the facts about this server, and the
//! `WSGIImportScript` files of the main server and every virtual host.

use super::request::apache_level;
use crate::daemon::metrics;
use crate::daemon::status::{self, Format};
use crate::daemon_config::ProcessGroup;
use crate::directives::server_config;
use crate::httpd::{consts, ffi, log, pool};
use crate::wsgi::logging::{self, Level};
use crate::wsgi::startup;
use crate::wsgi::transport::{self, ServerFacts};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicPtr, Ordering};

/// The main server, for lines that belong to no request.
static MAIN_SERVER: AtomicPtr<ffi::server_rec> = AtomicPtr::new(std::ptr::null_mut());

/// Lines that belong to no request go to the main server's error log (a
/// null server would send them to Apache's start-up stderr instead).
fn process_log(level: Level, text: &str) {
    log::server(MAIN_SERVER.load(Ordering::Relaxed), apache_level(level), text);
}

/// Sends the core's process log lines to the main server `s`'s log.
pub fn log_to_main_server(s: *mut ffi::server_rec) {
    MAIN_SERVER.store(s, Ordering::Relaxed);
    logging::set_process_log(process_log);
}

/// # Safety
/// `s` must be the main server_rec passed to child_init.
pub unsafe fn prepare_child(s: *mut ffi::server_rec) {
    log_to_main_server(s);
    transport::set_server_facts(server_facts());
    let mut scripts = BTreeSet::new();
    let mut server = s;
    while !server.is_null() {
        // SAFETY: server walks Apache's list of server_recs, each with a
        // config this module created.
        unsafe {
            scripts.extend(server_config(server).import_scripts.iter().filter(|i| i.process_group.is_global()).map(|i| i.path.clone()));
            server = (*server).next;
        }
    }
    // SAFETY: s is the main server; its config was created by us.
    let main = unsafe { server_config(s) };
    let application_group = main.static_application_group(&ProcessGroup::Global);
    startup::prepare(&main.interpreter, application_group, &scripts);
}

/// The running server as the MPM and Apache describe it.
pub fn server_facts() -> ServerFacts {
    let query = |code: u32| {
        let mut value = 0;
        // SAFETY: ap_mpm_query writes one int for a known query code.
        let status = unsafe { ffi::ap_mpm_query(code as _, &mut value) };
        (status == consts::APR_SUCCESS).then_some(value)
    };
    let supported = |code: u32| query(code).is_some_and(|v| v != consts::AP_MPMQ_NOT_SUPPORTED);
    let (multithread, multiprocess) = (supported(ffi::AP_MPMQ_IS_THREADED), supported(ffi::AP_MPMQ_IS_FORKED));
    // The MPM's configured maxima (mod_wsgi instead reports the child
    // slots used so far, which depends on when it asked).
    let threads = if multithread { query(ffi::AP_MPMQ_MAX_THREADS).unwrap_or(1) } else { 1 };
    let processes = if multiprocess { query(ffi::AP_MPMQ_MAX_DAEMONS).unwrap_or(1) } else { 1 };
    let mut version = std::mem::MaybeUninit::<ffi::ap_version_t>::zeroed();
    // SAFETY: ap_get_server_revision fills the struct it is given; the
    // three string functions return static NUL-terminated strings.
    let (version, description, mpm_name, build_date) = unsafe {
        ffi::ap_get_server_revision(version.as_mut_ptr());
        let text = |p| pool::str_from(p).unwrap_or_default().into_owned();
        (
            version.assume_init(),
            text(ffi::ap_get_server_description()),
            text(ffi::ap_show_mpm()),
            text(ffi::ap_get_server_built()),
        )
    };
    ServerFacts {
        apache_version: (version.major, version.minor, version.patch),
        mpm_name,
        description,
        build_date,
        apache_maximum_processes: processes.max(1),
        apache_threads_per_process: threads.max(1),
        maximum_processes: processes.max(1),
        threads_per_process: threads.max(1),
        multithread,
        multiprocess,
        process_group: String::new(),
        // An Apache child may see every group, as its status page does.
        server_metrics_json: Some(|| status::render(Format::Json, &metrics::snapshots(None))),
    }
}
