//! Access, authentication and authorisation scripts run in a daemon
//! process group (`process-group=` of `WSGIAuthUserScript`,
//! `WSGIAuthGroupScript` and `WSGIAccessScript`). The Apache child checking
//! the request sends the check over the group's socket as it sends
//! requests (a Check frame: the function, the script, the cut-down environ,
//! the user and password, realm or host); the daemon runs it through the
//! same WSGI core as embedded mode (src/wsgi/auth.rs), relays the core's
//! log lines, and answers with Checked.

use super::channel::ChannelLog;
use super::client::{self, Connection, Ended, Tries};
use super::conn::Conn;
use super::wire::{self, CheckAnswer, CheckQuestion, Message, ToChild, ToDaemon};
use super::Endpoint;
use crate::embedded::apache_level;
use crate::httpd::{consts, ffi, log};
use crate::interp;
use crate::wsgi::auth::{self, Answer, Check, Question};
use crate::wsgi::logging::{Level, RequestLog};
use std::ffi::c_int;
use std::io;
use std::sync::Arc;

/// Why a check sent to a daemon process group has no answer; the reason
/// is logged.
pub enum Unanswered {
    /// No daemon of the group could take it.
    Unreachable,
    /// The group is not running, or its daemon failed during the check.
    Failed,
}

impl Unanswered {
    /// The status where the phase can return one (the access check): as
    /// for a request, 503 when the group cannot be reached, else 500.
    pub fn status(&self) -> c_int {
        match self {
            Self::Unreachable => consts::HTTP_SERVICE_UNAVAILABLE,
            Self::Failed => consts::HTTP_INTERNAL_SERVER_ERROR,
        }
    }
}

/// A check to run in a daemon of `group`, besides its question.
pub struct Delegated<'a> {
    pub group: &'a str,
    pub script: &'a str,
    pub reloading: bool,
    pub application_group: &'a str,
    pub variables: &'a [(&'a [u8], &'a [u8])],
}

/// Runs `question` through the script in a daemon of `delegated.group`.
///
/// # Safety
/// `r` must be the live request being checked.
pub unsafe fn ask(r: *mut ffi::request_rec, delegated: &Delegated<'_>, question: &Question<'_>) -> Result<Answer, Unanswered> {
    let (group, script) = (delegated.group, delegated.script);
    let Some(endpoint) = client::endpoint(group) else {
        log::request(r, consts::APLOG_ERR, &format!("no daemon process group named '{group}' is running (script {script})"));
        return Err(Unanswered::Failed);
    };
    // Counted on the status page as a request is: it takes a daemon thread.
    let _in_flight = super::metrics::InFlight::new(endpoint.metrics);
    let check = ToDaemon::Check {
        question: to_wire(question),
        script: script.to_owned(),
        reloading: delegated.reloading,
        application_group: delegated.application_group.to_owned(),
        // SAFETY: r is live.
        client: unsafe { client::client_address(r) },
        variables: delegated.variables.iter().copied().collect(),
    };
    let mut encoded = Vec::new();
    if let Err(err) = wire::encode(&check, &mut encoded) {
        log::request(r, consts::APLOG_ERR, &format!("cannot send the check by {script} to group '{group}': {err}"));
        return Err(Unanswered::Failed);
    }
    let what = format!("the {} check", question.kind());
    let answered = client::with_some_daemon(&endpoint, &mut Tries::default(), |connection, _| {
        converse(r, connection, &encoded, &endpoint, &what, script)
    });
    answered.unwrap_or_else(|unreached| {
        log::request(r, consts::APLOG_ERR, &unreached.message(&endpoint, &what, script));
        Err(Unanswered::Unreachable)
    })
}

/// One check over `connection`: sends it, writes the daemon's log lines
/// to the request's log, and returns its answer.
fn converse(
    r: *mut ffi::request_rec,
    mut connection: Connection,
    check: &[u8],
    endpoint: &Endpoint,
    what: &str,
    script: &str,
) -> Ended<Result<Answer, Unanswered>> {
    connection.sent += 1;
    // Written in part, it cannot have been taken: the daemon takes only
    // whole frames.
    if wire::write_encoded(&connection.writer, check).is_err() && connection.ledger.revoke(connection.sent) {
        return Ended::NotTaken;
    }
    let (pid, group) = (connection.pid, &endpoint.name);
    loop {
        let (failure, timed_out) = match connection.reader.read_frame_maybe_fd::<ToChild>() {
            Ok(Some((ToChild::Log { level, text }, None))) => {
                log::request(r, apache_level(client::level_of(level)), &text);
                continue;
            }
            Ok(Some((ToChild::Checked { answer }, None))) => {
                client::put_idle(group, connection);
                return Ended::Done(Ok(from_wire(answer)));
            }
            Ok(Some((frame, _))) => (format!("sent {} during {what}", frame.name()), false),
            Ok(None) => (format!("ended the connection during {what}"), false),
            Err(err) if is_timeout(&err) => {
                (format!("gave no answer to {what} within {} s ({err})", endpoint.socket_timeout.as_secs()), true)
            }
            Err(err) => (format!("connection failed during {what}: {err}"), false),
        };
        // The daemon sends nothing before it takes the check, so a
        // revocation that succeeds means it never ran: a daemon that was
        // stopping closed the connection, and another gets the check.
        if connection.ledger.revoke(connection.sent) {
            if !timed_out {
                return Ended::NotTaken;
            }
            log::request(r, consts::APLOG_ERR, &client::no_free_thread(pid, endpoint, what, script));
            return Ended::Done(Err(Unanswered::Unreachable));
        }
        log::request(r, consts::APLOG_ERR, &format!("daemon process {pid} of group '{group}' {failure} (script {script})"));
        return Ended::Done(Err(Unanswered::Failed));
    }
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// The daemon side: runs a Check through the WSGI core and answers it.
pub(super) fn answer(conn: &Arc<Conn>, check: ToDaemon) {
    let ToDaemon::Check { question, script, reloading, application_group, client, variables } = check else {
        return;
    };
    let log = Arc::new(ChannelLog::new(conn.clone(), client));
    let variables: Vec<(&[u8], &[u8])> = variables.iter().collect();
    let check = Check {
        script: &script,
        reloading,
        application_group: &application_group,
        variables: &variables,
        log: log.clone(),
    };
    let question = from_wire_question(&question);
    let answer = interp::with_python(|py| auth::run(py, &check, &question)).unwrap_or_else(|reason| {
        log.write(
            Level::Err,
            &format!("cannot run WSGI script {script}: Python is not available in this process ({reason})"),
        );
        Answer::Failed
    });
    log.finish();
    // A child that has gone needs no answer.
    let _ = conn.send(&ToChild::Checked { answer: to_wire_answer(answer) });
}

fn to_wire(question: &Question<'_>) -> CheckQuestion {
    match *question {
        Question::Password { user, password } => CheckQuestion::Password { user: user.to_vec(), password: password.to_vec() },
        Question::RealmHash { user, realm } => CheckQuestion::RealmHash { user: user.to_vec(), realm: realm.to_vec() },
        Question::Groups { user } => CheckQuestion::Groups { user: user.to_vec() },
        Question::Access { host } => CheckQuestion::Access { host: host.map(<[u8]>::to_vec) },
    }
}

fn from_wire_question(question: &CheckQuestion) -> Question<'_> {
    match question {
        CheckQuestion::Password { user, password } => Question::Password { user, password },
        CheckQuestion::RealmHash { user, realm } => Question::RealmHash { user, realm },
        CheckQuestion::Groups { user } => Question::Groups { user },
        CheckQuestion::Access { host } => Question::Access { host: host.as_deref() },
    }
}

fn to_wire_answer(answer: Answer) -> CheckAnswer {
    match answer {
        Answer::Authenticated(name) => CheckAnswer::Authenticated(name),
        Answer::WrongPassword => CheckAnswer::WrongPassword,
        Answer::UnknownUser => CheckAnswer::UnknownUser,
        Answer::RealmHash(hash) => CheckAnswer::RealmHash(hash),
        Answer::Groups(groups) => CheckAnswer::Groups(groups),
        Answer::Access(allowed) => CheckAnswer::Access(allowed),
        Answer::Failed => CheckAnswer::Failed,
    }
}

fn from_wire(answer: CheckAnswer) -> Answer {
    match answer {
        CheckAnswer::Authenticated(name) => Answer::Authenticated(name),
        CheckAnswer::WrongPassword => Answer::WrongPassword,
        CheckAnswer::UnknownUser => Answer::UnknownUser,
        CheckAnswer::RealmHash(hash) => Answer::RealmHash(hash),
        CheckAnswer::Groups(groups) => Answer::Groups(groups),
        CheckAnswer::Access(allowed) => Answer::Access(allowed),
        CheckAnswer::Failed => Answer::Failed,
    }
}
