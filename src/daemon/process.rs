//! A daemon process: forked by its group's supervisor, it takes on the
//! group's user and home, starts Python with the group's settings, loads
//! the group's import scripts, and serves requests from Apache children
//! arriving on the group's socket, with `threads` worker threads running
//! the applications (each keeping its Python thread state for life).

use super::metrics;
use super::status::{self, Format};
use super::serve::{self, Server};
use crate::daemon_config::{DaemonGroup, ProcessGroup};
use crate::directives::server_config;
use crate::httpd::{consts, ffi, log};
use crate::interp;
use crate::wsgi::logging::{self, Level};
use crate::wsgi::{startup, transport};
use std::collections::BTreeSet;
use std::ffi::CString;
use pyo3::prelude::*;
use std::os::fd::RawFd;

/// The process's server, for the script reload hook.
static SERVER: std::sync::atomic::AtomicPtr<Server> = std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// Runs daemon `index` of `group` until it is told to stop; returns the
/// process's exit status.
pub fn run(group: &'static DaemonGroup, index: usize, listener: RawFd, s: *mut ffi::server_rec) -> i32 {
    let name = &group.name;
    // Nothing of Apache's own but the error log is for a daemon: the
    // listening sockets would let it accept HTTP connections.
    // SAFETY: closes the parent's listener sockets in this process only.
    unsafe { ffi::ap_close_listeners() };
    set_title(group);
    // Before dropping root: only root may raise a priority.
    if let Err(why) = apply_limits(group) {
        log::server(s, consts::APLOG_CRIT, &format!("daemon process group {name}: cannot start process: {why}"));
        return 1;
    }
    if let Err(why) = take_identity(group) {
        log::server(s, consts::APLOG_CRIT, &format!("daemon process group {name}: cannot start process: {why}"));
        return 1;
    }
    if let Some(note) = &group.home_note {
        log::server(s, consts::APLOG_WARNING, &format!("daemon process group {name}: {note}"));
    }

    // SAFETY: s is the main server; its config was created by us.
    let mut cfg = unsafe { server_config(s) }.clone();
    if let Some(level) = group.python_optimize {
        cfg.python_optimize = Some(level);
    }
    if let Some(home) = &group.python_home {
        cfg.interpreter.home = Some(home.clone());
    }
    if !group.python_path.is_empty() {
        cfg.interpreter.path = group.python_path.clone();
    }
    let mut pool = std::ptr::null_mut();
    // SAFETY: a new root pool for this process; destroying it finalises
    // Python (interp registers the cleanup on it).
    unsafe { ffi::apr_pool_create_ex(&mut pool, std::ptr::null_mut(), None, std::ptr::null_mut()) };
    // Without Python the process answers 503 and asks at once to be
    // replaced, its successor starting after the back-off (serve::run).
    interp::start(
        &cfg,
        s,
        pool,
        &format!("daemon process group {name}: "),
        "its requests get 503, and it is replaced after a back-off",
    );
    crate::embedded::log_to_main_server(s);
    let mut facts = crate::embedded::server_facts();
    facts.process_group = name.clone();
    // A daemon reports its own group only: another group's may run as another user.
    facts.server_metrics_json =
        Some(|| status::render(Format::Json, &metrics::snapshots(Some(&transport::server_facts().process_group))));
    // mod_wsgi's figures become the group's; the apache module's still
    // describe Apache's MPM, as they do in mod_wsgi's daemons.
    facts.maximum_processes = group.processes as i32;
    facts.threads_per_process = group.threads as i32;
    facts.multithread = group.threads > 1;
    facts.multiprocess = group.processes > 1;
    transport::set_server_facts(facts);
    let scripts: BTreeSet<String> = cfg
        .import_scripts
        .iter()
        .filter(|script| matches!(&script.process_group, ProcessGroup::Named(group) if group == name))
        .map(|script| script.path.clone())
        .collect();
    let application_group = cfg.static_application_group(&ProcessGroup::Named(name.clone()));
    startup::prepare(&cfg.interpreter, application_group, &scripts);
    let level = interp::with_python(|py| {
        py.import("sys").and_then(|sys| sys.getattr("flags")?.getattr("optimize")?.extract::<u8>()).unwrap_or(0)
    })
    .unwrap_or(0);
    let source = match (group.python_optimize, cfg.python_optimize) {
        (Some(_), _) => "python-optimize",
        (None, Some(_)) => "WSGIPythonOptimize",
        (None, None) => "default",
    };
    logging::process(
        Level::Info,
        &format!(
            "daemon process group {name}: process {} ({} of {}) serving as {} with {} threads; \
             optimisation level {level} ({source})",
            std::process::id(),
            index + 1,
            group.processes,
            identity_description(),
            group.threads,
        ),
    );
    let server = match Server::new(group, listener) {
        Ok(server) => server,
        Err(err) => {
            logging::process(Level::Crit, &format!("daemon process group {name}: cannot start serving: {err}"));
            return 1;
        }
    };
    SERVER.store((&server as *const Server).cast_mut(), std::sync::atomic::Ordering::Release);
    // A changed WSGI script is loaded again at once, and the whole process
    // replaced behind it so the modules it imports are fresh as well.
    crate::wsgi::script::on_reload(|path| {
        let server = SERVER.load(std::sync::atomic::Ordering::Acquire);
        // SAFETY: set above before any request runs; the Server outlives
        // every request (serve::run joins the workers before returning).
        if let Some(server) = unsafe { server.as_ref() } {
            serve::ask_to_be_replaced(
                server,
                &format!("{path} changed"),
                super::metrics::Reason::ScriptChanged,
                crate::daemon_lifecycle::Drain::Graceful,
            );
        }
    });
    serve::run(&server);
    // SAFETY: every worker thread has finished; the cleanup registered by
    // interp::start finalises Python (atexit and shutdown callbacks run).
    unsafe { ffi::apr_pool_destroy(pool) };
    0
}

/// `display-name`, as `ps` shows it: `%{GROUP}` is `(wsgi:NAME)`. Also the
/// thread name (what `ps -o comm` and `top` show, 15 bytes at most).
fn set_title(group: &DaemonGroup) {
    let Some(title) = group.title() else { return };
    let comm = CString::new(title.bytes().filter(|b| *b != 0).take(15).collect::<Vec<u8>>()).unwrap_or_default();
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, comm.as_ptr()) };
    crate::daemon::title::set(&title);
}

/// cpu-priority, and the rlimits of memory-limit (RLIMIT_DATA),
/// virtual-memory-limit (RLIMIT_AS) and cpu-time-limit (RLIMIT_CPU, whose
/// SIGXCPU has the process replaced: see serve.rs).
fn apply_limits(group: &DaemonGroup) -> Result<(), String> {
    let l = &group.lifecycle;
    if let Some(nice) = l.cpu_priority {
        // SAFETY: setpriority changes this process's nice value only.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
            return Err(format!("cpu-priority={nice}: setpriority: {}", std::io::Error::last_os_error()));
        }
    }
    let limits = [
        ("memory-limit", libc::RLIMIT_DATA, l.memory_limit),
        ("virtual-memory-limit", libc::RLIMIT_AS, l.virtual_memory_limit),
        ("cpu-time-limit", libc::RLIMIT_CPU, l.cpu_time_limit.map(|t| t.as_secs())),
    ];
    for (option, resource, value) in limits {
        let Some(value) = value else { continue };
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit/setrlimit read and write one rlimit struct of
        // this process.
        unsafe {
            libc::getrlimit(resource, &mut limit);
            // The soft limit is the option; the hard one stays (for the CPU
            // it must lie above, or the kernel kills instead of warning).
            limit.rlim_cur = value;
            if limit.rlim_max != libc::RLIM_INFINITY && limit.rlim_max <= value {
                limit.rlim_max = if resource == libc::RLIMIT_CPU { libc::RLIM_INFINITY } else { value };
            }
            if libc::setrlimit(resource, &limit) != 0 {
                return Err(format!("{option}={value}: setrlimit: {}", std::io::Error::last_os_error()));
            }
        }
    }
    Ok(())
}

/// Drops to the group's user and group (when Apache runs as root), enters
/// its home directory and applies umask and locale.
fn take_identity(group: &DaemonGroup) -> Result<(), String> {
    // SAFETY: the uid/gid calls only read or change this process's
    // credentials; the arguments are plain integers and a NUL-terminated
    // path.
    unsafe {
        if libc::geteuid() == 0 {
            let unixd = std::ptr::addr_of!(ffi::ap_unixd_config).read();
            let (uid, gid) = group.identity(unixd.user_id, unixd.group_id);
            let mut groups = vec![gid];
            groups.extend(group.supplementary_groups.iter().copied());
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
                return Err(format!("setgroups: {}", std::io::Error::last_os_error()));
            }
            if libc::setgid(gid) != 0 {
                return Err(format!("setgid({gid}): {}", std::io::Error::last_os_error()));
            }
            if libc::setuid(uid) != 0 {
                return Err(format!("setuid({uid}): {}", std::io::Error::last_os_error()));
            }
        }
        if let Some(mask) = group.umask {
            libc::umask(mask as libc::mode_t);
        }
    }
    let home = group.home.clone().or_else(|| group.user.as_ref().map(|u| u.home.clone())).unwrap_or_else(|| "/".into());
    std::env::set_current_dir(&home).map_err(|e| format!("cannot enter home directory {home}: {e}"))?;
    // SAFETY (set_var): the daemon is still single-threaded here.
    if let Some(lang) = &group.lang {
        unsafe { std::env::set_var("LANG", lang) };
    }
    if let Some(locale) = &group.locale {
        unsafe { std::env::set_var("LC_ALL", locale) };
    }
    Ok(())
}

/// `user NAME (uid N), group NAME (gid N)` of this process.
fn identity_description() -> String {
    // SAFETY: getuid/getgid have no preconditions; getpwuid/getgrgid
    // return null or records valid until the next such call on this
    // thread, which are read at once.
    unsafe {
        let (uid, gid) = (libc::getuid(), libc::getgid());
        let user = libc::getpwuid(uid);
        let user = if user.is_null() { "?".into() } else { std::ffi::CStr::from_ptr((*user).pw_name).to_string_lossy().into_owned() };
        let group = libc::getgrgid(gid);
        let group = if group.is_null() { "?".into() } else { std::ffi::CStr::from_ptr((*group).gr_name).to_string_lossy().into_owned() };
        format!("user {user} (uid {uid}), group {group} (gid {gid})")
    }
}
