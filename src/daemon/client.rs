//! The Apache-child side of daemon mode: a request routed to a process
//! group goes to one of its daemons over the group's socket, on a
//! connection kept for the next request; the daemon's frames become the
//! response. Failures map to statuses an operator can act on: 503 when the
//! group cannot be reached, 502 when its daemon ends before the response
//! head, 504 when it does not answer in time, and a cut response when it
//! fails after the head; each with a log line naming the group, the
//! daemon's pid when known, and the script.

use super::ledger::Ledger;
use super::wire::{Arrived, FrameReader, RequestFrame, ToChild, ToDaemon, LENT_FRAME_MAX, PROTOCOL_VERSION};
use super::{Endpoint, ENDPOINTS};
use crate::embedded::{apache_level, ApacheBody, ApacheSink};
use crate::httpd::{consts, ffi, log};
use crate::wsgi::file_wrapper::FileRegion;
use crate::wsgi::transport::{BodySource, ResponseSink};
use std::collections::HashMap;
use std::ffi::c_int;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::Duration;

/// A connection to a daemon, with the pid its Hello named.
pub(super) struct Connection {
    pub(super) writer: UnixStream,
    pub(super) reader: FrameReader,
    pub(super) pid: u32,
    /// Whether the daemon took a request (see ledger.rs), and how many
    /// requests have been sent on the connection.
    pub(super) ledger: Ledger,
    pub(super) sent: u64,
    /// Where the next large Data frame is received: it then becomes that
    /// frame's bucket, with no copy out of the reader's buffer. Kept from
    /// one response to the next until a frame takes it.
    pub(super) next_lent: Vec<u8>,
}

/// Idle connections per group, reused by whichever thread needs one.
static IDLE: Mutex<Option<HashMap<String, Vec<Connection>>>> = Mutex::new(None);

fn take_idle(group: &str) -> Option<Connection> {
    IDLE.lock().unwrap_or_else(|e| e.into_inner()).as_mut()?.get_mut(group)?.pop()
}

pub(super) fn put_idle(group: &str, connection: Connection) {
    let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
    idle.get_or_insert_with(HashMap::new).entry(group.to_owned()).or_default().push(connection);
}

fn connect(endpoint: &Endpoint, tries: &mut Tries) -> io::Result<Connection> {
    let stream = connect_within(&endpoint.socket, endpoint.connect_timeout, tries)?;
    super::groups::set_buffer_sizes(stream.as_raw_fd(), endpoint.send_buffer_size, endpoint.receive_buffer_size);
    stream.set_read_timeout(Some(endpoint.socket_timeout))?;
    stream.set_write_timeout(Some(endpoint.socket_timeout))?;
    let writer = stream.try_clone()?;
    let mut reader = FrameReader::new(stream);
    super::wire::write_frame(&writer, &ToDaemon::Hello { version: PROTOCOL_VERSION })?;
    let pid = match reader.read_frame_maybe_fd::<ToChild>()? {
        Some((ToChild::Hello { version, pid }, _)) if version == PROTOCOL_VERSION => pid,
        Some((ToChild::Hello { version, .. }, _)) => {
            return Err(io::Error::other(format!(
                "the daemon speaks protocol version {version}, this Apache child {PROTOCOL_VERSION}"
            )))
        }
        _ => return Err(io::Error::other("the daemon did not greet")),
    };
    let ledger = match reader.read_frame_maybe_fd::<ToChild>()? {
        Some((ToChild::Ledger, Some(fd))) => Ledger::open(&fd)?,
        _ => return Err(io::Error::other("the daemon did not greet")),
    };
    Ok(Connection { writer, reader, pid, ledger, sent: 0, next_lent: Vec::new() })
}

/// Connects, retrying while the socket's backlog is full or the socket is
/// not there yet (a group starting), until `timeout`.
fn connect_within(path: &str, timeout: Duration, tries: &mut Tries) -> io::Result<UnixStream> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        tries.connects += 1;
        match connect_once(path) {
            Ok(stream) => return Ok(stream),
            Err(err) => {
                let retry = matches!(err.raw_os_error(), Some(libc::EAGAIN | libc::ECONNREFUSED | libc::ENOENT));
                if !retry || std::time::Instant::now() >= deadline {
                    return Err(err);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// One connect() that does not wait for room in the listener's backlog.
/// A blocking connect to a UNIX socket whose backlog is full sleeps until
/// a daemon accepts, with no limit: a group whose daemons are stopped or
/// hung would hold the Apache thread for good. Non-blocking, the connect
/// fails at once with EAGAIN (it never returns EINPROGRESS on a UNIX
/// socket) and connect_within retries until connect-timeout.
fn connect_once(path: &str) -> io::Result<UnixStream> {
    let addr = super::groups::socket_address(path);
    // SAFETY: socket() has no memory preconditions; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just made and is owned by nothing else; the stream
    // closes it, also when connecting fails.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: addr is a sockaddr_un of `len` bytes, alive for the call.
    if unsafe { libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Reads and writes block, bounded by socket-timeout.
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// How hard it was to reach a daemon, reported to the application as
/// mod_wsgi does (`mod_wsgi.daemon_connects`, `mod_wsgi.daemon_restarts`):
/// monitoring tells a saturated or restarting group by these.
#[derive(Default)]
pub(super) struct Tries {
    /// Attempts to reach a daemon: every connect() and every kept
    /// connection the request was sent on.
    connects: u32,
    /// Times the request was sent again because the daemon that had it
    /// closed the connection before taking it (it was stopping).
    restarts: u32,
}

/// The environ entries the daemon gets besides the request's CGI
/// variables, last so that they replace any of the same name.
const QUEUE_START: &[u8] = b"mod_wsgi.queue_start";
const DAEMON_CONNECTS: &[u8] = b"mod_wsgi.daemon_connects";
const DAEMON_RESTARTS: &[u8] = b"mod_wsgi.daemon_restarts";

/// Microseconds since the epoch, as Apache's request_time.
fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// How a conversation with a daemon ended.
pub(super) enum Ended<T> {
    /// What the caller answers with.
    Done(T),
    /// The connection ended and the daemon had not taken the request (it
    /// was stopping): it never ran there and can be sent elsewhere.
    NotTaken,
}

/// Why no daemon of a group took a request.
pub(super) enum Unreached {
    /// The group's socket could not be connected to.
    Connect(io::Error),
    /// Every daemon tried closed the connection before taking it.
    Stopping,
}

impl Unreached {
    /// The log line, `what` being what was sent ("the request") and
    /// `script` what for.
    pub(super) fn message(&self, endpoint: &Endpoint, what: &str, script: &str) -> String {
        let group = &endpoint.name;
        match self {
            Self::Connect(err) => {
                format!("cannot reach daemon process group '{group}' at {} for {script}: {err}", endpoint.socket)
            }
            Self::Stopping => {
                format!("daemon process group '{group}' did not take {what} for {script}: its daemons are stopping")
            }
        }
    }
}

/// New connections a request may try when daemons close them before
/// taking it (they were stopping).
const MAX_FRESH_ATTEMPTS: u32 = 4;

fn is_closed_by_peer(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof)
        || err.to_string() == "the daemon did not greet"
}

/// Hands `converse` connections to daemons of `endpoint`'s group until one
/// takes what it sends. Idle connections to a daemon that has stopped since
/// are closed: each is dropped and the next tried, then new connections; a
/// new one that is closed before the request is taken (its daemon was
/// stopping) is tried once more, up to MAX_FRESH_ATTEMPTS.
pub(super) fn with_some_daemon<T>(
    endpoint: &Endpoint,
    tries: &mut Tries,
    mut converse: impl FnMut(Connection, &Tries) -> Ended<T>,
) -> Result<T, Unreached> {
    let mut fresh_attempts = 0;
    loop {
        let idle = take_idle(&endpoint.name);
        if idle.is_some() {
            tries.connects += 1;
        }
        let (connection, reused) = match idle {
            Some(connection) => (connection, true),
            None => match connect(endpoint, tries) {
                Ok(connection) => (connection, false),
                // Accepted by a daemon that was stopping at that moment: it
                // closed the connection during the greeting. Another daemon
                // (or its successor) takes the next one.
                Err(err) if is_closed_by_peer(&err) && fresh_attempts < MAX_FRESH_ATTEMPTS => {
                    fresh_attempts += 1;
                    tries.restarts += 1;
                    continue;
                }
                Err(err) => return Err(Unreached::Connect(err)),
            },
        };
        match converse(connection, tries) {
            Ended::Done(value) => return Ok(value),
            Ended::NotTaken if reused => tries.restarts += 1,
            Ended::NotTaken if fresh_attempts < MAX_FRESH_ATTEMPTS => {
                fresh_attempts += 1;
                tries.restarts += 1;
            }
            Ended::NotTaken => return Err(Unreached::Stopping),
        }
    }
}

/// The endpoint of the group named `group`, if it is running.
pub(super) fn endpoint(group: &str) -> Option<Endpoint> {
    ENDPOINTS.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|e| e.name == group).cloned()
}

/// The log line for a request (or check) the daemon had no free thread
/// for within socket-timeout, so that it did not run.
pub(super) fn no_free_thread(pid: u32, endpoint: &Endpoint, what: &str, script: &str) -> String {
    format!(
        "daemon process {pid} of group '{}' had no free thread for {what} within {} s (socket-timeout; script \
         {script}); it did not run",
        endpoint.name,
        endpoint.socket_timeout.as_secs()
    )
}

/// What the request asks of the daemon, besides its CGI variables.
pub struct Forward<'a> {
    pub group: &'a str,
    pub script: &'a str,
    pub callable: &'a str,
    /// The request's application group, resolved; None: not configured.
    pub application_group: Option<&'a str>,
    pub reload_mtime: Option<i64>,
    /// The CGI variables, in order.
    pub variables: &'a [(&'a [u8], &'a [u8])],
}

/// Runs the request in a daemon of `forward.group`.
///
/// # Safety
/// `r` must be the live request being handled, after
/// ap_setup_client_block.
pub unsafe fn handle(r: *mut ffi::request_rec, forward: Forward<'_>) -> c_int {
    let group = forward.group;
    let script = forward.script;
    let Some(endpoint) = endpoint(group) else {
        log::request(r, consts::APLOG_ERR, &format!("no daemon process group named '{group}' is running (script {script})"));
        return consts::HTTP_INTERNAL_SERVER_ERROR;
    };
    let _in_flight = super::metrics::InFlight::new(endpoint.metrics);
    // SAFETY: r is live for the whole call.
    let (mut body, mut sink) = unsafe { (ApacheBody::new(r), ApacheSink::new(r)) };
    // When the request started to wait for a daemon: the time it spends
    // queued is daemon_start (set by the daemon) minus this.
    let queue_start = now_micros().to_string();
    // SAFETY: r is live; its connection's client address is a pool string.
    let client = unsafe { client_address(r) };
    let mut tries = Tries::default();
    let mut encoded = Vec::new();
    let answered = with_some_daemon(&endpoint, &mut tries, |connection, tries| {
        // Encoded for each attempt: the counts are part of the request.
        let (connects, restarts) = (tries.connects.to_string(), tries.restarts.to_string());
        let request = RequestFrame {
            script,
            callable: forward.callable,
            application_group: forward.application_group,
            reload_mtime: forward.reload_mtime,
            // SAFETY: r is live.
            request_start_micros: unsafe { (*r).request_time },
            declared_length: body.declared_length(),
            head_only: sink.head_only(),
            client: &client,
            variables: forward.variables,
            trailing: &[
                (QUEUE_START, queue_start.as_bytes()),
                (DAEMON_CONNECTS, connects.as_bytes()),
                (DAEMON_RESTARTS, restarts.as_bytes()),
            ],
        };
        encoded.clear();
        if let Err(err) = request.encode(&mut encoded) {
            put_idle(group, connection);
            log::request(r, consts::APLOG_ERR, &format!("cannot forward the request for {script} to group '{group}': {err}"));
            return Ended::Done(consts::HTTP_INTERNAL_SERVER_ERROR);
        }
        converse(r, connection, &encoded, &endpoint, script, &mut body, &mut sink)
    });
    answered.unwrap_or_else(|unreached| {
        log::request(r, consts::APLOG_ERR, &unreached.message(&endpoint, "the request", script));
        consts::HTTP_SERVICE_UNAVAILABLE
    })
}

/// # Safety
/// `r` must be the live request.
pub(super) unsafe fn client_address(r: *mut ffi::request_rec) -> String {
    // SAFETY: r and its connection are live; client_ip is a pool string.
    unsafe {
        let c = (*r).connection;
        let ip = crate::httpd::pool::str_from((*c).client_ip).unwrap_or_default();
        let port = if (*c).client_addr.is_null() { 0 } else { (*(*c).client_addr).port };
        format!("{ip}:{port}")
    }
}

/// Data frames at least this large are handed to Apache without a copy
/// (as embedded mode hands it large bytes objects).
const LEND_MIN: usize = 32 * 1024;

/// One request over `connection`: sends it, then follows the daemon's
/// frames until the response is complete.
fn converse(
    r: *mut ffi::request_rec,
    mut connection: Connection,
    request: &[u8],
    endpoint: &Endpoint,
    script: &str,
    body: &mut ApacheBody,
    sink: &mut ApacheSink,
) -> Ended<c_int> {
    let group = &endpoint.name;
    connection.sent += 1;
    // A request written in part cannot have been taken: the daemon takes
    // only whole ones.
    if super::wire::write_encoded(&connection.writer, request).is_err() && connection.ledger.revoke(connection.sent) {
        return Ended::NotTaken;
    }
    let mut head_sent = false;
    // Large Data frames go to Apache in place, lent until written.
    let mut lent: Vec<Vec<u8>> = Vec::new();
    let pid = connection.pid;
    let mut body_buffer: Vec<MaybeUninit<u8>> = Vec::new();
    // Apache's input filters are not read again once they gave the end.
    let mut body_ended = false;
    loop {
        if connection.next_lent.capacity() < LENT_FRAME_MAX {
            connection.next_lent = Vec::with_capacity(LENT_FRAME_MAX);
        }
        let Connection { reader, next_lent, .. } = &mut connection;
        let read = reader.read_frame_or_data::<ToChild>(next_lent.spare_capacity_mut(), LEND_MIN);
        let frame = match read {
            Ok(Some(Arrived::Frame(message, fd))) => (message, fd),
            Ok(Some(Arrived::Data(len))) => {
                // SAFETY: the reader initialised the first len bytes of the
                // spare capacity (len is at most LENT_FRAME_MAX); the Vec
                // is empty until now (taken whole below when it was used).
                unsafe { next_lent.set_len(len) };
                (ToChild::Data { data: std::mem::take(next_lent) }, None)
            }
            other => {
                let timed_out = matches!(&other, Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut));
                // The daemon sends nothing before it takes the request, so
                // once any of the answer has come the revocation fails.
                if connection.ledger.revoke(connection.sent) {
                    if !timed_out {
                        return Ended::NotTaken;
                    }
                    // Not run, but waiting on elsewhere would only double
                    // the wait: the group is saturated.
                    log::request(r, consts::APLOG_ERR, &no_free_thread(pid, endpoint, "the request", script));
                    return Ended::Done(consts::HTTP_SERVICE_UNAVAILABLE);
                }
                let what = match other {
                    Err(e) if timed_out => format!("gave no answer within {} s ({e})", endpoint.socket_timeout.as_secs()),
                    Err(e) => format!("connection failed: {e}"),
                    Ok(_) => "ended the connection".to_owned(),
                };
                let when = if head_sent { "after the response head; the response is cut short" } else { "before the response head" };
                log::request(
                    r,
                    consts::APLOG_ERR,
                    &format!("daemon process {pid} of group '{group}' {what} {when} (script {script})"),
                );
                return Ended::Done(if head_sent {
                    sink.abort();
                    consts::OK
                } else if timed_out {
                    consts::HTTP_GATEWAY_TIME_OUT
                } else {
                    consts::HTTP_BAD_GATEWAY
                });
            }
        };
        let (message, fd) = frame;
        match message {
            ToChild::Ledger => return Ended::Done(consts::HTTP_BAD_GATEWAY),
            ToChild::ReadBody { max } => {
                let max = (max as usize).clamp(1, 1 << 20);
                body_buffer.resize(max, MaybeUninit::uninit());
                let read = if body_ended { Ok((0, true)) } else { body.read(&mut body_buffer) };
                let answer = match read {
                    Ok((0, true)) => ToDaemon::BodyEnd,
                    Ok((n, ended)) => {
                        // The end of a read that brought bytes is reported
                        // at the next read.
                        body_ended = ended;
                        // SAFETY: read initialised the first n bytes, which
                        // are then only read.
                        let data = unsafe { std::slice::from_raw_parts(body_buffer.as_ptr().cast::<u8>(), n) };
                        if super::wire::write_body(&connection.writer, data).is_err() {
                            return Ended::Done(consts::HTTP_BAD_GATEWAY);
                        }
                        continue;
                    }
                    Err(err) => ToDaemon::BodyError { status: err.status, reason: err.reason },
                };
                if super::wire::write_frame(&connection.writer, &answer).is_err() {
                    return Ended::Done(consts::HTTP_BAD_GATEWAY);
                }
            }
            ToChild::Head { status, status_line, headers } => {
                let size = status_line.len() + headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>();
                if size > endpoint.header_buffer_size as usize {
                    log::request(
                        r,
                        consts::APLOG_ERR,
                        &format!(
                            "daemon process {pid} of group '{group}' sent a response head of {size} bytes for {script}, \
                             more than header-buffer-size ({})",
                            endpoint.header_buffer_size
                        ),
                    );
                    return Ended::Done(consts::HTTP_BAD_GATEWAY);
                }
                sink.set_head(status, &status_line, &headers);
                head_sent = true;
            }
            ToChild::AnnounceStream => sink.announce_stream(),
            ToChild::Data { data } if data.len() >= LEND_MIN => {
                // SAFETY: `data` is kept in `lent` until a flushing pass
                // has written it. A request that ends before that leaves
                // the bucket unpassed: abort drops it first, and a brigade
                // never passed is freed with the pool without being read.
                unsafe { sink.append_borrowed(&data) };
                lent.push(data);
            }
            ToChild::Data { data } => sink.append_copy(&data),
            ToChild::Pass { flush } => {
                // Lent bytes must be written before they go: a flush makes
                // the pass write everything, which for a pass of that size
                // Apache mostly does anyway.
                let written = sink.pass(flush || !lent.is_empty());
                lent.clear();
                if written.is_err() {
                    // The client is gone: dropping the connection tells the
                    // daemon, whose next write fails as it would in
                    // embedded mode.
                    return Ended::Done(consts::OK);
                }
            }
            ToChild::File { offset, len } => {
                let Some(fd) = fd else { return Ended::Done(consts::HTTP_BAD_GATEWAY) };
                if let Err(why) = sink.append_file(FileRegion { file: std::fs::File::from(fd), offset, len }) {
                    log::request(r, consts::APLOG_ERR, &why);
                    sink.abort();
                    return Ended::Done(consts::OK);
                }
            }
            ToChild::End { flush } => {
                sink.close(flush || !lent.is_empty());
                sink.send_final();
                lent.clear();
                put_idle(group, connection);
                return Ended::Done(consts::OK);
            }
            ToChild::Abort => {
                sink.abort();
                put_idle(group, connection);
                return Ended::Done(consts::OK);
            }
            ToChild::Failed { status } => {
                sink.discard();
                put_idle(group, connection);
                return Ended::Done(c_int::from(status));
            }
            ToChild::BodyFailed { status } => {
                sink.discard();
                put_idle(group, connection);
                return Ended::Done(status);
            }
            ToChild::Log { level, text } => log::request(r, apache_level(level_of(level)), &text),
            ToChild::Hello { .. } | ToChild::Checked { .. } => return Ended::Done(consts::HTTP_BAD_GATEWAY),
        }
    }
}

pub(super) fn level_of(code: u8) -> crate::wsgi::logging::Level {
    use crate::wsgi::logging::Level;
    match code {
        0..=2 => Level::Crit,
        3 => Level::Err,
        4 => Level::Warning,
        5 => Level::Notice,
        _ => Level::Info,
    }
}
