//! The WSGI core's transport in a daemon process: the request body, the
//! response and the request's log lines travel over the connection to the
//! Apache child that has the client (see wire.rs for the frames).

use super::conn::Conn;
use super::wire::{self, Arrived, ToChild, ToDaemon, LENT_FRAME_MAX};
use crate::wsgi::file_wrapper::FileRegion;
use crate::wsgi::logging::{self, Level, RequestLog};
use crate::wsgi::transport::{BodyError, BodySource, ResponseSink};
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

/// A status for failures of the connection itself (the Apache child went
/// away): the core only reports it.
const CONNECTION_LOST: i32 = -1;

/// `wsgi.input`: each read asks the child for up to that many bytes.
pub struct DaemonBody {
    conn: Arc<Conn>,
    declared: Option<u64>,
}

impl DaemonBody {
    pub fn new(conn: Arc<Conn>, declared: Option<u64>) -> Self {
        Self { conn, declared }
    }
}

impl BodySource for DaemonBody {
    fn declared_length(&self) -> Option<u64> {
        self.declared
    }

    fn read(&mut self, dest: &mut [MaybeUninit<u8>]) -> Result<(usize, bool), BodyError> {
        let lost = |e: std::io::Error| BodyError {
            status: CONNECTION_LOST,
            reason: format!("lost the connection to the Apache child while reading the request body: {e}"),
        };
        let max = u32::try_from(dest.len()).unwrap_or(u32::MAX);
        self.conn.send(&ToChild::ReadBody { max }).map_err(lost)?;
        match self.conn.recv_body_into(dest).map_err(lost)? {
            Some(Arrived::Data(n)) => Ok((n, false)),
            Some(Arrived::Frame(ToDaemon::BodyEnd, _)) => Ok((0, true)),
            Some(Arrived::Frame(ToDaemon::BodyError { status, reason }, _)) => Err(BodyError { status, reason }),
            Some(Arrived::Frame(ToDaemon::Body { data }, _)) => Err(BodyError {
                status: CONNECTION_LOST,
                reason: format!(
                    "the Apache child sent {} bytes of the request body where at most {max} were asked for",
                    data.len()
                ),
            }),
            Some(Arrived::Frame(..)) | None => Err(BodyError {
                status: CONNECTION_LOST,
                reason: "the Apache child did not answer a read of the request body".to_owned(),
            }),
        }
    }
}

/// The response: frames are gathered and written together at each pass,
/// so a list body is one write (Head, Data, End).
pub struct DaemonSink {
    conn: Arc<Conn>,
    head_only: bool,
    /// Encoded frames not written yet.
    out: Vec<u8>,
    /// Large body items, written from where they are rather than copied
    /// into `out`: each goes at its offset in `out`, after the Data frame
    /// header there.
    borrowed: Vec<(usize, Borrowed)>,
    /// Body bytes not yet framed.
    data: Vec<u8>,
    /// `out` holds the Head frame.
    head_in_out: bool,
}

/// Bytes the core lent with append_borrowed.
struct Borrowed(*const u8, usize);

// SAFETY: the bytes are immutable and kept alive by the core until they
// have been written (append_borrowed's contract); the sink is used by one
// thread at a time.
unsafe impl Send for Borrowed {}

impl DaemonSink {
    pub fn new(conn: Arc<Conn>, head_only: bool) -> Self {
        Self { conn, head_only, out: Vec::new(), borrowed: Vec::new(), data: Vec::new(), head_in_out: false }
    }

    fn frame(&mut self, message: &ToChild) {
        // Only a head of over 16 MiB of headers cannot be framed; the
        // response then arrives without it and the child answers 502.
        let _ = wire::encode(message, &mut self.out);
    }

    fn frame_data(&mut self) {
        wire::encode_data(&self.data, &mut self.out);
        self.data.clear();
    }

    fn write_out(&mut self) -> Result<(), i32> {
        let result = if self.borrowed.is_empty() {
            self.conn.send_response(&self.out, self.head_in_out)
        } else {
            let mut parts = Vec::with_capacity(2 * self.borrowed.len() + 1);
            let mut written = 0;
            for (at, Borrowed(data, len)) in &self.borrowed {
                parts.push(IoSlice::new(&self.out[written..*at]));
                // SAFETY: see Borrowed: the bytes are still alive and unchanged.
                parts.push(IoSlice::new(unsafe { std::slice::from_raw_parts(*data, *len) }));
                written = *at;
            }
            parts.push(IoSlice::new(&self.out[written..]));
            self.conn.send_response_parts(&mut parts, self.head_in_out)
        };
        self.out.clear();
        self.borrowed.clear();
        self.head_in_out = false;
        result.map_err(|e| e.raw_os_error().unwrap_or(CONNECTION_LOST))
    }
}

impl ResponseSink for DaemonSink {
    fn head_only(&self) -> bool {
        self.head_only
    }

    fn set_head(&mut self, status: u16, status_line: &str, headers: &[(String, String)]) {
        self.frame(&ToChild::Head { status, status_line: status_line.to_owned(), headers: headers.to_vec() });
        self.head_in_out = true;
    }

    fn announce_stream(&mut self) {
        self.frame(&ToChild::AnnounceStream);
    }

    fn append_copy(&mut self, data: &[u8]) {
        self.data.extend_from_slice(data);
    }

    unsafe fn append_borrowed(&mut self, data: &[u8]) {
        // Framed now, behind what came before; written from the caller's
        // buffer by the next write.
        self.frame_data();
        for chunk in data.chunks(LENT_FRAME_MAX) {
            wire::encode_data_header(chunk.len(), &mut self.out);
            self.borrowed.push((self.out.len(), Borrowed(chunk.as_ptr(), chunk.len())));
        }
    }

    fn append_file(&mut self, region: FileRegion) -> Result<(), String> {
        self.frame_data();
        self.write_out().map_err(|status| format!("cannot send to the Apache child (status {status})"))?;
        // The child gets its own descriptor for the file and has Apache send
        // it; ours is closed when `region` goes.
        self.conn
            .send_with_fd(&ToChild::File { offset: region.offset, len: region.len }, region.file.as_raw_fd())
            .map_err(|e| format!("cannot hand the file to the Apache child: {e}"))
    }

    fn pass(&mut self, flush: bool) -> Result<(), i32> {
        self.frame_data();
        self.frame(&ToChild::Pass { flush });
        self.write_out()
    }

    fn close(&mut self, flush: bool) {
        self.frame_data();
        self.frame(&ToChild::End { flush });
    }

    fn send_final(&mut self) -> i32 {
        match self.write_out() {
            Ok(()) => 0,
            Err(status) => status,
        }
    }

    fn abort(&mut self) {
        self.frame_data();
        self.frame(&ToChild::Abort);
        let _ = self.write_out();
    }

    fn discard(&mut self) {
        self.head_in_out = false;
        self.out.clear();
        self.borrowed.clear();
        self.data.clear();
    }
}

/// Log lines of a request, sent to the Apache child, which writes them
/// with the client's address into the right virtual host's error log.
/// Once the request is over, lines (from a stream an application kept) go
/// to this process's log with the client named.
pub struct ChannelLog {
    conn: Mutex<Option<Arc<Conn>>>,
    client: String,
}

impl ChannelLog {
    pub fn new(conn: Arc<Conn>, client: String) -> Self {
        Self { conn: Mutex::new(Some(conn)), client }
    }

    pub fn finish(&self) {
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

pub fn level_code(level: Level) -> u8 {
    match level {
        Level::Crit => 2,
        Level::Err => 3,
        Level::Warning => 4,
        Level::Notice => 5,
        Level::Info => 6,
    }
}

impl RequestLog for ChannelLog {
    fn write(&self, level: Level, text: &str) {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let sent = conn.as_ref().is_some_and(|c| c.send(&ToChild::Log { level: level_code(level), text: text.to_owned() }).is_ok());
        if !sent {
            let prefixed: String = text.lines().map(|l| format!("[client {}] {l}\n", self.client)).collect();
            logging::process(level, &prefixed);
        }
    }
}
