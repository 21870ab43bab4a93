//! Streamed output without a network write per yielded item.
//!
//! PEP 3333 lets a server hold back a block an application has yielded only
//! if transmission continues while the application computes the next one.
//! Flushing every item to the client keeps that promise at the price of a
//! pass through the output filters, a write and a GIL hand-off per item: a
//! generator of a hundred small pieces costs as much as a hundred requests.
//!
//! Instead, the request thread keeps small streamed items in its brigade and
//! arms a deadline here. If the application produces more, or finishes,
//! before the deadline, the items go out together. If it is still computing
//! when the deadline passes, the thread in this module flushes on its behalf,
//! so no block waits longer than [`FLUSH_DELAY`] for a slow application.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// How long streamed bytes may wait for the application's next item before
/// they are written anyway. Far below what a person or a streaming client
/// notices, far above the time a generator takes between cheap items.
pub const FLUSH_DELAY: Duration = Duration::from_millis(5);

/// A response that may hold streamed bytes it has promised to send.
pub trait Deferred: Send + Sync {
    /// Writes the held bytes now if the response's owner is not using the
    /// connection itself. Must not block on the owner.
    fn flush_deferred(&self) -> Attempt;
}

pub enum Attempt {
    /// Flushed, or nothing was waiting any more.
    Done,
    /// The owner was busy with the connection; try again later.
    Busy,
}

struct Armed {
    due: Instant,
    response: Weak<dyn Deferred>,
}

struct Queue {
    /// Every entry waits FLUSH_DELAY from when it was armed, so entries are
    /// in deadline order by construction.
    armed: VecDeque<Armed>,
    /// The process whose flusher thread is running, if any: a process
    /// forked by an application has no such thread even if its parent had.
    running_in: Option<u32>,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue { armed: VecDeque::new(), running_in: None });
static WAKE: Condvar = Condvar::new();

/// Arranges for `response` to be flushed unless it sends its bytes itself
/// within [`FLUSH_DELAY`]. False if that cannot be promised (no thread
/// could be started), in which case the caller must flush now.
pub fn arm(response: Weak<dyn Deferred>) -> bool {
    let mut queue = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if queue.running_in != Some(pid) {
        if !start_thread() {
            return false;
        }
        queue.running_in = Some(pid);
    }
    queue.armed.push_back(Armed { due: Instant::now() + FLUSH_DELAY, response });
    // The thread may be waiting for an entry with no deadline to wake it;
    // with others queued it already waits for an earlier one.
    let first = queue.armed.len() == 1;
    // Woken with the lock still held here, it would only block on it.
    drop(queue);
    if first {
        WAKE.notify_one();
    }
    true
}

/// Starts the flusher thread with every signal blocked, so that signals
/// meant for the process reach Apache's own threads: prefork ends a child
/// from inside its SIGTERM handler, which must not run on this thread
/// while the request thread is still using the child's pools.
fn start_thread() -> bool {
    // SAFETY: the sets are plain values initialised by sigfillset and
    // pthread_sigmask; only the calling thread's mask changes, and it is
    // restored before returning. The new thread inherits the full mask.
    unsafe {
        let mut all = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigfillset(all.as_mut_ptr());
        let mut previous = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        if libc::pthread_sigmask(libc::SIG_BLOCK, all.as_ptr(), previous.as_mut_ptr()) != 0 {
            return false;
        }
        let started = std::thread::Builder::new().name("wsgi-rs-flush".into()).spawn(run);
        libc::pthread_sigmask(libc::SIG_SETMASK, previous.as_ptr(), std::ptr::null_mut());
        started.is_ok()
    }
}

/// The flusher thread: waits for each deadline in turn and flushes the
/// responses whose application has not come back in time.
fn run() {
    loop {
        let due = {
            let mut queue = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                drop_finished(&mut queue.armed);
                match queue.armed.front() {
                    None => queue = WAKE.wait(queue).unwrap_or_else(|e| e.into_inner()),
                    Some(first) => {
                        let now = Instant::now();
                        if first.due <= now {
                            break queue.armed.pop_front();
                        }
                        let wait = first.due - now;
                        queue = WAKE.wait_timeout(queue, wait).unwrap_or_else(|e| e.into_inner()).0;
                    }
                }
            }
        };
        let Some(Armed { response, .. }) = due else { continue };
        // Gone: the request finished and its objects were freed.
        let Some(target) = response.upgrade() else { continue };
        // A panic must not end the thread: every later streamed response
        // in this process would then wait for its next item.
        let attempt = catch_unwind(AssertUnwindSafe(|| target.flush_deferred())).unwrap_or(Attempt::Done);
        drop(target);
        if let Attempt::Busy = attempt {
            let mut queue = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
            queue.armed.push_back(Armed { due: Instant::now() + FLUSH_DELAY, response });
        }
    }
}

/// Drops the entries at the front whose response has finished and been
/// freed. Most responses end well within FLUSH_DELAY of arming, and waiting
/// for each of their deadlines only to find them gone would wake the thread
/// once per streamed response; this way it sleeps until the first response
/// that may still need it, about once per FLUSH_DELAY however many
/// responses stream.
fn drop_finished(armed: &mut VecDeque<Armed>) {
    while armed.front().is_some_and(|first| first.response.strong_count() == 0) {
        armed.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Records when it was flushed; answers Busy a given number of times
    /// first, as a request thread reading wsgi.input would.
    struct Probe {
        armed_at: Instant,
        busy_answers: AtomicUsize,
        attempts: AtomicUsize,
        flushed_at: Mutex<Option<Instant>>,
    }

    impl Probe {
        fn new(busy_answers: usize) -> Arc<Probe> {
            Arc::new(Probe {
                armed_at: Instant::now(),
                busy_answers: AtomicUsize::new(busy_answers),
                attempts: AtomicUsize::new(0),
                flushed_at: Mutex::new(None),
            })
        }

        /// Waits (bounded) for the flush; None if it never came.
        fn wait_flushed(&self) -> Option<Duration> {
            let give_up = Instant::now() + Duration::from_secs(10);
            while Instant::now() < give_up {
                if let Some(at) = *self.flushed_at.lock().unwrap() {
                    return Some(at - self.armed_at);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            None
        }
    }

    impl Deferred for Probe {
        fn flush_deferred(&self) -> Attempt {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            let busy = self.busy_answers.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            if busy.is_ok() {
                return Attempt::Busy;
            }
            *self.flushed_at.lock().unwrap() = Some(Instant::now());
            Attempt::Done
        }
    }

    fn arm_probe(probe: &Arc<Probe>) {
        let target: Arc<dyn Deferred> = probe.clone();
        assert!(arm(Arc::downgrade(&target)));
    }

    #[test]
    fn flushes_once_the_delay_has_passed_and_not_before() {
        let probe = Probe::new(0);
        arm_probe(&probe);
        let waited = probe.wait_flushed().expect("the flusher never flushed");
        assert!(waited >= FLUSH_DELAY, "flushed after {waited:?}, before the {FLUSH_DELAY:?} delay");
        assert_eq!(probe.attempts.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_busy_response_is_tried_again_later() {
        let probe = Probe::new(3);
        arm_probe(&probe);
        let waited = probe.wait_flushed().expect("the flusher gave up on a busy response");
        assert_eq!(probe.attempts.load(Ordering::SeqCst), 4);
        assert!(waited >= FLUSH_DELAY * 4, "retries came sooner than the delay: {waited:?}");
    }

    #[test]
    fn the_flusher_thread_blocks_every_signal() {
        let probe = Probe::new(0);
        arm_probe(&probe);
        assert!(probe.wait_flushed().is_some());
        let tasks = std::fs::read_dir("/proc/self/task").unwrap();
        let flusher = tasks
            .filter_map(|t| t.ok())
            .find(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "wsgi-rs-flush"))
            .expect("no wsgi-rs-flush thread in this process");
        let status = std::fs::read_to_string(flusher.path().join("status")).unwrap();
        let blocked = status.lines().find_map(|l| l.strip_prefix("SigBlk:")).unwrap().trim();
        let mask = u64::from_str_radix(blocked, 16).unwrap();
        for signal in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGUSR1] {
            assert!(mask & (1 << (signal - 1)) != 0, "signal {signal} not blocked (SigBlk {blocked})");
        }
    }

    #[test]
    fn finished_responses_leave_the_queue_before_their_deadline() {
        let due = Instant::now() + FLUSH_DELAY;
        let entry = |probe: &Arc<Probe>| {
            let target: Arc<dyn Deferred> = probe.clone();
            Armed { due, response: Arc::downgrade(&target) }
        };
        let (first, second, live, behind) = (Probe::new(0), Probe::new(0), Probe::new(0), Probe::new(0));
        let mut armed: VecDeque<Armed> = [&first, &second, &live, &behind].into_iter().map(entry).collect();
        drop((first, second, behind));
        drop_finished(&mut armed);
        // Up to the first response still alive; what follows it waits.
        assert_eq!(armed.len(), 2);
        assert!(armed[0].response.upgrade().is_some_and(|r| std::ptr::addr_eq(Arc::as_ptr(&r), Arc::as_ptr(&live))));
        drop(live);
        drop_finished(&mut armed);
        assert!(armed.is_empty());
    }

    #[test]
    fn a_freed_response_is_skipped_and_later_ones_still_flushed() {
        let gone = Probe::new(0);
        arm_probe(&gone);
        let gone_attempts = Arc::downgrade(&gone);
        drop(gone);
        let live = Probe::new(0);
        arm_probe(&live);
        assert!(live.wait_flushed().is_some(), "a response armed after a freed one was not flushed");
        assert!(gone_attempts.upgrade().is_none());
    }
}
