//! Who owns a request sent to a daemon, settled in memory both sides map
//! rather than by a message: a frame saying "taken" would wake the Apache
//! child once more for every request, only to tell it something it needs
//! when the connection fails before the answer.
//!
//! Each connection has one shared word, the ledger, created by the daemon
//! (a memfd sent to the child with the Ledger frame after Hello). It holds
//! how many of the connection's requests the daemon has taken, or REVOKED.
//! For its n-th request the child expects n - 1 there; the daemon, reading
//! the request, moves it to n before running it; a child that gives up on
//! the request (the connection ended or timed out with no answer) tries to
//! move n - 1 to REVOKED instead. Both are compare-and-swaps, so exactly
//! one wins: either the request runs here and is never sent elsewhere, or
//! it never runs here and may go to another daemon.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// The child gave up on its latest request; nothing more is taken.
const REVOKED: u64 = u64::MAX;

const SIZE: usize = std::mem::size_of::<AtomicU64>();

#[derive(Debug)]
pub struct Ledger {
    word: NonNull<AtomicU64>,
}

// SAFETY: the mapping is only reached through atomic operations, and it
// lives until the Ledger is dropped, whichever thread holds it.
unsafe impl Send for Ledger {}
// SAFETY: as above; every access is atomic.
unsafe impl Sync for Ledger {}

impl Ledger {
    /// A new ledger at 0 (the daemon's side), with the descriptor to send.
    pub fn create() -> io::Result<(Self, OwnedFd)> {
        // SAFETY: memfd_create takes a NUL-terminated name; the descriptor
        // it returns is owned from here by the OwnedFd.
        let fd = unsafe { libc::memfd_create(c"mod_wsgi_rs-ledger".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just created and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sizes our own memfd; the new bytes read as zero.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), SIZE as libc::off_t) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((Self::map(&fd)?, fd))
    }

    /// The child's side: maps the ledger the daemon sent.
    pub fn open(fd: &OwnedFd) -> io::Result<Self> {
        let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat fills the stat of an open descriptor.
        if unsafe { libc::fstat(fd.as_raw_fd(), stat.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fstat succeeded, so the struct is initialised.
        if (unsafe { stat.assume_init() }.st_size as usize) < SIZE {
            return Err(io::Error::other("the daemon's ledger is smaller than its one word"));
        }
        Self::map(fd)
    }

    fn map(fd: &OwnedFd) -> io::Result<Self> {
        // SAFETY: maps SIZE bytes of a file at least that long, shared, so
        // that both processes see one word; the mapping outlives the
        // descriptor and is unmapped in Drop.
        let at = unsafe {
            libc::mmap(std::ptr::null_mut(), SIZE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd.as_raw_fd(), 0)
        };
        if at == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // mmap returns page-aligned memory, aligned for an AtomicU64.
        NonNull::new(at.cast::<AtomicU64>()).map(|word| Self { word }).ok_or_else(|| io::Error::other("mmap returned null"))
    }

    fn word(&self) -> &AtomicU64 {
        // SAFETY: the mapping is live and aligned while self lives.
        unsafe { self.word.as_ref() }
    }

    /// The daemon takes the request it has just read: true if it is now
    /// its own to run, false if the child has given up on it.
    pub fn take(&self) -> bool {
        self.word().fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| (taken != REVOKED).then(|| taken + 1)).is_ok()
    }

    /// The child gives up on its `n`-th request (counting from 1): true if
    /// the daemon never took it (it may be sent elsewhere), false if the
    /// daemon did (it may have run).
    pub fn revoke(&self, n: u64) -> bool {
        match self.word().compare_exchange(n - 1, REVOKED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(now) => now != n,
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping made in map, used by nothing after this.
        unsafe { libc::munmap(self.word.as_ptr().cast(), SIZE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two sides, as two mappings of one ledger.
    fn pair() -> (Ledger, Ledger) {
        let (daemon, fd) = Ledger::create().unwrap();
        (daemon, Ledger::open(&fd).unwrap())
    }

    #[test]
    fn a_taken_request_cannot_be_revoked() {
        let (daemon, child) = pair();
        assert!(daemon.take());
        assert!(!child.revoke(1), "the daemon took request 1");
        assert!(daemon.take());
        assert!(!child.revoke(2));
    }

    #[test]
    fn a_revoked_request_cannot_be_taken() {
        let (daemon, child) = pair();
        assert!(daemon.take());
        assert!(child.revoke(2), "request 2 was never taken");
        assert!(!daemon.take(), "the child gave request 2 up");
        assert!(!daemon.take(), "nothing is taken after a revocation");
    }

    #[test]
    fn the_first_request_can_be_revoked() {
        let (daemon, child) = pair();
        assert!(child.revoke(1));
        assert!(!daemon.take());
    }

    #[test]
    fn a_short_ledger_is_refused() {
        // SAFETY: a new memfd, owned by the OwnedFd, left at size 0.
        let fd = unsafe { OwnedFd::from_raw_fd(libc::memfd_create(c"short".as_ptr(), libc::MFD_CLOEXEC)) };
        assert!(Ledger::open(&fd).unwrap_err().to_string().contains("smaller"));
    }
}
