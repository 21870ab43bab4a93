//! How a daemon process serves: an acceptor thread takes connections from
//! Apache children on the group's socket (refusing any peer that is not
//! the Apache user or root) and greets them; `threads` worker threads then
//! wait together on one epoll set of the connections between requests, and
//! the worker a connection's next request wakes reads it and runs it
//! through the WSGI core on its own thread. The request is never handed
//! from one thread to another (each hand-off costs a wake-up on both
//! sides, and at one connection those dominate), and the group's `threads`
//! still bounds how many applications run at once, with a fixed set of
//! Python threads (thread-local state such as a database connection per
//! thread stays bounded as it is with mod_wsgi). SIGTERM, SIGINT, SIGHUP
//! or SIGUSR1, or one of the group's recycling limits (maximum-requests,
//! rss-limit here; the time-based ones in watchdog.rs), have the process
//! replaced: it serves until its successor is ready, then finishes the
//! requests it has and exits.

use super::channel::{ChannelLog, DaemonBody, DaemonSink};
use super::conn::Conn;
use super::metrics::{GroupMetrics, ProcessSlot, Reason};
use super::supervisor::{self, Notice, STOP_SIGNAL};
use super::wire::{Message, ToChild, ToDaemon, Variables, PROTOCOL_VERSION};
use crate::daemon_config::DaemonGroup;
use crate::daemon_lifecycle::{Drain, Lifecycle};
use crate::httpd::ffi;
use crate::interp;
use crate::wsgi::app::{self, Outcome};
use crate::wsgi::logging::{self, Level};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A connection the process holds, with the request in progress on it, if
/// any: idle ones are shut down when the process stops.
pub(super) struct Held {
    pub conn: Arc<Conn>,
    pub running: Option<Running>,
    /// The child's Hello has been answered.
    greeted: bool,
}

/// A request in progress, as the watchdog sees it.
pub(super) struct Running {
    pub since: Instant,
    pub script: String,
    pub client: String,
    /// The worker's thread (pthread_self, which is Python's thread ident).
    pub thread: u64,
    /// Given up on by the watchdog: not waited for when the process stops.
    pub timed_out: bool,
}

pub struct Server {
    pub(super) group: &'static DaemonGroup,
    pub(super) lifecycle: &'static Lifecycle,
    pub(super) started: Instant,
    listener: RawFd,
    stopping: AtomicBool,
    /// The connections waiting for their next request, each armed for one
    /// wake-up at a time (EPOLLONESHOT): whichever worker it wakes owns
    /// the connection until it arms it again.
    waiting: OwnedFd,
    /// Readable in `waiting` once the process stops: wakes every worker.
    stop_event: OwnedFd,
    pub(super) connections: Mutex<HashMap<u64, Held>>,
    next_id: AtomicU64,
    /// The uid allowed to connect besides root.
    allowed_uid: u32,
    /// A successor has been asked for.
    replacement_asked: AtomicBool,
    /// How the requests in progress are given time once the process stops:
    /// Shutdown unless it asked to be replaced.
    drain: Mutex<Drain>,
    /// Requests answered, for maximum-requests.
    requests_done: AtomicU64,
    /// When a request last began or ended, for inactivity-timeout.
    pub(super) last_activity: Mutex<Instant>,
    /// Set when startup-timeout gave up on loading the application: every
    /// request gets 503 until the successor takes over.
    pub(super) startup_failed: AtomicBool,
    /// The status page's figures (metrics.rs): the group's, and this
    /// process's slot.
    metrics: Option<GroupMetrics>,
    slot: Option<&'static ProcessSlot>,
}

/// The epoll key of the stop event (connections count up from 0).
const STOP_KEY: u64 = u64::MAX;

impl Server {
    pub fn new(group: &'static DaemonGroup, listener: RawFd) -> std::io::Result<Self> {
        // SAFETY: reads a plain field of Apache's process-wide config.
        let apache_uid = unsafe { std::ptr::addr_of!(ffi::ap_unixd_config).read().user_id };
        // SAFETY: epoll_create1 and eventfd return new descriptors (or -1),
        // owned from here by the OwnedFds.
        let (waiting, stop_event) = unsafe {
            let waiting = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            if waiting < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let waiting = OwnedFd::from_raw_fd(waiting);
            let stop_event = libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK);
            if stop_event < 0 {
                return Err(std::io::Error::last_os_error());
            }
            (waiting, OwnedFd::from_raw_fd(stop_event))
        };
        // Level-triggered and never disarmed: once written, every worker's
        // wait returns it.
        epoll_control(&waiting, libc::EPOLL_CTL_ADD, stop_event.as_raw_fd(), libc::EPOLLIN as u32, STOP_KEY)?;
        Ok(Self {
            group,
            lifecycle: &group.lifecycle,
            started: Instant::now(),
            listener,
            stopping: AtomicBool::new(false),
            waiting,
            stop_event,
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            allowed_uid: group.socket_user.unwrap_or(apache_uid),
            replacement_asked: AtomicBool::new(false),
            drain: Mutex::new(Drain::Shutdown),
            requests_done: AtomicU64::new(0),
            last_activity: Mutex::new(Instant::now()),
            startup_failed: AtomicBool::new(false),
            metrics: super::metrics::of(&group.name),
            slot: super::metrics::of(&group.name).and_then(|m| m.claim(std::process::id(), group.threads)),
        })
    }

    pub(super) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub(super) fn connections(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Held>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Arms `id` for its next request: one worker wakes when it comes (or
    /// when the child closes the connection).
    fn wait_for_next_request(&self, id: u64, conn: &Conn, op: libc::c_int) -> std::io::Result<()> {
        let events = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32;
        epoll_control(&self.waiting, op, conn.fd(), events, id)
    }

    /// Lets go of connection `id`: its descriptors close once the last
    /// user of the Conn drops it.
    fn forget(&self, id: u64) {
        if let Some(held) = self.connections().remove(&id) {
            // The descriptor may still be open elsewhere (a flusher thread's
            // Arc), so it is taken out of the set by hand.
            let _ = epoll_control(&self.waiting, libc::EPOLL_CTL_DEL, held.conn.fd(), 0, id);
            held.conn.shut_down();
        }
    }

    /// Marks `id` busy with `request` unless the process is stopping;
    /// under the connections' lock, so that stopping either sees the
    /// request in progress (and waits for it) or refuses it.
    fn begin_request(&self, id: u64, request: &ToDaemon) -> bool {
        let (ToDaemon::Request { script, client, .. } | ToDaemon::Check { script, client, .. }) = request else {
            return false;
        };
        let mut connections = self.connections();
        if self.stopping.load(Ordering::SeqCst) {
            return false;
        }
        let Some(held) = connections.get_mut(&id) else { return false };
        // SAFETY: pthread_self has no preconditions.
        let thread = unsafe { libc::pthread_self() } as u64;
        held.running =
            Some(Running { since: Instant::now(), script: script.clone(), client: client.clone(), thread, timed_out: false });
        drop(connections);
        if let Some(slot) = self.slot {
            slot.busy.fetch_add(1, Ordering::Relaxed);
        }
        *self.last_activity.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        true
    }

    /// The request on `id` is over: counted, and the process has itself
    /// replaced when that reaches maximum-requests or its memory is past
    /// rss-limit.
    fn end_request(&self, id: u64) {
        let started = self.connections().get_mut(&id).and_then(|held| held.running.take()).map(|r| r.since);
        if let (Some(slot), Some(metrics)) = (self.slot, self.metrics) {
            slot.busy.fetch_sub(1, Ordering::Relaxed);
            slot.requests.fetch_add(1, Ordering::Relaxed);
            metrics.record_duration(started.map_or(0.0, |s| s.elapsed().as_secs_f64()));
        }
        *self.last_activity.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let done = self.requests_done.fetch_add(1, Ordering::Relaxed) + 1;
        let lifecycle = self.lifecycle;
        if lifecycle.maximum_requests > 0 && done == lifecycle.maximum_requests {
            ask_to_be_replaced(self, &format!("maximum-requests: {done} requests served"), Reason::MaximumRequests, Drain::Graceful);
        }
        if let Some(limit) = lifecycle.rss_limit {
            let rss = resident_bytes();
            if rss > limit && !self.replacement_asked.load(Ordering::Relaxed) {
                ask_to_be_replaced(
                    self,
                    &format!("rss-limit: resident memory {} MiB after a request, above {} MiB", rss >> 20, limit >> 20),
                    Reason::RssLimit,
                    Drain::Graceful,
                );
            }
        }
    }

    /// Requests in progress that stopping waits for (not those the
    /// watchdog gave up on).
    fn any_busy(&self) -> bool {
        self.connections().values().any(|held| held.running.as_ref().is_some_and(|r| !r.timed_out))
    }

    /// For the status page: this process is being replaced, and why.
    pub(super) fn count_replacement(&self, reason: Reason) {
        if let (Some(slot), Some(metrics)) = (self.slot, self.metrics) {
            slot.mark_retiring(reason);
            metrics.count_replacement(std::process::id(), reason);
        }
    }

    fn any_running(&self) -> bool {
        self.connections().values().any(|held| held.running.is_some())
    }
}

/// stack-size, or what a thread gets from the system by default (the
/// soft RLIMIT_STACK, as glibc gives pthreads, and Python's own threads,
/// and mod_wsgi's), not Rust's smaller default: deep C recursion in an
/// application must not overflow here when it would not under mod_wsgi.
fn worker_stack_size(lifecycle: &Lifecycle) -> usize {
    const FALLBACK: usize = 8 << 20;
    if let Some(size) = lifecycle.stack_size {
        return size as usize;
    }
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit fills one rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut limit) } != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return FALLBACK;
    }
    (limit.rlim_cur as usize).clamp(1 << 20, 1 << 30)
}

/// This process's resident set size in bytes (/proc/self/statm).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64
}

/// epoll_ctl on `epoll` for `fd` with `key` as the event's data.
fn epoll_control(epoll: &OwnedFd, op: libc::c_int, fd: RawFd, events: u32, key: u64) -> std::io::Result<()> {
    let mut event = libc::epoll_event { events, u64: key };
    // SAFETY: both descriptors are open; the event is read during the call.
    if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd, &mut event) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Serves until a stop signal; returns once every request has finished
/// (or FINISH_TIMEOUT passed) and the workers are gone.
pub fn run(server: &Server) {
    // Stop signals are taken by this thread with sigwait; every thread
    // started from here inherits the mask and never sees them.
    // SIGXCPU: the soft RLIMIT_CPU of cpu-time-limit was reached.
    let stop_signals =
        signal_set(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1, libc::SIGXCPU, STOP_SIGNAL]);
    // SAFETY: blocks the signals for this thread (and its children).
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &stop_signals, std::ptr::null_mut()) };
    // SAFETY: `server` outlives every thread: this function joins them all
    // (or, past the timeout, the process exits with them).
    let server: &'static Server = unsafe { &*(server as *const Server) };
    let mut workers = Vec::new();
    for _ in 0..server.group.threads {
        let builder = std::thread::Builder::new().stack_size(worker_stack_size(server.lifecycle));
        match builder.spawn(move || worker(server)) {
            Ok(worker) => workers.push(worker),
            Err(err) => logging::process(
                Level::Err,
                &format!("daemon process group {}: cannot start a worker thread: {err}", server.group.name),
            ),
        }
    }
    let acceptor = std::thread::spawn(move || accept_loop(server));
    super::watchdog::start(server);
    supervisor::notify(Notice::Ready);
    if !interp::is_available() {
        ask_to_be_replaced_failing(server, "Python could not start");
    }
    // SIGTERM, SIGINT and SIGHUP (an application reloading itself, an
    // operator) ask for a replacement, and this process serves on until
    // its successor is ready and the supervisor sends STOP_SIGNAL; with no
    // supervisor to ask, it stops at once.
    // SAFETY: getppid has no preconditions.
    let supervisor_pid = unsafe { libc::getppid() };
    loop {
        let second = libc::timespec { tv_sec: 1, tv_nsec: 0 };
        // The status page's figure, once a second.
        if let Some(slot) = server.slot {
            slot.rss_bytes.store(resident_bytes(), Ordering::Relaxed);
        }
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
        let cpu_limit = format!("cpu-time-limit: {} s of CPU used", server.lifecycle.cpu_time_limit.unwrap_or_default().as_secs());
        let (why, reason, drain) = match signal {
            libc::SIGINT => ("SIGINT", Reason::Signal, Drain::Graceful),
            libc::SIGHUP => ("SIGHUP", Reason::Signal, Drain::Graceful),
            libc::SIGTERM => ("SIGTERM", Reason::Signal, Drain::Graceful),
            libc::SIGUSR1 => ("SIGUSR1", Reason::Signal, Drain::Eviction),
            libc::SIGXCPU => (cpu_limit.as_str(), Reason::CpuTimeLimit, Drain::Graceful),
            _ => ("told to stop", Reason::Signal, Drain::Shutdown),
        };
        // SAFETY: as above.
        let orphaned = unsafe { libc::getppid() } != supervisor_pid;
        if signal != STOP_SIGNAL && !orphaned && ask_to_be_replaced(server, why, reason, drain) {
            continue;
        }
        logging::process(
            Level::Info,
            &format!("daemon process group {}: process {} stopping ({why})", server.group.name, std::process::id()),
        );
        break;
    }
    // Under the connections' lock: see begin_request.
    {
        let _connections = server.connections();
        server.stopping.store(true, Ordering::SeqCst);
    }
    // SAFETY: writes the 8 bytes an eventfd takes, from a live u64.
    unsafe { libc::write(server.stop_event.as_raw_fd(), (&1u64 as *const u64).cast(), 8) };
    // Idle connections first: their next requests go to the successor
    // rather than waiting for the acceptor's poll to end.
    shut_idle_connections(server);
    let _ = acceptor.join();
    let drain = if server.replacement_asked.load(Ordering::SeqCst) {
        *server.drain.lock().unwrap_or_else(|e| e.into_inner())
    } else {
        Drain::Shutdown
    };
    let drain_time = server.lifecycle.drain_time(drain);
    let deadline = Instant::now() + drain_time;
    while server.any_busy() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    shut_idle_connections(server);
    if server.any_running() {
        // A request that is still running holds its worker, and Python
        // cannot be finalised under it: the process ends here, as
        // shutdown-timeout says, without its exit functions.
        let running = server.connections().values().filter(|held| held.running.is_some()).count();
        logging::process(
            Level::Warning,
            &format!(
                "daemon process group {}: process {} exits with {running} request(s) still running {:.0} s after it \
                 stopped accepting; they are cut and exit functions do not run",
                server.group.name,
                std::process::id(),
                drain_time.as_secs_f64()
            ),
        );
        // SAFETY: _exit ends the process at once; nothing of it is used
        // afterwards.
        unsafe { libc::_exit(0) };
    }
    for worker in workers {
        let _ = worker.join();
    }
    super::watchdog::stop();
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
    for held in server.connections().values() {
        if held.running.is_none() {
            held.conn.shut_down();
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
        if let Err(err) = take_connection(server, stream) {
            logging::process(
                Level::Err,
                &format!("daemon process group {}: a new connection failed: {err}", server.group.name),
            );
        }
    }
}

/// Adds a new connection to those waiting: its Hello is answered by the
/// worker it wakes, as a request would be, so that a peer slow to greet
/// holds up no other connection.
fn take_connection(server: &Server, stream: UnixStream) -> std::io::Result<()> {
    let conn = Arc::new(Conn::new(stream)?);
    let id = server.next_id.fetch_add(1, Ordering::Relaxed);
    {
        // Under the lock with the stopping check: a connection added after
        // shut_idle_connections ran would never be answered. Dropped here,
        // it ends before the greeting and the child tries elsewhere.
        let mut connections = server.connections();
        if server.stopping.load(Ordering::SeqCst) {
            conn.shut_down();
            return Ok(());
        }
        connections.insert(id, Held { conn: conn.clone(), running: None, greeted: false });
    }
    if let Err(err) = server.wait_for_next_request(id, &conn, libc::EPOLL_CTL_ADD) {
        server.forget(id);
        return Err(err);
    }
    Ok(())
}

/// Answers a new connection's Hello with the daemon's greeting.
fn greet(conn: &Conn) -> std::io::Result<()> {
    match conn.recv()? {
        Some(ToDaemon::Hello { version }) if version == PROTOCOL_VERSION => conn.greet(),
        Some(ToDaemon::Hello { version }) => Err(std::io::Error::other(format!(
            "the Apache child speaks protocol version {version}, this daemon {PROTOCOL_VERSION}"
        ))),
        Some(other) => Err(std::io::Error::other(format!("the Apache child sent {} before Hello", other.name()))),
        None => Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
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

/// A worker: waits with the others for a connection's next request and
/// runs it, until the process stops.
fn worker(server: &'static Server) {
    while !server.stopping.load(Ordering::SeqCst) {
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: waits for one event into `event`; no timeout, the stop
        // event wakes every worker.
        let n = unsafe { libc::epoll_wait(server.waiting.as_raw_fd(), &mut event, 1, -1) };
        if n <= 0 || event.u64 == STOP_KEY {
            continue;
        }
        let id = event.u64;
        let Some((conn, greeted)) = server.connections().get_mut(&id).map(|held| {
            let greeted = held.greeted;
            held.greeted = true;
            (held.conn.clone(), greeted)
        }) else {
            continue;
        };
        if greeted {
            serve_connection(server, id, &conn);
        } else {
            greet_connection(server, id, &conn);
        }
    }
}

/// Answers a new connection's Hello, then arms it for its first request.
fn greet_connection(server: &Server, id: u64, conn: &Conn) {
    if let Err(err) = greet(conn).and_then(|()| server.wait_for_next_request(id, conn, libc::EPOLL_CTL_MOD)) {
        // A child that connected and left has nothing to report.
        if err.kind() != std::io::ErrorKind::UnexpectedEof {
            logging::process(Level::Err, &format!("daemon process group {}: a new connection failed: {err}", server.group.name));
        }
        server.forget(id);
    }
}

/// Runs the requests `conn` has ready, then arms it for the next one (or
/// lets it go when it ended or the process is stopping).
fn serve_connection(server: &Server, id: u64, conn: &Arc<Conn>) {
    loop {
        let request = match conn.recv() {
            Ok(Some(request @ (ToDaemon::Request { .. } | ToDaemon::Check { .. }))) => request,
            // Closed by the child, or a frame out of turn.
            Ok(_) | Err(_) => return server.forget(id),
        };
        // Refused while stopping: the child, seeing the connection close
        // with the request not taken, sends it elsewhere.
        if !server.begin_request(id, &request) {
            return server.forget(id);
        }
        // Taken: from here the request is this process's to answer, and
        // the Apache child will not send it elsewhere. Not taken: the child
        // gave up waiting for a free thread and the connection is over.
        if !conn.take_request() {
            return server.forget(id);
        }
        if let ToDaemon::Check { .. } = request {
            super::auth::answer(conn, request);
        } else {
            answer(server, conn, request);
        }
        server.end_request(id);
        if server.stopping.load(Ordering::SeqCst) {
            return server.forget(id);
        }
        // A child sends its next request only after the end of the
        // response, so nothing is buffered here unless it broke the
        // protocol; that is read (and refused) at once rather than left
        // where no readiness poll reports it.
        if !conn.has_unread() {
            break;
        }
    }
    if server.wait_for_next_request(id, conn, libc::EPOLL_CTL_MOD).is_err() {
        server.forget(id);
    }
}

/// Runs one request and sends how it ended.
fn answer(server: &Server, conn: &Arc<Conn>, request: ToDaemon) {
    let ToDaemon::Request { script, callable, application_group, reload_mtime, request_start_micros, declared_length, head_only, client, mut variables } =
        request
    else {
        return;
    };
    // When a worker took the request, after it waited for a free thread:
    // the end of its queueing time (mod_wsgi.queue_start, from the Apache
    // child), in the environ and the events as with mod_wsgi.
    let daemon_start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros());
    if let Some(refusal) = refusal(server, &script, &variables, daemon_start) {
        let _ = conn.send(&ToChild::Log { level: super::channel::level_code(Level::Err), text: refusal });
        let _ = conn.send(&ToChild::Failed { status: 503 });
        return;
    }
    variables.push(b"mod_wsgi.daemon_start", daemon_start.to_string().as_bytes());
    let log = Arc::new(ChannelLog::new(conn.clone(), client));
    let vars: Vec<(&[u8], &[u8])> = variables.iter().collect();
    let outcome = interp::with_python(|py| {
        let request = app::Request {
            script: &script,
            reload_mtime,
            callable_object: &callable,
            application_group: application_group.as_deref(),
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

/// Why a request is answered 503 without running: the process has no
/// Python, it waited longer than queue-timeout for a thread, or the
/// application could not be loaded within startup-timeout.
fn refusal(server: &Server, script: &str, variables: &Variables, daemon_start: u128) -> Option<String> {
    let group = &server.group.name;
    let pid = std::process::id();
    if !interp::is_available() {
        return Some(format!(
            "daemon process group {group}: process {pid} could not start Python and is being replaced; \
             request for {script} not run"
        ));
    }
    if server.startup_failed.load(Ordering::Relaxed) {
        return Some(format!(
            "daemon process group {group}: process {pid} could not load its application within startup-timeout \
             ({} s) and is being replaced; request for {script} not run",
            server.lifecycle.startup_timeout.unwrap_or_default().as_secs()
        ));
    }
    let limit = server.lifecycle.queue_timeout?;
    let queue_start = variables.iter().filter(|(k, _)| *k == b"mod_wsgi.queue_start").last()?;
    let queue_start: u128 = std::str::from_utf8(&queue_start.1).ok()?.parse().ok()?;
    let waited = Duration::from_micros(daemon_start.saturating_sub(queue_start) as u64);
    (waited > limit).then(|| {
        format!(
            "daemon process group {group}: request for {script} waited {:.1} s for a free thread, more than \
             queue-timeout ({} s); it did not run",
            waited.as_secs_f64(),
            limit.as_secs()
        )
    })
}

/// Asks the supervisor for a successor (once), `drain` deciding how long
/// this process's requests get once it takes over; false if there is no
/// supervisor to ask.
pub fn ask_to_be_replaced(server: &Server, why: &str, reason: Reason, drain: Drain) -> bool {
    ask_for_successor(server, why, reason, drain, Notice::Retire)
}

/// As ask_to_be_replaced, for a process that failed to start its
/// application: the supervisor waits out its back-off first.
pub(super) fn ask_to_be_replaced_failing(server: &Server, why: &str) -> bool {
    ask_for_successor(server, why, Reason::StartupTimeout, Drain::Graceful, Notice::RetireFailing)
}

fn ask_for_successor(server: &Server, why: &str, reason: Reason, drain: Drain, notice: Notice) -> bool {
    if server.replacement_asked.swap(true, Ordering::SeqCst) {
        return true;
    }
    server.count_replacement(reason);
    *server.drain.lock().unwrap_or_else(|e| e.into_inner()) = drain;
    logging::process(
        Level::Info,
        &format!(
            "daemon process group {}: process {} asks to be replaced ({why}); serving until its successor is ready",
            server.group.name,
            std::process::id()
        ),
    );
    supervisor::notify(notice)
}
