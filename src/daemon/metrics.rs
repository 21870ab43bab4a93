//! What the status page shows about each daemon process group, kept in
//! shared memory the Apache parent maps before it forks anything: the
//! supervisor, the daemons and the Apache children all inherit the same
//! pages. Daemons write their own process's figures and the group's
//! request times, the supervisor what it replaces, the Apache children how
//! many requests they have passed on; the status handler reads it all.
//! Only atomics live there, so no process can leave it half-written for
//! another, and a request costs a few relaxed additions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Why a daemon process was replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    MaximumRequests,
    RestartInterval,
    InactivityTimeout,
    RssLimit,
    RequestTimeout,
    DeadlockTimeout,
    StartupTimeout,
    CpuTimeLimit,
    /// SIGINT, SIGTERM, SIGHUP or SIGUSR1 from an application or operator.
    Signal,
    ScriptChanged,
    /// Ended without being asked to (a crash, SIGKILL, an exit).
    Exited,
}

impl Reason {
    pub const ALL: [Reason; 11] = [
        Reason::MaximumRequests,
        Reason::RestartInterval,
        Reason::InactivityTimeout,
        Reason::RssLimit,
        Reason::RequestTimeout,
        Reason::DeadlockTimeout,
        Reason::StartupTimeout,
        Reason::CpuTimeLimit,
        Reason::Signal,
        Reason::ScriptChanged,
        Reason::Exited,
    ];

    /// The option's name, or what happened; the label in every format.
    pub fn name(self) -> &'static str {
        match self {
            Reason::MaximumRequests => "maximum-requests",
            Reason::RestartInterval => "restart-interval",
            Reason::InactivityTimeout => "inactivity-timeout",
            Reason::RssLimit => "rss-limit",
            Reason::RequestTimeout => "request-timeout",
            Reason::DeadlockTimeout => "deadlock-timeout",
            Reason::StartupTimeout => "startup-timeout",
            Reason::CpuTimeLimit => "cpu-time-limit",
            Reason::Signal => "signal",
            Reason::ScriptChanged => "script-changed",
            Reason::Exited => "exited",
        }
    }

    fn code(self) -> u64 {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0) as u64 + 1
    }

    fn from_code(code: u64) -> Option<Reason> {
        Reason::ALL.get((code as usize).checked_sub(1)?).copied()
    }
}

/// Upper bounds of the request-time histogram, in seconds (the last
/// bucket, +Inf, is implied): Prometheus' default buckets, widened at both
/// ends for fast handlers and stuck ones.
pub const BUCKETS: [f64; 15] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// One daemon process; `pid` 0 is a free slot.
#[repr(C)]
pub struct ProcessSlot {
    pub pid: AtomicU64,
    /// Milliseconds since the epoch.
    pub started_ms: AtomicU64,
    pub requests: AtomicU64,
    pub busy: AtomicU64,
    pub threads: AtomicU64,
    pub rss_bytes: AtomicU64,
    /// Reason code once it asked to be replaced, else 0.
    pub retiring: AtomicU64,
}

#[repr(C)]
pub struct GroupHeader {
    /// Requests the Apache children have passed to the group and not yet
    /// seen answered: those beyond the busy threads are waiting.
    pub in_flight: AtomicU64,
    pub replacements: [AtomicU64; Reason::ALL.len()],
    /// The last replacement: pid, reason code, milliseconds since the epoch.
    pub last_replaced_pid: AtomicU64,
    pub last_reason: AtomicU64,
    pub last_replaced_ms: AtomicU64,
    /// Request times of the group, cumulative: counts per bucket (the last
    /// one +Inf) and their sum in microseconds.
    pub durations: [AtomicU64; BUCKETS.len() + 1],
    pub duration_sum_us: AtomicU64,
}

/// A group's shared block: its header, then `slots` process slots.
#[derive(Clone, Copy)]
pub struct GroupMetrics {
    header: &'static GroupHeader,
    slots: &'static [ProcessSlot],
    /// The mapping, for the parent to unmap at the next generation.
    base: usize,
    len: usize,
}

/// The blocks of this configuration generation, by group name; set in the
/// parent before anything is forked.
static GROUPS: Mutex<Vec<(String, GroupMetrics)>> = Mutex::new(Vec::new());

/// Slots per group: each process, a successor for each, and room for
/// replaced ones still finishing.
fn slot_count(processes: u32) -> usize {
    processes as usize * 3 + 1
}

/// Maps a zeroed shared block for `group` of `processes` processes. In
/// the parent, before the group's supervisor is forked.
pub fn create(group: &str, processes: u32) -> std::io::Result<GroupMetrics> {
    let slots = slot_count(processes);
    let len = std::mem::size_of::<GroupHeader>() + slots * std::mem::size_of::<ProcessSlot>();
    // SAFETY: a new anonymous shared mapping; nothing else refers to it.
    let base = unsafe {
        libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0)
    };
    if base == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the mapping is zeroed, page-aligned and `len` bytes long:
    // a header then `slots` slots, all atomics, for which zero is a valid
    // value. Only the parent unmaps it, once it has dropped every copy
    // (forget_generation); the processes forked from it keep theirs for
    // life, so 'static holds wherever it is used.
    let metrics = unsafe {
        let header = &*(base as *const GroupHeader);
        let first = (base as *const u8).add(std::mem::size_of::<GroupHeader>()) as *const ProcessSlot;
        GroupMetrics { header, slots: std::slice::from_raw_parts(first, slots), base: base as usize, len }
    };
    GROUPS.lock().unwrap_or_else(|e| e.into_inner()).push((group.to_owned(), metrics));
    Ok(metrics)
}

/// At a restart, in the parent: the previous generation's blocks go. The
/// processes of that generation keep their own mappings of them.
pub fn forget_generation() {
    for (_, old) in GROUPS.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        // SAFETY: a mapping made by create(); its only references in this
        // process were in GROUPS, just removed, and the parent keeps no
        // other (it serves no requests and renders no status page).
        unsafe { libc::munmap(old.base as *mut libc::c_void, old.len) };
    }
}

pub fn of(group: &str) -> Option<GroupMetrics> {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|(name, _)| name == group).map(|(_, m)| *m)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl std::fmt::Debug for GroupMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GroupMetrics({:#x}, {} slots)", self.base, self.slots.len())
    }
}

impl GroupMetrics {
    /// A free slot for process `pid`, claimed; None when all are taken
    /// (the process then goes unreported, nothing else changes).
    pub fn claim(&self, pid: u32, threads: u32) -> Option<&'static ProcessSlot> {
        let slot = self.slots.iter().find(|slot| {
            slot.pid.compare_exchange(0, u64::from(pid), Ordering::AcqRel, Ordering::Relaxed).is_ok()
        })?;
        for field in [&slot.requests, &slot.busy, &slot.rss_bytes, &slot.retiring] {
            field.store(0, Ordering::Relaxed);
        }
        slot.threads.store(u64::from(threads), Ordering::Relaxed);
        slot.started_ms.store(now_ms(), Ordering::Relaxed);
        Some(slot)
    }

    /// Frees the slot of `pid` (the supervisor, for a process it reaped);
    /// returns why the process had asked to be replaced, if it had.
    pub fn release(&self, pid: u32) -> Option<Reason> {
        let slot = self.slots.iter().find(|slot| slot.pid.load(Ordering::Acquire) == u64::from(pid))?;
        let reason = Reason::from_code(slot.retiring.load(Ordering::Relaxed));
        slot.pid.store(0, Ordering::Release);
        reason
    }

    pub fn count_replacement(&self, pid: u32, reason: Reason) {
        let h = self.header;
        h.replacements[reason.code() as usize - 1].fetch_add(1, Ordering::Relaxed);
        h.last_replaced_pid.store(u64::from(pid), Ordering::Relaxed);
        h.last_reason.store(reason.code(), Ordering::Relaxed);
        h.last_replaced_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub fn record_duration(&self, seconds: f64) {
        let bucket = BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(BUCKETS.len());
        self.header.durations[bucket].fetch_add(1, Ordering::Relaxed);
        self.header.duration_sum_us.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// What the status page shows, read once.
    pub fn snapshot(&self) -> GroupSnapshot {
        let h = self.header;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let processes: Vec<ProcessSnapshot> = self
            .slots
            .iter()
            .filter(|slot| load(&slot.pid) != 0)
            .map(|slot| ProcessSnapshot {
                pid: load(&slot.pid) as u32,
                started_ms: load(&slot.started_ms),
                requests: load(&slot.requests),
                busy: load(&slot.busy),
                threads: load(&slot.threads),
                rss_bytes: load(&slot.rss_bytes),
                retiring: Reason::from_code(load(&slot.retiring)),
            })
            .collect();
        let busy: u64 = processes.iter().map(|p| p.busy).sum();
        GroupSnapshot {
            waiting: load(&h.in_flight).saturating_sub(busy),
            processes,
            replacements: Reason::ALL.iter().map(|r| (*r, load(&h.replacements[r.code() as usize - 1]))).collect(),
            last_replacement: Reason::from_code(load(&h.last_reason))
                .map(|reason| (load(&h.last_replaced_pid) as u32, reason, load(&h.last_replaced_ms))),
            durations: h.durations.iter().map(load).collect(),
            duration_sum_us: load(&h.duration_sum_us),
            now_ms: now_ms(),
        }
    }
}

/// A request an Apache child is passing to the group, counted for as long
/// as it lives.
pub struct InFlight(&'static GroupHeader);

impl InFlight {
    pub fn new(group: GroupMetrics) -> InFlight {
        group.header.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(group.header)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ProcessSlot {
    pub fn mark_retiring(&self, reason: Reason) {
        self.retiring.store(reason.code(), Ordering::Relaxed);
    }
}

/// Every group of this generation, in configuration order.
pub fn all() -> Vec<(String, GroupMetrics)> {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The figures of every group now, or of the one named `only`.
pub fn snapshots(only: Option<&str>) -> Vec<(String, GroupSnapshot)> {
    all()
        .into_iter()
        .filter(|(name, _)| only.is_none_or(|only| only == name))
        .map(|(name, group)| (name, group.snapshot()))
        .collect()
}

pub struct ProcessSnapshot {
    pub pid: u32,
    pub started_ms: u64,
    pub requests: u64,
    pub busy: u64,
    pub threads: u64,
    pub rss_bytes: u64,
    pub retiring: Option<Reason>,
}

pub struct GroupSnapshot {
    pub processes: Vec<ProcessSnapshot>,
    pub waiting: u64,
    pub replacements: Vec<(Reason, u64)>,
    /// (pid, reason, when in ms since the epoch)
    pub last_replacement: Option<(u32, Reason, u64)>,
    /// Per bucket of BUCKETS, then +Inf: not cumulative.
    pub durations: Vec<u64>,
    pub duration_sum_us: u64,
    pub now_ms: u64,
}

impl GroupSnapshot {
    pub fn requests_timed(&self) -> u64 {
        self.durations.iter().sum()
    }

    /// The upper bound of the bucket holding quantile `q` of the request
    /// times (None for the +Inf bucket or no requests): "p99 <= 0.25 s".
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let total = self.requests_timed();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in self.durations.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return BUCKETS.get(i).copied();
            }
        }
        None
    }
}
