//! The process title `ps` shows for a daemon (`display-name`): the command
//! line's own memory is overwritten, which is the only place `ps` reads it
//! from on Linux.

use crate::httpd::ffi;

use std::sync::atomic::{AtomicPtr, Ordering};

/// The main server, whose process record holds the original argv.
static MAIN_SERVER: AtomicPtr<ffi::server_rec> = AtomicPtr::new(std::ptr::null_mut());

/// `s` must be the main server (it is only read, in a daemon).
pub fn remember_server(s: *mut ffi::server_rec) {
    MAIN_SERVER.store(s, Ordering::Relaxed);
}

/// Replaces the command line with `title`, cut to the space the original
/// arguments took. Call only in a single-threaded daemon before it
/// starts threads.
pub fn set(title: &str) {
    // SAFETY: MAIN_SERVER was set in the parent before fork; the process
    // record and its argv (the strings the kernel placed contiguously on
    // the initial stack) live as long as the process. Only this process's
    // copy of that memory is written, within the span of the original
    // strings.
    unsafe {
        let s = MAIN_SERVER.load(Ordering::Relaxed);
        if s.is_null() || (*s).process.is_null() {
            return;
        }
        let process = &*(*s).process;
        if process.argc < 1 || process.argv.is_null() {
            return;
        }
        let first = *process.argv as *mut u8;
        let last = *process.argv.add(process.argc as usize - 1);
        let end = last.add(libc::strlen(last)) as *mut u8;
        let room = end.offset_from(first) as usize;
        let bytes = title.as_bytes();
        let n = bytes.len().min(room);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), first, n);
        std::ptr::write_bytes(first.add(n), 0, room + 1 - n);
    }
}
