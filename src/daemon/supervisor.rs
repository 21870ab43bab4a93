//! One supervisor process per daemon process group, forked from the Apache
//! parent after each configuration read. It holds the group's listening
//! socket for as long as the group lives (so a daemon being replaced never
//! leaves the socket without a listener: connections wait in its backlog),
//! starts the group's daemon processes, restarts those that die with
//! back-off, and stops them when Apache stops or restarts. It never runs
//! Python and never touches a request.

use super::process;
use crate::daemon_config::DaemonGroup;
use crate::httpd::{consts, ffi, log};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set by SIGTERM (Apache's cleanup at stop and restart, and prefork's
/// signal to its whole process group at stop) and SIGHUP (prefork's signal
/// to its process group at a full restart).
static STOP: AtomicBool = AtomicBool::new(false);

/// What a daemon tells its supervisor over the control pipe, as 8 bytes
/// (pid, message): smaller than PIPE_BUF, so concurrent writes from several
/// daemons never interleave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Started, Python up and import scripts loaded, accepting requests.
    Ready,
    /// Asks to be replaced (SIGINT/SIGTERM/SIGHUP, its WSGI script
    /// changed, a recycling limit): it goes on serving until its successor
    /// is ready.
    Retire,
    /// Asks to be replaced because its application did not come up
    /// (startup-timeout): the successor starts after the back-off.
    RetireFailing,
}

/// The write end daemons use; the read end stays in the supervisor.
static NOTICES: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Sends `notice` about this process to the supervisor; false if there
/// is no supervisor to tell (the caller then stops by itself).
pub fn notify(notice: Notice) -> bool {
    let fd = NOTICES.load(Ordering::Relaxed);
    if fd < 0 {
        return false;
    }
    let mut message = [0u8; 8];
    message[..4].copy_from_slice(&std::process::id().to_be_bytes());
    message[4..].copy_from_slice(&(notice as u32).to_be_bytes());
    // SAFETY: writes 8 bytes from a live buffer to our pipe descriptor.
    unsafe { libc::write(fd, message.as_ptr().cast(), message.len()) == message.len() as isize }
}

/// Notices waiting in the pipe (non-blocking).
fn read_notices(fd: RawFd) -> Vec<(libc::pid_t, Notice)> {
    let mut notices = Vec::new();
    let mut message = [0u8; 8];
    // SAFETY: reads at most 8 bytes into a live buffer; the descriptor is
    // non-blocking, so an empty pipe returns at once.
    while unsafe { libc::read(fd, message.as_mut_ptr().cast(), message.len()) } == message.len() as isize {
        let pid = u32::from_be_bytes(message[..4].try_into().unwrap_or_default()) as libc::pid_t;
        let notice = match u32::from_be_bytes(message[4..].try_into().unwrap_or_default()) {
            0 => Notice::Ready,
            1 => Notice::Retire,
            _ => Notice::RetireFailing,
        };
        notices.push((pid, notice));
    }
    notices
}

/// The signal that stopped the group and who sent it, for the log.
static STOP_SIGNAL_NUMBER: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
static STOP_SENDER: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_stop(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler;
    // reading it and storing to atomics is async-signal-safe.
    let sender = unsafe { (*info).si_pid() };
    STOP_SIGNAL_NUMBER.store(signal, Ordering::Relaxed);
    STOP_SENDER.store(sender, Ordering::Relaxed);
    STOP.store(true, Ordering::Relaxed);
}

/// How long a daemon must have run for its exit not to count as a failure
/// to start; the back-off grows with consecutive failures up to the cap.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

struct Slot {
    pid: Option<libc::pid_t>,
    started: Instant,
    /// `pid` has said it is ready.
    ready: bool,
    failures: u32,
    next_start: Instant,
    /// A replacement starting while `pid` goes on serving, and since when.
    successor: Option<(libc::pid_t, Instant)>,
    /// A successor asked for by a failing process, to start at next_start.
    successor_due: bool,
    /// The last process of this slot killed for startup-timeout.
    killed_late: Option<libc::pid_t>,
}

impl Slot {
    fn successor_pid(&self) -> Option<libc::pid_t> {
        self.successor.map(|(pid, _)| pid)
    }
}

/// A daemon told to stop after its successor took over, and when it must
/// be gone.
struct Retired {
    pid: libc::pid_t,
    kill_at: Instant,
}

/// Forks the supervisor of `group`. In the parent, returns its pid; the
/// child never returns.
///
/// # Safety
/// Must be called from the Apache parent while it is single-threaded
/// (post_config), with `listener` a listening socket and `s` the main
/// server.
pub unsafe fn spawn(
    group: &'static DaemonGroup,
    listener: RawFd,
    socket: &str,
    s: *mut ffi::server_rec,
) -> std::io::Result<libc::pid_t> {
    // SAFETY: the parent is single-threaded here, so the child may go on
    // running any code, not only async-signal-safe functions.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid > 0 {
        return Ok(pid);
    }
    // The supervisor.
    let code = std::panic::catch_unwind(|| {
        // SAFETY: this process is single-threaded; see reset_signals.
        unsafe { reset_signals() };
        // Apache's listening sockets are not the supervisor's: kept open,
        // they held Apache's port after Apache exited, for as long as the
        // group took to stop, so a new Apache could not bind it and clients
        // were queued where nobody would accept them. The daemons forked
        // from here inherit them closed (and close them again, harmlessly).
        // SAFETY: closes the parent's listener sockets in this process only.
        unsafe { ffi::ap_close_listeners() };
        let created = socket_identity(socket);
        let code = supervise(group, listener, socket, s);
        // The socket goes with the group, unless a newer generation's
        // supervisor has bound the path again meanwhile.
        if created.is_some() && socket_identity(socket) == created {
            let _ = std::fs::remove_file(socket);
        }
        code
    })
    .unwrap_or(1);
    // SAFETY: _exit skips atexit handlers and the parent's pool cleanups,
    // which belong to the Apache parent, not to this copy of it.
    unsafe { libc::_exit(code) }
}

/// The file at `path` as (device, inode), to tell ours from a newer one.
fn socket_identity(path: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Forgets the Apache parent's signal handlers (a SIGTERM would otherwise
/// run Apache's shutdown code in this copy of it) and installs ours.
/// SIGHUP stops the group like SIGTERM: at a full restart prefork sends it
/// to its whole process group, supervisors included, before the
/// configuration pool's cleanup sends SIGTERM; left at its default it
/// killed the supervisor, leaving its daemons to notice by themselves and
/// Apache to report a failed group.
///
/// # Safety
/// Only in a freshly forked, single-threaded process.
unsafe fn reset_signals() {
    // SAFETY: plain signal-disposition calls on valid signal numbers, with
    // a zeroed (valid, empty) sigaction filled in; the handler only reads
    // its siginfo and stores to atomics, which is async-signal-safe.
    unsafe {
        for sig in [libc::SIGUSR1, libc::SIGINT, libc::SIGQUIT, libc::SIGWINCH, libc::SIGPIPE] {
            libc::signal(sig, if sig == libc::SIGPIPE { libc::SIG_IGN } else { libc::SIG_DFL });
        }
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_stop as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        for sig in [libc::SIGTERM, libc::SIGHUP] {
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
        let mut none = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(none.as_mut_ptr());
        libc::sigprocmask(libc::SIG_SETMASK, none.as_ptr(), std::ptr::null_mut());
    }
}

fn supervise(group: &'static DaemonGroup, listener: RawFd, socket: &str, s: *mut ffi::server_rec) -> i32 {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    let mut pipe = [-1; 2];
    // SAFETY: pipe2 fills two descriptors; the read end is non-blocking so
    // the loop below can poll it.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0
        // SAFETY: fcntl on the descriptor just made.
        || unsafe { libc::fcntl(pipe[0], libc::F_SETFL, libc::O_NONBLOCK) } != 0
    {
        log::server(s, consts::APLOG_CRIT, &format!("daemon process group {}: cannot make a pipe", group.name));
        return 1;
    }
    NOTICES.store(pipe[1], Ordering::Relaxed);
    let now = Instant::now();
    let mut slots: Vec<Slot> = (0..group.processes)
        .map(|_| Slot {
            pid: None,
            started: now,
            ready: false,
            failures: 0,
            next_start: now,
            successor: None,
            successor_due: false,
            killed_late: None,
        })
        .collect();
    // Daemons replaced by a successor, stopping: reaped without a restart.
    let mut retired: Vec<Retired> = Vec::new();
    let name = &group.name;
    log::server(
        s,
        consts::APLOG_INFO,
        &format!("daemon process group {name}: supervisor {} started, listening on {socket}", std::process::id()),
    );
    // SAFETY: as above.
    while !STOP.load(Ordering::Relaxed) && unsafe { libc::getppid() } == parent {
        reap(group, &mut slots, &mut retired, s);
        for (pid, notice) in read_notices(pipe[0]) {
            // Daemons that got the same signal as this process (prefork's
            // SIGHUP to its process group) ask to be replaced: the group
            // is stopping, so no successor is started.
            if STOP.load(Ordering::Relaxed) {
                break;
            }
            handle_notice(group, &mut slots, &mut retired, pid, notice, listener, s);
        }
        let now = Instant::now();
        for (index, slot) in slots.iter_mut().enumerate() {
            if slot.pid.is_none() && slot.successor.is_none() && now >= slot.next_start {
                slot.started = now;
                slot.ready = false;
                // SAFETY: this process is single-threaded.
                match unsafe { fork_daemon(group, index, listener, s) } {
                    Ok(pid) => slot.pid = Some(pid),
                    Err(err) => {
                        log::server(s, consts::APLOG_ERR, &format!("daemon process group {name}: cannot fork: {err}"));
                        slot.next_start = now + BACKOFF_FIRST;
                    }
                }
            }
            if slot.successor_due && now >= slot.next_start {
                slot.successor_due = false;
                // SAFETY: as above.
                start_successor(group, index, slot, listener, s);
            }
        }
        enforce_startup_timeout(group, &mut slots, s);
        kill_overdue(group, &mut retired, s);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (signal, sender) = (STOP_SIGNAL_NUMBER.load(Ordering::Relaxed), STOP_SENDER.load(Ordering::Relaxed));
    let why = match signal {
        0 => "Apache's parent process is gone".to_owned(),
        libc::SIGHUP => format!("SIGHUP from process {sender}"),
        _ => format!("SIGTERM from process {sender}"),
    };
    log::server(s, consts::APLOG_INFO, &format!("daemon process group {name}: stopping ({why})"));
    stop_all(group, &mut slots, &retired, s);
    0
}

/// A planned replacement: the successor starts first, and the daemon it
/// replaces is told to stop only once the successor is ready, so the group
/// never has fewer processes accepting than it should.
fn handle_notice(
    group: &'static DaemonGroup,
    slots: &mut [Slot],
    retired: &mut Vec<Retired>,
    pid: libc::pid_t,
    notice: Notice,
    listener: RawFd,
    s: *mut ffi::server_rec,
) {
    let name = &group.name;
    match notice {
        Notice::Retire | Notice::RetireFailing => {
            let Some((index, slot)) = slots.iter_mut().enumerate().find(|(_, slot)| slot.pid == Some(pid)) else { return };
            if slot.successor.is_some() || slot.successor_due {
                return;
            }
            if notice == Notice::RetireFailing {
                slot.failures += 1;
                let delay = backoff(slot.failures);
                slot.next_start = Instant::now() + delay;
                slot.successor_due = true;
                log::server(
                    s,
                    consts::APLOG_ERR,
                    &format!(
                        "daemon process group {name}: process {pid} could not start its application; its successor \
                         starts in {:.1} s",
                        delay.as_secs_f64()
                    ),
                );
                return;
            }
            slot.failures = 0;
            start_successor(group, index, slot, listener, s);
        }
        Notice::Ready => {
            let Some(slot) = slots.iter_mut().find(|slot| slot.pid == Some(pid) || slot.successor_pid() == Some(pid)) else {
                return;
            };
            if slot.pid == Some(pid) {
                slot.ready = true;
                return;
            }
            slot.successor = None;
            slot.started = Instant::now();
            slot.ready = true;
            if let Some(old) = slot.pid.replace(pid) {
                // SAFETY: signals our own child.
                unsafe { libc::kill(old, STOP_SIGNAL) };
                retired.push(Retired { pid: old, kill_at: Instant::now() + group.lifecycle.kill_after_retire() });
                log::server(s, consts::APLOG_INFO, &format!("daemon process group {name}: process {pid} ready; {old} stops"));
            }
        }
    }
}

/// Starts the successor of the daemon in `slot`, which serves on until
/// the successor is ready.
fn start_successor(group: &'static DaemonGroup, index: usize, slot: &mut Slot, listener: RawFd, s: *mut ffi::server_rec) {
    let name = &group.name;
    // SAFETY: the supervisor is single-threaded.
    match unsafe { fork_daemon(group, index, listener, s) } {
        Ok(successor) => {
            let old = slot.pid.unwrap_or_default();
            log::server(
                s,
                consts::APLOG_INFO,
                &format!("daemon process group {name}: process {old} asked to be replaced; starting {successor}"),
            );
            slot.successor = Some((successor, Instant::now()));
        }
        Err(err) => log::server(s, consts::APLOG_ERR, &format!("daemon process group {name}: cannot fork: {err}")),
    }
}

fn backoff(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => BACKOFF_FIRST.saturating_mul(1 << (n - 1).min(6)).min(BACKOFF_CAP),
    }
}

/// startup-timeout: a daemon that has not become ready that long after it
/// was started (its import scripts hang, say) is killed; reap() restarts
/// it after the back-off.
fn enforce_startup_timeout(group: &DaemonGroup, slots: &mut [Slot], s: *mut ffi::server_rec) {
    let Some(limit) = group.lifecycle.startup_timeout else { return };
    for slot in slots.iter_mut() {
        let late_first = slot.pid.filter(|_| !slot.ready && slot.started.elapsed() > limit);
        let late_successor = slot.successor.filter(|(_, since)| since.elapsed() > limit).map(|(pid, _)| pid);
        let already = slot.killed_late;
        for pid in [late_first, late_successor].into_iter().flatten().filter(|pid| already != Some(*pid)) {
            log::server(
                s,
                consts::APLOG_ERR,
                &format!(
                    "daemon process group {}: process {pid} was not ready {} s after it started (startup-timeout); \
                     killing it",
                    group.name,
                    limit.as_secs()
                ),
            );
            // SAFETY: signals our own child; reap() collects it.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            slot.killed_late = Some(pid);
        }
    }
}

/// Replaced daemons still running when their time is up are killed.
fn kill_overdue(group: &DaemonGroup, retired: &mut [Retired], s: *mut ffi::server_rec) {
    let now = Instant::now();
    for old in retired.iter_mut().filter(|old| now >= old.kill_at) {
        log::server(
            s,
            consts::APLOG_WARNING,
            &format!(
                "daemon process group {}: replaced process {} is still running {} s after it was told to stop; killing it",
                group.name,
                old.pid,
                group.lifecycle.kill_after_retire().as_secs()
            ),
        );
        // SAFETY: signals our own child; reap() collects it.
        unsafe { libc::kill(old.pid, libc::SIGKILL) };
        old.kill_at = now + Duration::from_secs(3600);
    }
}

/// What the supervisor sends a daemon to make it finish and exit (a
/// daemon takes SIGTERM, SIGINT and SIGHUP as a request to be replaced).
pub const STOP_SIGNAL: libc::c_int = libc::SIGUSR2;

/// Collects daemons that ended; a daemon that ended soon after starting
/// waits for a growing delay before the next start, so a broken
/// application cannot make the group fork in a hot loop.
fn reap(group: &DaemonGroup, slots: &mut [Slot], retired: &mut Vec<Retired>, s: *mut ffi::server_rec) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status int; WNOHANG never blocks.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        let metrics = super::metrics::of(&group.name);
        // Whether it had asked to be replaced (then it counted the reason).
        let had_asked = metrics.is_some_and(|m| m.release(pid as u32).is_some());
        if let Some(i) = retired.iter().position(|r| r.pid == pid) {
            retired.remove(i);
            log::server(
                s,
                consts::APLOG_INFO,
                &format!("daemon process group {}: replaced process {pid} {}", group.name, describe_exit(status)),
            );
            continue;
        }
        // A successor that died before it was ready: the daemon it was to
        // replace goes on serving, and asking again starts another one.
        if let Some(slot) = slots.iter_mut().find(|slot| slot.successor_pid() == Some(pid)) {
            slot.successor = None;
            log::server(
                s,
                consts::APLOG_ERR,
                &format!(
                    "daemon process group {}: replacement process {pid} {} before it was ready; \
                     the process it was to replace goes on serving",
                    group.name,
                    describe_exit(status)
                ),
            );
            continue;
        }
        let Some(slot) = slots.iter_mut().find(|slot| slot.pid == Some(pid)) else { continue };
        slot.pid = None;
        // Unasked (a process that had asked, such as one that gave up at
        // deadlock-timeout, was counted under its own reason).
        if let Some(metrics) = metrics.filter(|_| !had_asked) {
            metrics.count_replacement(pid as u32, super::metrics::Reason::Exited);
        }
        // A failing process's successor was not started yet: the new
        // process started after the back-off takes its place.
        slot.successor_due = false;
        let ran = slot.started.elapsed();
        let how = describe_exit(status);
        // One that never became ready failed to start, however long it ran.
        if (ran < HEALTHY_AFTER || !slot.ready) && !matches!(how.as_str(), "exited normally") {
            slot.failures += 1;
        } else {
            slot.failures = 0;
        }
        let delay = backoff(slot.failures);
        slot.next_start = slot.next_start.max(Instant::now() + delay);
        let level = if how == "exited normally" { consts::APLOG_INFO } else { consts::APLOG_ERR };
        log::server(
            s,
            level,
            &format!(
                "daemon process group {}: process {pid} {how} after {:.1} s; starting a new one{}",
                group.name,
                ran.as_secs_f64(),
                if delay.is_zero() { String::new() } else { format!(" in {:.1} s", delay.as_secs_f64()) }
            ),
        );
    }
}

fn describe_exit(status: libc::c_int) -> String {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        // SAFETY: strsignal returns a static string for any number.
        let name = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(sig)) }.to_string_lossy().into_owned();
        format!("was killed by signal {sig} ({name})")
    } else if libc::WEXITSTATUS(status) == 0 {
        "exited normally".to_owned()
    } else {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    }
}

/// # Safety
/// Only from the single-threaded supervisor.
unsafe fn fork_daemon(group: &'static DaemonGroup, index: usize, listener: RawFd, s: *mut ffi::server_rec) -> std::io::Result<libc::pid_t> {
    // SAFETY: the supervisor is single-threaded.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid > 0 {
        return Ok(pid);
    }
    let code = std::panic::catch_unwind(|| process::run(group, index, listener, s)).unwrap_or(1);
    // SAFETY: as in spawn().
    unsafe { libc::_exit(code) }
}

/// Asks every daemon to finish and exit, and kills those still running
/// after shutdown-timeout: no daemon outlives its group.
fn stop_all(group: &DaemonGroup, slots: &mut [Slot], retired: &[Retired], s: *mut ffi::server_rec) {
    let mut running: Vec<libc::pid_t> = slots
        .iter()
        .flat_map(|slot| [slot.pid, slot.successor_pid()])
        .flatten()
        .chain(retired.iter().map(|r| r.pid))
        .collect();
    for pid in &running {
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(*pid, STOP_SIGNAL) };
    }
    let shutdown_timeout = group.lifecycle.shutdown_timeout;
    let deadline = Instant::now() + shutdown_timeout;
    while !running.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        loop {
            let mut status = 0;
            // SAFETY: as in reap().
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            running.retain(|p| *p != pid);
        }
    }
    for pid in running {
        log::server(
            s,
            consts::APLOG_WARNING,
            &format!(
                "daemon process group {}: process {pid} still running {} s after it was told to stop; killing it",
                group.name,
                shutdown_timeout.as_secs()
            ),
        );
        // SAFETY: as above; the wait reaps it.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    log::server(s, consts::APLOG_INFO, &format!("daemon process group {}: stopped", group.name));
}
