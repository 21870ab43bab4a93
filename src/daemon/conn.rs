//! One connection between an Apache child and a daemon process, seen from
//! the daemon: frames in and out, usable from the worker running its
//! request and the flusher thread at once (writes and reads each under
//! their own lock, so a frame is never interleaved).

use super::ledger::Ledger;
use super::wire::{self, Arrived, FrameReader, ToChild, ToDaemon};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub struct Conn {
    writer: Mutex<UnixStream>,
    /// The current request's response head has been written; set and read
    /// under the writer's lock.
    head_sent: AtomicBool,
    /// Given up on by the watchdog (request-timeout, deadlock-timeout):
    /// nothing more is written to it, whatever the stuck request does.
    abandoned: AtomicBool,
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
        Ok(Self {
            writer: Mutex::new(writer),
            head_sent: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            reader: Mutex::new(FrameReader::new(stream)),
            fd,
            ledger,
            ledger_fd,
        })
    }

    /// The daemon's greeting: Hello, then the connection's ledger.
    pub fn greet(&self) -> io::Result<()> {
        self.send(&ToChild::Hello { version: wire::PROTOCOL_VERSION, pid: std::process::id() })?;
        self.send_with_fd(&ToChild::Ledger, self.ledger_fd.as_raw_fd())
    }

    /// Takes the request just read: false if the child has given up on it
    /// (see ledger.rs), and it must not run.
    pub fn take_request(&self) -> bool {
        self.head_sent.store(false, Ordering::Relaxed);
        self.ledger.take()
    }

    pub fn send(&self, message: &ToChild) -> io::Result<()> {
        let mut bytes = Vec::new();
        wire::encode(message, &mut bytes)?;
        self.send_encoded(&bytes)
    }

    /// Writes frames encoded with wire::encode, in one go.
    pub fn send_encoded(&self, bytes: &[u8]) -> io::Result<()> {
        self.send_response(bytes, false)
    }

    /// Writes encoded frames of the response; `with_head`: they include
    /// its Head.
    pub fn send_response(&self, bytes: &[u8], with_head: bool) -> io::Result<()> {
        let writer = self.writer()?;
        wire::write_encoded(&writer, bytes)?;
        if with_head {
            self.head_sent.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// As send_response, for frames spread over several buffers.
    pub fn send_response_parts(&self, parts: &mut [std::io::IoSlice<'_>], with_head: bool) -> io::Result<()> {
        let writer = self.writer()?;
        wire::write_encoded_parts(&writer, parts)?;
        if with_head {
            self.head_sent.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The writer, unless the connection was abandoned.
    fn writer(&self) -> io::Result<std::sync::MutexGuard<'_, UnixStream>> {
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if self.abandoned.load(Ordering::Relaxed) {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the request was given up on"));
        }
        Ok(writer)
    }

    /// Gives up on the request running on this connection: `log` goes to
    /// the child for its error log, then `status` if no response head was
    /// sent yet (else the response is cut), and the connection ends.
    /// Whatever the request's thread writes afterwards goes nowhere.
    pub fn abandon(&self, status: u16, log: ToChild) {
        // The request's own thread may be in the middle of a write to a
        // child that reads slowly: then the connection is only ended.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(200);
        let writer = loop {
            match self.writer.try_lock() {
                Ok(writer) => break Some(writer),
                Err(std::sync::TryLockError::Poisoned(e)) => break Some(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(std::sync::TryLockError::WouldBlock) => break None,
            }
        };
        if let Some(writer) = writer.filter(|_| !self.abandoned.load(Ordering::Relaxed)) {
            let mut bytes = Vec::new();
            let last = if self.head_sent.load(Ordering::Relaxed) { ToChild::Abort } else { ToChild::Failed { status } };
            if wire::encode(&log, &mut bytes).and_then(|()| wire::encode(&last, &mut bytes)).is_ok() {
                let _ = wire::write_encoded(&writer, &bytes);
            }
            // Under the lock, so no frame of the request's follows these.
            self.abandoned.store(true, Ordering::Relaxed);
        }
        self.abandoned.store(true, Ordering::Relaxed);
        self.shut_down();
    }

    /// Sends a frame with a file descriptor attached (File).
    pub fn send_with_fd(&self, message: &ToChild, fd: RawFd) -> io::Result<()> {
        let writer = self.writer()?;
        // SAFETY: the caller's descriptor is open for the duration of the
        // call (it belongs to a FileRegion the caller holds).
        wire::write_frame_with_fd(&writer, message, unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// The next frame from the child; None when it closed the connection.
    pub fn recv(&self) -> io::Result<Option<ToDaemon>> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner()).read_frame::<ToDaemon>()
    }

    /// The child's answer to a ReadBody: the bytes of a Body frame of at
    /// most `dest.len()` bytes go straight into `dest` (see
    /// FrameReader::read_frame_or_data).
    pub fn recv_body_into(&self, dest: &mut [MaybeUninit<u8>]) -> io::Result<Option<Arrived<ToDaemon>>> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner()).read_frame_or_data::<ToDaemon>(dest, 0)
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
