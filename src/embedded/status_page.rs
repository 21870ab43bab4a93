//! `SetHandler wsgi-rs-status`: the daemon process groups' status, as a
//! page, JSON (`?format=json`) or Prometheus' text format
//! (`?format=prometheus`). Who may see it is Apache's access control,
//! where the handler is set, as for mod_status.

use crate::daemon::metrics;
use crate::daemon::status::{self, Format};
use crate::httpd::{consts, ffi, log, pool};
use std::ffi::c_int;

const HANDLER: &str = "wsgi-rs-status";

/// # Safety
/// `r` must be the live request of a handler hook call.
pub unsafe fn handle(r: *mut ffi::request_rec) -> c_int {
    // SAFETY: r is live; handler and args are NUL-terminated or null.
    let (handler, args, method) = unsafe { (pool::str_from((*r).handler), pool::str_from((*r).args), (*r).method_number) };
    if handler.as_deref() != Some(HANDLER) {
        return consts::DECLINED;
    }
    if method != consts::M_GET {
        // SAFETY: r is live; allowed is a plain bit mask.
        unsafe { (*r).allowed |= 1 << consts::M_GET };
        return consts::HTTP_METHOD_NOT_ALLOWED;
    }
    let format = match Format::from_query(args.as_deref()) {
        Ok(format) => format,
        Err(why) => {
            log::request(r, consts::APLOG_ERR, &format!("wsgi-rs-status: {why}"));
            return consts::HTTP_BAD_REQUEST;
        }
    };
    let body = status::render(format, &metrics::snapshots(None));
    // SAFETY: r is live; the strings are copied into its pool, and the
    // body is written from a live buffer during the call.
    unsafe {
        let pool = (*r).pool;
        ffi::ap_set_content_type(r, pool::strdup(pool, format.content_type()));
        ffi::apr_table_setn((*r).headers_out, c"Cache-Control".as_ptr(), c"no-store".as_ptr());
        if (*r).header_only == 0 {
            ffi::ap_rwrite(body.as_ptr().cast(), body.len() as c_int, r);
        }
    }
    consts::OK
}
