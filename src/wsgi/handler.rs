//! Mapping URLs to WSGI scripts (translate_name) and running them
//! (handler).

use super::environ;
use super::errors::{log_exception, ErrorLog};
use super::input::Input;
use super::response::StartResponse;
use super::{script, type_name};
use crate::config::ScriptAlias;
use crate::directives::{server_config, slot};
use crate::httpd::{consts, ffi, log, pool};
use crate::interp;
use pyo3::exceptions::{PyAttributeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use std::ffi::c_int;

/// The handler name requests for WSGI scripts carry, as with mod_wsgi.
const HANDLER: &str = "wsgi-script";

/// translate_name: a URI under a `WSGIScriptAlias` prefix maps to the
/// script, with the rest of the URI appended so Apache's directory walk
/// splits off PATH_INFO as it does for CGI scripts.
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
    let Some((alias, matched)) = config.find_alias(&uri) else {
        return consts::DECLINED;
    };
    // Keep the slash that starts the remainder ("/" + "x" must give
    // "script/x", not "scriptx").
    let rest = if alias.url.ends_with('/') { matched - 1 } else { matched };
    let filename = format!("{}{}", alias.script, &uri[rest..]);
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

/// handler: runs the WSGI application for requests translate_name mapped.
///
/// # Safety
/// `r` must be the live request Apache passed to the hook.
pub unsafe fn handle(r: *mut ffi::request_rec) -> c_int {
    // SAFETY: r is live; handler is a NUL-terminated string or null.
    if unsafe { pool::str_from((*r).handler) }.as_deref() != Some(HANDLER) {
        return consts::DECLINED;
    }
    // SAFETY: translate_name stored an alias pointer (or nothing, for
    // requests that reached the handler another way) in our slot.
    let alias = unsafe { (*slot((*r).request_config)).cast::<ScriptAlias>().as_ref() };
    // SAFETY: r is live; filename is NUL-terminated.
    let filename = unsafe { pool::str_from((*r).filename) }.unwrap_or_default().into_owned();
    let script = alias.map_or(filename, |a| a.script.clone());
    // SAFETY: finfo was filled by the directory walk.
    let (filetype, mtime) = unsafe { ((*r).finfo.filetype, (*r).finfo.mtime) };
    if filetype == consts::APR_NOFILE {
        log::request(r, consts::APLOG_ERR, &format!("target WSGI script not found: {script}"));
        return consts::HTTP_NOT_FOUND;
    }
    if filetype == consts::APR_DIR {
        log::request(
            r,
            consts::APLOG_ERR,
            &format!("target WSGI script is a directory, not a file: {script}"),
        );
        return consts::HTTP_FORBIDDEN;
    }
    let callable = alias.map_or("application", ScriptAlias::callable_name);

    // SAFETY: r is live. Chunked bodies are refused (411) until
    // WSGIChunkedRequest exists; the body itself is read by wsgi.input.
    let status = unsafe { ffi::ap_setup_client_block(r, consts::REQUEST_CHUNKED_ERROR) };
    if status != consts::OK {
        return status;
    }
    // SAFETY: r is live; this runs before the GIL is taken.
    unsafe { environ::prepare(r) };
    let outcome = interp::with_python(|py| {
        // SAFETY: r stays live for the whole call.
        unsafe { run(py, r, &script, alias, callable, mtime) }
    });
    outcome.unwrap_or_else(|reason| {
        log::request(
            r,
            consts::APLOG_ERR,
            &format!("cannot run WSGI script {script}: Python is not available in this process ({reason})"),
        );
        consts::HTTP_INTERNAL_SERVER_ERROR
    })
}

/// # Safety
/// `r` must be the live request being handled.
unsafe fn run(
    py: Python<'_>,
    r: *mut ffi::request_rec,
    script: &str,
    alias: Option<&ScriptAlias>,
    callable: &str,
    mtime: i64,
) -> c_int {
    let module = match script::load(py, script, mtime) {
        Ok(module) => module,
        Err(err) => {
            log_exception(py, r, &format!("failed to load WSGI script {script}"), &err);
            return consts::HTTP_INTERNAL_SERVER_ERROR;
        }
    };
    let application = match module.getattr(callable) {
        Ok(app) => app,
        Err(err) if err.is_instance_of::<PyAttributeError>(py) => {
            log::request(
                r,
                consts::APLOG_ERR,
                &format!("target WSGI script {script} does not contain WSGI application '{callable}'"),
            );
            return consts::HTTP_NOT_FOUND;
        }
        Err(err) => {
            log_exception(py, r, &format!("failed to look up '{callable}' in WSGI script {script}"), &err);
            return consts::HTTP_INTERNAL_SERVER_ERROR;
        }
    };
    let objects = (|| -> PyResult<_> {
        Ok((
            Bound::new(py, Input::new(r))?,
            Bound::new(py, ErrorLog::new(r))?,
            Bound::new(py, StartResponse::new(r))?,
        ))
    })();
    let (input, errors, start_response) = match objects {
        Ok(objects) => objects,
        Err(err) => {
            log_exception(py, r, &format!("cannot prepare the request for {script}"), &err);
            return consts::HTTP_INTERNAL_SERVER_ERROR;
        }
    };
    // SAFETY: r is live and environ::prepare ran.
    let environ = unsafe {
        environ::build(py, r, alias, callable, input.clone().into_any(), errors.clone().into_any())
    };
    let status = match environ {
        Ok(environ) => respond(py, r, script, &application, environ.into_any(), &start_response),
        Err(err) => {
            log_exception(py, r, &format!("cannot build the environ for {script}"), &err);
            consts::HTTP_INTERNAL_SERVER_ERROR
        }
    };
    // The application may keep these objects; from now on they refuse
    // to touch the finished request.
    input.get().finish();
    errors.get().finish();
    start_response.get().discard(py);
    status
}

/// Calls the application and sends what it returns.
fn respond(
    py: Python<'_>,
    r: *mut ffi::request_rec,
    script: &str,
    application: &Bound<'_, PyAny>,
    environ: Bound<'_, PyAny>,
    start_response: &Bound<'_, StartResponse>,
) -> c_int {
    let headline = format!("exception raised by WSGI script {script}");
    let result = match application.call1((environ, start_response)) {
        Ok(result) => result,
        Err(err) => {
            log_exception(py, r, &headline, &err);
            return consts::HTTP_INTERNAL_SERVER_ERROR;
        }
    };
    let sender = start_response.get();
    let sent = send_body(py, sender, &result);
    // PEP 3333: close() is called whatever happened while iterating.
    let closed = match result.getattr_opt("close") {
        Ok(Some(close)) => close.call0().map(drop),
        Ok(None) => Ok(()),
        Err(err) => Err(err),
    };
    if let Err(err) = closed {
        log_exception(py, r, &format!("close() of the response from {script} raised"), &err);
    }
    match sent {
        Ok(()) => consts::OK,
        Err(err) => {
            log_exception(py, r, &headline, &err);
            if sender.headers_sent(py) {
                sender.abort(py);
                consts::OK
            } else {
                consts::HTTP_INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// Iterates the response body. A list or tuple is a body known in full,
/// so it is buffered and sent in one pass; any other iterable is streamed
/// item by item as PEP 3333 requires.
fn send_body(py: Python<'_>, sender: &StartResponse, result: &Bound<'_, PyAny>) -> PyResult<()> {
    let streamed = !(result.is_instance_of::<PyList>() || result.is_instance_of::<PyTuple>());
    for item in result.try_iter()? {
        let item = item?;
        let bytes = item.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!("response body items must be bytes, not {}", type_name(&item)))
        })?;
        let data = bytes.as_bytes();
        // Headers wait for the first non-empty item (PEP 3333).
        if !data.is_empty() {
            sender.send(py, data, streamed)?;
        }
    }
    sender.finish(py)
}
