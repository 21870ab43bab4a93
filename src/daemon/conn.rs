//! One connection between an Apache child and a daemon process, seen from
//! the daemon: frames in and out, usable from the worker running its
//! request and the flusher thread at once (writes and reads each under
//! their own lock, so a frame is never interleaved).

use super::ledger::Ledger;
use super::wire::{self, FrameReader, ToChild, ToDaemon};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

pub struct Conn {
    writer: Mutex<UnixStream>,
    reader: Mutex<FrameReader>,
    fd: RawFd,
    /// Taken requests, shared with the child (sent by `greet`).
    ledger: Ledger,
    ledger_fd: OwnedFd,
}

impl Conn {
    pub fn new(stream: UnixStream) -> io::Result<Self> {
        let fd = stream.as_raw_fd();
        let writer = stream.try_clone()?;
        let (ledger, ledger_fd) = Ledger::create()?;
        Ok(Self { writer: Mutex::new(writer), reader: Mutex::new(FrameReader::new(stream)), fd, ledger, ledger_fd })
    }

    /// The daemon's greeting: Hello, then the connection's ledger.
    pub fn greet(&self) -> io::Result<()> {
        self.send(&ToChild::Hello { version: wire::PROTOCOL_VERSION, pid: std::process::id() })?;
        self.send_with_fd(&ToChild::Ledger, self.ledger_fd.as_raw_fd())
    }

    /// Takes the request just read: false if the child has given up on it
    /// (see ledger.rs), and it must not run.
    pub fn take_request(&self) -> bool {
        self.ledger.take()
    }

    pub fn send(&self, message: &ToChild) -> io::Result<()> {
        let mut bytes = Vec::new();
        wire::encode(message, &mut bytes)?;
        self.send_encoded(&bytes)
    }

    /// Writes frames encoded with wire::encode, in one go.
    pub fn send_encoded(&self, bytes: &[u8]) -> io::Result<()> {
        wire::write_encoded(&self.writer.lock().unwrap_or_else(|e| e.into_inner()), bytes)
    }

    /// Sends a frame with a file descriptor attached (File).
    pub fn send_with_fd(&self, message: &ToChild, fd: RawFd) -> io::Result<()> {
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the caller's descriptor is open for the duration of the
        // call (it belongs to a FileRegion the caller holds).
        wire::write_frame_with_fd(&writer, message, unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// The next frame from the child; None when it closed the connection.
    pub fn recv(&self) -> io::Result<Option<ToDaemon>> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner()).read_frame::<ToDaemon>()
    }

    /// Whether bytes of a next frame have been read from the socket
    /// already: a readiness poll of the socket would not report them.
    pub fn has_unread(&self) -> bool {
        self.reader.lock().unwrap_or_else(|e| e.into_inner()).buffered() > 0
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Ends the connection in both directions: the thread reading it wakes
    /// up with end of file.
    pub fn shut_down(&self) {
        // SAFETY: shutdown on our own connected socket; the descriptor
        // stays open (and owned by the streams) until they are dropped.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
    }
}
