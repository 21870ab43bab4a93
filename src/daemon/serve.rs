//! How a daemon process serves: an acceptor thread takes connections from
//! Apache children on the group's socket (refusing any peer that is not
//! the Apache user or root), a thread per connection reads its requests,
//! and `threads` worker threads run them through the WSGI core, so the
//! group's `threads` bounds how many applications run at once whatever the
//! number of connections. SIGTERM, SIGINT or SIGHUP make the process stop
//! accepting, finish the requests it has and exit.

use super::channel::{ChannelLog, DaemonBody, DaemonSink};
use super::conn::Conn;
use super::supervisor::{self, Notice, STOP_SIGNAL};
use super::wire::{ToChild, ToDaemon, PROTOCOL_VERSION};
use crate::daemon_config::DaemonGroup;
use crate::httpd::ffi;
use crate::interp;
use crate::wsgi::app::{self, Outcome};
use crate::wsgi::logging::{self, Level};
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A request read from a connection, waiting for a worker.
struct Job {
    conn: Arc<Conn>,
    request: ToDaemon,
    done: Arc<(Mutex<bool>, Condvar)>,
}

pub struct Server {
    group: &'static DaemonGroup,
    listener: RawFd,
    stopping: AtomicBool,
    queue: Mutex<VecDeque<Job>>,
    queued: Condvar,
    /// Live connections by id, with whether a request is in progress:
    /// idle ones are shut down when the process stops.
    connections: Mutex<HashMap<u64, (Arc<Conn>, bool)>>,
    next_id: AtomicU64,
    /// The uid allowed to connect besides root.
    allowed_uid: u32,
    /// A successor has been asked for.
    replacement_asked: AtomicBool,
}

/// How long a stopping process waits for its requests to finish.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

impl Server {
    pub fn new(group: &'static DaemonGroup, listener: RawFd) -> Self {
        // SAFETY: reads a plain field of Apache's process-wide config.
        let apache_uid = unsafe { std::ptr::addr_of!(ffi::ap_unixd_config).read().user_id };
        Self {
            group,
            listener,
            stopping: AtomicBool::new(false),
            queue: Mutex::new(VecDeque::new()),
            queued: Condvar::new(),
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            allowed_uid: group.socket_user.unwrap_or(apache_uid),
            replacement_asked: AtomicBool::new(false),
        }
    }
}

/// Serves until a stop signal; returns once every request has finished
/// (or FINISH_TIMEOUT passed) and the workers are gone.
pub fn run(server: &Server) {
    // Stop signals are taken by this thread with sigwait; every thread
    // started from here inherits the mask and never sees them.
    let stop_signals = signal_set(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP, STOP_SIGNAL]);
    // SAFETY: blocks the signals for this thread (and its children).
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &stop_signals, std::ptr::null_mut()) };
    // SAFETY: `server` outlives every thread: this function joins them all
    // (or, past the timeout, the process exits with them).
    let server: &'static Server = unsafe { &*(server as *const Server) };
    let mut workers = Vec::new();
    for _ in 0..server.group.threads {
        workers.push(std::thread::spawn(move || worker(server)));
    }
    let acceptor = std::thread::spawn(move || accept_loop(server));
    supervisor::notify(Notice::Ready);
    // SIGTERM, SIGINT and SIGHUP (an application reloading itself, an
    // operator) ask for a replacement, and this process serves on until
    // its successor is ready and the supervisor sends STOP_SIGNAL; with no
    // supervisor to ask, it stops at once.
    // SAFETY: getppid has no preconditions.
    let supervisor_pid = unsafe { libc::getppid() };
    loop {
        let second = libc::timespec { tv_sec: 1, tv_nsec: 0 };
        // SAFETY: waits up to a second for one of the blocked signals.
        let signal = unsafe { libc::sigtimedwait(&stop_signals, std::ptr::null_mut(), &second) };
        if signal < 0 {
            // A daemon whose supervisor is gone (killed) has nobody to
            // replace or stop it: it stops by itself.
            // SAFETY: as above.
            if unsafe { libc::getppid() } != supervisor_pid {
                logging::process(
                    Level::Warning,
                    &format!("daemon process group {}: process {} lost its supervisor; stopping", server.group.name, std::process::id()),
                );
                break;
            }
            continue;
        }
        let why = match signal {
            libc::SIGINT => "SIGINT",
            libc::SIGHUP => "SIGHUP",
            libc::SIGTERM => "SIGTERM",
            _ => "told to stop",
        };
        // SAFETY: as above.
        let orphaned = unsafe { libc::getppid() } != supervisor_pid;
        if signal != STOP_SIGNAL && !orphaned && ask_to_be_replaced(server, why) {
            continue;
        }
        logging::process(
            Level::Info,
            &format!("daemon process group {}: process {} stopping ({why})", server.group.name, std::process::id()),
        );
        break;
    }
    server.stopping.store(true, Ordering::SeqCst);
    // Idle connections first: their next requests go to the successor
    // rather than waiting for the acceptor's poll to end.
    shut_idle_connections(server);
    let _ = acceptor.join();
    let deadline = Instant::now() + FINISH_TIMEOUT;
    loop {
        shut_idle_connections(server);
        let busy = server.connections.lock().unwrap_or_else(|e| e.into_inner()).values().any(|(_, busy)| *busy);
        if !busy || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    server.queued.notify_all();
    for worker in workers {
        let _ = worker.join();
    }
}

fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set; sigaddset adds valid signals.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for s in signals {
            libc::sigaddset(set.as_mut_ptr(), *s);
        }
        set.assume_init()
    }
}

fn shut_idle_connections(server: &Server) {
    for (conn, busy) in server.connections.lock().unwrap_or_else(|e| e.into_inner()).values() {
        if !*busy {
            conn.shut_down();
        }
    }
}

/// Accepts until the process stops. The socket is shared with the other
/// processes of the group and the supervisor, so this process stops by
/// no longer polling it, never by shutting it down.
fn accept_loop(server: &'static Server) {
    while !server.stopping.load(Ordering::SeqCst) {
        let mut poll = libc::pollfd { fd: server.listener, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd; a 100 ms timeout bounds how late a
        // stop is noticed.
        let ready = unsafe { libc::poll(&mut poll, 1, 100) };
        if ready <= 0 {
            continue;
        }
        // SAFETY: accept4 on our listening socket; the new descriptor is
        // owned by the UnixStream made from it.
        let fd = unsafe {
            libc::accept4(server.listener, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC)
        };
        if fd < 0 {
            // Another process of the group took it, or a transient error.
            continue;
        }
        // SAFETY: fd was just returned by accept4 and is owned by nothing else.
        let stream = unsafe { UnixStream::from_raw_fd(fd) };
        if let Err(why) = check_peer(server, &stream) {
            logging::process(Level::Err, &format!("daemon process group {}: refused a connection: {why}", server.group.name));
            continue;
        }
        super::groups::set_buffer_sizes(fd, server.group.send_buffer_size, server.group.receive_buffer_size);
        let id = server.next_id.fetch_add(1, Ordering::Relaxed);
        match Conn::new(stream) {
            Ok(conn) => {
                let conn = Arc::new(conn);
                server.connections.lock().unwrap_or_else(|e| e.into_inner()).insert(id, (conn.clone(), false));
                std::thread::spawn(move || connection(server, id, conn));
            }
            Err(err) => logging::process(Level::Err, &format!("daemon connection setup failed: {err}")),
        }
    }
}

/// Only Apache's children (its User) and root may hand this process a
/// request: anyone else could forge its environ (REMOTE_USER, HTTPS...).
fn check_peer(server: &Server, stream: &UnixStream) -> Result<(), String> {
    let mut cred = libc::ucred { pid: 0, uid: u32::MAX, gid: u32::MAX };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED fills a ucred of the given size.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(format!("cannot read the peer's credentials: {}", std::io::Error::last_os_error()));
    }
    if cred.uid == 0 || cred.uid == server.allowed_uid {
        Ok(())
    } else {
        Err(format!("peer process {} runs as uid {}, not as Apache's user (uid {}) or root", cred.pid, cred.uid, server.allowed_uid))
    }
}

fn set_busy(server: &Server, id: u64, busy: bool) {
    if let Some(entry) = server.connections.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&id) {
        entry.1 = busy;
    }
}

/// Reads one connection's requests, one at a time, and hands each to a
/// worker.
fn connection(server: &'static Server, id: u64, conn: Arc<Conn>) {
    let greeted = conn.recv().ok().flatten().is_some_and(|m| matches!(m, ToDaemon::Hello { version } if version == PROTOCOL_VERSION))
        && conn.send(&ToChild::Hello { version: PROTOCOL_VERSION, pid: std::process::id() }).is_ok();
    while greeted && !server.stopping.load(Ordering::SeqCst) {
        let request = match conn.recv() {
            Ok(Some(request @ ToDaemon::Request { .. })) => request,
            Ok(None) => break,
            Ok(Some(_)) | Err(_) => break,
        };
        set_busy(server, id, true);
        // Accepted: from here the request is this process's to answer, and
        // the Apache child must not send it elsewhere.
        if conn.send(&ToChild::Accepted).is_err() {
            break;
        }
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        server.queue.lock().unwrap_or_else(|e| e.into_inner()).push_back(Job { conn: conn.clone(), request, done: done.clone() });
        server.queued.notify_one();
        let (lock, finished) = &*done;
        let mut is_done = lock.lock().unwrap_or_else(|e| e.into_inner());
        while !*is_done {
            is_done = finished.wait(is_done).unwrap_or_else(|e| e.into_inner());
        }
        drop(is_done);
        set_busy(server, id, false);
    }
    server.connections.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
}

fn worker(server: &'static Server) {
    loop {
        let job = {
            let mut queue = server.queue.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(job) = queue.pop_front() {
                    break Some(job);
                }
                if server.stopping.load(Ordering::SeqCst) && server.connections.lock().unwrap_or_else(|e| e.into_inner()).values().all(|(_, busy)| !*busy) {
                    break None;
                }
                queue = server.queued.wait_timeout(queue, Duration::from_millis(100)).unwrap_or_else(|e| e.into_inner()).0;
            }
        };
        let Some(job) = job else { return };
        answer(server, &job.conn, job.request);
        let (lock, finished) = &*job.done;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        finished.notify_one();
    }
}

/// Runs one request and sends how it ended.
fn answer(server: &Server, conn: &Arc<Conn>, request: ToDaemon) {
    let ToDaemon::Request { script, callable, reload_mtime, request_start_micros, declared_length, head_only, client, mut variables } =
        request
    else {
        return;
    };
    // When a worker took the request, after it waited for a free thread:
    // the end of its queueing time (mod_wsgi.queue_start, from the Apache
    // child), in the environ and the events as with mod_wsgi.
    let daemon_start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros());
    variables.push((b"mod_wsgi.daemon_start".to_vec(), daemon_start.to_string().into_bytes()));
    let log = Arc::new(ChannelLog::new(conn.clone(), client));
    let vars: Vec<(&[u8], &[u8])> = variables.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    let outcome = interp::with_python(|py| {
        let request = app::Request {
            script: &script,
            reload_mtime,
            callable_object: &callable,
            variables: &vars,
            request_start: request_start_micros as f64 / 1e6,
            log: log.clone(),
            body: Box::new(DaemonBody::new(conn.clone(), declared_length)),
            sink: Box::new(DaemonSink::new(conn.clone(), head_only)),
        };
        app::run(py, request)
    });
    log.finish();
    let last = match outcome {
        Ok(Outcome::Responded(Some(final_pass))) => {
            final_pass.send();
            return;
        }
        // The sink has already told the child to cut the response.
        Ok(Outcome::Responded(None)) => return,
        Ok(Outcome::Failed(status)) => ToChild::Failed { status },
        Ok(Outcome::BodyFailed(status)) => ToChild::BodyFailed { status },
        Err(reason) => {
            logging::process(
                Level::Err,
                &format!("daemon process group {}: cannot run {script}: {reason}", server.group.name),
            );
            ToChild::Failed { status: 500 }
        }
    };
    let _ = conn.send(&last);
}

/// Asks the supervisor for a successor (once); false if there is no
/// supervisor to ask.
pub fn ask_to_be_replaced(server: &Server, why: &str) -> bool {
    if server.replacement_asked.swap(true, Ordering::SeqCst) {
        return true;
    }
    logging::process(
        Level::Info,
        &format!(
            "daemon process group {}: process {} asks to be replaced ({why}); serving until its successor is ready",
            server.group.name,
            std::process::id()
        ),
    );
    supervisor::notify(Notice::Retire)
}
