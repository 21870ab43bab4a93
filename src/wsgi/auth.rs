//! The Python side of Apache's access, authentication and authorisation
//! checks (`WSGIAccessScript`, `WSGIAuthUserScript`, `WSGIAuthGroupScript`):
//! load the script as WSGI scripts are loaded, call its function with a
//! cut-down environ, and read what it returns by mod_wsgi's conventions.
//! Every failure (a missing script or function, an exception, a value of
//! the wrong type) is logged here and answered as [`Answer::Failed`]; the
//! transport turns each answer into its phase's status.

use super::app_group;
use super::environ::latin1;
use super::logging::{log_exception, CurrentRequest, Level, RequestLog};
use super::std_streams::RequestErrors;
use super::transport::server_facts;
use super::{script, type_name};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyString};
use std::sync::Arc;

/// What Apache asks the script. Names and passwords are the client's
/// bytes; they reach Python as str decoded as UTF-8, as in mod_wsgi (a
/// name that is not UTF-8 is a UnicodeDecodeError, logged).
pub enum Question<'a> {
    /// `check_password(environ, user, password)`, for Basic.
    Password { user: &'a [u8], password: &'a [u8] },
    /// `get_realm_hash(environ, user, realm)`, for Digest.
    RealmHash { user: &'a [u8], realm: &'a [u8] },
    /// `groups_for_user(environ, user)`, for `Require wsgi-group`.
    Groups { user: &'a [u8] },
    /// `allow_access(environ, host)`: the client's host name, or its
    /// address when it has none.
    Access { host: Option<&'a [u8]> },
}

impl Question<'_> {
    fn function(&self) -> &'static str {
        match self {
            Question::Password { .. } => "check_password",
            Question::RealmHash { .. } => "get_realm_hash",
            Question::Groups { .. } => "groups_for_user",
            Question::Access { .. } => "allow_access",
        }
    }

    /// The script's role, for log lines.
    pub fn kind(&self) -> &'static str {
        match self {
            Question::Password { .. } | Question::RealmHash { .. } => "authentication",
            Question::Groups { .. } => "group authorisation",
            Question::Access { .. } => "access",
        }
    }
}

/// What the script answered.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// check_password returned True, or a user name (str) to authenticate
    /// the request as instead of the one the client sent.
    Authenticated(Option<Vec<u8>>),
    /// check_password returned False.
    WrongPassword,
    /// check_password or get_realm_hash returned None.
    UnknownUser,
    /// get_realm_hash's `md5("user:realm:password")` in hex.
    RealmHash(Vec<u8>),
    /// groups_for_user's names (bytes, or str encoded as Latin-1).
    Groups(Vec<Vec<u8>>),
    /// allow_access returned True, False, or None (no opinion).
    Access(Option<bool>),
    /// The script could not answer; the reason is logged.
    Failed,
}

/// One check, as the transport hands it to the core.
pub struct Check<'a> {
    pub script: &'a str,
    /// `WSGIScriptReloading`: a changed script is loaded again.
    pub reloading: bool,
    /// The script's application group, resolved for the request ('' for
    /// `%{GLOBAL}`).
    pub application_group: &'a str,
    /// The environ's CGI variables, in order.
    pub variables: &'a [(&'a [u8], &'a [u8])],
    pub log: Arc<dyn RequestLog>,
}

pub fn run(py: Python<'_>, check: &Check<'_>, question: &Question<'_>) -> Answer {
    let log = &*check.log;
    // SAFETY: `check.log` outlives the guard, dropped at the end of this
    // function on this thread.
    let _current = unsafe { CurrentRequest::enter(log) };
    let (script, function, kind) = (check.script, question.function(), question.kind());
    if let Err(hosted) = app_group::enter(py, Some(check.application_group)) {
        log.write(Level::Err, &crate::application_group::mismatch_message(script, check.application_group, &hosted));
        return Answer::Failed;
    }
    let module = match script::load_current(py, script, check.reloading) {
        Ok(module) => module,
        Err(err) => {
            log_exception(py, log, &format!("failed to load WSGI {kind} script {script}"), &err);
            return Answer::Failed;
        }
    };
    let callable = match module.getattr_opt(function) {
        Ok(Some(callable)) => callable,
        Ok(None) => {
            log.write(Level::Err, &format!("WSGI {kind} script {script} does not define {function}()"));
            return Answer::Failed;
        }
        Err(err) => {
            log_exception(py, log, &format!("failed to look up {function}() in WSGI {kind} script {script}"), &err);
            return Answer::Failed;
        }
    };
    let errors = match RequestErrors::enter(py, check.log.clone()) {
        Ok(errors) => errors,
        Err(err) => {
            log_exception(py, log, &format!("cannot prepare the environ for {script}"), &err);
            return Answer::Failed;
        }
    };
    let result = environ(py, check, errors.stream()).and_then(|environ| {
        let result = match question {
            Question::Password { user, password } => callable.call1((environ, utf8(py, user)?, utf8(py, password)?)),
            Question::RealmHash { user, realm } => callable.call1((environ, utf8(py, user)?, utf8(py, realm)?)),
            Question::Groups { user } => callable.call1((environ, utf8(py, user)?)),
            Question::Access { host } => {
                let host = host.map(|host| utf8(py, host)).transpose()?;
                callable.call1((environ, host))
            }
        }?;
        read_answer(question, &result)
    });
    errors.finish();
    match result {
        Ok(Ok(answer)) => answer,
        Ok(Err(expected)) => {
            log.write(
                Level::Err,
                &format!("{function}() of WSGI {kind} script {script} must return {expected}"),
            );
            Answer::Failed
        }
        Err(err) => {
            log_exception(py, log, &format!("exception raised by {function}() of WSGI {kind} script {script}"), &err);
            Answer::Failed
        }
    }
}

/// mod_wsgi's environ for these checks: the request's headers and
/// connection, no `SetEnv` variables (an .htaccess file could set them),
/// no Authorization header, no wsgi.input.
fn environ<'py>(py: Python<'py>, check: &Check<'_>, errors: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    let environ = PyDict::new(py);
    for (key, value) in check.variables {
        environ.set_item(latin1(py, key), latin1(py, value))?;
    }
    environ.set_item("apache.version", server_facts().apache_version)?;
    // As in the application's environ: this module's own version, no
    // claim to be a mod_wsgi version.
    environ.set_item("mod_wsgi_rs.version", env!("CARGO_PKG_VERSION"))?;
    // '' in an Apache child, the group's name in a daemon process.
    environ.set_item("mod_wsgi.process_group", server_facts().process_group.as_str())?;
    environ.set_item("mod_wsgi.application_group", check.application_group)?;
    // An int here, where the application's environ has a str: mod_wsgi's.
    environ.set_item("mod_wsgi.script_reloading", i32::from(check.reloading))?;
    environ.set_item("wsgi.errors", errors)?;
    Ok(environ)
}

fn utf8<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    PyBytes::new(py, bytes).call_method1("decode", ("utf-8",))
}

/// The answer in `result`, or what the function should have returned.
fn read_answer(question: &Question<'_>, result: &Bound<'_, PyAny>) -> PyResult<Result<Answer, String>> {
    let bool_of = |value: &Bound<'_, PyAny>| value.cast::<PyBool>().ok().map(|b| b.is_true());
    let got = || format!(", not {}", type_name(result));
    Ok(match question {
        Question::Password { .. } => match bool_of(result) {
            Some(true) => Ok(Answer::Authenticated(None)),
            Some(false) => Ok(Answer::WrongPassword),
            None if result.is_none() => Ok(Answer::UnknownUser),
            None => match result.cast::<PyString>() {
                Ok(name) if !name.to_str()?.is_empty() && !name.to_str()?.contains('\0') => {
                    Ok(Answer::Authenticated(Some(name.to_str()?.as_bytes().to_vec())))
                }
                Ok(_) => Err("a user name that is not empty and has no NUL".to_owned()),
                Err(_) => Err(format!("True, False, None or a user name (str){}", got())),
            },
        },
        Question::RealmHash { .. } => {
            if result.is_none() {
                Ok(Answer::UnknownUser)
            } else {
                match latin1_bytes(result)? {
                    Some(hash) if !hash.contains(&0) => Ok(Answer::RealmHash(hash)),
                    _ => Err(format!("None or the hash as a Latin-1 string (str or bytes){}", got())),
                }
            }
        }
        Question::Groups { .. } => {
            let Ok(items) = result.try_iter() else {
                return Ok(Err(format!("an iterable of group names (bytes or Latin-1 str){}", got())));
            };
            let mut groups = Vec::new();
            for item in items {
                let item = item?;
                match latin1_bytes(&item)? {
                    Some(name) => groups.push(name),
                    None => {
                        return Ok(Err(format!(
                            "an iterable of group names (bytes or Latin-1 str), not one holding {}",
                            describe(&item)
                        )))
                    }
                }
            }
            Ok(Answer::Groups(groups))
        }
        Question::Access { .. } => match bool_of(result) {
            Some(allowed) => Ok(Answer::Access(Some(allowed))),
            None if result.is_none() => Ok(Answer::Access(None)),
            None => Err(format!("True, False or None{}", got())),
        },
    })
}

/// bytes as they are, a str of Latin-1 characters encoded; None for
/// anything else.
fn latin1_bytes(value: &Bound<'_, PyAny>) -> PyResult<Option<Vec<u8>>> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(Some(bytes.as_bytes().to_vec()));
    }
    let Ok(text) = value.cast::<PyString>() else { return Ok(None) };
    match text.call_method1("encode", ("latin-1",)) {
        Ok(encoded) => Ok(Some(encoded.cast::<PyBytes>()?.as_bytes().to_vec())),
        Err(_) => Ok(None),
    }
}

/// A value for an error line: its type, and for a str its repr (which
/// shows the character Latin-1 cannot encode).
fn describe(value: &Bound<'_, PyAny>) -> String {
    match value.cast::<PyString>() {
        Ok(_) => format!("{} (not Latin-1)", value.repr().map(|r| r.to_string()).unwrap_or_default()),
        Err(_) => type_name(value),
    }
}
