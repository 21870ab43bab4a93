//! Clients that misbehave, and clients that use HTTP/1.1 to the full: the reliability
//! catalogue of the request path, on event (one child of 16 threads) and prefork
//! (three single-threaded children).
//!
//! * a client that disconnects while sending the request body, repeatedly: the app
//!   sees an OSError each time, the error log names the script, nothing crashes, the
//!   child's open descriptors come back to where they were, the next request is fine
//!   (tests/wsgi_input.rs has the single-request version of this through the
//!   validator; here it is repeated and the child is measured);
//! * a client that disconnects in the middle of a large streamed response, 50 times:
//!   close() of the response ran every time, each cut short, and every child's
//!   descriptor count and VmRSS end where they started (RSS within a small tolerance);
//! * pipelined requests (several in one write, GETs and POSTs with bodies, fixed-length
//!   and chunked responses): every response complete and in order;
//! * keep-alive: hundreds of requests on one connection, all served by one child;
//! * a request body slower than `Timeout 2`: the app gets an OSError, the client a
//!   408 or a closed connection, and the child keeps serving.
//!
//! `make soak` (bench/soak.py) runs the long versions (1,000 disconnects, a million
//! requests on one child).
mod common;
use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

/// Disconnects mid-response per run (the soak does 1,000).
const DISCONNECTS: usize = 50;
/// Disconnects mid-body per run.
const BODY_DISCONNECTS: usize = 20;
/// The VmRSS a child may gain over a run of disconnects after its warm-up.
const RSS_TOLERANCE_KIB: u64 = 1024;

struct Server {
    apache: Apache,
    script: String,
    state: PathBuf,
}

fn start(mpm: Mpm) -> Server {
    let dir = TestDir::new(&format!("faults-{}", mpm.name()));
    let state = dir.mkdir_www("state");
    let script = dir
        .install_app("faults.wsgi", &[("STATE_DIR", &state.to_string_lossy())])
        .to_string_lossy()
        .into_owned();
    let processes = match mpm {
        // One child, so that every request lands in the process being measured.
        Mpm::Event | Mpm::Worker => {
            "ServerLimit 1\nStartServers 1\nThreadsPerChild 16\nMaxRequestWorkers 16\n\
             MinSpareThreads 1\nMaxSpareThreads 16\n"
        }
        // Exactly three children for the whole run: never fewer idle than
        // MinSpareServers (which would start more), never more than MaxSpareServers.
        Mpm::Prefork => {
            "StartServers 3\nMinSpareServers 1\nMaxSpareServers 3\nServerLimit 3\nMaxRequestWorkers 3\n"
        }
    };
    let conf = Conf::new(mpm).extra(&format!(
        "{processes}MaxConnectionsPerChild 0\nKeepAlive On\nMaxKeepAliveRequests 0\nTimeout 2\n\
         WSGIScriptAlias /f {script}\n"
    ));
    let apache = Apache::start(dir, &conf, &[]);
    Server { apache, script, state }
}

impl Server {
    fn record(&self, name: &str) -> Vec<String> {
        fs::read_to_string(self.state.join(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until the record `name` has at least `n` lines (or 20 s pass).
    /// Waits until each of the `issued` requests recorded in `name` has
    /// been, so the next connection finds a free worker: prefork has
    /// three, one may still be closing the last connection, and when none
    /// is free at the parent's once-a-second look it logs AH00161, which
    /// the suite's last check rules out.
    fn wait_outstanding(&self, name: &str, issued: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.record(name).len() < issued && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn wait_record(&self, name: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let lines = self.record(name);
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The live children, once there are `expect` of them.
    fn children(&self, expect: usize) -> Vec<u32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = self.apache.child_pids();
            if pids.len() == expect || Instant::now() > deadline {
                assert_eq!(pids.len(), expect, "children of {}: {pids:?}", self.apache.pid);
                return pids;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn hello_ok(&self) -> u32 {
        let r = self.apache.get("/f/hello");
        assert_eq!(r.status, 200, "{}", short(&r.text()));
        assert!(r.text().starts_with("hello from "), "{}", short(&r.text()));
        r.header("x-pid").and_then(|p| p.parse().ok()).expect("X-Pid")
    }
}

fn expected_children(mpm: Mpm) -> usize {
    if mpm == Mpm::Prefork {
        3
    } else {
        1
    }
}

// ---------------------------------------------------------------------------------------
// measuring a child

fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
}

fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

#[derive(Debug, Clone)]
struct Usage {
    pid: u32,
    fds: usize,
    rss_kib: u64,
}

fn usage(pids: &[u32]) -> Vec<Usage> {
    pids.iter().map(|&pid| Usage { pid, fds: fd_count(pid), rss_kib: rss_kib(pid) }).collect()
}

/// Compares each child's usage now with `before`: the same children, the same number of
/// open descriptors (given a few seconds for closed connections to finish lingering),
/// and VmRSS grown by at most the tolerance. Returns a one-line summary.
fn assert_usage_back(before: &[Usage], what: &str) -> String {
    let pids: Vec<u32> = before.iter().map(|u| u.pid).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let now = usage(&pids);
        let settled = now.iter().zip(before).all(|(a, b)| a.fds <= b.fds);
        if settled || Instant::now() > deadline {
            break now;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let mut summary = Vec::new();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.fds, b.fds, "{what}: child {} had {} open descriptors before, {} after", b.pid, b.fds, a.fds);
        let grown = a.rss_kib.saturating_sub(b.rss_kib);
        assert!(
            grown <= RSS_TOLERANCE_KIB,
            "{what}: child {} VmRSS grew from {} KiB to {} KiB (tolerance {RSS_TOLERANCE_KIB} KiB)",
            b.pid,
            b.rss_kib,
            a.rss_kib
        );
        summary.push(format!("pid {} fds {}->{} rss {}->{} KiB", b.pid, b.fds, a.fds, b.rss_kib, a.rss_kib));
    }
    let line = format!("{what}: {}", summary.join("; "));
    eprintln!("[faults] {line}");
    line
}

// ---------------------------------------------------------------------------------------
// misbehaving clients

fn check_disconnects_mid_response(c: &mut Checks, srv: &Server, mpm: Mpm) {
    c.run(&format!("{}: {DISCONNECTS} disconnects mid-response", mpm.name()), || {
        let port = srv.apache.port;
        let pids = srv.children(expected_children(mpm));
        // Warm-up, a round as long as the measured one: the first of these allocate
        // what later ones reuse (each worker thread's Python thread state, the
        // traceback machinery, log buffers, Python's free lists).
        for i in 0..DISCONNECTS {
            srv.wait_outstanding("closes.txt", i);
            disconnect_mid_response(port, "/f/stream");
        }
        let warm = srv.wait_record("closes.txt", DISCONNECTS).len();
        assert_eq!(warm, DISCONNECTS, "close() after the warm-up disconnects: {:?}", srv.record("closes.txt"));
        thread::sleep(Duration::from_millis(500));
        let before = usage(&pids);
        let mark = log_mark(&srv.apache);
        for i in 0..DISCONNECTS {
            srv.wait_outstanding("closes.txt", warm + i);
            disconnect_mid_response(port, "/f/stream");
        }
        let closes = srv.wait_record("closes.txt", warm + DISCONNECTS);
        assert_eq!(
            closes.len(),
            warm + DISCONNECTS,
            "close() must run once per response: {} records for {} responses",
            closes.len(),
            warm + DISCONNECTS
        );
        for line in &closes {
            let (pid, items) = line.split_once(' ').expect("close record");
            assert!(pids.contains(&pid.parse().unwrap()), "close() in an unknown process: {line}");
            let items: usize = items.parse().unwrap();
            assert!(items < 4000, "the response was not cut short when the client left: {line}");
        }
        assert_usage_back(&before, &format!("{} after {DISCONNECTS} disconnects mid-response", mpm.name()));
        let log = srv.apache.error_log();
        let cut = lines_with(log.get(mark..).unwrap_or(""), &format!("exception raised by WSGI script {}", srv.script));
        assert_eq!(cut.len(), DISCONNECTS, "one log entry per response cut short, naming the script");
        assert_no_crash(&log);
        assert_eq!(srv.children(expected_children(mpm)), pids, "the same children serve on");
        srv.hello_ok();
    });
}

fn check_disconnects_mid_body(c: &mut Checks, srv: &Server, mpm: Mpm) {
    c.run(&format!("{}: {BODY_DISCONNECTS} disconnects mid-body", mpm.name()), || {
        let port = srv.apache.port;
        let pids = srv.children(expected_children(mpm));
        let base = srv.record("bodies.txt").len();
        // Warm-up round (see the mid-response check).
        for i in 0..BODY_DISCONNECTS {
            srv.wait_outstanding("bodies.txt", base + i);
            disconnect_mid_body(port, "/f/upload");
        }
        srv.wait_record("bodies.txt", base + BODY_DISCONNECTS);
        thread::sleep(Duration::from_millis(500));
        let before = usage(&pids);
        let mark = log_mark(&srv.apache);
        for i in 0..BODY_DISCONNECTS {
            srv.wait_outstanding("bodies.txt", base + BODY_DISCONNECTS + i);
            disconnect_mid_body(port, "/f/upload");
        }
        let bodies = srv.wait_record("bodies.txt", base + 2 * BODY_DISCONNECTS);
        assert_eq!(bodies.len(), base + 2 * BODY_DISCONNECTS, "one record per upload: {bodies:?}");
        for line in &bodies[base..] {
            assert!(line.contains(" OSError after "), "the app must see an OSError: {line}");
            assert!(line.contains("closed the connection"), "the OSError should say why: {line}");
        }
        let needle = format!("cannot read the request body for WSGI script {}", srv.script);
        let (_, log) = srv.apache.wait_log(Duration::from_secs(10), |log| {
            lines_with(log.get(mark..).unwrap_or(""), &needle).len() >= BODY_DISCONNECTS
        });
        let named = lines_with(log.get(mark..).unwrap_or(""), &needle);
        assert_eq!(named.len(), BODY_DISCONNECTS, "a log line naming the script per failed body:\n{}", log.get(mark..).unwrap_or(""));
        assert_usage_back(&before, &format!("{} after {BODY_DISCONNECTS} disconnects mid-body", mpm.name()));
        assert_no_crash(&log);
        // The next upload is read in full.
        let body = pseudo_random_bytes(100_000, 3);
        let r = srv.apache.post("/f/upload", &body);
        assert_eq!(r.status, 200, "{}", short(&r.text()));
        assert_eq!(r.text(), "got 100000 bytes");
        assert_eq!(srv.children(expected_children(mpm)), pids, "the same children serve on");
    });
}

fn check_slow_body(c: &mut Checks, srv: &Server, mpm: Mpm) {
    c.run(&format!("{}: a body slower than Timeout 2", mpm.name()), || {
        let port = srv.apache.port;
        let pids = srv.children(expected_children(mpm));
        let base = srv.record("bodies.txt").len();
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(
            format!(
                "POST /f/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 100\r\n\
                 Connection: close\r\n\r\n0123456789"
            )
            .as_bytes(),
        )
        .unwrap();
        // The other 90 bytes never come; the server gives up after its Timeout.
        let reply = read_until_close(&mut s, Duration::from_secs(15));
        // Closed on this side too, or the child waits for it in its
        // lingering close while the checks below need the other two (the
        // parent logs AH00161 when it finds all three busy).
        drop(s);
        assert!(reply.closed, "the server kept the connection open past its Timeout: {}", short(&reply.text()));
        let status = reply.status();
        assert!(
            reply.bytes.is_empty() || status == Some(408),
            "expected 408 or a closed connection, got {}",
            short(&reply.text())
        );
        let bodies = srv.wait_record("bodies.txt", base + 1);
        let line = bodies.get(base).cloned().unwrap_or_default();
        assert!(line.contains(" OSError after ") && line.contains("timed out"), "the app's record: {line:?}");
        let pid: u32 = line.split(' ').next().unwrap().parse().unwrap();
        let log = srv.apache.error_log();
        assert!(
            log.lines().any(|l| l.contains(&format!("cannot read the request body for WSGI script {}", srv.script))
                && l.contains("timed out")),
            "no log line for the timed-out body"
        );
        assert_no_crash(&log);
        assert_eq!(srv.children(expected_children(mpm)), pids, "the same children serve on");
        assert!(pids.contains(&pid), "the upload ran in {pid}, not a child of this server ({pids:?})");
        // The child that timed out still serves: on event it is the only one; on
        // prefork ask until it answers (each child takes connections in turn).
        let deadline = Instant::now() + Duration::from_secs(20);
        while srv.hello_ok() != pid {
            assert!(Instant::now() < deadline, "child {pid} did not serve again");
        }
    });
}

// ---------------------------------------------------------------------------------------
// pipelining and keep-alive

/// One complete response at the start of `buf`, and its length; None if incomplete.
/// Understands Content-Length and chunked bodies (responses here always have one).
fn parse_one(buf: &[u8]) -> Option<(Response, usize)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let header = |name: &str| {
        head.split("\r\n").find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_string()))
    };
    let end = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut at = head_end;
        loop {
            let eol = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
            let size_text = String::from_utf8_lossy(&buf[at..eol]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).ok()?;
            at = eol + 2;
            if size == 0 {
                // no trailers here: the blank line ends the body
                if buf.len() < at + 2 {
                    return None;
                }
                break at + 2;
            }
            if buf.len() < at + size + 2 {
                return None;
            }
            at += size + 2;
        }
    } else {
        let len: usize = header("content-length").map(|v| v.parse().unwrap()).unwrap_or(0);
        if buf.len() < head_end + len {
            return None;
        }
        head_end + len
    };
    let r = parse_response(&buf[..end], false).expect("a complete response parses");
    Some((r, end))
}

/// Reads from `s` into `buf` until one whole response is there; removes and returns it.
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Response {
    let mut chunk = vec![0u8; 65536];
    loop {
        if let Some((r, used)) = parse_one(buf) {
            buf.drain(..used);
            return r;
        }
        let n = s.read(&mut chunk).unwrap_or_else(|e| panic!("reading a response ({} bytes so far): {e}", buf.len()));
        assert!(n > 0, "connection closed mid-response: {:?}", String::from_utf8_lossy(&buf[..buf.len().min(300)]));
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn request_bytes(port: u16, method: &str, target: &str, body: &[u8], close: bool) -> Vec<u8> {
    let mut v = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n").into_bytes();
    if method == "POST" {
        v.extend_from_slice(format!("Content-Type: application/octet-stream\r\nContent-Length: {}\r\n", body.len()).as_bytes());
    }
    if close {
        v.extend_from_slice(b"Connection: close\r\n");
    }
    v.extend_from_slice(b"\r\n");
    v.extend_from_slice(body);
    v
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 256) as u8).collect()
}

fn check_pipelining(c: &mut Checks, srv: &Server, mpm: Mpm) {
    c.run(&format!("{}: pipelined requests", mpm.name()), || {
        let port = srv.apache.port;
        let post_big = pseudo_random_bytes(70_000, 11);
        // (method, path, body, expected body)
        let plan: Vec<(&str, String, Vec<u8>, Vec<u8>)> = vec![
            ("GET", "/f/hello".into(), vec![], b"hello from ".to_vec()),
            ("POST", "/f/echo".into(), post_big.clone(), post_big.clone()),
            ("GET", "/f/big?n=300000".into(), vec![], pattern(300_000)),
            ("POST", "/f/echo".into(), b"abc".to_vec(), b"abc".to_vec()),
            ("GET", "/f/gen".into(), vec![], b"part0;part1;part2;part3;part4;part5;part6;".to_vec()),
            ("POST", "/f/echo".into(), vec![], vec![]),
            ("GET", "/f/big?n=1".into(), vec![], pattern(1)),
            ("GET", "/f/hello".into(), vec![], b"hello from ".to_vec()),
        ];
        for round in 0..3 {
            let mut all = Vec::new();
            for (i, (m, p, b, _)) in plan.iter().enumerate() {
                let sep = if p.contains('?') { '&' } else { '?' };
                all.extend(request_bytes(port, m, &format!("{p}{sep}seq={i}"), b, i + 1 == plan.len()));
            }
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
            // All requests in one write (the kernel may still split it; the server
            // sees them queued behind each other either way).
            s.write_all(&all).unwrap();
            let mut buf = Vec::new();
            let mut pids = BTreeSet::new();
            for (i, (m, p, _, want)) in plan.iter().enumerate() {
                let r = read_response(&mut s, &mut buf);
                let what = format!("round {round}, #{i} {m} {p}");
                assert_eq!(r.status, 200, "{what}: {}", short(&r.text()));
                assert_eq!(r.header("x-seq"), Some(i.to_string().as_str()), "{what}: responses out of order");
                if p == "/f/hello" {
                    assert!(r.body.starts_with(want), "{what}: {}", short(&r.text()));
                } else {
                    assert!(r.body == *want, "{what}: body of {} bytes differs from the {} expected", r.body.len(), want.len());
                }
                if p == "/f/gen" {
                    assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{what}: {:?}", r.headers);
                }
                pids.insert(r.header("x-pid").unwrap().to_string());
            }
            let rest = read_until_close(&mut s, Duration::from_secs(10));
            assert!(rest.closed, "round {round}: connection left open after Connection: close");
            assert!(buf.is_empty() && rest.bytes.is_empty(), "round {round}: extra bytes after the last response");
            assert_eq!(pids.len(), 1, "round {round}: one connection, one child: {pids:?}");
        }
        assert_no_crash(&srv.apache.error_log());
    });
}

fn check_keepalive(c: &mut Checks, srv: &Server, mpm: Mpm) {
    c.run(&format!("{}: 300 requests on one keep-alive connection", mpm.name()), || {
        let port = srv.apache.port;
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = Vec::new();
        let mut pids = BTreeSet::new();
        let n = 300;
        for i in 0..n {
            let last = i + 1 == n;
            let (req, want): (Vec<u8>, Vec<u8>) = match i % 3 {
                0 => (request_bytes(port, "GET", &format!("/f/hello?seq={i}"), b"", last), b"hello from ".to_vec()),
                1 => {
                    let body = pseudo_random_bytes(1000 + i * 37, i as u64);
                    (request_bytes(port, "POST", &format!("/f/echo?seq={i}"), &body, last), body)
                }
                _ => (request_bytes(port, "GET", &format!("/f/big?n={}&seq={i}", i * 101), b"", last), pattern(i * 101)),
            };
            s.write_all(&req).unwrap_or_else(|e| panic!("request {i}: the server closed the connection: {e}"));
            let r = read_response(&mut s, &mut buf);
            assert_eq!(r.status, 200, "request {i}: {}", short(&r.text()));
            assert_eq!(r.header("x-seq"), Some(i.to_string().as_str()));
            assert!(r.body.starts_with(&want) && (i % 3 == 0 || r.body.len() == want.len()), "request {i}: body differs");
            if !last {
                assert!(
                    !r.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")),
                    "request {i}: the server ended keep-alive: {:?}",
                    r.headers
                );
            }
            pids.insert(r.header("x-pid").unwrap().to_string());
        }
        assert_eq!(pids.len(), 1, "requests on one connection served by several processes: {pids:?}");
        let rest = read_until_close(&mut s, Duration::from_secs(10));
        assert!(rest.closed && rest.bytes.is_empty(), "after the last request: {}", short(&rest.text()));
    });
}

fn suite(mpm: Mpm) {
    let srv = start(mpm);
    let mut c = Checks::new(format!("client faults {}", mpm.name()));
    check_pipelining(&mut c, &srv, mpm);
    check_keepalive(&mut c, &srv, mpm);
    check_disconnects_mid_body(&mut c, &srv, mpm);
    check_disconnects_mid_response(&mut c, &srv, mpm);
    check_slow_body(&mut c, &srv, mpm);
    c.run(&format!("{}: no crash, nothing killed", mpm.name()), || {
        let log = srv.apache.error_log();
        assert_no_crash(&log);
        for bad in ["still did not exit", "AH00161", "scoreboard is full"] {
            assert!(lines_with(&log, bad).is_empty(), "{bad}:\n{}", lines_with(&log, bad).join("\n"));
        }
    });
    rp_finish(c);
}

#[test]
fn client_faults_event() {
    suite(Mpm::Event);
}

#[test]
fn client_faults_prefork() {
    suite(Mpm::Prefork);
}
