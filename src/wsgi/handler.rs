//! Mapping URLs to WSGI scripts (translate_name) and running them
//! (handler).

use super::environ::{self, EnvironSettings};
use super::errors::{log_exception, CurrentRequest, ErrorLog};
use super::file_wrapper::FileWrapper;
use super::input::Input;
use super::response::{FinalPass, StartResponse};
use super::{flush_at_end, script, type_name, ConnectionLock};
use crate::config::{MapHeadToGet, RequestSettings, ScriptAlias};
use crate::directives::{dir_config, server_config, slot};
use crate::httpd::{consts, ffi, log, pool};
use crate::interp;
use pyo3::exceptions::{PyAttributeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use std::ffi::c_int;

/// The handler names requests for WSGI scripts carry: the first is what
/// `AddHandler`/`SetHandler` use, the second mod_wsgi's MIME-type form.
const HANDLERS: [&str; 2] = ["wsgi-script", "application/x-httpd-wsgi"];

/// translate_name: a URI an alias covers maps to its script, with the rest
/// of the URI appended so Apache's directory walk splits off PATH_INFO as
/// it does for CGI scripts (and finds the script in a directory target).
///
/// # Safety
/// `r` must be the live request Apache passed to the hook.
pub unsafe fn translate_name(r: *mut ffi::request_rec) -> c_int {
    // SAFETY: r is live; uri is NUL-terminated or null.
    let Some(uri) = (unsafe { pool::str_from((*r).uri) }) else {
        return consts::DECLINED;
    };
    if !uri.starts_with('/') {
        return consts::DECLINED;
    }
    // SAFETY: r->server is the server handling the request; its config
    // lives in the configuration pool, which outlives every request.
    let config = unsafe { server_config((*r).server) };
    let Some((alias, filename)) = config.map_uri(&uri) else {
        return consts::DECLINED;
    };
    // SAFETY: r is live; the filename is copied into its pool, the handler
    // name is a static string, and our request_config slot takes a pointer
    // to the alias, which lives as long as the configuration.
    unsafe {
        (*r).filename = pool::strdup((*r).pool, &filename);
        (*r).handler = c"wsgi-script".as_ptr();
        // Tells mod_mime not to replace the handler by file extension.
        ffi::apr_table_setn((*r).notes, c"alias-forced-type".as_ptr(), (*r).handler);
        *slot((*r).request_config) = (alias as *const ScriptAlias).cast_mut().cast();
    }
    consts::OK
}

/// handler: runs the WSGI application for requests mapped by an alias or
/// given the `wsgi-script` handler by `AddHandler`/`SetHandler`.
///
/// # Safety
/// `r` must be the live request Apache passed to the hook.
pub unsafe fn handle(r: *mut ffi::request_rec) -> c_int {
    // SAFETY: r is live; handler is a NUL-terminated string or null.
    let handler = unsafe { pool::str_from((*r).handler) };
    if !handler.is_some_and(|h| HANDLERS.contains(&&*h)) {
        return consts::DECLINED;
    }
    // First, so that the error pages Apache sends for the statuses
    // returned below are flushed like the application's responses.
    // SAFETY: r is live.
    unsafe { flush_at_end::add(r) };
    // SAFETY: translate_name stored an alias pointer in our slot, or left
    // it null for requests that got the handler from the configuration.
    let alias = unsafe { (*slot((*r).request_config)).cast::<ScriptAlias>().as_ref() };
    // SAFETY: r is live; the per-directory config was merged for it.
    let settings = RequestSettings::resolve(alias, unsafe { dir_config(r) });
    // SAFETY: r is live; after the directory walk filename is the script
    // itself (PATH_INFO split off) and finfo describes it.
    let (script, filetype, mtime) = unsafe {
        (
            pool::str_from((*r).filename).unwrap_or_default().into_owned(),
            (*r).finfo.filetype,
            (*r).finfo.mtime,
        )
    };
    // As for CGI scripts, a handler set by configuration runs files only
    // where the administrator allowed executing them; an alias is itself
    // that permission.
    // SAFETY: r is live.
    if alias.is_none() && unsafe { ffi::ap_allow_options(r) } & consts::OPT_EXECCGI == 0 {
        log::request(r, consts::APLOG_ERR, &format!("Options ExecCGI is off in this directory: {script}"));
        return consts::HTTP_FORBIDDEN;
    }
    if filetype == consts::APR_NOFILE {
        log::request(r, consts::APLOG_ERR, &format!("target WSGI script not found: {script}"));
        return consts::HTTP_NOT_FOUND;
    }
    if filetype == consts::APR_DIR {
        log::request(r, consts::APLOG_ERR, &format!("target WSGI script is a directory, not a file: {script}"));
        return consts::HTTP_FORBIDDEN;
    }
    // SAFETY: r is live and its body has not been read.
    let status = unsafe { check_request_body(r, settings.chunked_request) };
    if status != consts::OK {
        return status;
    }
    // SAFETY: r is live.
    let environ_settings = EnvironSettings {
        callable_object: settings.callable_object,
        pass_authorization: settings.pass_authorization,
        script_reloading: settings.script_reloading,
        method: unsafe { head_as_get(r, settings.map_head_to_get) }.then_some("GET"),
    };
    // SAFETY: r is live; this runs before the GIL is taken.
    unsafe { environ::prepare(r) };
    let outcome = interp::with_python(|py| {
        let _current = CurrentRequest::enter(r);
        let reload_mtime = settings.script_reloading.then_some(mtime);
        // SAFETY: r stays live for the whole call.
        unsafe { run(py, r, &script, reload_mtime, &environ_settings) }
    });
    outcome.map(|(status, final_pass)| {
        // A failure here means the client has gone; Apache's own handlers
        // do not report that either.
        if let Some(final_pass) = final_pass {
            final_pass.send();
        }
        status
    })
    .unwrap_or_else(|reason| {
        log::request(
            r,
            consts::APLOG_ERR,
            &format!("cannot run WSGI script {script}: Python is not available in this process ({reason})"),
        );
        consts::HTTP_INTERNAL_SERVER_ERROR
    })
}

/// Decides whether the request body may be read: chunked bodies only with
/// `WSGIChunkedRequest On` (411 otherwise, as Apache does for CGI), and a
/// declared length over `LimitRequestBody` is refused before the
/// application runs (a chunked one is cut off by Apache while reading).
///
/// # Safety
/// `r` must be the live request being handled.
unsafe fn check_request_body(r: *mut ffi::request_rec, chunked_allowed: bool) -> c_int {
    let policy = if chunked_allowed { consts::REQUEST_CHUNKED_DECHUNK } else { consts::REQUEST_CHUNKED_ERROR };
    // SAFETY: r is live; ap_setup_client_block only parses the request
    // headers and sets r->remaining / r->read_chunked.
    let status = unsafe { ffi::ap_setup_client_block(r, policy) };
    if status != consts::OK {
        return status;
    }
    // SAFETY: r is live.
    let (limit, declared) = unsafe { (ffi::ap_get_limit_req_body(r), (*r).remaining) };
    if limit > 0 && declared > limit {
        log::request(
            r,
            consts::APLOG_ERR,
            &format!("request body of {declared} bytes exceeds LimitRequestBody {limit}"),
        );
        return consts::HTTP_REQUEST_ENTITY_TOO_LARGE;
    }
    consts::OK
}

/// Whether a HEAD request is shown to the application as GET. Apache drops
/// the body of a HEAD response itself; running the application as GET
/// matters when output filters (compression, for one) compute headers
/// from the body.
///
/// # Safety
/// `r` must be the live request being handled.
unsafe fn head_as_get(r: *mut ffi::request_rec, mode: MapHeadToGet) -> bool {
    // SAFETY: r is live; header_only is set exactly for HEAD requests.
    if unsafe { (*r).header_only } == 0 {
        return false;
    }
    match mode {
        MapHeadToGet::Off => false,
        MapHeadToGet::On => true,
        // SAFETY: r is live; the filter chain is a NULL-terminated list of
        // filters whose frec pointers Apache registered for the process.
        MapHeadToGet::Auto => unsafe {
            let mut f = (*r).output_filters;
            let mut content_filter = false;
            while !f.is_null() {
                content_filter |= (*(*f).frec).ftype < consts::AP_FTYPE_PROTOCOL;
                f = (*f).next;
            }
            content_filter
        },
    }
}

/// # Safety
/// `r` must be the live request being handled.
unsafe fn run(
    py: Python<'_>,
    r: *mut ffi::request_rec,
    script: &str,
    reload_mtime: Option<i64>,
    settings: &EnvironSettings<'_>,
) -> (c_int, Option<FinalPass>) {
    let failed = |status| (status, None);
    let module = match script::load(py, script, reload_mtime) {
        Ok(module) => module,
        Err(err) => {
            log_exception(py, r, &format!("failed to load WSGI script {script}"), &err);
            return failed(consts::HTTP_INTERNAL_SERVER_ERROR);
        }
    };
    let callable = settings.callable_object;
    let application = match module.getattr(callable) {
        Ok(app) => app,
        Err(err) if err.is_instance_of::<PyAttributeError>(py) => {
            log::request(
                r,
                consts::APLOG_ERR,
                &format!("target WSGI script {script} does not contain WSGI application '{callable}'"),
            );
            return failed(consts::HTTP_NOT_FOUND);
        }
        Err(err) => {
            log_exception(py, r, &format!("failed to look up '{callable}' in WSGI script {script}"), &err);
            return failed(consts::HTTP_INTERNAL_SERVER_ERROR);
        }
    };
    let connection = ConnectionLock::default();
    let objects = (|| -> PyResult<_> {
        let start_response = Bound::new(py, StartResponse::new(r, connection.clone()))?;
        let input = Input::new(r, connection, start_response.get().deferred_output());
        Ok((Bound::new(py, input)?, Bound::new(py, ErrorLog::for_request(r))?, start_response))
    })();
    let (input, errors, start_response) = match objects {
        Ok(objects) => objects,
        Err(err) => {
            log_exception(py, r, &format!("cannot prepare the request for {script}"), &err);
            return failed(consts::HTTP_INTERNAL_SERVER_ERROR);
        }
    };
    // SAFETY: r is live and environ::prepare ran.
    let environ =
        unsafe { environ::build(py, r, settings, input.clone().into_any(), errors.clone().into_any()) };
    let outcome = match environ {
        Ok(environ) => {
            let call = Call { py, r, script, input: input.get(), sender: start_response.get() };
            call.respond(&application, environ.into_any(), &start_response)
        }
        Err(err) => {
            log_exception(py, r, &format!("cannot build the environ for {script}"), &err);
            failed(consts::HTTP_INTERNAL_SERVER_ERROR)
        }
    };
    // The application may keep these objects; from now on they refuse
    // to touch the finished request.
    input.get().finish();
    errors.get().finish();
    start_response.get().discard(py);
    outcome
}

/// One call of the application and everything it returns.
struct Call<'a, 'py> {
    py: Python<'py>,
    r: *mut ffi::request_rec,
    script: &'a str,
    input: &'a Input,
    sender: &'a StartResponse,
}

impl Call<'_, '_> {
    fn respond(
        &self,
        application: &Bound<'_, PyAny>,
        environ: Bound<'_, PyAny>,
        start_response: &Bound<'_, StartResponse>,
    ) -> (c_int, Option<FinalPass>) {
        let py = self.py;
        let headline = format!("exception raised by WSGI script {}", self.script);
        let result = application.call1((environ, start_response));
        // A failed body read has already decided the response: Apache sent
        // its own error (413, 400) or the client is gone. Whatever the
        // application made of the OSError is not sent.
        if let Some((status, reason)) = self.input.failure() {
            log::request(
                self.r,
                consts::APLOG_ERR,
                &format!(
                    "cannot read the request body for WSGI script {}: {reason}; \
                     the application's response is not sent",
                    self.script
                ),
            );
            if let Ok(result) = &result {
                self.close(result);
            }
            return (self.give_up(status), None);
        }
        let result = match result {
            Ok(result) => result,
            Err(err) => {
                log_exception(py, self.r, &headline, &err);
                return (self.give_up(consts::HTTP_INTERNAL_SERVER_ERROR), None);
            }
        };
        let sent = self.send_body(&result);
        // PEP 3333: close() is called whatever happened while iterating.
        self.close(&result);
        // A file_wrapper with a shorter Content-Length is the documented way
        // to send the start of a file; for other bodies the excess is lost.
        let partial_file_ok = result.is_instance_of::<FileWrapper>();
        match sent {
            Ok(()) => self.finish(!partial_file_ok),
            Err(err) => {
                log_exception(py, self.r, &headline, &err);
                (self.give_up(consts::HTTP_INTERNAL_SERVER_ERROR), None)
            }
        }
    }

    fn close(&self, result: &Bound<'_, PyAny>) {
        // Lists and tuples have no close(); asking would build and discard
        // an AttributeError on every request.
        if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
            return;
        }
        let closed = match result.getattr_opt("close") {
            Ok(Some(close)) => close.call0().map(drop),
            Ok(None) => Ok(()),
            Err(err) => Err(err),
        };
        if let Err(err) = closed {
            let headline = format!("close() of the response from WSGI script {} raised", self.script);
            log_exception(self.py, self.r, &headline, &err);
        }
    }

    /// Ends a failed request: with nothing on the wire yet, Apache sends
    /// the error page for `status`; once the response has started, the
    /// client must see it cut short instead.
    fn give_up(&self, status: c_int) -> c_int {
        if self.sender.committed(self.py) {
            self.sender.abort(self.py);
            consts::OK
        } else {
            self.sender.discard(self.py);
            status
        }
    }

    /// Completes a body the application returned without error; the last
    /// brigade is left for the handler to send without the GIL.
    fn finish(&self, warn_excess: bool) -> (c_int, Option<FinalPass>) {
        let py = self.py;
        if let Some((sent, declared)) = self.sender.shortfall(py) {
            log::request(
                self.r,
                consts::APLOG_ERR,
                &format!(
                    "WSGI script {} returned fewer bytes ({sent}) than its Content-Length ({declared}); \
                     closing the connection",
                    self.script
                ),
            );
            self.sender.abort(py);
            return (consts::OK, None);
        }
        // The response itself is fine (cut to the declared length), but data
        // the application meant to send was lost: worth a warning.
        if let Some((declared, dropped)) = warn_excess.then(|| self.sender.excess(py)).flatten() {
            log::request(
                self.r,
                consts::APLOG_WARNING,
                &format!(
                    "WSGI script {} returned more bytes than its Content-Length ({declared}); \
                     {dropped} bytes were not sent",
                    self.script
                ),
            );
        }
        match self.sender.finish(py) {
            Ok(final_pass) => (consts::OK, Some(final_pass)),
            Err(err) => {
                let headline = format!("cannot complete the response of WSGI script {}", self.script);
                log_exception(py, self.r, &headline, &err);
                (self.give_up(consts::HTTP_INTERNAL_SERVER_ERROR), None)
            }
        }
    }

    /// Iterates the response body. A list or tuple is a body known in
    /// full, so it is buffered and sent in one pass; any other iterable is
    /// streamed item by item as PEP 3333 requires. A `wsgi.file_wrapper`
    /// around a regular file is handed to Apache as the file itself.
    fn send_body(&self, result: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = self.py;
        if let Ok(wrapper) = result.cast::<FileWrapper>() {
            if let Some(region) = wrapper.get().file_region(py) {
                return self.sender.send_file(py, region);
            }
        }
        let streamed = !(result.is_instance_of::<PyList>() || result.is_instance_of::<PyTuple>());
        for item in result.try_iter()? {
            let item = item?;
            let bytes = item.cast::<PyBytes>().map_err(|_| {
                PyTypeError::new_err(format!("response body items must be bytes, not {}", type_name(&item)))
            })?;
            // Headers wait for the first non-empty item (PEP 3333).
            if !bytes.as_bytes().is_empty() {
                self.sender.send(py, bytes, streamed)?;
            }
        }
        Ok(())
    }
}
