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
use common::*;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// What the client must get.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Apache's 500 page, nothing from the application.
    Error500,
    /// status 200 went out, then the response was cut; the body starts with this text
    Cut(&'static str),
    /// a complete response with this status and exactly this body
    Complete(u16, &'static str),
}

struct Case {
    /// URL path and query (without the tok parameter)
    url: &'static str,
    expect: Expect,
    /// text every one of which must be on one new log line (besides the script path)
    fault: &'static [&'static str],
    /// close() must have run, recording this text
    closed: Option<&'static str>,
    /// a request to send first (on its own), e.g. to set up state
    setup: Option<&'static str>,
}

const fn case(url: &'static str, expect: Expect, fault: &'static [&'static str]) -> Case {
    Case { url, expect, fault, closed: None, setup: None }
}

const CASES: &[Case] = &[
    // the application object itself
    case("/notcallable", Expect::Error500, &["TypeError: 'int' object is not callable"]),
    case("/arity1", Expect::Error500, &["TypeError: arity1() takes 1 positional argument but 2 were given"]),
    case("/arity3", Expect::Error500, &["TypeError: arity3() missing 1 required positional argument: 'extra'"]),
    case("/import_error", Expect::Error500, &["LookupError: bad-at-import"]),
    case("/import_exit", Expect::Error500, &["SystemExit: bad-exit-at-import"]),
    // start_response not called, or called wrongly
    case("/bad?case=no_start_response", Expect::Error500, &["RuntimeError:", "without calling start_response() first"]),
    case("/bad?case=no_start_response_empty", Expect::Error500, &["RuntimeError:", "without calling start_response() first"]),
    case("/bad?case=start_response_twice", Expect::Cut("first-output|"), &["RuntimeError:", "called again after the response headers were sent"]),
    case("/bad?case=headers_tuple", Expect::Error500, &["TypeError:", "response headers must be a list, not tuple"]),
    case("/bad?case=header_3tuple", Expect::Error500, &["TypeError:", "must be a (name, value) tuple", "'X-A', 'b', 'c'"]),
    case("/bad?case=header_str", Expect::Error500, &["TypeError:", "must be a (name, value) tuple, got str"]),
    case("/bad?case=name_bytes", Expect::Error500, &["TypeError:", "header name must be a str, not bytes"]),
    case("/bad?case=value_int", Expect::Error500, &["TypeError:", "header value must be a str, not int"]),
    case("/bad?case=value_nonlatin", Expect::Error500, &["ValueError:", "which is not Latin-1"]),
    case("/bad?case=value_crlf", Expect::Error500, &["ValueError:", "CR, LF and NUL are not allowed"]),
    case("/bad?case=value_lf", Expect::Error500, &["ValueError:", "CR, LF and NUL are not allowed"]),
    case("/bad?case=value_cr", Expect::Error500, &["ValueError:", "CR, LF and NUL are not allowed"]),
    case("/bad?case=name_crlf", Expect::Error500, &["ValueError:", "names may hold only"]),
    case("/bad?case=name_space", Expect::Error500, &["ValueError:", "header name \"X A\" contains ' '"]),
    case("/bad?case=status_short", Expect::Error500, &["ValueError:", "status \"20 OK\" must start with a three-digit code"]),
    case("/bad?case=status_abc", Expect::Error500, &["ValueError:", "status \"abc\" must start with a three-digit code"]),
    case("/bad?case=status_nospace", Expect::Error500, &["ValueError:", "status \"200OK\" must start with a three-digit code"]),
    case("/bad?case=status_ctrl", Expect::Error500, &["ValueError:", "a status line must be printable Latin-1 text"]),
    case("/bad?case=status_int", Expect::Error500, &["TypeError:", "status must be a str, not int"]),
    // the body
    case("/bad?case=body_str", Expect::Error500, &["TypeError:", "response body items must be bytes, not str"]),
    case("/bad?case=body_int", Expect::Error500, &["TypeError:", "response body items must be bytes, not int"]),
    case("/bad?case=body_none", Expect::Error500, &["TypeError:", "response body items must be bytes, not NoneType"]),
    case("/bad?case=result_none", Expect::Error500, &["TypeError: 'NoneType' object is not iterable"]),
    Case { closed: Some("closed after 0 items"), ..case("/bad?case=gen_never_started", Expect::Error500, &["ValueError: bad-first-next"]) },
    case("/bad?case=generator_raises_first", Expect::Error500, &["ValueError: bad-generator-first-next"]),
    Case {
        closed: Some("closed after 2 items"),
        ..case("/bad?case=iter_midway", Expect::Cut("part-one|part-two|"), &["RuntimeError: bad-midway"])
    },
    // close() raising is logged; the response, complete by then, stands (as with
    // mod_wsgi; the conformance suite compares the two on it).
    Case {
        closed: Some("closed after 2 items"),
        ..case(
            "/bad?case=close_raises",
            Expect::Complete(200, "body-then-failing-close"),
            &["RuntimeError: bad-close-raised"],
        )
    },
    Case {
        closed: Some("closed after 2 items"),
        ..case(
            "/bad?case=close_exit",
            Expect::Complete(200, "body-then-exiting-close"),
            &["SystemExit: bad-close-exit"],
        )
    },
    Case {
        closed: Some("closed after 1 items"),
        ..case("/bad?case=exit_midway", Expect::Cut("before-exit|"), &["SystemExit: bad-exit-midway"])
    },
    Case {
        closed: Some("closed after 1 items"),
        ..case("/bad?case=interrupt_midway", Expect::Cut("before-interrupt|"), &["KeyboardInterrupt: bad-interrupt-midway"])
    },
    case("/bad?case=unprintable_exception", Expect::Error500, &["Unprintable", "<exception str() failed>"]),
    case("/bad?case=recursion", Expect::Error500, &["RecursionError: maximum recursion depth exceeded"]),
    case("/bad?case=memory", Expect::Error500, &["MemoryError"]),
    Case {
        setup: Some("/bad?case=keep_write"),
        ..case("/bad?case=stale_write", Expect::Error500, &["RuntimeError: the response has already been completed"])
    },
    Case {
        closed: Some("closed after 1 items"),
        ..case("/bad?case=cl_larger", Expect::Cut("only ten b"), &["returned fewer bytes (10) than its Content-Length (100)"])
    },
    Case {
        closed: Some("closed after 2 items"),
        ..case("/bad?case=cl_smaller", Expect::Complete(200, "01234"), &["more bytes than its Content-Length (5)", "11 bytes were not sent"])
    },
    // BaseExceptions that would end a Python program must not end the child
    case("/bad?case=system_exit", Expect::Error500, &["SystemExit: 3"]),
    case("/bad?case=sys_exit", Expect::Error500, &["SystemExit: bad-sys-exit"]),
    case("/bad?case=keyboard_interrupt", Expect::Error500, &["KeyboardInterrupt: bad-interrupt"]),
];

struct Bench {
    apache: Apache,
    /// path of bad_apps.wsgi
    script: String,
    import_error: String,
    import_exit: String,
    state: String,
}

impl Bench {
    fn start(mpm: Mpm, children: u32) -> Bench {
        let dir = TestDir::new(&format!("bad-apps-{}", mpm.name()));
        let state = dir.mkdir_www("state").to_string_lossy().into_owned();
        let script = dir.install_app("bad_apps.wsgi", &[("STATE_DIR", &state)]).to_string_lossy().into_owned();
        let import_error = dir.install_app("bad_import.wsgi", &[]).to_string_lossy().into_owned();
        let import_exit = dir.install_app("bad_import_exit.wsgi", &[]).to_string_lossy().into_owned();
        dir.write("htdocs/static.txt", STATIC_BODY);
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
        let conf = Conf::new(mpm).extra(&format!(
            "{processes}KeepAliveTimeout 30\n\
             WSGIScriptAlias /bad {script}\n\
             WSGIScriptAlias /probe {script} callable-object=probe\n\
             WSGIScriptAlias /notcallable {script} callable-object=not_callable\n\
             WSGIScriptAlias /arity1 {script} callable-object=arity1\n\
             WSGIScriptAlias /arity3 {script} callable-object=arity3\n\
             WSGIScriptAlias /import_error {import_error}\n\
             WSGIScriptAlias /import_exit {import_exit}\n"
        ));
        let apache = Apache::start(dir, &conf, &[]);
        Bench { apache, script, import_error, import_exit, state }
    }

    /// The script a URL runs.
    fn script_for(&self, url: &str) -> &str {
        if url.starts_with("/import_error") {
            &self.import_error
        } else if url.starts_with("/import_exit") {
            &self.import_exit
        } else {
            &self.script
        }
    }

    /// The pid answering /probe (on a new connection).
    fn probe_pid(&self) -> u32 {
        let r = self.apache.get("/probe");
        assert_eq!(r.status, 200, "probe: {}", short(&r.text()));
        r.text().strip_prefix("pid=").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("probe said {:?}", r.text()))
    }

    fn get_raw(&self, url: &str) -> RawReply {
        let req = format!("GET {url} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", self.apache.port);
        raw_exchange(self.apache.port, req.as_bytes(), Duration::from_secs(20))
    }

    /// Waits for the close() record of `tok`.
    fn wait_closed(&self, tok: &str) -> Option<String> {
        let path = format!("{}/{tok}", self.state);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(t) = fs::read_to_string(&path) {
                return Some(t);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A new log line (after `mark`) naming `script` and one holding every `fault` text;
/// returns the pid that logged them (both must come from the same pid).
fn fault_logged(apache: &Apache, mark: usize, script: &str, fault: &[&str]) -> u32 {
    let fault_line = wait_line_after(apache, mark, Duration::from_secs(10), fault).unwrap_or_else(|e| panic!("{e}"));
    let pid = log_pid(&fault_line).unwrap_or_else(|| panic!("no pid in {fault_line:?}"));
    let log = apache.error_log();
    let new = &log[mark..];
    let script_lines: Vec<&str> = new.lines().filter(|l| l.contains(script)).collect();
    assert!(!script_lines.is_empty(), "no new log line names the script {script}:\n{new}");
    assert!(
        script_lines.iter().any(|l| log_pid(l) == Some(pid)),
        "the lines naming {script} {script_lines:?} come from another pid than the fault line {fault_line:?}"
    );
    pid
}

/// The injected header must not be in the response head, whatever the case.
fn assert_no_injection(reply: &RawReply, what: &str) {
    let head = reply.head().to_ascii_lowercase();
    assert!(
        !head.split("\r\n").any(|l| l.trim_start().starts_with("x-injected")),
        "{what}: an injected header line reached the client:\n{}",
        reply.text()
    );
    // nor anywhere else in the bytes (body of an error page included) as a header line
    assert!(
        !reply.text().to_ascii_lowercase().contains("\nx-injected"),
        "{what}: injected text at the start of a line:\n{}",
        reply.text()
    );
}

fn check_reply(reply: &RawReply, expect: Expect, what: &str) {
    assert!(reply.closed, "{what}: the client was left hanging (no close within 20 s): {:?}", short(&reply.text()));
    match expect {
        Expect::Error500 => {
            assert_eq!(reply.status(), Some(500), "{what}: {}", short(&reply.text()));
            assert!(
                !reply.text().contains("must not be sent") && !reply.text().contains("never"),
                "{what}: application output leaked into the 500: {}",
                reply.text()
            );
        }
        Expect::Cut(prefix) => {
            assert_eq!(reply.status(), Some(200), "{what}: {}", short(&reply.text()));
            let body = reply.after_head();
            let text = String::from_utf8_lossy(&body);
            if reply.is_chunked() {
                assert!(!body.ends_with(b"0\r\n\r\n"), "{what}: chunked body was terminated: {text:?}");
                let mut got = String::new();
                // the chunks that did arrive
                let mut rest: &[u8] = &body;
                while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
                    let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16).unwrap_or(0);
                    if size == 0 || rest.len() < eol + 2 + size {
                        break;
                    }
                    got.push_str(&String::from_utf8_lossy(&rest[eol + 2..eol + 2 + size]));
                    rest = &rest[(eol + 4 + size).min(rest.len())..];
                }
                assert_eq!(got, prefix, "{what}: body before the cut");
            } else {
                let cl: usize = reply
                    .header("content-length")
                    .unwrap_or_else(|| panic!("{what}: neither chunked nor a Content-Length: {}", reply.head()))
                    .parse()
                    .unwrap();
                assert!(body.len() < cl, "{what}: a complete body ({} of {cl} bytes)", body.len());
                assert_eq!(text, prefix, "{what}: body before the cut");
            }
        }
        Expect::Complete(code, body) => {
            assert_eq!(reply.status(), Some(code), "{what}: {}", short(&reply.text()));
            let r = reply.response().unwrap_or_else(|e| panic!("{what}: incomplete response ({e}): {:?}", reply.text()));
            assert_eq!(r.text(), body, "{what}");
            if let Some(cl) = reply.header("content-length") {
                assert_eq!(reply.after_head().len(), cl.parse::<usize>().unwrap(), "{what}: bytes beyond Content-Length");
            }
        }
    }
}

fn run_case(b: &Bench, c: &Case, n: usize) {
    let pid_before = b.probe_pid();
    if let Some(setup) = c.setup {
        let r = b.apache.get(setup);
        assert_eq!(r.status, 200, "setup {setup}: {}", short(&r.text()));
    }
    let tok = format!("case{n}");
    let sep = if c.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}tok={tok}", c.url);
    let mark = log_mark(&b.apache);
    let reply = b.get_raw(&url);
    check_reply(&reply, c.expect, c.url);
    assert_no_injection(&reply, c.url);
    let script = b.script_for(c.url);
    let pid = fault_logged(&b.apache, mark, script, c.fault);
    assert_eq!(pid, pid_before, "the fault was logged by another process than the only child");
    if let Some(want) = c.closed {
        assert_eq!(b.wait_closed(&tok).as_deref(), Some(want), "close() of the response");
    }
    // the same child serves the next request normally
    assert_eq!(b.probe_pid(), pid, "the next request was not served by the same child");
    let r = b.apache.get("/static.txt");
    assert_eq!((r.status, r.text().as_str()), (200, STATIC_BODY));
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
        let pid_logged = fault_logged(&b.apache, mark, &b.script, &["OSError:", "failed to write the response to the client"]);
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
        new.lines().any(|l| l.contains(&format!("File \"{}\"", b.script)) && l.contains("application")),
        "no traceback line names {}:\n{new}",
        b.script
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
