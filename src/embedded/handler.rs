//! Mapping URLs to WSGI scripts (translate_name) and running them
//! (handler).

use super::body::ApacheBody;
use super::flush_at_end;
use super::request::{self, ApacheRequestLog, Scratch};
use super::sink::ApacheSink;
use crate::application_group::{self, ApplicationGroup, RequestFacts};
use crate::config::{MapHeadToGet, RequestSettings, ScriptAlias};
use crate::directives::{dir_config, server_config, slot};
use crate::httpd::{consts, ffi, log, pool};
use crate::interp;
use crate::daemon;
use crate::daemon_config::ProcessGroup;
use crate::wsgi::app::{self, Outcome};
use std::ffi::c_int;
use std::sync::Arc;

/// The handler names requests for WSGI scripts carry: the first is what
/// `AddHandler`/`SetHandler` use, the second mod_wsgi's MIME-type form.
const HANDLERS: [&str; 2] = ["wsgi-script", "application/x-httpd-wsgi"];

/// translate_name: a URI an alias covers maps to its script. Apache's
/// directory walk then settles what is the script and what PATH_INFO, as
/// for CGI scripts: from the script and the rest of the URI when the alias
/// names a file, from the two joined otherwise (see MappedUri).
///
/// # Safety
/// `r` must be the live request Apache passed to the hook.
pub unsafe fn translate_name(r: *mut ffi::request_rec) -> c_int {
    // SAFETY: r is live; uri is NUL-terminated or null. It is matched as
    // bytes: a percent-decoded URI need not be UTF-8.
    let uri = request::c_bytes(unsafe { (*r).uri });
    if !uri.starts_with(b"/") {
        return consts::DECLINED;
    }
    // SAFETY: r->server is the server handling the request; its config
    // lives in the configuration pool, which outlives every request.
    let config = unsafe { server_config((*r).server) };
    let Some((alias, mapped)) = config.map_uri(uri) else {
        return consts::DECLINED;
    };
    // SAFETY: r is live; the strings are copied into its pool, the handler
    // name is a static string, and our request_config slot takes a pointer
    // to the alias, which lives as long as the configuration.
    unsafe {
        match mapped.script_and_path_info() {
            Some((script, path_info)) => {
                (*r).filename = pool::bytes_dup((*r).pool, script);
                (*r).path_info = pool::bytes_dup((*r).pool, path_info);
            }
            None => (*r).filename = pool::bytes_dup((*r).pool, &mapped.joined()),
        }
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
    let handler = request::c_bytes(unsafe { (*r).handler });
    if !HANDLERS.iter().any(|name| name.as_bytes() == handler) {
        return consts::DECLINED;
    }
    // First, so that the error pages Apache sends for the statuses
    // returned below are flushed like the application's responses (and
    // those a daemon sends through this child too).
    // SAFETY: r is live.
    unsafe { flush_at_end::add(r) };
    // SAFETY: translate_name stored an alias pointer in our slot, or left
    // it null for requests that got the handler from the configuration.
    let alias = unsafe { (*slot((*r).request_config)).cast::<ScriptAlias>().as_ref() };
    // SAFETY: r is live; the per-directory config was merged for it.
    let settings = RequestSettings::resolve(alias, unsafe { dir_config(r) });
    // SAFETY: r is live; after the directory walk filename is the script
    // itself (PATH_INFO split off) and finfo describes it.
    let (script, filetype, mtime) = unsafe { request::script_file(r) };
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
    let method = unsafe { head_as_get(r, settings.map_head_to_get) }.then_some("GET");
    let mut scratch = Scratch::default();
    // SAFETY: r is live, in its handler, without the GIL; the variables
    // are used within this call.
    let variables = unsafe { request::cgi_variables(r, &settings, method, &mut scratch) };
    // Resolved here for both modes: a daemon has no request_rec to take
    // the host, port and variables from.
    // SAFETY: r is live.
    let application_group = unsafe { application_group_of(r, settings.application_group, &variables) };
    // SAFETY: r is live; its subprocess_env holds SetEnv/mod_rewrite variables.
    match unsafe { process_group_of(r, settings.process_group, "WSGIProcessGroup") } {
        Ok(Some(group)) => {
            let forward = daemon::client::Forward {
                group: &group,
                script: &script,
                callable: settings.callable_object,
                application_group: application_group.as_deref(),
                reload_mtime: settings.script_reloading.then_some(mtime),
                variables: &variables,
            };
            // SAFETY: r is live and its body set up.
            return unsafe { daemon::client::handle(r, forward) };
        }
        Ok(None) => {}
        Err(why) => {
            log::request(r, consts::APLOG_ERR, &format!("{why} (script {script})"));
            return consts::HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    // SAFETY: r->server is live, its config ours.
    if unsafe { server_config((*r).server) }.restrict_embedded == Some(true) {
        log::request(
            r,
            consts::APLOG_ERR,
            &format!("WSGI script {script} would run in embedded mode, which WSGIRestrictEmbedded On forbids; give it a WSGIProcessGroup"),
        );
        return consts::HTTP_INTERNAL_SERVER_ERROR;
    }
    let log = Arc::new(ApacheRequestLog::new(r));
    let outcome = interp::with_python(|py| {
        // SAFETY: r stays live for the whole call, and the core lets go of
        // the body and the sink before run() returns.
        let (body, sink) = unsafe { (Box::new(ApacheBody::new(r)), Box::new(ApacheSink::new(r))) };
        let request = app::Request {
            script: &script,
            reload_mtime: settings.script_reloading.then_some(mtime),
            callable_object: settings.callable_object,
            application_group: application_group.as_deref(),
            variables: &variables,
            // SAFETY: r is live.
            request_start: unsafe { (*r).request_time } as f64 / 1e6,
            log: log.clone(),
            body,
            sink,
        };
        app::run(py, request)
    });
    log.finish();
    match outcome {
        Ok(Outcome::Responded(final_pass)) => {
            // A failure here means the client has gone; Apache's own
            // handlers do not report that either.
            if let Some(final_pass) = final_pass {
                final_pass.send();
            }
            consts::OK
        }
        Ok(Outcome::Failed(status)) => c_int::from(status),
        Ok(Outcome::BodyFailed(status)) => status,
        Err(reason) => {
            log::request(
                r,
                consts::APLOG_ERR,
                &format!("cannot run WSGI script {script}: Python is not available in this process ({reason})"),
            );
            consts::HTTP_INTERNAL_SERVER_ERROR
        }
    }
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

/// The daemon process group a request goes to, None for embedded mode.
/// `%{ENV:NAME}` takes the variable's value now (SetEnv, SetEnvIf or
/// mod_rewrite may set it per request); empty or unset means embedded.
/// `setting` names where the group was configured, for the error.
///
/// # Safety
/// `r` must be the live request being handled.
pub(super) unsafe fn process_group_of(
    r: *mut ffi::request_rec,
    group: &ProcessGroup,
    setting: &str,
) -> Result<Option<String>, String> {
    let name = match group {
        ProcessGroup::Global => return Ok(None),
        ProcessGroup::Named(name) => name.clone(),
        ProcessGroup::Env(variable) => {
            let c_name = std::ffi::CString::new(variable.as_str()).map_err(|_| "NUL in a variable name".to_owned())?;
            // SAFETY: r is live; the table lookup returns null or a pool string.
            let value = unsafe { pool::str_from(ffi::apr_table_get((*r).subprocess_env, c_name.as_ptr())) };
            match value.as_deref() {
                None | Some("") | Some("%{GLOBAL}") => return Ok(None),
                Some(name) => name.to_owned(),
            }
        }
    };
    // SAFETY: r and its server are live; server_hostname is a pool string.
    let host = unsafe { pool::str_from((*(*r).server).server_hostname) }.unwrap_or_default();
    daemon::check_group(&name, &host).map(|()| Some(name)).map_err(|why| match group {
        ProcessGroup::Env(variable) => format!("{setting} %{{ENV:{variable}}}: {why}"),
        _ => format!("{setting}: {why}"),
    })
}

/// The application group the configuration puts the request in, named as
/// mod_wsgi names its interpreters; None when none is configured.
///
/// # Safety
/// `r` must be the live request being handled; `variables` its CGI
/// variables.
pub(super) unsafe fn application_group_of(
    r: *mut ffi::request_rec,
    group: Option<&ApplicationGroup>,
    variables: &[(&[u8], &[u8])],
) -> Option<String> {
    let group = group?;
    if let Some(name) = group.static_name() {
        return Some(name.to_owned());
    }
    let script_name = variables.iter().rev().find(|(key, _)| *key == b"SCRIPT_NAME").map(|(_, value)| *value);
    let script_name = String::from_utf8_lossy(script_name.unwrap_or_default());
    // SAFETY: r and its server are live; the names are null or pool strings.
    let (server_hostname, host, port) = unsafe {
        (
            pool::str_from((*(*r).server).server_hostname).unwrap_or_default(),
            pool::str_from((*r).hostname),
            ffi::ap_get_server_port(r),
        )
    };
    let facts = RequestFacts { server_hostname: &server_hostname, port, host: host.as_deref(), script_name: &script_name };
    // Where mod_wsgi looks a variable up: the request's notes, its
    // environment (SetEnv, SetEnvIf, mod_rewrite), then the process's.
    let variable = |name: &str| -> Option<String> {
        let c_name = std::ffi::CString::new(name).ok()?;
        // SAFETY: r is live for the whole call; the tables return null or
        // NUL-terminated pool strings.
        let found = unsafe {
            pool::str_from(ffi::apr_table_get((*r).notes, c_name.as_ptr()))
                .or_else(|| pool::str_from(ffi::apr_table_get((*r).subprocess_env, c_name.as_ptr())))
        };
        found.map(|v| v.into_owned()).or_else(|| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    };
    Some(application_group::resolve(group, &facts, &variable))
}
