//! The response of a request run in this process, as Apache brigades: the
//! core's [`ResponseSink`] over the request's output filters.

use crate::httpd::{consts, ffi, pool};
use crate::wsgi::file_wrapper::FileRegion;
use crate::wsgi::transport::ResponseSink;
use std::os::fd::AsRawFd;

pub struct ApacheSink {
    r: *mut ffi::request_rec,
    /// One brigade for the whole response, emptied after each pass.
    bb: *mut ffi::apr_bucket_brigade,
}

// SAFETY: the sink is used only while the handler that created it runs
// (the core drops or finishes it before the handler returns), by one
// thread at a time (the core keeps it behind a mutex), and Apache allows a
// request to be used from any thread as long as uses do not overlap.
unsafe impl Send for ApacheSink {}

impl ApacheSink {
    /// # Safety
    /// `r` must be the live request, and the sink must not outlive the
    /// handler call.
    pub unsafe fn new(r: *mut ffi::request_rec) -> Self {
        // SAFETY: r is live; the brigade lives in its pool and uses the
        // connection's bucket allocator, as output filters expect.
        let bb = unsafe { ffi::apr_brigade_create((*r).pool, (*(*r).connection).bucket_alloc) };
        Self { r, bb }
    }

    fn alloc(&self) -> *mut ffi::apr_bucket_alloc_t {
        // SAFETY: r is live (see the Send impl).
        unsafe { (*(*self.r).connection).bucket_alloc }
    }
}

impl ResponseSink for ApacheSink {
    fn head_only(&self) -> bool {
        // SAFETY: r is live; header_only is set exactly for HEAD requests.
        unsafe { (*self.r).header_only != 0 }
    }

    fn set_head(&mut self, status: u16, status_line: &str, headers: &[(String, String)]) {
        let r = self.r;
        // SAFETY: r is live; every string is copied into its pool (as the
        // Latin-1 bytes the header is sent as), so Apache's tables never
        // point at Rust memory.
        unsafe {
            (*r).status = i32::from(status);
            (*r).status_line = pool::latin1_dup((*r).pool, status_line);
            for (name, value) in headers {
                let value_c = pool::latin1_dup((*r).pool, value);
                if name.eq_ignore_ascii_case("content-type") {
                    ffi::ap_set_content_type(r, value_c);
                } else {
                    ffi::apr_table_add((*r).headers_out, pool::latin1_dup((*r).pool, name), value_c);
                }
            }
        }
    }

    fn announce_stream(&mut self) {
        // SAFETY: request and a new empty brigade are live. Without data
        // or a flush bucket no filter writes to the network, so this does
        // not wait.
        unsafe {
            let empty = ffi::apr_brigade_create((*self.r).pool, self.alloc());
            ffi::ap_pass_brigade((*self.r).output_filters, empty);
        }
    }

    fn append_copy(&mut self, data: &[u8]) {
        // SAFETY: the brigade is live; with no flush callback
        // apr_brigade_write only copies `data` into heap buckets, so it
        // never touches the network.
        unsafe {
            ffi::apr_brigade_write(self.bb, None, std::ptr::null_mut(), data.as_ptr().cast(), data.len());
        }
    }

    unsafe fn append_borrowed(&mut self, data: &[u8]) {
        // SAFETY: the brigade is live; the immortal bucket points into
        // `data`, which the caller keeps valid until it has been written
        // or the brigade dropped.
        unsafe {
            let bucket = ffi::apr_bucket_immortal_create(data.as_ptr().cast(), data.len(), self.alloc());
            ffi::wsgi_rs_brigade_append(self.bb, bucket);
        }
    }

    fn append_file(&mut self, region: FileRegion) -> Result<(), String> {
        let r = self.r;
        // SAFETY: r and the brigade are live. The File is moved into the
        // request pool, so the descriptor stays open until the pool is
        // destroyed, which Apache does only after the response has been
        // written (the end-of-request bucket follows the data). The
        // apr_file_t made by apr_os_file_put does not own the descriptor,
        // so it is closed exactly once, by the File.
        unsafe {
            let file = pool::alloc((*r).pool, region.file);
            let mut fd = (*file).as_raw_fd();
            let mut apr_file: *mut ffi::apr_file_t = std::ptr::null_mut();
            let flags = (ffi::APR_FOPEN_READ | ffi::APR_FOPEN_SENDFILE_ENABLED) as i32;
            let status = ffi::apr_os_file_put(&mut apr_file, &mut fd, flags, (*r).pool);
            if status != consts::APR_SUCCESS {
                return Err(format!("cannot hand the file to Apache (APR status {status})"));
            }
            ffi::apr_brigade_insert_file(self.bb, apr_file, region.offset as _, region.len as _, (*r).pool);
        }
        Ok(())
    }

    fn pass(&mut self, flush: bool) -> Result<(), i32> {
        // SAFETY: request and brigade are live, and the core serialises
        // calls (see the Send impl); the brigade is emptied after the pass
        // so it can be reused.
        let status = unsafe {
            if flush {
                ffi::wsgi_rs_brigade_append(self.bb, ffi::apr_bucket_flush_create(self.alloc()));
            }
            let status = ffi::ap_pass_brigade((*self.r).output_filters, self.bb);
            ffi::apr_brigade_cleanup(self.bb.cast());
            status
        };
        if status == consts::APR_SUCCESS {
            Ok(())
        } else {
            Err(status)
        }
    }

    fn close(&mut self, flush: bool) {
        // SAFETY: the brigade is live; the buckets come from the
        // connection's allocator and are owned by the brigade once appended.
        unsafe {
            if flush {
                ffi::wsgi_rs_brigade_append(self.bb, ffi::apr_bucket_flush_create(self.alloc()));
            }
            ffi::wsgi_rs_brigade_append(self.bb, ffi::apr_bucket_eos_create(self.alloc()));
        }
    }

    fn send_final(&mut self) -> i32 {
        // SAFETY: the request and its brigade are live until the handler
        // returns, and nothing else touches them after close().
        unsafe { ffi::ap_pass_brigade((*self.r).output_filters, self.bb) }
    }

    fn abort(&mut self) {
        // SAFETY: request and brigade are live; an error bucket with 502
        // is Apache's signal (used by mod_proxy) that the body broke, which
        // stops the final chunk from being written. What was appended and
        // not passed is dropped first: the response is cut anyway, and
        // borrowed bytes must not be set aside past their lender.
        unsafe {
            ffi::apr_brigade_cleanup(self.bb.cast());
            let c = (*self.r).connection;
            (*c).keepalive = consts::AP_CONN_CLOSE;
            let error = ffi::ap_bucket_error_create(502, std::ptr::null(), (*self.r).pool, self.alloc());
            ffi::wsgi_rs_brigade_append(self.bb, error);
            ffi::wsgi_rs_brigade_append(self.bb, ffi::apr_bucket_eos_create(self.alloc()));
            ffi::ap_pass_brigade((*self.r).output_filters, self.bb);
        }
    }

    fn discard(&mut self) {
        // SAFETY: the brigade is live; its buckets are freed unsent.
        unsafe { ffi::apr_brigade_cleanup(self.bb.cast()) };
    }
}
