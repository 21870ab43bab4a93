//! Starting the daemon process groups in the Apache parent after each
//! configuration read, and where the children find each group's socket.
//!
//! A group's socket path is the same in every configuration generation
//! (prefix, the parent's pid, the group's name): after a restart the new
//! daemons listen where the old ones did, so a request an old child is
//! still serving reaches the new daemons when the old ones have stopped.
//! Nothing registered here outlives the configuration pool: Apache unloads
//! this module at every restart.

use super::supervisor;
use crate::daemon_config::DaemonGroup;
use crate::directives::server_config;
use crate::httpd::{consts, ffi, log, pool};
use std::ffi::{c_int, c_void, CString};
use std::os::fd::RawFd;
use std::sync::Mutex;
use std::time::Duration;

/// A group as the Apache children reach it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub name: String,
    pub socket: String,
    pub connect_timeout: Duration,
    pub socket_timeout: Duration,
    /// The largest response head (status line and headers) accepted.
    pub header_buffer_size: u32,
    /// SO_SNDBUF and SO_RCVBUF for the connections, 0 for the system's.
    pub send_buffer_size: u32,
    pub receive_buffer_size: u32,
    /// The ServerName of the virtual host that defined the group, None
    /// for the main server: only that host may use it.
    pub defined_in: Option<String>,
    /// The group's figures for the status page.
    pub metrics: super::metrics::GroupMetrics,
}

/// Set in the parent before the MPM forks its children, which inherit it.
pub static ENDPOINTS: Mutex<Vec<Endpoint>> = Mutex::new(Vec::new());

/// A UNIX socket path is at most this long (sun_path, with its NUL),
/// less the 4 bytes of the temporary name's `.new`.
const MAX_SOCKET_PATH: usize = 103;

/// Called from post_config. Starts nothing on Apache's first, trial read
/// of the configuration or under `apache2 -t`.
///
/// # Safety
/// `pconf` and `s` must be post_config's configuration pool and main
/// server, in the single-threaded Apache parent.
pub unsafe fn start(pconf: *mut ffi::apr_pool_t, s: *mut ffi::server_rec) -> Result<(), String> {
    // SAFETY: ap_state_query only reads Apache's state.
    let (state, mode) = unsafe {
        (ffi::ap_state_query(ffi::AP_SQ_MAIN_STATE as c_int), ffi::ap_state_query(ffi::AP_SQ_RUN_MODE as c_int))
    };
    if state == ffi::AP_SQ_MS_CREATE_PRE_CONFIG as c_int || mode != ffi::AP_SQ_RM_NORMAL as c_int {
        return Ok(());
    }
    // SAFETY: s is the main server; its config was created by us and
    // lives in pconf, which outlives everything started here (a daemon
    // keeps its own copy of the memory after fork).
    let cfg: &'static crate::config::ServerConfig = unsafe { &*(server_config(s) as *const _) };
    ENDPOINTS.lock().unwrap_or_else(|e| e.into_inner()).clear();
    super::metrics::forget_generation();
    if cfg.daemon_groups.is_empty() {
        return Ok(());
    }
    super::title::remember_server(s);
    let prefix = match &cfg.socket_prefix {
        Some(prefix) => prefix.clone(),
        // SAFETY: pconf is live; the result is a pool string.
        None => unsafe {
            let name = std::ffi::CString::new(crate::daemon_config::DEFAULT_SOCKET_PREFIX).unwrap_or_default();
            pool::str_from(ffi::ap_runtime_dir_relative(pconf, name.as_ptr())).unwrap_or_default().into_owned()
        },
    };
    // SAFETY: getpid has no preconditions; reads a field of Apache's
    // process-wide config and the main server's timeout.
    let (parent, apache_uid, apache_timeout) =
        unsafe {
            (
                libc::getpid(),
                std::ptr::addr_of!(ffi::ap_unixd_config).read().user_id,
                Duration::from_micros((*s).timeout.max(0) as u64),
            )
        };
    for group in &cfg.daemon_groups {
        let socket = format!("{prefix}.{parent}.{}.sock", file_name_part(&group.name));
        if socket.len() > MAX_SOCKET_PATH {
            return Err(format!(
                "daemon process group {}: socket path {socket} is longer than {MAX_SOCKET_PATH} bytes; \
                 set a shorter WSGISocketPrefix",
                group.name
            ));
        }
        let metrics = super::metrics::create(&group.name, group.processes)
            .map_err(|e| format!("daemon process group {}: cannot map its status memory: {e}", group.name))?;
        let owner = group.socket_user.unwrap_or(apache_uid);
        let listener = listen(&socket, group.listen_backlog, owner)
            .map_err(|e| format!("daemon process group {}: cannot listen on {socket}: {e}", group.name))?;
        // SAFETY: single-threaded parent; listener is a listening socket.
        let spawned = unsafe { supervisor::spawn(group, listener, &socket, s) };
        // The parent keeps no copy: its children would inherit it.
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(listener) };
        let pid = spawned.map_err(|e| format!("daemon process group {}: cannot fork its supervisor: {e}", group.name))?;
        // SAFETY: pconf is live; see watch_supervisor.
        unsafe { watch_supervisor(pconf, pid, group) };
        ENDPOINTS.lock().unwrap_or_else(|e| e.into_inner()).push(Endpoint {
            name: group.name.clone(),
            socket,
            connect_timeout: group.connect_timeout,
            socket_timeout: group.socket_timeout.unwrap_or(apache_timeout),
            header_buffer_size: group.effective_header_buffer_size(),
            send_buffer_size: group.send_buffer_size,
            receive_buffer_size: group.receive_buffer_size,
            defined_in: group.defined_in.clone(),
            metrics,
        });
    }
    Ok(())
}

/// A group name as part of a file name: kept when it is plain, otherwise
/// its bytes in hex (names are the configuration's, paths the kernel's).
fn file_name_part(name: &str) -> String {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        name.to_owned()
    } else {
        name.bytes().map(|b| format!("{b:02x}")).collect()
    }
}

/// A listening socket at `path` that only `owner` (and root) may connect
/// to: mode 0600, owned by the user Apache's children run as. It is made
/// under a temporary name and renamed into place once it has its owner, so
/// a child connecting meanwhile (to the previous generation's socket, at a
/// restart) never finds the path missing or not yet its own.
fn listen(path: &str, backlog: u32, owner: u32) -> std::io::Result<RawFd> {
    let staged = format!("{path}.new");
    let fd = listen_at(&staged, backlog, owner)?;
    if let Err(err) = std::fs::rename(&staged, path) {
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(fd) };
        let _ = std::fs::remove_file(&staged);
        return Err(err);
    }
    Ok(fd)
}

fn listen_at(path: &str, backlog: u32, owner: u32) -> std::io::Result<RawFd> {
    let c_path = CString::new(path).map_err(|_| std::io::Error::other("NUL in the socket path"))?;
    let _ = std::fs::remove_file(path);
    // SAFETY: a new socket bound to a path that fits sun_path (checked by
    // the caller); every call's result is checked and the descriptor
    // closed on failure.
    unsafe {
        // Non-blocking: the group's daemons all poll this one socket and a
        // connection wakes each of them; those that lose the race must find
        // accept() failing with EAGAIN, not waiting there for the next
        // connection (a daemon told to stop then waited for good, until its
        // supervisor killed it without its atexit handlers). Accepted
        // connections do not inherit the flag.
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fail = |fd| {
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            Err(err)
        };
        let addr = socket_address(path);
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        // Created private, then opened to the owner only.
        let old_mask = libc::umask(0o177);
        let bound = libc::bind(fd, (&addr as *const libc::sockaddr_un).cast(), len);
        libc::umask(old_mask);
        if bound != 0 {
            return fail(fd);
        }
        if libc::chown(c_path.as_ptr(), owner, u32::MAX) != 0 || libc::chmod(c_path.as_ptr(), 0o600) != 0 {
            return fail(fd);
        }
        if libc::listen(fd, backlog.min(i32::MAX as u32) as c_int) != 0 {
            return fail(fd);
        }
        Ok(fd)
    }
}

/// The address of the UNIX socket at `path`, which must fit sun_path with
/// its NUL (start() checks every group's path against MAX_SOCKET_PATH).
pub fn socket_address(path: &str) -> libc::sockaddr_un {
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid (empty) one.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    // The last byte stays the terminating NUL.
    let room = addr.sun_path.len() - 1;
    for (dst, src) in addr.sun_path[..room].iter_mut().zip(path.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    addr
}

/// Lets Apache know the supervisor is ours (it reaps it like its own
/// children, without complaint), and stops the group when the
/// configuration pool goes: at stop and at every restart. APR drops the
/// registration itself when pconf is cleared, before this module is
/// unloaded.
///
/// # Safety
/// `pconf` must be the live configuration pool of the single-threaded parent.
unsafe fn watch_supervisor(pconf: *mut ffi::apr_pool_t, pid: libc::pid_t, group: &'static DaemonGroup) {
    unsafe extern "C" fn maintenance(reason: c_int, data: *mut c_void, status: c_int) {
        let _ = std::panic::catch_unwind(|| {
            if reason == ffi::APR_OC_REASON_DEATH as c_int {
                // SAFETY: data is the group registered below, alive in pconf.
                let group = unsafe { &*(data as *const DaemonGroup) };
                // While Apache stops or restarts the supervisor is meant to
                // end: prefork signals its whole process group and reaps
                // the supervisor with its children.
                let mut mpm_state: c_int = 0;
                // SAFETY: ap_mpm_query writes one int for a known query code.
                unsafe { ffi::ap_mpm_query(consts::AP_MPMQ_MPM_STATE, &mut mpm_state) };
                if mpm_state == consts::AP_MPMQ_STOPPING {
                    log::server(
                        std::ptr::null(),
                        consts::APLOG_INFO,
                        &format!("the supervisor of daemon process group {} ended with Apache (status {status})", group.name),
                    );
                } else {
                    log::server(
                        std::ptr::null(),
                        consts::APLOG_ERR,
                        &format!(
                            "the supervisor of daemon process group {} ended (status {status}); \
                             its requests get 503 until Apache is restarted",
                            group.name
                        ),
                    );
                }
                // SAFETY: APR asks the maintenance function to unregister
                // a dead child itself.
                unsafe { ffi::apr_proc_other_child_unregister(data) };
            }
        });
    }
    unsafe extern "C" fn stop(data: *mut c_void) -> ffi::apr_status_t {
        let _ = std::panic::catch_unwind(|| {
            // SAFETY: data is the supervisor's pid, boxed below; signalling
            // it is all this does (it stops its daemons and exits itself).
            unsafe { libc::kill(*(data as *const libc::pid_t), libc::SIGTERM) };
        });
        0
    }
    // SAFETY: the apr_proc_t and the pid live in pconf; the group lives in
    // pconf too (the configuration).
    unsafe {
        let proc_ = pool::alloc(pconf, std::mem::zeroed::<ffi::apr_proc_t>());
        (*proc_).pid = pid;
        let data = (group as *const DaemonGroup).cast_mut().cast();
        ffi::apr_proc_other_child_register(proc_, Some(maintenance), data, std::ptr::null_mut(), pconf);
        let pid_box = pool::alloc(pconf, pid);
        ffi::apr_pool_cleanup_register(pconf, pid_box.cast(), Some(stop), Some(ffi::apr_pool_cleanup_null));
    }
}

/// Applies `send-buffer-size` and `receive-buffer-size` (0: leave the
/// system's) to a connection.
pub fn set_buffer_sizes(fd: RawFd, send: u32, receive: u32) {
    for (option, size) in [(libc::SO_SNDBUF, send), (libc::SO_RCVBUF, receive)] {
        if size > 0 {
            let value = size.min(i32::MAX as u32) as c_int;
            // SAFETY: sets an int socket option on our own socket.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    option,
                    (&value as *const c_int).cast(),
                    std::mem::size_of::<c_int>() as libc::socklen_t,
                )
            };
        }
    }
}
