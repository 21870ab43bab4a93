//! Moving strings and Rust values between Rust and APR pools.

use super::ffi;
use std::borrow::Cow;
use std::ffi::{c_char, c_void, CStr};

/// Copies `s` into `pool` as a NUL-terminated string that lives as long as
/// the pool. Interior NULs end the copy, as they would in C.
pub fn strdup(pool: *mut ffi::apr_pool_t, s: &str) -> *mut c_char {
    bytes_dup(pool, s.as_bytes())
}

/// As [`strdup`], for bytes that need not be UTF-8 (a URI, a path).
pub fn bytes_dup(pool: *mut ffi::apr_pool_t, bytes: &[u8]) -> *mut c_char {
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    // SAFETY: `pool` is a live pool from Apache; apr_pstrmemdup copies
    // exactly `len` readable bytes and appends a NUL.
    unsafe { ffi::apr_pstrmemdup(pool, bytes.as_ptr().cast(), len) }
}

/// Copies text whose characters are all below U+0100 into `pool` as
/// Latin-1 bytes, the encoding HTTP header fields are sent in (PEP 3333
/// native strings). Characters above U+00FF, which callers have already
/// rejected, and NULs are not copied.
pub fn latin1_dup(pool: *mut ffi::apr_pool_t, s: &str) -> *mut c_char {
    // Most header names and values: ASCII is its own Latin-1.
    if s.is_ascii() {
        return strdup(pool, s);
    }
    let bytes: Vec<u8> = s
        .chars()
        .filter_map(|c| u8::try_from(u32::from(c)).ok())
        .take_while(|&b| b != 0)
        .collect();
    // SAFETY: as in strdup: a live pool and `bytes.len()` readable bytes.
    unsafe { ffi::apr_pstrmemdup(pool, bytes.as_ptr().cast(), bytes.len()) }
}

/// Reads a C string Apache owns. Invalid UTF-8 is replaced rather than
/// rejected: these are paths, URIs and names we only log or compare.
///
/// # Safety
/// `p` must be null or point to a NUL-terminated string that outlives 'a.
pub unsafe fn str_from<'a>(p: *const c_char) -> Option<Cow<'a, str>> {
    if p.is_null() {
        None
    } else {
        // SAFETY: guaranteed by the caller.
        let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
        // The check for valid UTF-8 takes whole words of ASCII at a time;
        // the lossy conversion only when there is something to replace.
        Some(std::str::from_utf8(bytes).map_or_else(|_| String::from_utf8_lossy(bytes), Cow::Borrowed))
    }
}

/// Boxes `value` and frees it when `pool` is cleared, so Rust-owned
/// configuration has exactly the lifetime Apache gives its config pools.
pub fn alloc<T>(pool: *mut ffi::apr_pool_t, value: T) -> *mut T {
    unsafe extern "C" fn drop_box<T>(data: *mut c_void) -> ffi::apr_status_t {
        // SAFETY: `data` is the pointer Box::into_raw returned below, and
        // APR runs each registered cleanup exactly once.
        let value = unsafe { Box::from_raw(data.cast::<T>()) };
        // A panicking Drop must not unwind into APR.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(value)));
        0
    }
    let raw = Box::into_raw(Box::new(value));
    // SAFETY: `pool` is a live pool; the cleanup receives `raw` back. The
    // child-cleanup slot is apr_pool_cleanup_null, so a forked process that
    // execs never frees memory it does not own.
    unsafe {
        ffi::apr_pool_cleanup_register(
            pool,
            raw.cast(),
            Some(drop_box::<T>),
            Some(ffi::apr_pool_cleanup_null),
        )
    };
    raw
}
