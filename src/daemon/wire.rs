//! The wire protocol between an Apache child and a daemon process: the
//! frames each side sends over the group's UNIX socket, their encoding, an
//! incremental decoder, and blocking reads and writes that pass a file
//! descriptor along with each File frame.
//!
//! Pure Rust over std and libc, so that it unit-tests without Apache or
//! Python and the fuzz crate can compile it in (fuzz/fuzz_targets/wire.rs).
//!
//! # Framing
//!
//! A frame is a kind byte, the payload's length (u32, big-endian, at most
//! [`MAX_PAYLOAD`]), then the payload. Inside a payload, integers are
//! big-endian and fixed width; a byte string is a u32 length then the
//! bytes; text is a byte string that must be UTF-8; a bool is a 0/1 byte;
//! an Option is a 0/1 byte then the value; a list is a u32 count then the
//! items. Decoding is strict (another flag byte, bytes left over after the
//! last field, invalid UTF-8 are all errors), so a decoded frame encodes
//! back to exactly the bytes it came from.
//!
//! # Conversation
//!
//! Each side sends its Hello as soon as the connection is up, then reads
//! the peer's. The Hello kinds, and the version at the start of their
//! payload, stay the same in every protocol version, so a peer speaking
//! another version is reported as a version mismatch naming both, not as a
//! garbled frame.
//!
//! The daemon's Hello is followed by Ledger, with the descriptor of the
//! connection's ledger (see ledger.rs: whether the daemon has taken a
//! request is settled there, with no frame).
//!
//! Then, one request at a time: the child sends Request; the daemon sends
//! any number of ReadBody (each answered by exactly one Body, BodyEnd or
//! BodyError) and Log, and ends the request with Failed or BodyFailed
//! (nothing was sent to the client), or with Head, the body
//! (AnnounceStream, Data, File, Pass) and End or Abort.
//!
//! An authentication, authorisation or access check (`WSGIAuthUserScript`
//! and the others with `process-group=`) takes a request's place: the
//! child sends Check, the daemon sends any number of Log and ends it with
//! Checked. A check has no body.

#![allow(dead_code)] // until the daemon runtime uses it

use std::collections::VecDeque;
use std::ffi::{c_int, c_uint};
use std::fmt;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::ops::Range;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::ptr;

/// The protocol version both sides must speak.
pub const PROTOCOL_VERSION: u16 = 3;

/// The largest payload a frame may have.
pub const MAX_PAYLOAD: usize = 16 << 20;

/// The most bytes one Data or Body frame carries: the payload less the
/// byte string's length.
pub const MAX_DATA: usize = MAX_PAYLOAD - 4;

/// The kind byte and the payload length.
const HEADER_LEN: usize = 5;

/// A Data or Body frame's header and its byte string's length prefix:
/// the bytes before its data.
const DATA_HEADER_LEN: usize = HEADER_LEN + 4;

/// The largest Data frame the daemon makes of bytes it lends (a large
/// body item, written from the bytes object itself) and the size of the
/// buffer the child receives such a frame into.
pub const LENT_FRAME_MAX: usize = 64 << 10;

/// Messages from the Apache child to the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToDaemon {
    Hello {
        version: u16,
    },
    Request {
        script: String,
        callable: String,
        /// The application group the configuration puts the request in,
        /// resolved by the Apache child (which has the host, port and
        /// variables); None when none is configured.
        application_group: Option<String>,
        /// The script's mtime, when WSGIScriptReloading is on.
        reload_mtime: Option<i64>,
        /// When Apache received the request (apr_time_t: µs since the epoch).
        request_start_micros: i64,
        /// Content-Length; None for a chunked body.
        declared_length: Option<u64>,
        /// A HEAD request: the body is dropped.
        head_only: bool,
        /// "ip:port", for the daemon's own log lines about the request.
        client: String,
        /// The CGI variables, in order.
        variables: Variables,
    },
    /// An auth script's function to run in the daemon, for the request
    /// the child is checking.
    Check {
        question: CheckQuestion,
        script: String,
        /// WSGIScriptReloading: a changed script is loaded again.
        reloading: bool,
        /// The script's application group, resolved by the child.
        application_group: String,
        /// "ip:port", for the daemon's own log lines about the request.
        client: String,
        /// The CGI variables of the scripts' cut-down environ, in order.
        variables: Variables,
    },
    /// Answers ReadBody: at most `max` bytes (and at most MAX_DATA); may be
    /// empty before the end.
    Body {
        data: Vec<u8>,
    },
    /// Answers ReadBody: the body has ended.
    BodyEnd,
    /// Answers ReadBody: the body cannot be read (see transport::BodyError).
    BodyError {
        status: i32,
        reason: String,
    },
}

/// Messages from the daemon to the Apache child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToChild {
    Hello {
        version: u16,
        pid: u32,
    },
    /// After Hello: the connection's ledger, a shared memory descriptor
    /// that comes with the frame (SCM_RIGHTS).
    Ledger,
    /// Asks for up to `max` bytes of the request body.
    ReadBody {
        max: u32,
    },
    Head {
        status: u16,
        status_line: String,
        headers: Vec<(String, String)>,
    },
    AnnounceStream,
    Data {
        data: Vec<u8>,
    },
    Pass {
        flush: bool,
    },
    /// A region of a file whose descriptor comes with the frame (SCM_RIGHTS):
    /// see [`write_frame_with_fd`] and [`FrameReader::read_frame_maybe_fd`].
    File {
        offset: u64,
        len: u64,
    },
    /// The response is complete.
    End {
        flush: bool,
    },
    /// The response cannot be completed: the client must see it cut short.
    Abort,
    /// Nothing was sent: the child answers with this HTTP status.
    Failed {
        status: u16,
    },
    /// The request body could not be read: the child ends the request
    /// with the status of the BodyError it sent.
    BodyFailed {
        status: i32,
    },
    /// A log line about the current request, for the child to write with
    /// the client's address; `level` is a syslog severity (2 crit .. 7 debug).
    Log {
        level: u8,
        text: String,
    },
    /// Ends a Check with what the script answered.
    Checked {
        answer: CheckAnswer,
    },
}

/// Which function of an auth script a Check runs, with its arguments
/// (the client's bytes, decoded by the daemon as the script gets them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckQuestion {
    /// `check_password(environ, user, password)`.
    Password { user: Vec<u8>, password: Vec<u8> },
    /// `get_realm_hash(environ, user, realm)`.
    RealmHash { user: Vec<u8>, realm: Vec<u8> },
    /// `groups_for_user(environ, user)`.
    Groups { user: Vec<u8> },
    /// `allow_access(environ, host)`.
    Access { host: Option<Vec<u8>> },
}

/// What the script answered a Check: the WSGI core's `auth::Answer`
/// (src/wsgi/auth.rs), mirrored here because this file is compiled alone
/// into the fuzz crate; daemon/auth.rs converts between the two.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckAnswer {
    /// True, or the user name to authenticate the request as.
    Authenticated(Option<Vec<u8>>),
    WrongPassword,
    UnknownUser,
    RealmHash(Vec<u8>),
    Groups(Vec<Vec<u8>>),
    /// True, False, or None (no opinion).
    Access(Option<bool>),
    /// The script could not answer; the daemon has sent why as Log.
    Failed,
}

impl CheckQuestion {
    fn tag(&self) -> u8 {
        match self {
            Self::Password { .. } => 0,
            Self::RealmHash { .. } => 1,
            Self::Groups { .. } => 2,
            Self::Access { .. } => 3,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.tag());
        match self {
            Self::Password { user, password } => {
                put_bytes(out, user);
                put_bytes(out, password);
            }
            Self::RealmHash { user, realm } => {
                put_bytes(out, user);
                put_bytes(out, realm);
            }
            Self::Groups { user } => put_bytes(out, user),
            Self::Access { host } => put_option(out, host.as_ref(), |out, host| put_bytes(out, host)),
        }
    }

    fn decode(fields: &mut Fields<'_>) -> Result<Self, WireError> {
        Ok(match fields.tag("question", 3)? {
            0 => Self::Password { user: fields.bytes("user")?, password: fields.bytes("password")? },
            1 => Self::RealmHash { user: fields.bytes("user")?, realm: fields.bytes("realm")? },
            2 => Self::Groups { user: fields.bytes("user")? },
            _ => Self::Access { host: fields.option("host", |f| f.bytes("host"))? },
        })
    }
}

impl CheckAnswer {
    fn tag(&self) -> u8 {
        match self {
            Self::Authenticated(_) => 0,
            Self::WrongPassword => 1,
            Self::UnknownUser => 2,
            Self::RealmHash(_) => 3,
            Self::Groups(_) => 4,
            Self::Access(_) => 5,
            Self::Failed => 6,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.tag());
        match self {
            Self::Authenticated(name) => put_option(out, name.as_ref(), |out, name| put_bytes(out, name)),
            Self::RealmHash(hash) => put_bytes(out, hash),
            Self::Groups(groups) => put_list(out, groups, |out, group| put_bytes(out, group)),
            Self::Access(allowed) => put_option(out, *allowed, put_flag),
            Self::WrongPassword | Self::UnknownUser | Self::Failed => {}
        }
    }

    fn decode(fields: &mut Fields<'_>) -> Result<Self, WireError> {
        Ok(match fields.tag("answer", 6)? {
            0 => Self::Authenticated(fields.option("user name", |f| f.bytes("user name"))?),
            1 => Self::WrongPassword,
            2 => Self::UnknownUser,
            3 => Self::RealmHash(fields.bytes("hash")?),
            // Each name is at least its length.
            4 => Self::Groups(fields.list("groups", 4, |f| f.bytes("group"))?),
            5 => Self::Access(fields.option("allowed", |f| f.flag("allowed"))?),
            _ => Self::Failed,
        })
    }
}

/// What is wrong with the bytes on the wire. The socket helpers report
/// these as io::Errors (see [`protocol_error`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    UnknownKind { kind: u8, sender: &'static str },
    Oversize { message: &'static str, len: u64 },
    /// A field runs past the end of the payload.
    Truncated { message: &'static str, field: &'static str, needed: usize, left: usize },
    BadUtf8 { message: &'static str, field: &'static str },
    /// A bool or an Option tag that is neither 0 nor 1.
    BadFlag { message: &'static str, field: &'static str, value: u8 },
    /// A variant's tag past the last variant.
    UnknownTag { message: &'static str, field: &'static str, value: u8 },
    /// A list count more items than the rest of the payload can hold.
    CountTooLarge { message: &'static str, field: &'static str, count: u32, left: usize },
    TrailingBytes { message: &'static str, extra: usize },
    VersionMismatch { ours: u16, theirs: u16 },
    /// The peer closed the connection partway through a frame.
    ClosedInFrame { received: usize },
    MissingFd { message: &'static str },
    /// Descriptors that came with no File frame (they have been closed).
    StrayFds { count: usize },
    /// Descriptors arrived that did not fit the control buffer; the
    /// kernel closed those, so a frame would go without its own.
    FdsTruncated,
    /// An earlier read failed partway through data being received into
    /// its caller's buffer: where the next frame starts is lost.
    ReaderFailed,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKind { kind, sender } => write!(f, "unknown frame kind 0x{kind:02x} from the {sender}"),
            Self::Oversize { message, len } => {
                write!(f, "{message} frame of {len} bytes is over the maximum of {MAX_PAYLOAD}")
            }
            Self::Truncated { message, field, needed, left } => {
                write!(f, "{message} frame: {field} needs {needed} bytes, the payload has {left} left")
            }
            Self::BadUtf8 { message, field } => write!(f, "{message} frame: {field} is not UTF-8"),
            Self::BadFlag { message, field, value } => {
                write!(f, "{message} frame: {field} flag is {value}, not 0 or 1")
            }
            Self::UnknownTag { message, field, value } => write!(f, "{message} frame: no {field} has tag {value}"),
            Self::CountTooLarge { message, field, count, left } => write!(
                f,
                "{message} frame: {field} counts {count} items, more than the {left} bytes left can hold"
            ),
            Self::TrailingBytes { message, extra } => {
                write!(f, "{message} frame: {extra} bytes left over after the last field")
            }
            Self::VersionMismatch { ours, theirs } => write!(
                f,
                "protocol version mismatch: this side speaks version {ours}, the peer version {theirs}"
            ),
            Self::ClosedInFrame { received } => {
                write!(f, "the peer closed the connection inside a frame ({received} bytes of it received)")
            }
            Self::MissingFd { message } => write!(f, "{message} frame arrived without its file descriptor"),
            Self::StrayFds { count } => {
                write!(f, "{count} file descriptor(s) arrived with no File frame; closed")
            }
            Self::FdsTruncated => {
                write!(f, "more file descriptors arrived than one read accepts; the kernel dropped some")
            }
            Self::ReaderFailed => write!(f, "an earlier read failed in the middle of a frame; the connection is unusable"),
        }
    }
}

impl std::error::Error for WireError {}

impl From<WireError> for io::Error {
    fn from(error: WireError) -> Self {
        let kind = match error {
            WireError::ClosedInFrame { .. } => io::ErrorKind::UnexpectedEof,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, error)
    }
}

/// The protocol error inside an io::Error from the socket helpers, if it
/// is one (rather than a failure or a timeout of the socket itself).
pub fn protocol_error(error: &io::Error) -> Option<&WireError> {
    error.get_ref()?.downcast_ref()
}

/// One direction's set of messages.
pub trait Message: Sized {
    /// Who sends these, for error messages.
    const SENDER: &'static str;
    /// The kind of this direction's body-bytes frame (Body, Data), whose
    /// payload is one byte string: see [`FrameReader::read_frame_or_data`].
    const DATA_KIND: u8;
    fn kind(&self) -> u8;
    /// The message's name for a kind byte; None if the kind is unknown.
    fn kind_name(kind: u8) -> Option<&'static str>;
    /// Appends the payload (the frame header is [`encode`]'s).
    fn encode_payload(&self, out: &mut Vec<u8>);
    /// The message of a known `kind` from its whole payload.
    fn decode_payload(kind: u8, payload: &[u8]) -> Result<Self, WireError>;
    /// Whether a file descriptor travels with the frame.
    fn carries_fd(&self) -> bool {
        false
    }
    fn name(&self) -> &'static str {
        Self::kind_name(self.kind()).unwrap_or("unknown")
    }
}

// The two directions' kinds are apart, so a frame read by the wrong side
// (or a socket connected to something else) fails at its first byte.
impl ToDaemon {
    const HELLO: u8 = 0x01;
    const REQUEST: u8 = 0x02;
    const BODY: u8 = 0x03;
    const BODY_END: u8 = 0x04;
    const BODY_ERROR: u8 = 0x05;
    const CHECK: u8 = 0x06;
}

impl ToChild {
    const HELLO: u8 = 0x81;
    const LEDGER: u8 = 0x82;
    const READ_BODY: u8 = 0x83;
    const HEAD: u8 = 0x84;
    const ANNOUNCE_STREAM: u8 = 0x85;
    const DATA: u8 = 0x86;
    const PASS: u8 = 0x87;
    const FILE: u8 = 0x88;
    const END: u8 = 0x89;
    const ABORT: u8 = 0x8a;
    const FAILED: u8 = 0x8b;
    const BODY_FAILED: u8 = 0x8c;
    const LOG: u8 = 0x8d;
    const CHECKED: u8 = 0x8e;
}

impl ToDaemon {
    /// A Request's fields as a RequestFrame with these variables (its own,
    /// borrowed); None for other messages.
    fn as_frame<'a>(
        &'a self,
        variables: &'a [(&'a [u8], &'a [u8])],
        trailing: &'a [(&'a [u8], &'a [u8])],
    ) -> Option<RequestFrame<'a>> {
        let Self::Request {
            script, callable, application_group, reload_mtime, request_start_micros, declared_length, head_only, client, ..
        } = self
        else {
            return None;
        };
        Some(RequestFrame {
            script,
            callable,
            application_group: application_group.as_deref(),
            reload_mtime: *reload_mtime,
            request_start_micros: *request_start_micros,
            declared_length: *declared_length,
            head_only: *head_only,
            client,
            variables,
            trailing,
        })
    }
}

impl Message for ToDaemon {
    const SENDER: &'static str = "Apache child";
    const DATA_KIND: u8 = Self::BODY;

    fn kind(&self) -> u8 {
        match self {
            Self::Hello { .. } => Self::HELLO,
            Self::Request { .. } => Self::REQUEST,
            Self::Body { .. } => Self::BODY,
            Self::BodyEnd => Self::BODY_END,
            Self::BodyError { .. } => Self::BODY_ERROR,
            Self::Check { .. } => Self::CHECK,
        }
    }

    fn kind_name(kind: u8) -> Option<&'static str> {
        Some(match kind {
            Self::HELLO => "Hello",
            Self::REQUEST => "Request",
            Self::BODY => "Body",
            Self::BODY_END => "BodyEnd",
            Self::BODY_ERROR => "BodyError",
            Self::CHECK => "Check",
            _ => return None,
        })
    }

    fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Self::Hello { version } => out.extend_from_slice(&version.to_be_bytes()),
            Self::Request { variables, .. } => {
                let variables: Vec<(&[u8], &[u8])> = variables.iter().collect();
                if let Some(frame) = self.as_frame(&variables, &[]) {
                    frame.put_payload(out);
                }
            }
            Self::Body { data } => put_bytes(out, data),
            Self::BodyEnd => {}
            Self::BodyError { status, reason } => {
                out.extend_from_slice(&status.to_be_bytes());
                put_bytes(out, reason.as_bytes());
            }
            Self::Check { question, script, reloading, application_group, client, variables } => {
                question.encode(out);
                put_bytes(out, script.as_bytes());
                put_flag(out, *reloading);
                put_bytes(out, application_group.as_bytes());
                put_bytes(out, client.as_bytes());
                put_variables(out, variables);
            }
        }
    }

    fn decode_payload(kind: u8, payload: &[u8]) -> Result<Self, WireError> {
        let mut fields = Fields::new(Self::kind_name(kind).unwrap_or("unknown"), payload);
        let message = match kind {
            Self::HELLO => Self::Hello { version: fields.version()? },
            Self::REQUEST => Self::Request {
                script: fields.text("script")?,
                callable: fields.text("callable")?,
                application_group: fields.option("application_group", |f| f.text("application_group"))?,
                reload_mtime: fields.option("reload_mtime", |f| f.i64("reload_mtime"))?,
                request_start_micros: fields.i64("request_start_micros")?,
                declared_length: fields.option("declared_length", |f| f.u64("declared_length"))?,
                head_only: fields.flag("head_only")?,
                client: fields.text("client")?,
                variables: fields.variables()?,
            },
            Self::BODY => Self::Body { data: fields.bytes("data")? },
            Self::BODY_END => Self::BodyEnd,
            Self::BODY_ERROR => Self::BodyError { status: fields.i32("status")?, reason: fields.text("reason")? },
            Self::CHECK => Self::Check {
                question: CheckQuestion::decode(&mut fields)?,
                script: fields.text("script")?,
                reloading: fields.flag("reloading")?,
                application_group: fields.text("application_group")?,
                client: fields.text("client")?,
                variables: fields.variables()?,
            },
            _ => return Err(WireError::UnknownKind { kind, sender: Self::SENDER }),
        };
        fields.finish()?;
        Ok(message)
    }
}

impl Message for ToChild {
    const SENDER: &'static str = "daemon";
    const DATA_KIND: u8 = Self::DATA;

    fn kind(&self) -> u8 {
        match self {
            Self::Hello { .. } => Self::HELLO,
            Self::Ledger => Self::LEDGER,
            Self::ReadBody { .. } => Self::READ_BODY,
            Self::Head { .. } => Self::HEAD,
            Self::AnnounceStream => Self::ANNOUNCE_STREAM,
            Self::Data { .. } => Self::DATA,
            Self::Pass { .. } => Self::PASS,
            Self::File { .. } => Self::FILE,
            Self::End { .. } => Self::END,
            Self::Abort => Self::ABORT,
            Self::Failed { .. } => Self::FAILED,
            Self::BodyFailed { .. } => Self::BODY_FAILED,
            Self::Log { .. } => Self::LOG,
            Self::Checked { .. } => Self::CHECKED,
        }
    }

    fn kind_name(kind: u8) -> Option<&'static str> {
        Some(match kind {
            Self::HELLO => "Hello",
            Self::LEDGER => "Ledger",
            Self::READ_BODY => "ReadBody",
            Self::HEAD => "Head",
            Self::ANNOUNCE_STREAM => "AnnounceStream",
            Self::DATA => "Data",
            Self::PASS => "Pass",
            Self::FILE => "File",
            Self::END => "End",
            Self::ABORT => "Abort",
            Self::FAILED => "Failed",
            Self::BODY_FAILED => "BodyFailed",
            Self::LOG => "Log",
            Self::CHECKED => "Checked",
            _ => return None,
        })
    }

    fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Self::Hello { version, pid } => {
                out.extend_from_slice(&version.to_be_bytes());
                out.extend_from_slice(&pid.to_be_bytes());
            }
            Self::ReadBody { max } => out.extend_from_slice(&max.to_be_bytes()),
            Self::Head { status, status_line, headers } => {
                out.extend_from_slice(&status.to_be_bytes());
                put_bytes(out, status_line.as_bytes());
                put_list(out, headers, |out, (name, value)| {
                    put_bytes(out, name.as_bytes());
                    put_bytes(out, value.as_bytes());
                });
            }
            Self::Data { data } => put_bytes(out, data),
            Self::Pass { flush } | Self::End { flush } => put_flag(out, *flush),
            Self::File { offset, len } => {
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(&len.to_be_bytes());
            }
            Self::Failed { status } => out.extend_from_slice(&status.to_be_bytes()),
            Self::BodyFailed { status } => out.extend_from_slice(&status.to_be_bytes()),
            Self::Log { level, text } => {
                out.push(*level);
                put_bytes(out, text.as_bytes());
            }
            Self::Checked { answer } => answer.encode(out),
            Self::Ledger | Self::AnnounceStream | Self::Abort => {}
        }
    }

    fn decode_payload(kind: u8, payload: &[u8]) -> Result<Self, WireError> {
        let mut fields = Fields::new(Self::kind_name(kind).unwrap_or("unknown"), payload);
        let message = match kind {
            Self::HELLO => Self::Hello { version: fields.version()?, pid: fields.u32("pid")? },
            Self::LEDGER => Self::Ledger,
            Self::READ_BODY => Self::ReadBody { max: fields.u32("max")? },
            Self::HEAD => Self::Head {
                status: fields.u16("status")?,
                status_line: fields.text("status_line")?,
                // Each header is at least two empty byte strings.
                headers: fields.list("headers", 8, |f| Ok((f.text("header name")?, f.text("header value")?)))?,
            },
            Self::ANNOUNCE_STREAM => Self::AnnounceStream,
            Self::DATA => Self::Data { data: fields.bytes("data")? },
            Self::PASS => Self::Pass { flush: fields.flag("flush")? },
            Self::FILE => Self::File { offset: fields.u64("offset")?, len: fields.u64("len")? },
            Self::END => Self::End { flush: fields.flag("flush")? },
            Self::ABORT => Self::Abort,
            Self::FAILED => Self::Failed { status: fields.u16("status")? },
            Self::BODY_FAILED => Self::BodyFailed { status: fields.i32("status")? },
            Self::LOG => Self::Log { level: fields.u8("level")?, text: fields.text("text")? },
            Self::CHECKED => Self::Checked { answer: CheckAnswer::decode(&mut fields)? },
            _ => return Err(WireError::UnknownKind { kind, sender: Self::SENDER }),
        };
        fields.finish()?;
        Ok(message)
    }

    fn carries_fd(&self) -> bool {
        matches!(self, Self::File { .. } | Self::Ledger)
    }
}

// ---- Encoding ----

/// Appends `frame` to `out`; refuses (leaving `out` as it was) a frame
/// whose payload is over MAX_PAYLOAD.
pub fn encode<M: Message>(frame: &M, out: &mut Vec<u8>) -> Result<(), WireError> {
    encode_frame(frame.kind(), frame.name(), out, |out| frame.encode_payload(out))
}

fn encode_frame(kind: u8, name: &'static str, out: &mut Vec<u8>, payload: impl FnOnce(&mut Vec<u8>)) -> Result<(), WireError> {
    let frame_start = out.len();
    out.push(kind);
    out.extend_from_slice(&[0; 4]); // the length, known once the payload is written
    payload(out);
    let len = out.len() - frame_start - HEADER_LEN;
    if len > MAX_PAYLOAD {
        out.truncate(frame_start);
        return Err(WireError::Oversize { message: name, len: len as u64 });
    }
    out[frame_start + 1..frame_start + HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// A Request frame written from borrowed fields: what the Apache child
/// sends for every request, without copying its variables into a
/// ToDaemon::Request first (the frame is the same; the daemon decodes it
/// as one).
pub struct RequestFrame<'a> {
    pub script: &'a str,
    pub callable: &'a str,
    pub application_group: Option<&'a str>,
    pub reload_mtime: Option<i64>,
    pub request_start_micros: i64,
    pub declared_length: Option<u64>,
    pub head_only: bool,
    pub client: &'a str,
    /// The CGI variables, then `trailing`: one list on the wire.
    pub variables: &'a [(&'a [u8], &'a [u8])],
    pub trailing: &'a [(&'a [u8], &'a [u8])],
}

impl RequestFrame<'_> {
    /// Appends the frame to `out`, as [`encode`] does.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        encode_frame(ToDaemon::REQUEST, "Request", out, |out| self.put_payload(out))
    }

    fn put_payload(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.script.as_bytes());
        put_bytes(out, self.callable.as_bytes());
        put_option(out, self.application_group, |out, name| put_bytes(out, name.as_bytes()));
        put_option(out, self.reload_mtime, |out, mtime| out.extend_from_slice(&mtime.to_be_bytes()));
        out.extend_from_slice(&self.request_start_micros.to_be_bytes());
        put_option(out, self.declared_length, |out, len| out.extend_from_slice(&len.to_be_bytes()));
        put_flag(out, self.head_only);
        put_bytes(out, self.client.as_bytes());
        out.extend_from_slice(&length_prefix(self.variables.len() + self.trailing.len()));
        for (name, value) in self.variables.iter().chain(self.trailing) {
            put_bytes(out, name);
            put_bytes(out, value);
        }
    }
}

/// Appends `data` to `out` as Data frames of at most MAX_DATA bytes each,
/// without first copying it into a ToChild::Data; nothing for no data.
pub fn encode_data(data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(MAX_DATA) {
        encode_data_header(chunk.len(), out);
        out.extend_from_slice(chunk);
    }
}

/// Appends the start of a Data frame of `len` (at most MAX_DATA) bytes:
/// the frame is complete once those bytes follow it on the stream.
pub fn encode_data_header(len: usize, out: &mut Vec<u8>) {
    debug_assert!(len <= MAX_DATA);
    out.push(ToChild::DATA);
    out.extend_from_slice(&((len + 4) as u32).to_be_bytes());
    out.extend_from_slice(&length_prefix(len));
}

/// A byte string's u32 length prefix. A longer string makes the frame
/// oversize, which encode refuses, so saturating loses nothing.
fn length_prefix(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes()
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&length_prefix(bytes.len()));
    out.extend_from_slice(bytes);
}

fn put_flag(out: &mut Vec<u8>, flag: bool) {
    out.push(u8::from(flag));
}

fn put_option<T>(out: &mut Vec<u8>, value: Option<T>, put_value: impl FnOnce(&mut Vec<u8>, T)) {
    put_flag(out, value.is_some());
    if let Some(value) = value {
        put_value(out, value);
    }
}

fn put_list<T>(out: &mut Vec<u8>, items: &[T], mut put_item: impl FnMut(&mut Vec<u8>, &T)) {
    out.extend_from_slice(&length_prefix(items.len()));
    for item in items {
        put_item(out, item);
    }
}

fn put_variables(out: &mut Vec<u8>, variables: &Variables) {
    out.extend_from_slice(&length_prefix(variables.count));
    out.extend_from_slice(&variables.encoded);
}

/// A message's CGI variables, kept as they are on the wire: one buffer of
/// length-prefixed names and values, read in place. A request has some
/// 40 variables; a Vec of each name and value would be 80 allocations.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Variables {
    /// The pairs after the count, every one whole (decoding checks them).
    encoded: Vec<u8>,
    count: usize,
}

impl Variables {
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        put_bytes(&mut self.encoded, name);
        put_bytes(&mut self.encoded, value);
        self.count += 1;
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The names and values, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut rest = &self.encoded[..];
        // Every pair is whole (push and decoding make them so): a short
        // buffer cannot occur and would only end the iteration.
        std::iter::from_fn(move || {
            let mut next = || {
                let (len, after) = rest.split_first_chunk::<4>()?;
                let (bytes, after) = after.split_at_checked(u32::from_be_bytes(*len) as usize)?;
                rest = after;
                Some(bytes)
            };
            Some((next()?, next()?))
        })
    }
}

impl<'a> FromIterator<(&'a [u8], &'a [u8])> for Variables {
    fn from_iter<I: IntoIterator<Item = (&'a [u8], &'a [u8])>>(pairs: I) -> Self {
        let mut variables = Variables::default();
        for (name, value) in pairs {
            variables.push(name, value);
        }
        variables
    }
}

impl fmt::Debug for Variables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(name, value)| (String::from_utf8_lossy(name), String::from_utf8_lossy(value))))
            .finish()
    }
}

// ---- Decoding ----

/// A cursor over one payload, reading its fields in order; errors name
/// the message and the field.
struct Fields<'a> {
    rest: &'a [u8],
    message: &'static str,
}

impl<'a> Fields<'a> {
    fn new(message: &'static str, payload: &'a [u8]) -> Self {
        Self { rest: payload, message }
    }

    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        if len > self.rest.len() {
            return Err(WireError::Truncated { message: self.message, field, needed: len, left: self.rest.len() });
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], WireError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N, field)?);
        Ok(array)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        self.array(field).map(u16::from_be_bytes)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        self.array(field).map(u32::from_be_bytes)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        self.array(field).map(u64::from_be_bytes)
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, WireError> {
        self.array(field).map(i32::from_be_bytes)
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, WireError> {
        self.array(field).map(i64::from_be_bytes)
    }

    fn flag(&mut self, field: &'static str) -> Result<bool, WireError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(WireError::BadFlag { message: self.message, field, value }),
        }
    }

    /// A variant's tag, at most `last`.
    fn tag(&mut self, field: &'static str, last: u8) -> Result<u8, WireError> {
        match self.u8(field)? {
            value if value > last => Err(WireError::UnknownTag { message: self.message, field, value }),
            value => Ok(value),
        }
    }

    /// A message's CGI variables, name and value each a byte string.
    fn variables(&mut self) -> Result<Variables, WireError> {
        let start = self.rest;
        // Each variable is at least two empty byte strings.
        let mut count = 0;
        self.list("variables", 8, |f| {
            f.byte_string("variable name")?;
            f.byte_string("variable value")?;
            count += 1;
            Ok(())
        })?;
        let encoded = start[4..start.len() - self.rest.len()].to_vec();
        Ok(Variables { encoded, count })
    }

    /// A Hello's version, which must be ours: what follows it may be laid
    /// out differently in another version, so it is checked first.
    fn version(&mut self) -> Result<u16, WireError> {
        match self.u16("version")? {
            PROTOCOL_VERSION => Ok(PROTOCOL_VERSION),
            theirs => Err(WireError::VersionMismatch { ours: PROTOCOL_VERSION, theirs }),
        }
    }

    fn byte_string(&mut self, field: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.u32(field)? as usize;
        self.take(len, field)
    }

    fn bytes(&mut self, field: &'static str) -> Result<Vec<u8>, WireError> {
        self.byte_string(field).map(<[u8]>::to_vec)
    }

    fn text(&mut self, field: &'static str) -> Result<String, WireError> {
        let bytes = self.byte_string(field)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(_) => Err(WireError::BadUtf8 { message: self.message, field }),
        }
    }

    fn option<T>(
        &mut self,
        field: &'static str,
        read_value: impl FnOnce(&mut Self) -> Result<T, WireError>,
    ) -> Result<Option<T>, WireError> {
        if self.flag(field)? {
            read_value(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A list whose items each take at least `min_item_len` bytes, which
    /// bounds the count before anything is allocated for it.
    fn list<T>(
        &mut self,
        field: &'static str,
        min_item_len: usize,
        mut read_item: impl FnMut(&mut Self) -> Result<T, WireError>,
    ) -> Result<Vec<T>, WireError> {
        let count = self.u32(field)?;
        let left = self.rest.len();
        if count as usize > left / min_item_len {
            return Err(WireError::CountTooLarge { message: self.message, field, count, left });
        }
        // Capped, so that a count the items then fail to fill does not
        // reserve far more than the payload's size.
        let mut items = Vec::with_capacity((count as usize).min(1024));
        for _ in 0..count {
            items.push(read_item(self)?);
        }
        Ok(items)
    }

    fn finish(self) -> Result<(), WireError> {
        match self.rest.len() {
            0 => Ok(()),
            extra => Err(WireError::TrailingBytes { message: self.message, extra }),
        }
    }
}

/// Bytes received in one read, at least (the buffer grows to hold a
/// larger frame).
const READ_CHUNK: usize = 64 << 10;

/// A buffer larger than this, once emptied, is let go, so that a
/// connection kept idle does not hold on to the room one large frame took.
const KEEP_BUFFER: usize = 1 << 20;

/// Collects bytes as they come, in chunks of any size, and cuts them into
/// frames. An error leaves the bad frame in place: asking again gives the
/// same error (the connection is to be dropped).
#[derive(Default)]
pub struct Decoder {
    /// Bytes start..end are received and not yet part of a returned frame.
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of the frames returned so far.
    consumed: u64,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.room(bytes.len())[..bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    /// The next complete frame, None if more bytes are needed. A header
    /// with an unknown kind or an oversize length is reported as soon as
    /// it is there, before its payload is waited for.
    pub fn next_frame<M: Message>(&mut self) -> Result<Option<M>, WireError> {
        let bytes = &self.buffer[self.start..self.end];
        let Some(&kind) = bytes.first() else { return Ok(None) };
        let Some(message) = M::kind_name(kind) else {
            return Err(WireError::UnknownKind { kind, sender: M::SENDER });
        };
        let Some(&[b0, b1, b2, b3]) = bytes.get(1..HEADER_LEN) else { return Ok(None) };
        let len = u32::from_be_bytes([b0, b1, b2, b3]) as usize;
        if len > MAX_PAYLOAD {
            return Err(WireError::Oversize { message, len: len as u64 });
        }
        let Some(payload) = bytes.get(HEADER_LEN..HEADER_LEN + len) else { return Ok(None) };
        let frame = M::decode_payload(kind, payload)?;
        self.start += HEADER_LEN + len;
        self.consumed += (HEADER_LEN + len) as u64;
        Ok(Some(frame))
    }

    /// Bytes received that are not part of a returned frame.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    fn pending(&self) -> &[u8] {
        &self.buffer[self.start..self.end]
    }

    /// Bytes of all the frames returned so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Free space after the buffered bytes, at least `want` bytes of it.
    /// The buffered bytes move to the front, or the buffer grows, only
    /// when there is less.
    fn room(&mut self, want: usize) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buffer.len() > KEEP_BUFFER {
                self.buffer = Vec::new();
            }
        }
        if self.buffer.len() - self.end < want && self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        // Growing by `want` at a time is amortised by Vec's doubling of
        // its capacity; only the new bytes are zeroed.
        if self.buffer.len() - self.end < want {
            self.buffer.resize(self.end + want, 0);
        }
        &mut self.buffer[self.end..]
    }
}

// ---- Blocking reads and writes ----

/// Writes one frame. Frames that carry a descriptor go with
/// [`write_frame_with_fd`] instead.
pub fn write_frame<M: Message>(stream: &UnixStream, frame: &M) -> io::Result<()> {
    if frame.carries_fd() {
        return Err(misuse(format!("a {} frame goes with write_frame_with_fd", frame.name())));
    }
    write_encoded(stream, &encode_to_vec(frame)?)
}

/// Writes a ToDaemon::Body frame of `data` (at most MAX_DATA bytes) from
/// where the bytes are, rather than from a copy in a ToDaemon::Body.
pub fn write_body(stream: &UnixStream, data: &[u8]) -> io::Result<()> {
    if data.len() > MAX_DATA {
        return Err(misuse(format!("a Body frame of {} bytes is over the maximum", data.len())));
    }
    let mut header = Vec::with_capacity(HEADER_LEN + 4);
    header.push(ToDaemon::BODY);
    header.extend_from_slice(&((data.len() + 4) as u32).to_be_bytes());
    header.extend_from_slice(&length_prefix(data.len()));
    write_encoded_parts(stream, &mut [io::IoSlice::new(&header), io::IoSlice::new(data)])
}

/// Writes frames made with [`encode`] or [`encode_data`], in one go; none
/// of them may be a frame that carries a descriptor.
pub fn write_encoded(stream: &UnixStream, frames: &[u8]) -> io::Result<()> {
    send_all(stream, frames, None)
}

/// Writes `parts` one after the other, as [`write_encoded`] writes one
/// buffer: frames whose bytes are spread over several buffers.
pub fn write_encoded_parts(stream: &UnixStream, parts: &mut [io::IoSlice<'_>]) -> io::Result<()> {
    let mut parts = &mut parts[..];
    while !parts.is_empty() {
        // SAFETY: IoSlice has the layout of iovec; each points at a live
        // slice, which sendmsg only reads.
        let sent = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = parts.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = parts.len().min(libc::UIO_MAXIOV as usize) as _;
            libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
        };
        match usize::try_from(sent) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut parts, n),
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// Writes a frame that carries a descriptor (File), with `fd` attached to
/// its first byte. The frame has a sendmsg of its own, so the descriptor
/// arrives with the read that returns the frame's first byte, never with
/// another frame's bytes alone (see [`FrameReader`]). The peer gets its own
/// descriptor for the same open file; `fd` stays the caller's.
pub fn write_frame_with_fd<M: Message>(stream: &UnixStream, frame: &M, fd: BorrowedFd<'_>) -> io::Result<()> {
    if !frame.carries_fd() {
        return Err(misuse(format!("a {} frame carries no file descriptor", frame.name())));
    }
    send_all(stream, &encode_to_vec(frame)?, Some(fd))
}

fn encode_to_vec<M: Message>(frame: &M) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    encode(frame, &mut bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    Ok(bytes)
}

fn misuse(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// Reads frames from a connection, with the descriptors that come with
/// them.
///
/// Every read is a recvmsg, so descriptors are collected whenever they
/// arrive; they wait in a queue, in order, each with the stream offsets
/// of the bytes its read returned. The sender attaches a descriptor to
/// nothing but the first byte of a File frame, sent by a sendmsg of its
/// own; Linux hands a descriptor over with the first read that returns
/// bytes of its sendmsg, and ends that read within those bytes. So a File
/// frame takes the oldest queued descriptor only if that one came with the
/// frame's first byte (else: MissingFd), and a descriptor whose read ended
/// at or before the end of a frame just decoded can belong to no later
/// frame: it is closed and reported (StrayFds) rather than handed to the
/// next File frame. Queued descriptors are closed with the reader.
pub struct FrameReader {
    stream: UnixStream,
    decoder: Decoder,
    fds: VecDeque<ArrivedFd>,
    /// Bytes received so far: the stream offset of the next byte read.
    received: u64,
    /// A read failed while data went into a caller's buffer, which then
    /// held the only copy of part of a frame.
    failed: bool,
}

/// What [`FrameReader::read_frame_or_data`] read.
#[derive(Debug)]
pub enum Arrived<M> {
    /// A data frame whose bytes went into the caller's buffer: how many.
    Data(usize),
    /// Any other frame, as [`FrameReader::read_frame_maybe_fd`] returns it.
    Frame(M, Option<OwnedFd>),
}

/// What the bytes at the front of a decoder start.
enum Front {
    /// A data frame, complete or not, carrying this many bytes.
    Data(usize),
    /// Not yet known: nothing, or the first bytes of a data frame's header.
    Partial,
    /// Another kind of frame, or a data frame of a size not asked
    /// for or whose header is malformed (for decoding to report).
    Other,
}

impl Front {
    fn of<M: Message>(bytes: &[u8], sizes: std::ops::RangeInclusive<usize>) -> Self {
        match bytes.first() {
            None => return Self::Partial,
            Some(&kind) if kind != M::DATA_KIND => return Self::Other,
            Some(_) => {}
        }
        let Some(&[_, p0, p1, p2, p3]) = bytes.get(..HEADER_LEN) else { return Self::Partial };
        let payload = u32::from_be_bytes([p0, p1, p2, p3]) as usize;
        if !(4..=MAX_PAYLOAD).contains(&payload) {
            return Self::Other;
        }
        let Some(&[d0, d1, d2, d3]) = bytes.get(HEADER_LEN..DATA_HEADER_LEN) else { return Self::Partial };
        let data = u32::from_be_bytes([d0, d1, d2, d3]) as usize;
        if data + 4 == payload && sizes.contains(&data) { Self::Data(data) } else { Self::Other }
    }
}

struct ArrivedFd {
    fd: OwnedFd,
    /// The stream offsets of the bytes read with it.
    with_bytes: Range<u64>,
}

impl FrameReader {
    pub fn new(stream: UnixStream) -> Self {
        Self { stream, decoder: Decoder::new(), fds: VecDeque::new(), received: 0, failed: false }
    }

    /// The stream, for writing and for its options (a read timeout set on
    /// it applies: the read fails with WouldBlock, and the frame read
    /// partway stays buffered for the next call).
    pub fn get_ref(&self) -> &UnixStream {
        &self.stream
    }

    /// Bytes received and not yet returned as frames: the start of a
    /// frame whose rest is still on its way, or whole frames.
    pub fn buffered(&self) -> usize {
        self.decoder.buffered()
    }

    /// The next frame, None at a clean end of file between frames. A
    /// frame that carries a descriptor is an error here (its descriptor
    /// is closed): read those with [`Self::read_frame_maybe_fd`].
    pub fn read_frame<M: Message>(&mut self) -> io::Result<Option<M>> {
        match self.read_frame_maybe_fd()? {
            None => Ok(None),
            Some((frame, None)) => Ok(Some(frame)),
            Some((frame, Some(_closed))) => {
                Err(misuse(format!("a {} frame, with its descriptor, read with read_frame", frame.name())))
            }
        }
    }

    /// The next frame with the descriptor that came with it (always
    /// Some for a frame that carries one, else None); None at a clean end
    /// of file between frames. Received descriptors are close-on-exec.
    pub fn read_frame_maybe_fd<M: Message>(&mut self) -> io::Result<Option<(M, Option<OwnedFd>)>> {
        if self.failed {
            return Err(WireError::ReaderFailed.into());
        }
        loop {
            let frame_start = self.decoder.consumed();
            if let Some(frame) = self.decoder.next_frame::<M>()? {
                let fd = self.fd_for(&frame, frame_start..self.decoder.consumed())?;
                return Ok(Some((frame, fd)));
            }
            if self.receive()? == 0 {
                return match self.decoder.buffered() {
                    0 => Ok(None),
                    received => Err(WireError::ClosedInFrame { received }.into()),
                };
            }
        }
    }

    /// As read_frame_maybe_fd, except that a data frame (Body, Data) that
    /// carries between `min` and `dest.len()` bytes has them received into
    /// `dest`, not through the reader's buffer: whenever a frame's header
    /// is not buffered yet, the read that brings it puts what follows it
    /// into `dest` (and moves back what turns out to be no such data).
    /// An error while the data comes in leaves the reader failed (later
    /// reads fail too): the connection is to be dropped.
    pub fn read_frame_or_data<M: Message>(
        &mut self,
        dest: &mut [MaybeUninit<u8>],
        min: usize,
    ) -> io::Result<Option<Arrived<M>>> {
        if self.failed {
            return Err(WireError::ReaderFailed.into());
        }
        loop {
            match Front::of::<M>(self.decoder.pending(), min..=dest.len()) {
                Front::Data(len) => return self.take_data(dest, len).map(|()| Some(Arrived::Data(len))),
                Front::Other => {
                    return Ok(self.read_frame_maybe_fd()?.map(|(frame, fd)| Arrived::Frame(frame, fd)));
                }
                Front::Partial => {}
            }
            let header_rest = DATA_HEADER_LEN - self.decoder.buffered();
            let (to_header, to_dest) = self.receive_split(header_rest, dest)?;
            if to_header == 0 {
                return match self.decoder.buffered() {
                    0 => Ok(None),
                    received => Err(WireError::ClosedInFrame { received }.into()),
                };
            }
            if to_dest == 0 {
                continue;
            }
            // The header is complete: the bytes in dest follow it.
            // SAFETY: recvmsg initialised the first to_dest bytes of dest,
            // which MaybeUninit<u8>'s layout lets be read as u8.
            let arrived = unsafe { std::slice::from_raw_parts(dest.as_ptr().cast::<u8>(), to_dest) };
            match Front::of::<M>(self.decoder.pending(), min..=dest.len()) {
                Front::Data(len) => {
                    // Bytes past the data are later frames': they go behind
                    // this frame's header, which take_data_in_place consumes.
                    if to_dest > len {
                        self.decoder.feed(&arrived[len..]);
                    }
                    return self.take_data_in_place(dest, len, to_dest.min(len)).map(|()| Some(Arrived::Data(len)));
                }
                _ => self.decoder.feed(arrived),
            }
        }
    }

    /// Takes a data frame of `len` bytes whose header is at the front of
    /// the decoder, with its data (some of it perhaps buffered too) into
    /// `dest`.
    fn take_data(&mut self, dest: &mut [MaybeUninit<u8>], len: usize) -> io::Result<()> {
        let buffered = &self.decoder.pending()[DATA_HEADER_LEN..];
        let have = buffered.len().min(len);
        // SAFETY: MaybeUninit<u8> has u8's layout; the ranges are `have`
        // bytes long (dest holds len >= have) and in different buffers.
        unsafe { ptr::copy_nonoverlapping(buffered.as_ptr(), dest.as_mut_ptr().cast::<u8>(), have) };
        self.decoder.start += have;
        self.take_data_in_place(dest, len, have)
    }

    /// Finishes a data frame of `len` bytes whose header is at the front
    /// of the decoder (and only its header: its first `have` data bytes
    /// are in `dest` already): the rest is received straight into `dest`.
    fn take_data_in_place(&mut self, dest: &mut [MaybeUninit<u8>], len: usize, have: usize) -> io::Result<()> {
        let frame_start = self.decoder.consumed;
        self.decoder.start += DATA_HEADER_LEN;
        self.failed = true;
        let mut filled = have;
        while filled < len {
            let n = self.receive_into(&mut [iovec_of(&mut dest[filled..len])])?;
            if n == 0 {
                return Err(WireError::ClosedInFrame { received: DATA_HEADER_LEN + filled }.into());
            }
            filled += n;
        }
        self.failed = false;
        self.decoder.consumed += (DATA_HEADER_LEN + len) as u64;
        self.close_stray_fds(frame_start + (DATA_HEADER_LEN + len) as u64)?;
        Ok(())
    }

    /// One recvmsg of `header_rest` bytes into the decoder and what
    /// follows into `dest`: how many went to each.
    fn receive_split(&mut self, header_rest: usize, dest: &mut [MaybeUninit<u8>]) -> io::Result<(usize, usize)> {
        let room = self.decoder.room(header_rest);
        let mut iov = [iovec_of_bytes(&mut room[..header_rest]), iovec_of(dest)];
        let n = self.receive_into(&mut iov)?;
        let to_header = n.min(header_rest);
        self.decoder.end += to_header;
        Ok((to_header, n - to_header))
    }

    /// One recvmsg into the decoder; the descriptors that came with it
    /// join the queue. Returns the bytes read, 0 at end of file.
    fn receive(&mut self) -> io::Result<usize> {
        let mut iov = [iovec_of_bytes(self.decoder.room(READ_CHUNK))];
        let n = self.receive_into(&mut iov)?;
        self.decoder.end += n;
        Ok(n)
    }

    /// One recvmsg into `iov`, whatever buffers it describes; the
    /// descriptors that came with it join the queue. The iovecs may point
    /// into the decoder's buffer: nothing here touches it.
    fn receive_into(&mut self, iov: &mut [libc::iovec]) -> io::Result<usize> {
        let mut fds = Vec::new();
        let n = recv_with_fds(&self.stream, iov, &mut fds)?;
        let with_bytes = self.received..self.received + n as u64;
        self.received = with_bytes.end;
        self.fds.extend(fds.into_iter().map(|fd| ArrivedFd { fd, with_bytes: with_bytes.clone() }));
        Ok(n)
    }

    /// The descriptor for `frame`, which took the stream's `bytes`; then
    /// closes (and reports) descriptors no later frame can own.
    fn fd_for<M: Message>(&mut self, frame: &M, bytes: Range<u64>) -> Result<Option<OwnedFd>, WireError> {
        let fd = if frame.carries_fd() {
            match self.fds.front() {
                Some(arrived) if arrived.with_bytes.contains(&bytes.start) => self.fds.pop_front().map(|a| a.fd),
                _ => return Err(WireError::MissingFd { message: frame.name() }),
            }
        } else {
            None
        };
        self.close_stray_fds(bytes.end)?;
        Ok(fd)
    }

    /// Closes (and reports) the descriptors that came with no byte past
    /// `frame_end`, the end of a frame just taken: a later frame starts
    /// there or after, so its descriptor must have come with a read that
    /// went further.
    fn close_stray_fds(&mut self, frame_end: u64) -> Result<(), WireError> {
        let stray = self.fds.iter().take_while(|a| a.with_bytes.end <= frame_end).count();
        if stray > 0 {
            self.fds.drain(..stray);
            return Err(WireError::StrayFds { count: stray });
        }
        Ok(())
    }
}

/// How many descriptors one read accepts. The sender attaches one per
/// sendmsg, and Linux never passes two sendmsgs' descriptors in one read;
/// the spare room makes a peer that attaches a few more a StrayFds error
/// (with each closed) rather than a read whose control data overflowed.
const MAX_FDS_PER_READ: usize = 8;

// SAFETY: CMSG_SPACE only computes a size from its argument.
const CONTROL_LEN: usize = unsafe { libc::CMSG_SPACE((MAX_FDS_PER_READ * size_of::<c_int>()) as c_uint) } as usize;

/// Room for the control messages of a sendmsg or recvmsg, aligned as
/// their headers need.
#[repr(C)]
struct ControlBuffer {
    _align: [libc::cmsghdr; 0],
    bytes: [u8; CONTROL_LEN],
}

impl ControlBuffer {
    fn new() -> Self {
        Self { _align: [], bytes: [0; CONTROL_LEN] }
    }
}

/// Sends all of `bytes`, with `fd` attached to the first one. Retries
/// after a signal; MSG_NOSIGNAL turns a closed peer into EPIPE rather
/// than a SIGPIPE that would kill the process.
fn send_all(stream: &UnixStream, mut bytes: &[u8], mut fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    while !bytes.is_empty() {
        let sent = match fd {
            Some(fd) => send_with_fd(stream, bytes, fd),
            None => send_plain(stream, bytes),
        };
        match sent {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                bytes = &bytes[n..];
                // It went with the first byte: a short send leaves the
                // rest to go without.
                fd = None;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn send_plain(stream: &UnixStream, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: bytes is a live slice of bytes.len() bytes, which send only
    // reads; the socket is open for as long as `stream` is borrowed.
    let sent = unsafe { libc::send(stream.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

fn send_with_fd(stream: &UnixStream, bytes: &[u8], fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut control = ControlBuffer::new();
    let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut _, iov_len: bytes.len() };
    // SAFETY: msghdr is plain data; all zeroes is a valid, empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<c_int>() as c_uint) } as _;
    // SAFETY: msg_control points at CONTROL_LEN >= msg_controllen bytes,
    // aligned for cmsghdr, and msg_controllen holds a header and one int:
    // CMSG_FIRSTHDR is non-null and it and CMSG_DATA point inside the
    // buffer. The int is written unaligned, as CMSG_DATA promises no more.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&msg);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(size_of::<c_int>() as c_uint) as _;
        ptr::write_unaligned(libc::CMSG_DATA(header).cast::<c_int>(), fd.as_raw_fd());
    }
    // SAFETY: msg points at iov (describing the live `bytes`, only read)
    // and at `control`, both alive until the call returns; `fd` is open
    // for as long as it is borrowed.
    let sent = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

fn iovec_of(buffer: &mut [MaybeUninit<u8>]) -> libc::iovec {
    libc::iovec { iov_base: buffer.as_mut_ptr().cast(), iov_len: buffer.len() }
}

fn iovec_of_bytes(buffer: &mut [u8]) -> libc::iovec {
    libc::iovec { iov_base: buffer.as_mut_ptr().cast(), iov_len: buffer.len() }
}

/// One recvmsg into the buffers `iov` describes (made with [`iovec_of`]
/// from live, writable slices); descriptors that came with the bytes are
/// appended to `fds` (close-on-exec from the start, so a fork elsewhere in
/// the process cannot leak them). Retries after a signal. 0 is end of file.
fn recv_with_fds(stream: &UnixStream, iov: &mut [libc::iovec], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    let mut control = ControlBuffer::new();
    // SAFETY: msghdr is plain data; all zeroes is a valid, empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    msg.msg_control = control.bytes.as_mut_ptr().cast();
    let received = loop {
        msg.msg_controllen = CONTROL_LEN as _;
        // SAFETY: msg points at iov (each describing a live slice,
        // writable for its length, as the callers make them) and at
        // `control` (CONTROL_LEN bytes), all alive until the call returns;
        // the kernel writes no more than those lengths.
        let received = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        match usize::try_from(received) {
            Ok(received) => break received,
            Err(_) => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    };
    take_fds(&msg, fds);
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(WireError::FdsTruncated.into());
    }
    Ok(received)
}

/// Takes ownership of every descriptor in the control messages of a
/// successful recvmsg.
fn take_fds(msg: &libc::msghdr, fds: &mut Vec<OwnedFd>) {
    // SAFETY: after a successful recvmsg, msg_control holds msg_controllen
    // bytes of well-formed control messages (truncated ones have their
    // cmsg_len cut to what fits); CMSG_FIRSTHDR and CMSG_NXTHDR walk them
    // without leaving the buffer and return null at the end.
    let mut header = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !header.is_null() {
        // SAFETY: header is non-null, so it points at a whole cmsghdr in
        // the buffer, aligned (the buffer is, and CMSG_NXTHDR keeps it so).
        let cmsg = unsafe { &*header };
        if cmsg.cmsg_level == libc::SOL_SOCKET && cmsg.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN only computes a size.
            let data_len = (cmsg.cmsg_len as usize).saturating_sub(unsafe { libc::CMSG_LEN(0) } as usize);
            // SAFETY: the message's data follows its header, inside the buffer.
            let data = unsafe { libc::CMSG_DATA(header) }.cast::<c_int>();
            for i in 0..data_len / size_of::<c_int>() {
                // SAFETY: i counts the ints within data_len, so the read is
                // inside the message; unaligned, as CMSG_DATA promises no
                // alignment for int.
                let raw = unsafe { ptr::read_unaligned(data.add(i)) };
                // SAFETY: the kernel has just installed this descriptor in
                // the process for this read; nothing else owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR; header is one of msg's messages.
        header = unsafe { libc::CMSG_NXTHDR(msg, header) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::fd::AsFd;

    fn encoded<M: Message>(frame: &M) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode(frame, &mut bytes).unwrap();
        bytes
    }

    /// Decodes `bytes` fed whole, expecting frames that end exactly at its end.
    fn decode_all<M: Message>(bytes: &[u8]) -> Vec<M> {
        let mut decoder = Decoder::new();
        decoder.feed(bytes);
        let mut frames = Vec::new();
        while let Some(frame) = decoder.next_frame().unwrap() {
            frames.push(frame);
        }
        assert_eq!(decoder.buffered(), 0);
        assert_eq!(decoder.consumed(), bytes.len() as u64);
        frames
    }

    fn decode_error<M: Message + fmt::Debug>(bytes: &[u8]) -> WireError {
        let mut decoder = Decoder::new();
        decoder.feed(bytes);
        let error = decoder.next_frame::<M>().unwrap_err();
        // The bad frame stays: asking again gives the same answer.
        assert_eq!(decoder.next_frame::<M>().unwrap_err(), error);
        assert!(!error.to_string().is_empty());
        error
    }

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![kind];
        bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    fn every_byte() -> Vec<u8> {
        (0..=255).collect()
    }

    fn to_daemon_samples() -> Vec<ToDaemon> {
        vec![
            ToDaemon::Hello { version: PROTOCOL_VERSION },
            ToDaemon::Request {
                script: String::new(),
                callable: String::new(),
                application_group: None,
                reload_mtime: None,
                request_start_micros: 0,
                declared_length: None,
                head_only: false,
                client: String::new(),
                variables: Variables::default(),
            },
            ToDaemon::Request {
                script: "/srv/wsgi/été.wsgi".into(),
                callable: "application".into(),
                application_group: Some("www.example.com:8080|/app".into()),
                reload_mtime: Some(i64::MIN),
                request_start_micros: i64::MAX,
                declared_length: Some(u64::MAX),
                head_only: true,
                client: "[::1]:54321".into(),
                variables: [
                    (&b"REQUEST_URI"[..], &b"/caf\xc3\xa9?q=\xff\xfe"[..]),
                    (b"", b""),
                    (b"HTTP_X_RAW", &every_byte()),
                    (&every_byte(), b"\0"),
                ]
                .into_iter()
                .collect(),
            },
            ToDaemon::Body { data: Vec::new() },
            ToDaemon::Body { data: every_byte() },
            ToDaemon::BodyEnd,
            ToDaemon::BodyError { status: -1, reason: String::new() },
            ToDaemon::BodyError { status: i32::MAX, reason: "client closed the connection — «timeout»".into() },
            ToDaemon::Check {
                question: CheckQuestion::Password { user: Vec::new(), password: Vec::new() },
                script: String::new(),
                reloading: false,
                application_group: String::new(),
                client: String::new(),
                variables: Variables::default(),
            },
            ToDaemon::Check {
                question: CheckQuestion::Password { user: "zoë".into(), password: every_byte() },
                script: "/srv/auth/été.wsgi".into(),
                reloading: true,
                application_group: "www.example.com|/private".into(),
                client: "[::1]:54321".into(),
                variables: [(&b"HTTP_X_RAW"[..], &every_byte()[..]), (b"", b"")].into_iter().collect(),
            },
            ToDaemon::Check {
                question: CheckQuestion::RealmHash { user: b"spy".to_vec(), realm: b"Top \"Secret\"".to_vec() },
                script: "/a".into(),
                reloading: false,
                application_group: String::new(),
                client: "127.0.0.1:1".into(),
                variables: [(&b"REQUEST_METHOD"[..], &b"GET"[..])].into_iter().collect(),
            },
            ToDaemon::Check {
                question: CheckQuestion::Groups { user: vec![0xff, 0] },
                script: "/a".into(),
                reloading: true,
                application_group: "site".into(),
                client: String::new(),
                variables: Variables::default(),
            },
            ToDaemon::Check {
                question: CheckQuestion::Access { host: None },
                script: "/a".into(),
                reloading: false,
                application_group: String::new(),
                client: String::new(),
                variables: Variables::default(),
            },
            ToDaemon::Check {
                question: CheckQuestion::Access { host: Some(b"host.example".to_vec()) },
                script: "/a".into(),
                reloading: false,
                application_group: String::new(),
                client: String::new(),
                variables: Variables::default(),
            },
        ]
    }

    fn to_child_samples() -> Vec<ToChild> {
        vec![
            ToChild::Hello { version: PROTOCOL_VERSION, pid: u32::MAX },
            ToChild::Ledger,
            ToChild::ReadBody { max: 0 },
            ToChild::ReadBody { max: u32::MAX },
            ToChild::Head { status: 0, status_line: String::new(), headers: Vec::new() },
            ToChild::Head {
                status: 200,
                status_line: "200 OK".into(),
                headers: vec![
                    ("Content-Type".into(), "text/plain; charset=utf-8".into()),
                    (String::new(), String::new()),
                    ("X-Name".into(), "Zoë ÿ".into()),
                ],
            },
            ToChild::AnnounceStream,
            ToChild::Data { data: Vec::new() },
            ToChild::Data { data: every_byte() },
            ToChild::Pass { flush: false },
            ToChild::Pass { flush: true },
            ToChild::File { offset: 0, len: 0 },
            ToChild::File { offset: u64::MAX, len: u64::MAX },
            ToChild::End { flush: false },
            ToChild::End { flush: true },
            ToChild::Abort,
            ToChild::Failed { status: 503 },
            ToChild::BodyFailed { status: i32::MIN },
            ToChild::Log { level: 0, text: String::new() },
            ToChild::Log { level: 7, text: "Traceback (most recent call last):\n  … ☃".into() },
            ToChild::Checked { answer: CheckAnswer::Authenticated(None) },
            ToChild::Checked { answer: CheckAnswer::Authenticated(Some("renamed ☃".into())) },
            ToChild::Checked { answer: CheckAnswer::WrongPassword },
            ToChild::Checked { answer: CheckAnswer::UnknownUser },
            ToChild::Checked { answer: CheckAnswer::RealmHash(b"0123456789abcdef0123456789abcdef".to_vec()) },
            ToChild::Checked { answer: CheckAnswer::Groups(Vec::new()) },
            ToChild::Checked { answer: CheckAnswer::Groups(vec![b"agents".to_vec(), Vec::new(), every_byte()]) },
            ToChild::Checked { answer: CheckAnswer::Access(None) },
            ToChild::Checked { answer: CheckAnswer::Access(Some(false)) },
            ToChild::Checked { answer: CheckAnswer::Access(Some(true)) },
            ToChild::Checked { answer: CheckAnswer::Failed },
        ]
    }

    fn concatenated<M: Message>(frames: &[M]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for frame in frames {
            encode(frame, &mut bytes).unwrap();
        }
        bytes
    }

    #[test]
    fn every_message_round_trips() {
        for sample in to_daemon_samples() {
            assert_eq!(decode_all::<ToDaemon>(&encoded(&sample)), [sample.clone()], "{sample:?}");
        }
        for sample in to_child_samples() {
            assert_eq!(decode_all::<ToChild>(&encoded(&sample)), [sample.clone()], "{sample:?}");
        }
    }

    #[test]
    fn write_body_writes_a_body_frame() {
        let (a, b) = UnixStream::pair().unwrap();
        for data in [Vec::new(), every_byte(), vec![7; 70_000]] {
            write_body(&a, &data).unwrap();
            let mut reader = FrameReader::new(b.try_clone().unwrap());
            assert_eq!(reader.read_frame::<ToDaemon>().unwrap(), Some(ToDaemon::Body { data: data.clone() }));
        }
    }

    #[test]
    fn a_borrowed_request_frame_decodes_as_the_request() {
        for sample in to_daemon_samples() {
            let ToDaemon::Request { variables, .. } = &sample else { continue };
            let refs: Vec<(&[u8], &[u8])> = variables.iter().collect();
            // Split anywhere, the variables and the trailing ones are one list.
            for split in 0..=refs.len() {
                let frame = sample.as_frame(&refs[..split], &refs[split..]).unwrap();
                let mut out = Vec::new();
                frame.encode(&mut out).unwrap();
                assert_eq!(out, encoded(&sample));
                assert_eq!(decode_all::<ToDaemon>(&out), [sample.clone()]);
            }
        }
    }

    #[test]
    fn frames_of_the_maximum_size_round_trip() {
        let data = vec![0xa5; MAX_DATA];
        let body = ToDaemon::Body { data: data.clone() };
        let bytes = encoded(&body);
        assert_eq!(bytes.len(), HEADER_LEN + MAX_PAYLOAD);
        assert_eq!(decode_all::<ToDaemon>(&bytes), [body]);
        assert_eq!(decode_all::<ToChild>(&encoded(&ToChild::Data { data })).len(), 1);
    }

    #[test]
    fn a_frame_over_the_maximum_is_not_encoded() {
        let mut out = vec![1, 2, 3];
        let error = encode(&ToChild::Data { data: vec![0; MAX_DATA + 1] }, &mut out).unwrap_err();
        assert_eq!(error, WireError::Oversize { message: "Data", len: MAX_PAYLOAD as u64 + 1 });
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn encode_data_splits_at_the_maximum() {
        let data: Vec<u8> = (0..MAX_DATA * 2 + 10).map(|i| i as u8).collect();
        let mut out = Vec::new();
        encode_data(&data, &mut out);
        let frames = decode_all::<ToChild>(&out);
        let chunks: Vec<Vec<u8>> = frames
            .into_iter()
            .map(|f| match f {
                ToChild::Data { data } => data,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [MAX_DATA, MAX_DATA, 10]);
        assert_eq!(chunks.concat(), data);
        let mut nothing = Vec::new();
        encode_data(&[], &mut nothing);
        assert!(nothing.is_empty());
        // The same bytes as encode makes.
        let mut small = Vec::new();
        encode_data(b"abc", &mut small);
        assert_eq!(small, encoded(&ToChild::Data { data: b"abc".to_vec() }));
    }

    #[test]
    fn the_layout_is_as_documented() {
        assert_eq!(encoded(&ToDaemon::Hello { version: 1 }), [0x01, 0, 0, 0, 2, 0, 1]);
        assert_eq!(encoded(&ToChild::Pass { flush: true }), [0x87, 0, 0, 0, 1, 1]);
        assert_eq!(encoded(&ToChild::Abort), [0x8a, 0, 0, 0, 0]);
        let request = ToDaemon::Request {
            script: "s".into(),
            callable: "c".into(),
            application_group: Some("g".into()),
            reload_mtime: Some(2),
            request_start_micros: 3,
            declared_length: None,
            head_only: true,
            client: "".into(),
            variables: [(&b"A"[..], &b""[..])].into_iter().collect(),
        };
        let payload: Vec<u8> = [
            &[0, 0, 0, 1, b's'][..],
            &[0, 0, 0, 1, b'c'],
            &[1, 0, 0, 0, 1, b'g'],
            &[1, 0, 0, 0, 0, 0, 0, 0, 2],
            &[0, 0, 0, 0, 0, 0, 0, 3],
            &[0],
            &[1],
            &[0, 0, 0, 0],
            &[0, 0, 0, 1, 0, 0, 0, 1, b'A', 0, 0, 0, 0],
        ]
        .concat();
        assert_eq!(encoded(&request), frame(0x02, &payload));
    }

    #[test]
    fn fed_one_byte_at_a_time_the_decoder_gives_the_same_frames() {
        let samples = to_child_samples();
        let bytes = concatenated(&samples);
        let mut decoder = Decoder::new();
        let mut frames = Vec::new();
        let mut frame_ends = Vec::new();
        for (i, byte) in bytes.iter().enumerate() {
            decoder.feed(std::slice::from_ref(byte));
            while let Some(frame) = decoder.next_frame::<ToChild>().unwrap() {
                frames.push(frame);
                frame_ends.push(i + 1);
            }
        }
        assert_eq!(frames, samples);
        // Each frame came out with its last byte, not later.
        let mut expected_ends = Vec::new();
        let mut end = 0;
        for sample in &samples {
            end += encoded(sample).len();
            expected_ends.push(end);
        }
        assert_eq!(frame_ends, expected_ends);

        let samples = to_daemon_samples();
        let bytes = concatenated(&samples);
        let mut decoder = Decoder::new();
        let mut frames = Vec::new();
        for byte in &bytes {
            decoder.feed(&[*byte]);
            frames.extend(decoder.next_frame::<ToDaemon>().unwrap());
        }
        assert_eq!(frames, samples);
    }

    #[test]
    fn unknown_kinds_are_reported_at_the_first_byte() {
        assert_eq!(decode_error::<ToDaemon>(b"G"), WireError::UnknownKind { kind: b'G', sender: "Apache child" });
        // A frame for the other direction.
        assert_eq!(decode_error::<ToDaemon>(&[0x81]), WireError::UnknownKind { kind: 0x81, sender: "Apache child" });
        assert_eq!(decode_error::<ToChild>(&[0x01]).to_string(), "unknown frame kind 0x01 from the daemon");
        assert!(matches!(decode_error::<ToChild>(&[0x00]), WireError::UnknownKind { kind: 0, .. }));
        assert!(matches!(decode_error::<ToChild>(&[0xff]), WireError::UnknownKind { kind: 0xff, .. }));
    }

    #[test]
    fn an_oversize_length_is_reported_before_the_payload_comes() {
        let mut header = vec![ToChild::DATA];
        header.extend_from_slice(&(MAX_PAYLOAD as u32 + 1).to_be_bytes());
        let error = decode_error::<ToChild>(&header);
        assert_eq!(error, WireError::Oversize { message: "Data", len: MAX_PAYLOAD as u64 + 1 });
        assert_eq!(error.to_string(), "Data frame of 16777217 bytes is over the maximum of 16777216");
        let error = decode_error::<ToDaemon>(&[ToDaemon::BODY, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(error, WireError::Oversize { message: "Body", len: u32::MAX as u64 });
    }

    #[test]
    fn an_incomplete_frame_waits_for_more() {
        let bytes = encoded(&ToChild::Log { level: 3, text: "abc".into() });
        for len in 0..bytes.len() {
            let mut decoder = Decoder::new();
            decoder.feed(&bytes[..len]);
            assert_eq!(decoder.next_frame::<ToChild>().unwrap(), None);
            assert_eq!(decoder.buffered(), len);
        }
    }

    #[test]
    fn a_field_past_the_payload_end_is_truncated() {
        let error = decode_error::<ToDaemon>(&frame(ToDaemon::HELLO, &[0]));
        assert_eq!(error, WireError::Truncated { message: "Hello", field: "version", needed: 2, left: 1 });
        assert_eq!(error.to_string(), "Hello frame: version needs 2 bytes, the payload has 1 left");
        // A byte string longer than what is left of the payload (however
        // long it says it is, nothing is allocated for it).
        let error = decode_error::<ToChild>(&frame(ToChild::DATA, &[0xff, 0xff, 0xff, 0xff, 1, 2]));
        assert_eq!(error, WireError::Truncated { message: "Data", field: "data", needed: u32::MAX as usize, left: 2 });
        let error = decode_error::<ToChild>(&frame(ToChild::FILE, &[0; 12]));
        assert_eq!(error, WireError::Truncated { message: "File", field: "len", needed: 8, left: 4 });
        // Every proper prefix of a Request's payload.
        let request = encoded(&to_daemon_samples()[2]);
        for len in 0..request.len() - HEADER_LEN {
            let error = decode_error::<ToDaemon>(&frame(ToDaemon::REQUEST, &request[HEADER_LEN..HEADER_LEN + len]));
            // (Or, cut inside the variables, a count the rest cannot hold.)
            let cut_short = matches!(
                error,
                WireError::Truncated { message: "Request", .. } | WireError::CountTooLarge { message: "Request", .. }
            );
            assert!(cut_short, "{len}: {error}");
        }
    }

    #[test]
    fn text_must_be_utf8() {
        let error = decode_error::<ToChild>(&frame(ToChild::LOG, &[3, 0, 0, 0, 2, 0xc3, 0x28]));
        assert_eq!(error, WireError::BadUtf8 { message: "Log", field: "text" });
        assert_eq!(error.to_string(), "Log frame: text is not UTF-8");
        let head = [&[0, 200][..], &[0, 0, 0, 0], &[0, 0, 0, 1], &[0, 0, 0, 1, 0xff], &[0, 0, 0, 0]].concat();
        assert_eq!(
            decode_error::<ToChild>(&frame(ToChild::HEAD, &head)),
            WireError::BadUtf8 { message: "Head", field: "header name" }
        );
        // Variables are bytes: the same byte is fine there.
        let request = ToDaemon::Request {
            script: "s".into(),
            callable: "c".into(),
            application_group: Some(String::new()),
            reload_mtime: None,
            request_start_micros: 0,
            declared_length: None,
            head_only: false,
            client: "c".into(),
            variables: [(&[0xff][..], &[0xc3, 0x28][..])].into_iter().collect(),
        };
        assert_eq!(decode_all::<ToDaemon>(&encoded(&request)), [request]);
    }

    #[test]
    fn flags_are_0_or_1() {
        let error = decode_error::<ToChild>(&frame(ToChild::PASS, &[2]));
        assert_eq!(error, WireError::BadFlag { message: "Pass", field: "flush", value: 2 });
        assert_eq!(error.to_string(), "Pass frame: flush flag is 2, not 0 or 1");
        // An Option's tag.
        let payload = [&[0, 0, 0, 0][..], &[0, 0, 0, 0], &[0], &[0x80]].concat();
        assert_eq!(
            decode_error::<ToDaemon>(&frame(ToDaemon::REQUEST, &payload)),
            WireError::BadFlag { message: "Request", field: "reload_mtime", value: 0x80 }
        );
    }

    #[test]
    fn a_tag_past_the_last_variant_is_an_error() {
        let error = decode_error::<ToChild>(&frame(ToChild::CHECKED, &[7]));
        assert_eq!(error, WireError::UnknownTag { message: "Checked", field: "answer", value: 7 });
        assert_eq!(error.to_string(), "Checked frame: no answer has tag 7");
        let error = decode_error::<ToDaemon>(&frame(ToDaemon::CHECK, &[4, 0, 0, 0, 0]));
        assert_eq!(error, WireError::UnknownTag { message: "Check", field: "question", value: 4 });
        // The answer's own fields are as strict as any: an Access answer's
        // verdict is a flag.
        let error = decode_error::<ToChild>(&frame(ToChild::CHECKED, &[5, 1, 2]));
        assert_eq!(error, WireError::BadFlag { message: "Checked", field: "allowed", value: 2 });
    }

    #[test]
    fn bytes_after_the_last_field_are_an_error() {
        let error = decode_error::<ToChild>(&frame(ToChild::END, &[1, 0]));
        assert_eq!(error, WireError::TrailingBytes { message: "End", extra: 1 });
        assert_eq!(error.to_string(), "End frame: 1 bytes left over after the last field");
        assert_eq!(
            decode_error::<ToChild>(&frame(ToChild::LEDGER, b"xyz")),
            WireError::TrailingBytes { message: "Ledger", extra: 3 }
        );
        assert_eq!(
            decode_error::<ToDaemon>(&frame(ToDaemon::BODY_END, &[0])),
            WireError::TrailingBytes { message: "BodyEnd", extra: 1 }
        );
    }

    #[test]
    fn a_list_count_the_payload_cannot_hold_is_refused_before_allocating() {
        let payload = [&[0, 200][..], &[0, 0, 0, 0], &[0xff, 0xff, 0xff, 0xff], &[0; 16]].concat();
        let error = decode_error::<ToChild>(&frame(ToChild::HEAD, &payload));
        assert_eq!(error, WireError::CountTooLarge { message: "Head", field: "headers", count: u32::MAX, left: 16 });
        assert_eq!(
            error.to_string(),
            "Head frame: headers counts 4294967295 items, more than the 16 bytes left can hold"
        );
        // Two empty headers do fit in 16 bytes; three do not.
        let two = [&[0, 200][..], &[0, 0, 0, 0], &[0, 0, 0, 2], &[0; 16]].concat();
        assert_eq!(decode_all::<ToChild>(&frame(ToChild::HEAD, &two)).len(), 1);
        let three = [&[0, 200][..], &[0, 0, 0, 0], &[0, 0, 0, 3], &[0; 16]].concat();
        let error = decode_error::<ToChild>(&frame(ToChild::HEAD, &three));
        assert!(matches!(error, WireError::CountTooLarge { count: 3, .. }), "{error}");
    }

    #[test]
    fn another_version_is_a_mismatch_naming_both() {
        let ours = PROTOCOL_VERSION;
        let error = decode_error::<ToDaemon>(&encoded(&ToDaemon::Hello { version: ours + 1 }));
        assert_eq!(error, WireError::VersionMismatch { ours, theirs: ours + 1 });
        assert_eq!(
            error.to_string(),
            format!("protocol version mismatch: this side speaks version {ours}, the peer version {}", ours + 1)
        );
        // Whatever another version's Hello carries after its version.
        let error = decode_error::<ToChild>(&frame(ToChild::HELLO, &[0x01, 0x00, 9, 9, 9, 9, 9, 9, 9]));
        assert_eq!(error, WireError::VersionMismatch { ours, theirs: 256 });
        let error = decode_error::<ToChild>(&frame(ToChild::HELLO, &[0, 0]));
        assert_eq!(error, WireError::VersionMismatch { ours, theirs: 0 });
        // Version 1's Request had no application group, version 2 had no Check.
        for old in [1, 2] {
            let error = decode_error::<ToDaemon>(&encoded(&ToDaemon::Hello { version: old }));
            assert_eq!(error, WireError::VersionMismatch { ours, theirs: old });
        }
    }

    #[test]
    fn errors_become_io_errors_that_keep_them() {
        let error: io::Error = WireError::ClosedInFrame { received: 3 }.into();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(protocol_error(&error), Some(&WireError::ClosedInFrame { received: 3 }));
        let error: io::Error = WireError::MissingFd { message: "File" }.into();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert_eq!(error.to_string(), "File frame arrived without its file descriptor");
        assert_eq!(protocol_error(&io::Error::from(io::ErrorKind::BrokenPipe)), None);
    }

    #[test]
    fn the_buffer_is_reused_and_let_go_after_a_large_frame() {
        let mut decoder = Decoder::new();
        let big = encoded(&ToChild::Data { data: vec![1; KEEP_BUFFER * 2] });
        decoder.feed(&big);
        assert!(decoder.next_frame::<ToChild>().unwrap().is_some());
        decoder.feed(&encoded(&ToChild::Abort));
        assert!(decoder.buffer.len() <= KEEP_BUFFER);
        assert_eq!(decoder.next_frame::<ToChild>().unwrap(), Some(ToChild::Abort));
        assert_eq!(decoder.consumed(), (big.len() + HEADER_LEN) as u64);
    }

    // ---- Over a socket pair ----

    fn pair() -> (UnixStream, FrameReader) {
        let (writer, reader) = UnixStream::pair().unwrap();
        (writer, FrameReader::new(reader))
    }

    /// A file holding `contents`, already unlinked.
    fn temporary_file(contents: &[u8]) -> std::fs::File {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("wire-test-{}-{n}", std::process::id()));
        let mut file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file.write_all(contents).unwrap();
        file
    }

    fn read_region(fd: OwnedFd, offset: u64, len: u64) -> Vec<u8> {
        let mut file = std::fs::File::from(fd);
        file.seek(SeekFrom::Start(offset)).unwrap();
        let mut contents = vec![0; len as usize];
        file.read_exact(&mut contents).unwrap();
        contents
    }

    fn is_cloexec(fd: &OwnedFd) -> bool {
        // SAFETY: F_GETFD on an open descriptor only reads its flags.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        flags & libc::FD_CLOEXEC != 0
    }

    #[test]
    fn frames_cross_a_socket_both_ways() {
        let (child, daemon) = UnixStream::pair().unwrap();
        let mut at_daemon = FrameReader::new(daemon);
        let mut at_child = FrameReader::new(child.try_clone().unwrap());
        for sample in to_daemon_samples() {
            write_frame(&child, &sample).unwrap();
        }
        for sample in to_daemon_samples() {
            assert_eq!(at_daemon.read_frame::<ToDaemon>().unwrap(), Some(sample));
        }
        let samples: Vec<ToChild> = to_child_samples().into_iter().filter(|f| !f.carries_fd()).collect();
        write_encoded(at_daemon.get_ref(), &concatenated(&samples)).unwrap();
        for sample in samples {
            let (frame, fd) = at_child.read_frame_maybe_fd::<ToChild>().unwrap().unwrap();
            assert_eq!((frame, fd.is_none()), (sample, true));
        }
    }

    #[test]
    fn a_descriptor_passed_with_a_file_frame_reads_the_file() {
        let (writer, mut reader) = pair();
        let first = temporary_file(b"0123456789");
        let second = temporary_file(b"abcdefghij");
        // Frames on both sides of each File frame, and two File frames in a
        // row, all written before any is read, so reads gather several.
        write_frame(&writer, &ToChild::Data { data: b"before".to_vec() }).unwrap();
        write_frame_with_fd(&writer, &ToChild::File { offset: 2, len: 5 }, first.as_fd()).unwrap();
        write_frame_with_fd(&writer, &ToChild::File { offset: 7, len: 3 }, second.as_fd()).unwrap();
        write_frame(&writer, &ToChild::Pass { flush: true }).unwrap();
        write_frame_with_fd(&writer, &ToChild::File { offset: 0, len: 1 }, first.as_fd()).unwrap();
        write_frame(&writer, &ToChild::End { flush: false }).unwrap();
        drop(writer);

        let next = |reader: &mut FrameReader| reader.read_frame_maybe_fd::<ToChild>().unwrap().unwrap();
        let without_fd = |(frame, fd): (ToChild, Option<OwnedFd>)| {
            assert!(fd.is_none(), "{frame:?} came with a descriptor");
            frame
        };
        assert_eq!(without_fd(next(&mut reader)), ToChild::Data { data: b"before".to_vec() });
        let regions = [(2, 5, b"23456".as_slice()), (7, 3, b"hij")];
        for (offset, len, contents) in regions {
            let (frame, fd) = next(&mut reader);
            assert_eq!(frame, ToChild::File { offset, len });
            let fd = fd.unwrap();
            assert!(is_cloexec(&fd));
            assert_eq!(read_region(fd, offset, len), contents);
        }
        assert_eq!(without_fd(next(&mut reader)), ToChild::Pass { flush: true });
        let (frame, fd) = next(&mut reader);
        assert_eq!(frame, ToChild::File { offset: 0, len: 1 });
        assert_eq!(read_region(fd.unwrap(), 0, 1), b"0");
        assert_eq!(without_fd(next(&mut reader)), ToChild::End { flush: false });
        assert!(reader.read_frame_maybe_fd::<ToChild>().unwrap().is_none());
    }

    #[test]
    fn a_file_frame_without_a_descriptor_is_an_error() {
        let (writer, mut reader) = pair();
        write_encoded(&writer, &encoded(&ToChild::File { offset: 0, len: 1 })).unwrap();
        let error = reader.read_frame_maybe_fd::<ToChild>().unwrap_err();
        assert_eq!(protocol_error(&error), Some(&WireError::MissingFd { message: "File" }));
    }

    #[test]
    fn a_descriptor_with_another_frame_is_closed_and_reported() {
        let (writer, mut reader) = pair();
        let file = temporary_file(b"x");
        // Sent the way a File frame is, but with a Data frame; then a File
        // frame without one, which must not get it.
        send_all(&writer, &encoded(&ToChild::Data { data: b"d".to_vec() }), Some(file.as_fd())).unwrap();
        write_encoded(&writer, &encoded(&ToChild::File { offset: 0, len: 1 })).unwrap();
        let error = reader.read_frame_maybe_fd::<ToChild>().unwrap_err();
        assert_eq!(protocol_error(&error), Some(&WireError::StrayFds { count: 1 }));
        assert!(reader.fds.is_empty());
        let error = reader.read_frame_maybe_fd::<ToChild>().unwrap_err();
        assert_eq!(protocol_error(&error), Some(&WireError::MissingFd { message: "File" }));

        // The daemon never receives descriptors.
        let (writer, mut reader) = pair();
        send_all(&writer, &encoded(&ToDaemon::BodyEnd), Some(file.as_fd())).unwrap();
        let error = reader.read_frame::<ToDaemon>().unwrap_err();
        assert_eq!(protocol_error(&error), Some(&WireError::StrayFds { count: 1 }));
    }

    #[test]
    fn descriptors_go_only_with_frames_that_carry_them() {
        let (writer, mut reader) = pair();
        let file = temporary_file(b"x");
        let error = write_frame(&writer, &ToChild::File { offset: 0, len: 1 }).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        let error = write_frame_with_fd(&writer, &ToChild::Abort, file.as_fd()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        write_frame_with_fd(&writer, &ToChild::File { offset: 0, len: 1 }, file.as_fd()).unwrap();
        let error = reader.read_frame::<ToChild>().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn an_oversize_frame_is_not_written() {
        let (writer, _reader) = pair();
        let error = write_frame(&writer, &ToChild::Data { data: vec![0; MAX_DATA + 1] }).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(matches!(protocol_error(&error), Some(WireError::Oversize { .. })));
    }

    #[test]
    fn end_of_file_between_frames_is_none_inside_one_an_error() {
        let (writer, mut reader) = pair();
        drop(writer);
        assert!(reader.read_frame::<ToDaemon>().unwrap().is_none());

        let (writer, mut reader) = pair();
        write_frame(&writer, &ToDaemon::BodyEnd).unwrap();
        drop(writer);
        assert_eq!(reader.read_frame::<ToDaemon>().unwrap(), Some(ToDaemon::BodyEnd));
        assert!(reader.read_frame::<ToDaemon>().unwrap().is_none());

        let whole = encoded(&ToDaemon::Body { data: b"hello".to_vec() });
        for cut in [1, HEADER_LEN - 1, HEADER_LEN, whole.len() - 1] {
            let (writer, mut reader) = pair();
            write_encoded(&writer, &whole[..cut]).unwrap();
            drop(writer);
            let error = reader.read_frame::<ToDaemon>().unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
            assert_eq!(protocol_error(&error), Some(&WireError::ClosedInFrame { received: cut }));
        }
    }

    #[test]
    fn a_frame_larger_than_the_socket_buffer_arrives_whole() {
        let (writer, mut reader) = pair();
        let data: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
        let sent = data.clone();
        let sender = std::thread::spawn(move || {
            write_frame(&writer, &ToChild::Data { data: sent }).unwrap();
            write_frame(&writer, &ToChild::End { flush: true }).unwrap();
        });
        assert_eq!(reader.read_frame::<ToChild>().unwrap(), Some(ToChild::Data { data }));
        assert_eq!(reader.read_frame::<ToChild>().unwrap(), Some(ToChild::End { flush: true }));
        sender.join().unwrap();
    }

    #[test]
    fn after_a_read_timeout_the_partial_frame_is_kept() {
        let (writer, mut reader) = pair();
        reader.get_ref().set_read_timeout(Some(std::time::Duration::from_millis(20))).unwrap();
        let whole = encoded(&ToChild::Log { level: 4, text: "slow".into() });
        write_encoded(&writer, &whole[..3]).unwrap();
        let error = reader.read_frame::<ToChild>().unwrap_err();
        assert!(matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut), "{error}");
        assert_eq!(protocol_error(&error), None);
        write_encoded(&writer, &whole[3..]).unwrap();
        assert_eq!(reader.read_frame::<ToChild>().unwrap(), Some(ToChild::Log { level: 4, text: "slow".into() }));
    }

    /// Reads frames with read_frame_or_data (a buffer of LENT_FRAME_MAX,
    /// data frames of 32 KiB and more into it) until end of file: each
    /// frame, and whether its data went into the buffer.
    fn read_all_or_data(reader: &mut FrameReader) -> Vec<(ToChild, bool)> {
        let mut dest = vec![MaybeUninit::new(0xee); LENT_FRAME_MAX];
        let mut frames = Vec::new();
        while let Some(arrived) = reader.read_frame_or_data::<ToChild>(&mut dest, 32 << 10).unwrap() {
            frames.push(match arrived {
                Arrived::Data(len) => {
                    // SAFETY: dest was initialised when it was made.
                    let data = dest[..len].iter().map(|b| unsafe { b.assume_init() }).collect();
                    (ToChild::Data { data }, true)
                }
                Arrived::Frame(frame, fd) => {
                    assert!(fd.is_none());
                    (frame, false)
                }
            });
        }
        frames
    }

    /// Frames around data frames under, within and over the sizes that
    /// read_all_or_data takes into its buffer, and whether each is.
    fn frames_with_data() -> Vec<(ToChild, bool)> {
        let data = |len: usize, seed: usize| ToChild::Data { data: (0..len).map(|i| ((i * 7 + seed) % 251) as u8).collect() };
        vec![
            (ToChild::Head { status: 200, status_line: "200 OK".into(), headers: vec![("A".into(), "b".into())] }, false),
            (data(40 << 10, 1), true),
            (data(10, 2), false),
            (data(LENT_FRAME_MAX + 1, 3), false),
            (data(LENT_FRAME_MAX, 4), true),
            (data(32 << 10, 5), true),
            (ToChild::Pass { flush: false }, false),
            (data((32 << 10) - 1, 6), false),
            (data(50_000, 7), true),
            (ToChild::End { flush: true }, false),
        ]
    }

    #[test]
    fn data_frames_of_the_sizes_asked_for_go_into_the_callers_buffer() {
        let expected = frames_with_data();
        let bytes = concatenated(&expected.iter().map(|(frame, _)| frame.clone()).collect::<Vec<_>>());

        // All written before the first read: reads find headers buffered.
        let (writer, mut reader) = pair();
        let sender = {
            let bytes = bytes.clone();
            std::thread::spawn(move || write_encoded(&writer, &bytes).unwrap())
        };
        assert_eq!(read_all_or_data(&mut reader), expected);
        sender.join().unwrap();

        // Written in pieces of awkward sizes, so that headers are cut and
        // reads end anywhere.
        let (writer, mut reader) = pair();
        let sender = std::thread::spawn(move || {
            let sizes = [1, 2, 5, 9, 13, 4096, 70_000, 3];
            let mut rest = &bytes[..];
            for size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (piece, later) = rest.split_at((*size).min(rest.len()));
                write_encoded(&writer, piece).unwrap();
                rest = later;
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        });
        assert_eq!(read_all_or_data(&mut reader), expected);
        sender.join().unwrap();
    }

    #[test]
    fn descriptors_are_checked_around_data_taken_into_the_buffer() {
        let (writer, mut reader) = pair();
        let file = temporary_file(b"0123456789");
        let data = vec![9; 40 << 10];
        write_frame(&writer, &ToChild::Data { data: data.clone() }).unwrap();
        write_frame_with_fd(&writer, &ToChild::File { offset: 3, len: 4 }, file.as_fd()).unwrap();
        let mut dest = vec![MaybeUninit::uninit(); LENT_FRAME_MAX];
        assert!(matches!(reader.read_frame_or_data::<ToChild>(&mut dest, 1).unwrap(), Some(Arrived::Data(len)) if len == data.len()));
        match reader.read_frame_or_data::<ToChild>(&mut dest, 1).unwrap() {
            Some(Arrived::Frame(ToChild::File { offset: 3, len: 4 }, Some(fd))) => assert_eq!(read_region(fd, 3, 4), b"3456"),
            other => panic!("{other:?}"),
        }

        // A descriptor sent with a data frame is stray.
        send_all(&writer, &encoded(&ToChild::Data { data: data.clone() }), Some(file.as_fd())).unwrap();
        let error = reader.read_frame_or_data::<ToChild>(&mut dest, 1).unwrap_err();
        assert_eq!(protocol_error(&error), Some(&WireError::StrayFds { count: 1 }));
        assert!(reader.fds.is_empty());
    }

    #[test]
    fn a_failure_inside_data_taken_into_the_buffer_fails_the_reader() {
        let whole = encoded(&ToDaemon::Body { data: vec![1; 1000] });
        let mut dest = vec![MaybeUninit::uninit(); 4096];

        let (writer, mut reader) = pair();
        write_encoded(&writer, &whole[..500]).unwrap();
        drop(writer);
        let error = reader.read_frame_or_data::<ToDaemon>(&mut dest, 0).unwrap_err();
        assert_eq!(protocol_error(&error), Some(&WireError::ClosedInFrame { received: 500 }));
        let error = reader.read_frame::<ToDaemon>().unwrap_err();
        assert_eq!(protocol_error(&error), Some(&WireError::ReaderFailed));

        // A read timeout after the first `cut` bytes, then the rest sent.
        let time_out_after = |cut: usize, dest: &mut [MaybeUninit<u8>]| {
            let (writer, mut reader) = pair();
            reader.get_ref().set_read_timeout(Some(std::time::Duration::from_millis(20))).unwrap();
            write_encoded(&writer, &whole[..cut]).unwrap();
            let error = reader.read_frame_or_data::<ToDaemon>(dest, 0).unwrap_err();
            assert!(matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut), "{error}");
            write_encoded(&writer, &whole[cut..]).unwrap();
            reader.read_frame_or_data::<ToDaemon>(dest, 0)
        };
        let error = time_out_after(500, &mut dest).unwrap_err();
        assert_eq!(protocol_error(&error), Some(&WireError::ReaderFailed));
        // Before any data came, a timeout keeps the frame's start as usual.
        assert!(matches!(time_out_after(4, &mut dest).unwrap(), Some(Arrived::Data(1000))));
    }

    #[test]
    fn a_write_to_a_closed_peer_is_a_broken_pipe() {
        let (writer, reader) = pair();
        drop(reader);
        let error = write_frame(&writer, &ToDaemon::BodyEnd).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }
}
