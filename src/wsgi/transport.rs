//! What the WSGI core needs from whatever carries a request to it: the
//! request body, a place for the response, and facts about the server. The
//! embedded transport (src/embedded/) implements these over Apache's
//! request_rec and brigades; the core never sees either.

use super::file_wrapper::FileRegion;
use std::mem::MaybeUninit;
use std::sync::OnceLock;

/// Why the request body could not be read.
#[derive(Clone, Debug)]
pub struct BodyError {
    /// What the transport ends the request with (for Apache, a handler
    /// status such as 400, 408 or AP_FILTER_ERROR); the core only passes
    /// it back.
    pub status: i32,
    /// The text of the OSError the application gets.
    pub reason: String,
}

/// The request body. Reads block, and are made without the GIL.
pub trait BodySource: Send {
    /// The body's declared length (Content-Length), None when it is
    /// chunked.
    fn declared_length(&self) -> Option<u64>;

    /// Reads up to `dest.len()` (> 0) bytes into the start of `dest`
    /// (which may be uninitialised), returns how many it initialised, and
    /// whether the body has ended. A read may return 0 bytes before the end.
    fn read(&mut self, dest: &mut [MaybeUninit<u8>]) -> Result<(usize, bool), BodyError>;
}

/// The response, as the transport sends it. Methods that may wait on the
/// client (`pass`, `send_final`, `abort`) are called without the GIL.
pub trait ResponseSink: Send {
    /// Whether the client asked for the head only (HEAD): the body is
    /// then dropped by the transport.
    fn head_only(&self) -> bool;

    /// Status and headers, once, before the first body bytes are passed.
    fn set_head(&mut self, status: u16, status_line: &str, headers: &[(String, String)]);

    /// Tells the transport, before any body is passed, that the body
    /// comes in parts (so it frames it as a stream, not with a length).
    fn announce_stream(&mut self);

    /// Appends a copy of `data`.
    fn append_copy(&mut self, data: &[u8]);

    /// Appends `data` without copying it.
    ///
    /// # Safety
    /// `data` must stay valid and unchanged until a `pass(true)`,
    /// `send_final` or `abort` has returned, or `discard` was called.
    unsafe fn append_borrowed(&mut self, data: &[u8]);

    /// Appends a region of a regular file, which the transport may send
    /// without reading it into memory.
    fn append_file(&mut self, region: FileRegion) -> Result<(), String>;

    /// Hands what was appended to the network; with `flush`, waits until
    /// all of it is written. Err(status) if the client is gone.
    fn pass(&mut self, flush: bool) -> Result<(), i32>;

    /// Marks the end of the body (with `flush`, everything is written
    /// before send_final returns); nothing may be appended after.
    fn close(&mut self, flush: bool);

    /// Sends what close() left.
    fn send_final(&mut self) -> i32;

    /// Ends a response that has started but cannot be completed: the client
    /// must see it cut short (no final chunk, connection closed).
    fn abort(&mut self);

    /// Drops whatever was appended, unsent (nothing had gone out).
    fn discard(&mut self);
}

/// Facts about the server the core reports to applications (environ, the
/// `mod_wsgi` and `apache` modules), set once per process by the transport.
#[derive(Clone, Debug)]
pub struct ServerFacts {
    pub apache_version: (i32, i32, i32),
    pub mpm_name: String,
    pub description: String,
    pub build_date: String,
    /// The MPM's maximum of child processes and threads per child: the
    /// `apache` module's, which describes Apache in every process.
    pub apache_maximum_processes: i32,
    pub apache_threads_per_process: i32,
    /// The `mod_wsgi` module's: the MPM's in an Apache child, the group's
    /// `processes` and `threads` in a daemon process.
    pub maximum_processes: i32,
    pub threads_per_process: i32,
    pub multithread: bool,
    pub multiprocess: bool,
    /// `mod_wsgi.process_group`: '' in embedded mode.
    pub process_group: String,
    /// The daemon process groups' figures this process may report, as the
    /// status page's JSON, for `mod_wsgi.server_metrics()`; None: no figures.
    pub server_metrics_json: Option<fn() -> String>,
}

static SERVER_FACTS: OnceLock<ServerFacts> = OnceLock::new();

pub fn set_server_facts(facts: ServerFacts) {
    let _ = SERVER_FACTS.set(facts);
}

/// The facts the transport set; neutral ones if it has not (yet).
pub fn server_facts() -> &'static ServerFacts {
    SERVER_FACTS.get_or_init(|| ServerFacts {
        apache_version: (0, 0, 0),
        mpm_name: String::new(),
        description: String::new(),
        build_date: String::new(),
        apache_maximum_processes: 1,
        apache_threads_per_process: 1,
        maximum_processes: 1,
        threads_per_process: 1,
        multithread: false,
        multiprocess: true,
        process_group: String::new(),
        server_metrics_json: None,
    })
}
