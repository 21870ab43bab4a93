//! Putting the end of every response on the wire before Apache looks for
//! the client's next request.
//!
//! Apache's network filter holds back a brigade of less than 4 KiB with no
//! file bucket and no FLUSH in it, to write it together with whatever comes
//! next. At the end of a response, what comes next is the end-of-request
//! bucket, which does not make it write either; then Apache checks the
//! connection for a pipelined request with a non-blocking read. With the
//! response still held, the client cannot have sent its next request, so
//! that read finds nothing, the response is written only afterwards, and
//! the connection goes back to the MPM to wait: on the event MPM the
//! listener thread polls the socket and wakes a worker for the next
//! request, some two context switches more per request on a keep-alive
//! connection. Written as soon as it is complete, before Apache's own end
//! of request (logging, freeing the request's pool), the response gives the
//! client time to send its next request before Apache looks, and the same
//! worker goes on with it at once, as it does after a static file (file
//! buckets are written at once) or under mod_wsgi (which flushes every
//! write).
//!
//! So each WSGI request gets this filter, which puts a FLUSH before the EOS
//! of its response. It sits below the request's other filters, in the
//! protocol part of the chain, where it also sees what Apache sends after
//! the handler has returned (the error pages for 500, 404, 413...) and the
//! EOS of a HEAD response, which the HTTP header filter passes on with the
//! headers. A FLUSH added further up would not do: the chunk filter writes
//! the last-chunk marker after it, and the header filter drops a HEAD
//! response's EOS when anything follows it.

use crate::httpd::{consts, ffi};
use std::ffi::{c_int, CStr};
use std::sync::atomic::{AtomicPtr, Ordering};

/// Below the chunk filter (`AP_FTYPE_TRANSCODE`) and the request's other
/// filters; the connection's own filters (TLS, the network) come after.
const FTYPE: ffi::ap_filter_type = consts::AP_FTYPE_CONNECTION - 1;

const NAME: &CStr = c"WSGI_RS_FLUSH_AT_END";

/// The registered filter. Set by register_hooks each time Apache loads this
/// DSO (statics start empty in every copy), before any request.
static FILTER: AtomicPtr<ffi::ap_filter_rec_t> = AtomicPtr::new(std::ptr::null_mut());

/// Called from register_hooks with the filter function lib.rs exports.
pub fn register(filter: ffi::ap_out_filter_func) {
    // SAFETY: the name is a static C string; Apache keeps the record for the
    // life of the configuration, which is as long as this copy of the DSO.
    let rec = unsafe { ffi::ap_register_output_filter(NAME.as_ptr(), filter, None, FTYPE) };
    FILTER.store(rec, Ordering::Release);
}

/// Adds the filter to the request the handler is about to serve.
/// Subrequests are left alone: their output ends inside the main
/// request's response, which is flushed (or not) at its own end.
///
/// # Safety
/// `r` must be the live request being handled.
pub unsafe fn add(r: *mut ffi::request_rec) {
    let rec = FILTER.load(Ordering::Acquire);
    // SAFETY: r is live; Apache allocates the filter in its pool and links
    // it into its protocol filters, which is where the filter's type puts
    // it, so it survives the reset of the chain Apache makes for an error
    // page and is carried over by an internal redirect.
    unsafe {
        if !rec.is_null() && (*r).main.is_null() {
            ffi::ap_add_output_filter_handle(rec, std::ptr::null_mut(), r, (*r).connection);
        }
    }
}

/// The filter's work on one brigade, before lib.rs passes it on: at the
/// EOS, a FLUSH in front of it (unless there is one), and the filter
/// leaves the chain, the response being complete.
///
/// A brigade with a file bucket is left as it is: Apache writes file
/// buckets as soon as they reach the network filter, and what does not fit
/// the socket of a large file is better left to the MPM (the event MPM
/// finishes it without holding a worker) than waited for here.
///
/// # Safety
/// `f` and `bb` must be the filter and brigade Apache called it with.
pub unsafe fn on_brigade(f: *mut ffi::ap_filter_t, bb: *mut ffi::apr_bucket_brigade) {
    let mut has_file: c_int = 0;
    // SAFETY: bb is the live brigade being passed; the helpers only walk its
    // bucket ring and insert a FLUSH from the EOS bucket's own allocator.
    // Removing f leaves f->next intact for the pass that follows, as for
    // Apache's own filters that remove themselves.
    unsafe {
        let eos = ffi::wsgi_rs_brigade_find_eos(bb, &mut has_file);
        if eos.is_null() {
            return;
        }
        if has_file == 0 {
            ffi::wsgi_rs_brigade_flush_before(bb, eos);
        }
        ffi::ap_remove_output_filter(f);
    }
}
