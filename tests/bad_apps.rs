//! Broken applications: a catalogue of ways a WSGI application can misbehave
//! (tests/apps/bad_apps.wsgi, bad_import*.wsgi). For every case the test asserts
//!
//! * what the client gets: a 500 when nothing was sent yet, a cut response (chunked body
//!   left unterminated, or fewer bytes than the Content-Length, connection closed) once
//!   the headers went out; a few cases have a defined complete answer instead;
//! * an error-log line naming the script by its path and a line naming the fault (the
//!   exception type and message, or the validation error), logged by the same child;
//! * that the child survived: the server runs ONE child (`ServerLimit 1`), and the next
//!   request (a probe answering its pid) is served normally by the very pid that logged
//!   the fault.
//!
//! Injected header text (`X-Injected: 1` inside a status, header name or value) must never
//! show up in the raw bytes of any response. The catalogue runs under event and prefork.
//! The C-level crash (`ctypes.string_at(0)`) runs on prefork with three children: only
//! the crashing child dies, and the others keep serving (one of them on a keep-alive
//! connection held across the crash).
//!
//! Run: `cargo test --release --test bad_apps -- --test-threads=2 --nocapture` (the case
//! counts are printed).
mod common;
use common::bad_apps::*;
use common::*;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

struct Bench {
    apache: Apache,
    apps: BadApps,
}

impl Bench {
    fn start(mpm: Mpm, children: u32) -> Bench {
        let dir = TestDir::new(&format!("bad-apps-{}", mpm.name()));
        let apps = BadApps::install(&dir);
        let processes = match mpm {
            // one process with threads: every request goes to the same child
            Mpm::Event | Mpm::Worker => format!(
                "ServerLimit {children}\nStartServers {children}\nThreadsPerChild 8\nMaxRequestWorkers {}\n\
                 MinSpareThreads 1\nMaxSpareThreads {}\n",
                8 * children,
                8 * children + 8
            ),
            Mpm::Prefork => format!(
                "ServerLimit {children}\nStartServers {children}\nMaxRequestWorkers {children}\n\
                 MinSpareServers {children}\nMaxSpareServers {children}\n"
            ),
        };
        let conf = Conf::new(mpm).extra(&format!("{processes}KeepAliveTimeout 30\n{}", apps.aliases()));
        let apache = Apache::start(dir, &conf, &[]);
        Bench { apache, apps }
    }

    fn probe_pid(&self) -> u32 {
        self.apps.probe_pid(&self.apache)
    }

    fn get_raw(&self, url: &str) -> RawReply {
        self.apps.get_raw(&self.apache, url)
    }

    fn wait_closed(&self, tok: &str) -> Option<String> {
        self.apps.wait_closed(tok)
    }
}

/// A case in the only child: the fault is logged by it, and it serves the next request.
fn run_case(b: &Bench, c: &Case, n: usize) {
    let seen = b.apps.run_case(&b.apache, c, n);
    assert_eq!(seen.logged_by, seen.served_before, "the fault was logged by another process than the only child");
    assert_eq!(seen.served_after, seen.logged_by, "the next request was not served by the same child");
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

/// A 1 GiB generator body to a client reading ~1 MiB/s for 4 s: the child's memory stays
/// bounded while it streams; after the client goes away the app stops being iterated,
/// close() runs, the failed write is logged naming the script, and the child serves on.
fn huge_body_to_slow_client(b: &Bench, c: &mut Checks) {
    c.run("1 GiB generator body to a slow client: bounded memory, close() after disconnect", || {
        let pid = b.probe_pid();
        assert_eq!(b.apache.child_pids(), vec![pid], "one child expected");
        let base = vm_rss_kib(pid).expect("VmRSS");
        let mark = log_mark(&b.apache);
        let tok = "huge";
        let mut s = TcpStream::connect(("127.0.0.1", b.apache.port)).unwrap();
        s.write_all(
            format!("GET /bad?case=huge&tok={tok} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n", b.apache.port).as_bytes(),
        )
        .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = Vec::new();
        let mut got = 0usize;
        let mut peak = base;
        let mut buf = vec![0u8; 16 * 1024];
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(4) {
            // 16 KiB every 15 ms: about 1 MiB/s
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "server closed the stream early after {got} bytes");
            if head.len() < 200 {
                head.extend_from_slice(&buf[..n.min(200)]);
            }
            got += n;
            if let Some(rss) = vm_rss_kib(pid) {
                peak = peak.max(rss);
            }
            std::thread::sleep(Duration::from_millis(15));
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        assert!(head.starts_with("HTTP/1.1 200 "), "{head:?}");
        assert!(got > 1 << 20, "only {got} bytes arrived in 4 s");
        assert!(got < 1 << 29, "{got} bytes: the client did not read slowly");
        let growth_mib = (peak.saturating_sub(base)) as f64 / 1024.0;
        eprintln!(
            "[bad_apps] huge body: read {:.1} MiB in 4 s; child VmRSS {} KiB before, peak {} KiB (+{growth_mib:.1} MiB)",
            got as f64 / 1048576.0,
            base,
            peak
        );
        assert!(growth_mib < 64.0, "the child grew by {growth_mib:.1} MiB while streaming to a slow client");
        drop(s);
        let closed = b.wait_closed(tok).expect("close() did not run after the client went away");
        let items: usize = closed.trim_start_matches("closed after ").trim_end_matches(" items").parse().unwrap();
        assert!(items < 16384, "the whole 1 GiB was generated: {closed}");
        let pid_logged = fault_logged(&b.apache, mark, &b.apps.script, &["OSError:", "failed to write the response to the client"]);
        assert_eq!(pid_logged, pid);
        assert_eq!(b.probe_pid(), pid, "the next request was not served by the same child");
    });
}

fn catalogue(mpm: Mpm) {
    let b = Bench::start(mpm, 1);
    let mut c = Checks::new(format!("bad apps {}", mpm.name()));
    for (n, case) in CASES.iter().enumerate() {
        c.run(&format!("{} -> {:?}", case.url, case.expect), || run_case(&b, case, n));
    }
    huge_body_to_slow_client(&b, &mut c);
    c.run("the same single child served everything", || {
        let pids = b.apache.child_pids();
        assert_eq!(pids.len(), 1, "{pids:?}");
        let log = b.apache.error_log();
        assert_no_crash(&log);
        let inits = init_lines(&log);
        assert_eq!(inits.len(), 1, "Python was initialised more than once (a child was replaced): {inits:?}");
    });
    eprintln!("[bad_apps] {}: {} cases tried ({} catalogue + 1 slow 1 GiB body)", mpm.name(), CASES.len() + 1, CASES.len());
    drop(b);
    rp_finish(c);
}

#[test]
fn bad_apps_event() {
    catalogue(Mpm::Event);
}

#[test]
fn bad_apps_prefork() {
    catalogue(Mpm::Prefork);
}

/// Reads one response with a Content-Length from a keep-alive connection.
fn keepalive_get(s: &mut TcpStream, port: u16, path: &str) -> Result<(u16, String), String> {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes()).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).into_owned();
            let cl: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .ok_or_else(|| format!("no Content-Length: {head}"))?;
            if data.len() >= end + 4 + cl {
                let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                return Ok((status, String::from_utf8_lossy(&data[end + 4..end + 4 + cl]).into_owned()));
            }
        }
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("connection closed: {:?}", String::from_utf8_lossy(&data)));
        }
        data.extend_from_slice(&buf[..n]);
    }
}

/// A segfault in one request (prefork, three children): that child dies and is
/// replaced; the log shows the exit signal for that pid only, and the traceback
/// faulthandler writes names the script; the other children keep serving, one of them
/// on a keep-alive connection opened before the crash.
#[test]
fn c_level_crash_kills_only_its_child() {
    let b = Bench::start(Mpm::Prefork, 3);
    let port = b.apache.port;
    let (_, log) = b.apache.wait_children_logged(Duration::from_secs(10), |l, p| {
        l.contains("initialised in process") && l.contains(&format!("process {p};"))
    });
    let before = b.apache.child_pids();
    assert_eq!(before.len(), 3, "three children expected: {before:?}\n{log}");
    let mut keep = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (st, text) = keepalive_get(&mut keep, port, "/probe").unwrap();
    assert_eq!(st, 200);
    let survivor: u32 = text.trim_start_matches("pid=").parse().unwrap();

    let mark = log_mark(&b.apache);
    let reply = b.get_raw("/bad?case=crash");
    assert!(reply.closed, "the client of the crashing request was left hanging");
    assert!(reply.status().is_none(), "the crashing request got a response: {:?}", reply.text());
    let said = wait_line_after(&b.apache, mark, Duration::from_secs(10), &["crashing in pid"]).unwrap();
    let crashed: u32 = said.rsplit("crashing in pid ").next().unwrap().trim().parse().unwrap();
    assert_ne!(crashed, survivor, "the crash ran in the child holding the keep-alive connection");
    let signal = wait_line_after(
        &b.apache,
        mark,
        Duration::from_secs(10),
        &[&format!("child pid {crashed} exit signal Segmentation fault")],
    )
    .unwrap();
    assert!(signal.contains("AH00052"), "{signal}");
    let log = b.apache.error_log();
    let new = &log[mark..];
    let signals: Vec<&str> = new.lines().filter(|l| l.contains("exit signal")).collect();
    assert_eq!(signals.len(), 1, "exit signals for other children too: {signals:?}");
    assert!(new.contains("Fatal Python error: Segmentation fault"), "faulthandler output missing:\n{new}");
    assert!(
        new.lines().any(|l| l.contains(&format!("File \"{}\"", b.apps.script)) && l.contains("application")),
        "no traceback line names {}:\n{new}",
        b.apps.script
    );

    // the child holding the keep-alive connection answers on it, as before
    let (st, text) = keepalive_get(&mut keep, port, "/probe").unwrap();
    assert_eq!((st, text), (200, format!("pid={survivor}")), "the keep-alive child after the crash");
    // other requests, on new connections, succeed; the crashed child is replaced
    for _ in 0..6 {
        let pid = b.probe_pid();
        assert_ne!(pid, crashed);
        let r = b.apache.get("/static.txt");
        assert_eq!(r.status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let after = b.apache.child_pids();
        if after.len() == 3 || Instant::now() > deadline {
            break after;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!after.contains(&crashed), "{crashed} still listed: {after:?}");
    for p in &before {
        if *p != crashed {
            assert!(after.contains(p), "child {p} did not survive another child's crash: {before:?} -> {after:?}");
        }
    }
    assert_eq!(after.len(), 3, "the crashed child was not replaced: {after:?}");
    eprintln!("[bad_apps] crash: 1 case tried (pid {crashed} crashed, {survivor} kept serving)");
}
