//! The Apache side of the access, authentication and authorisation
//! scripts: the `wsgi` authentication provider (`AuthBasicProvider wsgi`,
//! `AuthDigestProvider wsgi`), the `wsgi-group` authorisation provider
//! (`Require wsgi-group NAME...`) and the host access check. Each gathers
//! what mod_wsgi shows these scripts of the request, asks the WSGI core
//! (src/wsgi/auth.rs) in this process's interpreter, or in a daemon of the
//! script's `process-group=` (src/daemon/auth.rs), and turns the answer
//! into the phase's status as mod_wsgi 4.9 does: an authentication script
//! that fails is a 500, a group script that fails a refusal (401), an
//! access script that fails a 403. A daemon process group that cannot be
//! reached or fails during the check gives what a request would get: 503
//! or 500 where the phase can say so, else 500.

use super::handler::{application_group_of, process_group_of};
use super::request::{c_bytes, ApacheRequestLog};
use crate::config::AuthScript;
use crate::daemon::{self, auth::Delegated, auth::Unanswered};
use crate::directives::dir_config;
use crate::httpd::{consts, ffi, log, pool};
use crate::interp;
use crate::wsgi::auth::{self, Answer, Check, Question};
use std::ffi::{c_char, c_int};
use std::sync::Arc;

/// The provider of `AuthBasicProvider wsgi`.
///
/// # Safety
/// `r` must be the live request; `user` and `password` NUL-terminated.
pub unsafe fn check_password(r: *mut ffi::request_rec, user: *const c_char, password: *const c_char) -> ffi::authn_status {
    // SAFETY (whole function): forwarded from the caller.
    let Some(script) = (unsafe { dir_config(r) }).auth_user_script.as_ref() else {
        return unsafe { no_script(r, "AuthBasicProvider wsgi", "WSGIAuthUserScript") };
    };
    let (user, password) = (c_bytes(user), c_bytes(password));
    match unsafe { ask(r, script, &Question::Password { user, password }) } {
        Ok(Answer::Authenticated(None)) => ffi::authn_status_AUTH_GRANTED,
        Ok(Answer::Authenticated(Some(name))) => {
            // The script names the user the request is authenticated as
            // (REMOTE_USER, %u in the access log, later Require checks).
            // SAFETY: r is live; the name (no NUL, checked by the core) is
            // copied into its pool.
            unsafe { (*r).user = pool::strdup((*r).pool, &String::from_utf8_lossy(&name)) };
            ffi::authn_status_AUTH_GRANTED
        }
        Ok(Answer::WrongPassword) => ffi::authn_status_AUTH_DENIED,
        Ok(Answer::UnknownUser) => ffi::authn_status_AUTH_USER_NOT_FOUND,
        // A failure (500), also of a daemon process group: a provider has
        // no other status.
        _ => ffi::authn_status_AUTH_GENERAL_ERROR,
    }
}

/// The provider of `AuthDigestProvider wsgi`.
///
/// # Safety
/// `r` must be the live request; `user` and `realm` NUL-terminated and
/// `rethash` writable.
pub unsafe fn get_realm_hash(
    r: *mut ffi::request_rec,
    user: *const c_char,
    realm: *const c_char,
    rethash: *mut *mut c_char,
) -> ffi::authn_status {
    // SAFETY (whole function): forwarded from the caller.
    let Some(script) = (unsafe { dir_config(r) }).auth_user_script.as_ref() else {
        return unsafe { no_script(r, "AuthDigestProvider wsgi", "WSGIAuthUserScript") };
    };
    let (user, realm) = (c_bytes(user), c_bytes(realm));
    match unsafe { ask(r, script, &Question::RealmHash { user, realm }) } {
        Ok(Answer::RealmHash(hash)) => {
            // SAFETY: r is live; the hash (no NUL, checked by the core) is
            // copied into its pool, where mod_auth_digest reads it.
            unsafe { *rethash = pool::strdup((*r).pool, &String::from_utf8_lossy(&hash)) };
            ffi::authn_status_AUTH_USER_FOUND
        }
        Ok(Answer::UnknownUser) => ffi::authn_status_AUTH_USER_NOT_FOUND,
        _ => ffi::authn_status_AUTH_GENERAL_ERROR,
    }
}

/// `Require wsgi-group NAME...`: granted when groups_for_user names one
/// of the groups.
///
/// # Safety
/// `r` must be the live request and `require_args` the NUL-terminated
/// rest of the Require line.
pub unsafe fn check_group(r: *mut ffi::request_rec, require_args: *const c_char) -> ffi::authz_status {
    // SAFETY (whole function): forwarded from the caller; r->user and
    // r->uri are null or NUL-terminated pool strings.
    let user = unsafe { (*r).user };
    if user.is_null() {
        // Apache authenticates first, then asks again.
        return ffi::authz_status_AUTHZ_DENIED_NO_USER;
    }
    let Some(script) = (unsafe { dir_config(r) }).auth_group_script.as_ref() else {
        log::request(r, consts::APLOG_ERR, "Require wsgi-group: no WSGIAuthGroupScript applies to this location");
        return ffi::authz_status_AUTHZ_DENIED;
    };
    let user = c_bytes(user);
    let groups = match unsafe { ask(r, script, &Question::Groups { user }) } {
        Ok(Answer::Groups(groups)) => groups,
        // The script failed: a refusal, as with mod_wsgi.
        Ok(_) => return ffi::authz_status_AUTHZ_DENIED,
        // Its daemon process group did: 500, as for a request.
        Err(_) => return ffi::authz_status_AUTHZ_GENERAL_ERROR,
    };
    // SAFETY: r is live and require_args NUL-terminated.
    let required = unsafe { require_words((*r).pool, require_args) };
    if required.iter().any(|name| groups.contains(name)) {
        return ffi::authz_status_AUTHZ_GRANTED;
    }
    let uri = unsafe { pool::str_from((*r).uri) }.unwrap_or_default();
    let why = if groups.is_empty() { "is not a member of any group" } else { "is not a member of the required groups" };
    log::request(
        r,
        consts::APLOG_ERR,
        &format!(
            "Require wsgi-group: user '{}' {why} (WSGI group authorisation script {}), access to {uri} refused",
            String::from_utf8_lossy(user).escape_default(),
            script.path
        ),
    );
    ffi::authz_status_AUTHZ_DENIED
}

/// Checks a `Require wsgi-group` line when the configuration is read: it
/// must name a group (mod_wsgi takes a line without one and refuses every
/// request under it).
///
/// # Safety
/// `cmd` must be the live cmd_parms and `require_line` NUL-terminated.
pub unsafe fn parse_group_require(cmd: *mut ffi::cmd_parms, require_line: *const c_char) -> Result<(), String> {
    // SAFETY: forwarded from the caller.
    if unsafe { require_words((*cmd).temp_pool, require_line) }.is_empty() {
        return Err("Require wsgi-group: expected one or more group names".to_owned());
    }
    Ok(())
}

/// `WSGIAccessScript`: allow_access's True lets the request go on to the
/// other checks, None leaves the decision to them, False (or a failure)
/// refuses it with 403.
///
/// # Safety
/// `r` must be the live request of the access_checker hook.
pub unsafe fn check_access(r: *mut ffi::request_rec) -> c_int {
    // SAFETY (whole function): forwarded from the caller.
    let Some(script) = (unsafe { dir_config(r) }).access_script.as_ref() else {
        return consts::DECLINED;
    };
    // The host name when Apache knows it (HostnameLookups), else the
    // client's address, as mod_wsgi passes it.
    let host = unsafe {
        let c = (*r).connection;
        let name = ffi::ap_get_remote_host(c, (*r).per_dir_config.cast(), ffi::REMOTE_HOST as c_int, std::ptr::null_mut());
        if name.is_null() { (*r).useragent_ip.cast_const() } else { name }
    };
    let host = (!host.is_null()).then(|| c_bytes(host));
    match unsafe { ask(r, script, &Question::Access { host }) } {
        Ok(Answer::Access(None)) => consts::DECLINED,
        Ok(Answer::Access(Some(true))) => consts::OK,
        Err(unanswered) => unanswered.status(),
        Ok(_) => {
            let file = unsafe { pool::str_from((*r).filename) }.unwrap_or_default();
            log::request(
                r,
                consts::APLOG_ERR,
                &format!("client denied by WSGI access script {}: {file}", script.path),
            );
            consts::HTTP_FORBIDDEN
        }
    }
}

/// A provider used where no script is configured: mod_wsgi's general
/// error (500), with a line saying what is missing.
///
/// # Safety
/// `r` must be the live request.
unsafe fn no_script(r: *mut ffi::request_rec, provider: &str, directive: &str) -> ffi::authn_status {
    // SAFETY: forwarded from the caller.
    let uri = unsafe { pool::str_from((*r).uri) }.unwrap_or_default();
    log::request(r, consts::APLOG_ERR, &format!("{provider}: no {directive} applies to {uri}"));
    ffi::authn_status_AUTH_GENERAL_ERROR
}

/// Runs `question` through the script, in this process's interpreter or,
/// with `process-group=`, in a daemon of that group. Err: a daemon
/// process group gave no answer (logged).
///
/// # Safety
/// `r` must be the live request being checked.
unsafe fn ask(r: *mut ffi::request_rec, script: &AuthScript, question: &Question<'_>) -> Result<Answer, Unanswered> {
    // SAFETY (whole function): forwarded from the caller.
    let owned = unsafe { variables(r) };
    let variables: Vec<(&[u8], &[u8])> = owned.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    let application_group = unsafe { application_group_of(r, Some(&script.application_group), &variables) };
    let application_group = application_group.as_deref().unwrap_or_default();
    let reloading = unsafe { dir_config(r) }.script_reloading.unwrap_or(true);
    let setting = format!("process-group of WSGI {} script {}", question.kind(), script.path);
    match unsafe { process_group_of(r, &script.process_group, &setting) } {
        Ok(Some(group)) => {
            let delegated = Delegated { group: &group, script: &script.path, reloading, application_group, variables: &variables };
            return unsafe { daemon::auth::ask(r, &delegated, question) };
        }
        Ok(None) => {}
        Err(why) => {
            log::request(r, consts::APLOG_ERR, &why);
            return Err(Unanswered::Failed);
        }
    }
    let request_log = Arc::new(ApacheRequestLog::new(r));
    let check = Check { script: &script.path, reloading, application_group, variables: &variables, log: request_log.clone() };
    let answer = interp::with_python(|py| auth::run(py, &check, question));
    request_log.finish();
    Ok(answer.unwrap_or_else(|reason| {
        log::request(
            r,
            consts::APLOG_ERR,
            &format!("cannot run WSGI script {}: Python is not available in this process ({reason})", script.path),
        );
        Answer::Failed
    }))
}

/// The CGI variables mod_wsgi gives these scripts: the request headers
/// but Authorization and Proxy-Authorization, the server's and the
/// connection's, and the request line's; not `SetEnv` variables.
///
/// # Safety
/// `r` must be the live request being checked.
unsafe fn variables(r: *mut ffi::request_rec) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut vars: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(32);
    let mut add = |key: &[u8], value: &[u8]| vars.push((key.to_vec(), value.to_vec()));
    // SAFETY (whole block): r is live; every pointer read is a field
    // Apache filled for this request or server, null or NUL-terminated,
    // and table entries are NUL-terminated pool strings.
    unsafe {
        let elts = ffi::apr_table_elts((*r).headers_in);
        let entries = std::slice::from_raw_parts((*elts).elts as *const ffi::apr_table_entry_t, (*elts).nelts as usize);
        for entry in entries.iter().filter(|e| !e.key.is_null() && !e.val.is_null()) {
            if let Some(key) = header_variable(c_bytes(entry.key)) {
                add(&key, c_bytes(entry.val));
            }
        }
        let c = (*r).connection;
        let s = (*r).server;
        add(b"SERVER_SIGNATURE", c_bytes(ffi::ap_psignature(c"".as_ptr(), r)));
        add(b"SERVER_SOFTWARE", c_bytes(ffi::ap_get_server_banner()));
        add(b"SERVER_NAME", c_bytes(ffi::ap_get_server_name(r)));
        if !(*c).local_ip.is_null() {
            add(b"SERVER_ADDR", c_bytes((*c).local_ip));
        }
        add(b"SERVER_PORT", ffi::ap_get_server_port(r).to_string().as_bytes());
        let remote_host = ffi::ap_get_remote_host(c, (*r).per_dir_config.cast(), ffi::REMOTE_HOST as c_int, std::ptr::null_mut());
        if !remote_host.is_null() {
            add(b"REMOTE_HOST", c_bytes(remote_host));
        }
        if !(*r).useragent_ip.is_null() {
            add(b"REMOTE_ADDR", c_bytes((*r).useragent_ip));
        }
        add(b"DOCUMENT_ROOT", c_bytes(ffi::ap_document_root(r)));
        if !(*s).server_admin.is_null() {
            add(b"SERVER_ADMIN", c_bytes((*s).server_admin));
        }
        if !(*c).client_addr.is_null() {
            add(b"REMOTE_PORT", (*(*c).client_addr).port.to_string().as_bytes());
        }
        add(b"SERVER_PROTOCOL", c_bytes((*r).protocol));
        add(b"REQUEST_METHOD", c_bytes((*r).method));
        add(b"QUERY_STRING", c_bytes((*r).args));
        add(b"REQUEST_URI", c_bytes((*r).unparsed_uri));
        let uri = c_bytes((*r).uri);
        let path_info = c_bytes((*r).path_info);
        add(b"SCRIPT_NAME", uri.strip_suffix(path_info).unwrap_or(uri));
        add(b"PATH_INFO", path_info);
    }
    vars
}

/// The variable a request header becomes (`Content-Type` is CONTENT_TYPE,
/// `X-Thing` HTTP_X_THING); None for the credentials, which the scripts
/// get as arguments, and for names with characters a variable cannot
/// hold (mod_wsgi drops those too).
fn header_variable(name: &[u8]) -> Option<Vec<u8>> {
    if name.eq_ignore_ascii_case(b"Authorization") || name.eq_ignore_ascii_case(b"Proxy-Authorization") {
        return None;
    }
    if name.eq_ignore_ascii_case(b"Content-Type") {
        return Some(b"CONTENT_TYPE".to_vec());
    }
    if name.eq_ignore_ascii_case(b"Content-Length") {
        return Some(b"CONTENT_LENGTH".to_vec());
    }
    let mut key = b"HTTP_".to_vec();
    for &b in name {
        match b {
            b'-' => key.push(b'_'),
            _ if b.is_ascii_alphanumeric() => key.push(b.to_ascii_uppercase()),
            _ => return None,
        }
    }
    Some(key)
}

/// The words of a Require line after its provider name, as Apache splits
/// them (quotes removed).
///
/// # Safety
/// `p` must be a live pool and `line` NUL-terminated (or null).
unsafe fn require_words(p: *mut ffi::apr_pool_t, line: *const c_char) -> Vec<Vec<u8>> {
    let mut words = Vec::new();
    if line.is_null() {
        return words;
    }
    let mut rest = line;
    loop {
        // SAFETY: ap_getword_conf reads one word of the NUL-terminated
        // `rest`, advancing it, and returns a copy allocated in `p`.
        let word = c_bytes(unsafe { ffi::ap_getword_conf(p, &mut rest) });
        if word.is_empty() {
            return words;
        }
        words.push(word.to_vec());
    }
}
