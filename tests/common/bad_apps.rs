//! The broken-application catalogue (tests/apps/bad_apps.wsgi, bad_import*.wsgi): its
//! cases, what the client must get for each and the log lines each must leave. Run in
//! the Apache children by tests/bad_apps.rs and through a daemon process group by
//! tests/daemon_faults.rs, with the same expectations.
use super::*;
use std::fs;
use std::time::{Duration, Instant};

/// What the client must get.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// Apache's 500 page, nothing from the application.
    Error500,
    /// status 200 went out, then the response was cut; the body starts with this text
    Cut(&'static str),
    /// a complete response with this status and exactly this body
    Complete(u16, &'static str),
}

pub struct Case {
    /// URL path and query (without the tok parameter)
    pub url: &'static str,
    pub expect: Expect,
    /// text every one of which must be on one new log line (besides the script path)
    pub fault: &'static [&'static str],
    /// close() must have run, recording this text
    pub closed: Option<&'static str>,
    /// a request to send first (on its own), e.g. to set up state
    pub setup: Option<&'static str>,
}

pub const fn case(url: &'static str, expect: Expect, fault: &'static [&'static str]) -> Case {
    Case { url, expect, fault, closed: None, setup: None }
}

pub const CASES: &[Case] = &[
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

/// A new log line (after `mark`) naming `script` and one holding every `fault` text;
/// returns the pid that logged them (both must come from the same pid).
pub fn fault_logged(apache: &Apache, mark: usize, script: &str, fault: &[&str]) -> u32 {
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
pub fn assert_no_injection(reply: &RawReply, what: &str) {
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

pub fn check_reply(reply: &RawReply, expect: Expect, what: &str) {
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


/// The catalogue's scripts, installed in a server's directory.
pub struct BadApps {
    /// path of bad_apps.wsgi
    pub script: String,
    pub import_error: String,
    pub import_exit: String,
    /// where close() records are written (www-data-writable)
    pub state: String,
}

/// What one case left behind, for the caller to compare with its process layout.
pub struct CaseOutcome {
    /// the pid /probe answered with before the case
    pub served_before: u32,
    /// the pid that logged the fault (and the line naming the script)
    pub logged_by: u32,
    /// the pid /probe answered with after the case
    pub served_after: u32,
}

impl BadApps {
    pub fn install(dir: &TestDir) -> BadApps {
        let state = dir.mkdir_www("state").to_string_lossy().into_owned();
        let script = dir.install_app("bad_apps.wsgi", &[("STATE_DIR", &state)]).to_string_lossy().into_owned();
        let import_error = dir.install_app("bad_import.wsgi", &[]).to_string_lossy().into_owned();
        let import_exit = dir.install_app("bad_import_exit.wsgi", &[]).to_string_lossy().into_owned();
        dir.write("htdocs/static.txt", STATIC_BODY);
        BadApps { script, import_error, import_exit, state }
    }

    /// The WSGIScriptAlias lines mounting every case (and /probe).
    pub fn aliases(&self) -> String {
        let BadApps { script, import_error, import_exit, .. } = self;
        format!(
            "WSGIScriptAlias /bad {script}\n\
             WSGIScriptAlias /probe {script} callable-object=probe\n\
             WSGIScriptAlias /notcallable {script} callable-object=not_callable\n\
             WSGIScriptAlias /arity1 {script} callable-object=arity1\n\
             WSGIScriptAlias /arity3 {script} callable-object=arity3\n\
             WSGIScriptAlias /import_error {import_error}\n\
             WSGIScriptAlias /import_exit {import_exit}\n"
        )
    }

    /// The script a URL runs.
    pub fn script_for(&self, url: &str) -> &str {
        if url.starts_with("/import_error") {
            &self.import_error
        } else if url.starts_with("/import_exit") {
            &self.import_exit
        } else {
            &self.script
        }
    }

    /// The pid answering /probe (on a new connection).
    pub fn probe_pid(&self, apache: &Apache) -> u32 {
        let r = apache.get("/probe");
        assert_eq!(r.status, 200, "probe: {}", short(&r.text()));
        r.text().strip_prefix("pid=").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("probe said {:?}", r.text()))
    }

    pub fn get_raw(&self, apache: &Apache, url: &str) -> RawReply {
        let req = format!("GET {url} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", apache.port);
        raw_exchange(apache.port, req.as_bytes(), Duration::from_secs(20))
    }

    /// Waits for the close() record of `tok`.
    pub fn wait_closed(&self, tok: &str) -> Option<String> {
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

    /// Runs case number `n`: the client gets what the case expects, nothing injected
    /// reaches it, the fault and the script are logged, close() ran when it must, and
    /// the server answers /probe and a static file afterwards. Which processes served
    /// and logged is for the caller to judge.
    pub fn run_case(&self, apache: &Apache, c: &Case, n: usize) -> CaseOutcome {
        let served_before = self.probe_pid(apache);
        if let Some(setup) = c.setup {
            let r = apache.get(setup);
            assert_eq!(r.status, 200, "setup {setup}: {}", short(&r.text()));
        }
        let tok = format!("case{n}");
        let sep = if c.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{sep}tok={tok}", c.url);
        let mark = log_mark(apache);
        let reply = self.get_raw(apache, &url);
        check_reply(&reply, c.expect, c.url);
        assert_no_injection(&reply, c.url);
        let logged_by = fault_logged(apache, mark, self.script_for(c.url), c.fault);
        if let Some(want) = c.closed {
            assert_eq!(self.wait_closed(&tok).as_deref(), Some(want), "close() of the response");
        }
        let served_after = self.probe_pid(apache);
        let r = apache.get("/static.txt");
        assert_eq!((r.status, r.text().as_str()), (200, STATIC_BODY));
        CaseOutcome { served_before, logged_by, served_after }
    }
}
