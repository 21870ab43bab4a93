//! The body of a request run in this process, read through Apache's input
//! filters: the core's [`BodySource`]. The HTTP input filter sends
//! `100 Continue` on the first read if the client asked for it, de-chunks,
//! and enforces LimitRequestBody.

use crate::httpd::{consts, ffi};
use crate::wsgi::transport::{BodyError, BodySource};
use std::ffi::c_int;
use std::mem::MaybeUninit;

pub struct ApacheBody {
    r: *mut ffi::request_rec,
}

// SAFETY: used only while the handler that created it runs (the core drops
// it before the handler returns), by one thread at a time (the core keeps
// it behind a mutex); Apache allows that.
unsafe impl Send for ApacheBody {}

impl ApacheBody {
    /// # Safety
    /// `r` must be the live request, ap_setup_client_block must have run,
    /// and the body must not outlive the handler call.
    pub unsafe fn new(r: *mut ffi::request_rec) -> Self {
        Self { r }
    }
}

impl BodySource for ApacheBody {
    fn declared_length(&self) -> Option<u64> {
        // SAFETY: r is live; ap_setup_client_block has set read_chunked
        // and, for a declared length, remaining.
        unsafe { ((*self.r).read_chunked == 0).then(|| (*self.r).remaining.max(0) as u64) }
    }

    fn read(&mut self, dest: &mut [MaybeUninit<u8>]) -> Result<(usize, bool), BodyError> {
        let r = self.r;
        // SAFETY: r is live. The brigade lives in the request pool; a
        // READBYTES read returns at most dest.len() bytes, and flatten
        // copies at most that many into dest.
        let (status, len, eos) = unsafe {
            let bb = ffi::apr_brigade_create((*r).pool, (*(*r).connection).bucket_alloc);
            let status = ffi::ap_get_brigade(
                (*r).input_filters,
                bb,
                consts::AP_MODE_READBYTES,
                consts::APR_BLOCK_READ,
                dest.len() as ffi::apr_off_t,
            );
            let mut len = dest.len();
            let eos = ffi::wsgi_rs_brigade_ends_with_eos(bb) != 0;
            if status != consts::APR_SUCCESS
                || ffi::apr_brigade_flatten(bb, dest.as_mut_ptr().cast(), &mut len) != consts::APR_SUCCESS
            {
                len = 0;
            }
            ffi::apr_brigade_destroy(bb);
            (status, len, eos)
        };
        if status != consts::APR_SUCCESS {
            return Err(read_failure(status));
        }
        Ok((len, eos))
    }
}

/// The handler status and the OSError text for a failed read. Apache's
/// HTTP input filter answers some failures itself (413 over
/// LimitRequestBody, 400 for broken chunking) and reports AP_FILTER_ERROR;
/// anything else is the connection failing under us.
fn read_failure(status: c_int) -> BodyError {
    let (status, reason) = if status == consts::AP_FILTER_ERROR {
        (consts::AP_FILTER_ERROR, "request body rejected by Apache (over LimitRequestBody, or malformed)".to_owned())
    } else if status == consts::APR_TIMEUP {
        (consts::HTTP_REQUEST_TIME_OUT, "timed out waiting for the request body (Apache's Timeout)".to_owned())
    } else if status == consts::APR_INCOMPLETE || status == consts::APR_EOF {
        (
            consts::HTTP_BAD_REQUEST,
            "the client closed the connection before sending the whole request body".to_owned(),
        )
    } else {
        let mut text = [0u8; 256];
        // SAFETY: apr_strerror writes a NUL-terminated message of at most
        // the given size into the buffer and returns it.
        let reason = unsafe {
            let p = ffi::apr_strerror(status, text.as_mut_ptr().cast(), text.len());
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        };
        (consts::HTTP_BAD_REQUEST, format!("error reading the request body: {reason}"))
    };
    BodyError { status, reason }
}
