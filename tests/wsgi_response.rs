//! Responses (contract "Response"): start_response validation (exception types seen by
//! the app, uncaught -> 500 with traceback), second start_response and exc_info,
//! write(), list and generator bodies, close() always called, wsgi.file_wrapper (real
//! file, BytesIO, app-set Content-Length), Content-Length too long/short, HEAD, 204/304,
//! exceptions before/after the headers. On event, worker and prefork; every behaviour of
//! rp_response.wsgi is also checked through wsgiref.validate.validator.
//! Exempt from the validator (deliberately invalid arguments/items): rp_badresp.wsgi.
mod common;
use common::*;
use std::io::Read;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn data() -> Vec<u8> {
    (0..100_000usize).map(|i| ((i * 13 + i / 97) % 256) as u8).collect()
}

fn raw_get(cl: &Client, method: &str, path: &str) -> RawReply {
    cl.raw(&format!("{method} {path} HTTP/1.1\r\nConnection: close"), b"", Duration::from_secs(15))
}

fn ok_text(cl: &Client, path: &str) -> String {
    let r = cl.get(path);
    assert_eq!(r.status, 200, "GET {path} via {}: {}", cl.via.name(), short(&r.text()));
    r.text()
}

fn wait_closed(cl: &Client, tok: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = ok_text(cl, &format!("/resp/closed?tok={tok}"));
        if t != "not closed" || Instant::now() > deadline {
            return t;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn token(mpm: Mpm, via: Via, what: &str) -> String {
    format!("{what}-{}-{}-{}", mpm.name(), via.name(), std::process::id())
}

/// A chunked body that ends with the last chunk.
/// Sends `head` (request line and headers, without the blank line) and
/// reads until `needle` has arrived; the connection, the bytes so far and
/// how long that took.
fn request_until(cl: &Client, port: u16, head: &str, needle: &str) -> (TcpStream, Vec<u8>, Duration) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (line, rest) = head.split_once("\r\n").map_or((head, None), |(l, r)| (l, Some(r)));
    let mut request = format!("{line} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", cl.host());
    if let Some(rest) = rest {
        request.push_str(rest);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(needle) {
        let n = s.read(&mut buf).unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}; got {:?}", String::from_utf8_lossy(&got)));
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    (s, got, t0.elapsed())
}

/// Reads the rest of a response begun by [`request_until`]; its body.
fn finish_reading(s: &mut TcpStream, mut got: Vec<u8>) -> String {
    got.extend_from_slice(&read_until_close(s, Duration::from_secs(10)).bytes);
    RawReply { bytes: got, closed: true, reset: false }.response().unwrap().text()
}

fn chunked_complete(body: &[u8]) -> bool {
    body.ends_with(b"0\r\n\r\n")
}

/// The length of the response at the start of `buf` once all of it is there.
/// Knows what a keep-alive client must: HEAD, 204 and 304 responses end with
/// their head, others with their Content-Length or their last chunk.
fn response_len(buf: &[u8], head: bool) -> Option<usize> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let r = parse_response(&buf[..end], true).ok()?;
    if head || r.status == 204 || r.status == 304 {
        return Some(end);
    }
    if r.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        let mut at = end;
        loop {
            let eol = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
            let size_line = std::str::from_utf8(&buf[at..eol]).ok()?;
            let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
            // The last chunk is followed by the blank line that ends the
            // (empty) trailer.
            at = eol + 2 + if size == 0 { 2 } else { size + 2 };
            if buf.len() < at {
                return None;
            }
            if size == 0 {
                return Some(at);
            }
        }
    }
    let n: usize = r.header("content-length")?.parse().ok()?;
    (buf.len() >= end + n).then_some(end + n)
}

/// Sends one request on a keep-alive connection and reads its whole
/// response, leaving the connection ready for the next one.
fn keepalive_exchange(s: &mut TcpStream, host: &str, method: &str, path: &str) -> Response {
    s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Some(len) = response_len(&got, method == "HEAD") {
            assert_eq!(len, got.len(), "{method} {path}: bytes after the response: {:?}", short(&String::from_utf8_lossy(&got)));
            return parse_response(&got, method == "HEAD").unwrap();
        }
        let n = s.read(&mut buf).unwrap_or_else(|e| {
            panic!("{method} {path}: waiting for the response: {e}; got {:?}", short(&String::from_utf8_lossy(&got)))
        });
        assert!(n > 0, "{method} {path}: connection closed mid-response: {:?}", short(&String::from_utf8_lossy(&got)));
        got.extend_from_slice(&buf[..n]);
    }
}

fn suite(mpm: Mpm) {
    let dir = TestDir::new(&format!("response-{}", mpm.name()));
    let state = dir.mkdir_www("state").to_string_lossy().into_owned();
    let data_file = dir.write("apps/data.bin", data()).to_string_lossy().into_owned();
    let (app, wrapped) =
        rp_install(&dir, "rp_response.wsgi", &[("STATE_DIR", &state), ("DATA_FILE", &data_file)]);
    let bad = dir.install_app("rp_badresp.wsgi", &[]).to_string_lossy().into_owned();
    let noapp = dir.install_app("rp_noapp.wsgi", &[]).to_string_lossy().into_owned();
    let conf = Conf::new(mpm).extra(&format!(
        "WSGIScriptAlias /resp {app}\nWSGIScriptAlias /bad {bad}\nWSGIScriptAlias /noapp {noapp}\n{}",
        rp_vhosts(&format!("WSGIScriptAlias /resp {wrapped}"))
    ));
    let apache = match rp_start(dir, &conf) {
        Ok(a) => a,
        Err(e) => panic!("[response {}] {e}", mpm.name()),
    };
    let name = format!("response {}", mpm.name());
    let mut c = Checks::new(name.clone());
    let data = data();

    for via in Via::BOTH {
        let cl = Client::new(&apache, via);
        let v = via.name();
        c.run(&format!("list body [{v}]"), || {
            assert_eq!(ok_text(&cl, "/resp/list"), "alpha-beta-gamma");
            if via == Via::Plain {
                let r = raw_get(&cl, "GET", "/resp/list");
                assert_eq!(r.header("content-length").as_deref(), Some("16"), "Apache computes Content-Length: {}", r.head());
                assert!(!r.is_chunked());
            }
        });
        c.run(&format!("generator body is streamed chunked on HTTP/1.1 [{v}]"), || {
            let r = raw_get(&cl, "GET", "/resp/gen");
            assert_eq!(r.status(), Some(200));
            assert!(r.is_chunked(), "expected chunked: {}", r.head());
            assert_eq!(r.response().unwrap().text(), "chunk0;chunk1;chunk2;chunk3;chunk4;");
        });
        c.run(&format!("generator items go out before the generator finishes [{v}]"), || {
            let (mut s, got, first_at) = request_until(&cl, apache.port, "GET /resp/slow_gen", "first|");
            assert!(first_at < Duration::from_millis(1200), "first item arrived after {first_at:?} (not streamed)");
            assert_eq!(finish_reading(&mut s, got), "first|second");
        });
        c.run(&format!("write() streams: written data goes out before the app returns [{v}]"), || {
            let (mut s, got, first_at) = request_until(&cl, apache.port, "GET /resp/write_slow", "written-early|");
            assert!(first_at < Duration::from_millis(1200), "written data arrived after {first_at:?} (not streamed)");
            assert_eq!(finish_reading(&mut s, got), "written-early|returned-late");
        });
        c.run(&format!("a yielded item goes out while the app waits for the request body [{v}]"), || {
            // The body is sent only once the first item has arrived: held
            // output must not wait for the client's upload.
            let head = "POST /resp/yield_then_read\r\nContent-Length: 4\r\nContent-Type: text/plain";
            let (mut s, got, _) = request_until(&cl, apache.port, head, "ready|");
            s.write_all(b"ping").unwrap();
            assert_eq!(finish_reading(&mut s, got), "ready|ping");
        });
        c.run(&format!("write() [{v}]"), || {
            assert_eq!(ok_text(&cl, "/resp/write"), "w1-w2-end");
            assert_eq!(ok_text(&cl, "/resp/write_only"), "only-written");
        });
        c.run(&format!("close() called at the normal end [{v}]"), || {
            let tok = token(mpm, via, "normal");
            assert_eq!(ok_text(&cl, &format!("/resp/close?kind=normal&tok={tok}")), "one|two|three");
            assert_eq!(wait_closed(&cl, &tok), "closed after 3 items");
        });
        c.run(&format!("close() called after an exception mid-iteration [{v}]"), || {
            let tok = token(mpm, via, "exc");
            let r = raw_get(&cl, "GET", &format!("/resp/close?kind=exc&tok={tok}"));
            assert!(r.closed, "connection must be closed, not left hanging");
            assert!(!r.text().contains("two|"), "{}", r.text());
            assert_eq!(wait_closed(&cl, &tok), "closed after 1 items");
            wait_line(&apache, Duration::from_secs(5), &["RuntimeError: rp-mid-iteration"]).unwrap();
        });
        c.run(&format!("close() called when the client goes away [{v}]"), || {
            let tok = token(mpm, via, "abort");
            {
                let mut s = TcpStream::connect(("127.0.0.1", apache.port)).unwrap();
                s.write_all(
                    format!("GET /resp/close?kind=abort&tok={tok} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", cl.host())
                        .as_bytes(),
                )
                .unwrap();
                let mut buf = vec![0u8; 200_000];
                let mut n = 0;
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                while n < 150_000 {
                    let k = s.read(&mut buf).unwrap();
                    assert!(k > 0);
                    n += k;
                }
            }
            let t = wait_closed(&cl, &tok);
            assert!(t.starts_with("closed after "), "close() not called after client abort: {t}");
            let items: usize = t["closed after ".len()..].trim_end_matches(" items").parse().unwrap();
            assert!(items < 4000, "the app should stop being iterated once the client is gone: {t}");
        });
        c.run(&format!("wsgi.file_wrapper with a real file [{v}]"), || {
            for blk in [4096, 1 << 20] {
                let r = cl.get(&format!("/resp/fw_file?blk={blk}"));
                assert_eq!(r.status, 200, "{}", short(&r.text()));
                assert!(r.body == data, "file body differs (blk {blk}, {} bytes)", r.body.len());
            }
        });
        c.run(&format!("wsgi.file_wrapper with a BytesIO [{v}]"), || {
            for blk in [1000, 65536] {
                let r = cl.get(&format!("/resp/fw_bytesio?blk={blk}"));
                assert_eq!(r.status, 200, "{}", short(&r.text()));
                assert!(r.body == data, "BytesIO body differs (blk {blk}, {} bytes)", r.body.len());
            }
        });
        c.run(&format!("wsgi.file_wrapper honours the app's Content-Length [{v}]"), || {
            for src in ["file", "bytesio"] {
                let r = raw_get(&cl, "GET", &format!("/resp/fw_file_cl?n=1000&src={src}"));
                assert!(r.closed, "no hang");
                assert_eq!(r.header("content-length").as_deref(), Some("1000"), "{src}");
                assert!(
                    r.after_head() == data[..1000],
                    "{src}: expected exactly the first 1000 bytes, got {}",
                    r.after_head().len()
                );
            }
        });
        c.run(&format!("wsgi.file_wrapper: a file-like without fileno() is read in blksize blocks and closed [{v}]"), || {
            let tok = token(mpm, via, "reader");
            let r = cl.get(&format!("/resp/fw_reader?blk=3000&tok={tok}"));
            assert_eq!(r.status, 200, "{}", short(&r.text()));
            assert!(r.body == data, "body differs ({} bytes)", r.body.len());
            assert_eq!(wait_closed(&cl, &tok), "reader closed; sizes asked 3000");
        });
        c.run(&format!("Content-Length: extra bytes are cut [{v}]"), || {
            let r = raw_get(&cl, "GET", "/resp/cl_extra");
            assert_eq!(r.status(), Some(200));
            assert_eq!(r.header("content-length").as_deref(), Some("5"));
            assert_eq!(r.after_head(), b"01234", "only Content-Length bytes may be sent");
        });
        c.run(&format!("Content-Length: fewer bytes -> logged, connection closed [{v}]"), || {
            let t0 = Instant::now();
            let r = raw_get(&cl, "GET", "/resp/cl_short");
            assert!(r.closed && t0.elapsed() < Duration::from_secs(8), "client must not hang ({:?})", t0.elapsed());
            assert_eq!(r.header("content-length").as_deref(), Some("100"));
            assert_eq!(r.after_head(), b"only ten b");
            wait_line(&apache, Duration::from_secs(5), &["returned fewer bytes", "than its Content-Length", "[client 127.0.0.1:"])
                .unwrap();
        });
        c.run(&format!("HEAD: no body (app sees HEAD by default) [{v}]"), || {
            let r = raw_get(&cl, "HEAD", "/resp/head");
            assert_eq!(r.status(), Some(200), "{}", r.text());
            assert_eq!(r.header("x-method").as_deref(), Some("HEAD"));
            assert!(r.after_head().is_empty(), "HEAD must not get a body: {:?}", r.text());
            for p in ["/resp/gen", "/resp/fw_file", "/resp/fw_bytesio", "/resp/write"] {
                let r = raw_get(&cl, "HEAD", p);
                assert_eq!(r.status(), Some(200), "{p}");
                assert!(r.after_head().is_empty(), "HEAD {p} must not get a body: {:?}", short(&r.text()));
            }
        });
        c.run(&format!("204 and 304: no body even if the app yields one [{v}]"), || {
            for (p, code) in [("/resp/s204", 204), ("/resp/s304", 304)] {
                let r = raw_get(&cl, "GET", p);
                assert_eq!(r.status(), Some(code), "{}", r.text());
                assert_eq!(r.header("x-status"), Some(code.to_string()));
                assert!(r.after_head().is_empty(), "{code} must not carry a body: {:?}", r.text());
                assert!(r.closed);
            }
        });
        c.run(&format!("every kind of response in turn on one keep-alive connection [{v}]"), || {
            let mut s = TcpStream::connect(("127.0.0.1", apache.port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
            let host = cl.host();
            let plan: &[(&str, &str, u16, &[u8])] = &[
                ("GET", "/resp/list", 200, b"alpha-beta-gamma"),
                ("GET", "/resp/gen", 200, b"chunk0;chunk1;chunk2;chunk3;chunk4;"),
                ("GET", "/resp/write", 200, b"w1-w2-end"),
                ("GET", "/resp/write_only", 200, b"only-written"),
                ("GET", "/resp/fw_file?blk=4096", 200, &data),
                ("GET", "/resp/fw_bytesio?blk=65536", 200, &data),
                ("HEAD", "/resp/head", 200, b""),
                ("HEAD", "/resp/gen", 200, b""),
                ("HEAD", "/resp/fw_file", 200, b""),
                ("GET", "/resp/s204", 204, b""),
                ("GET", "/resp/s304", 304, b""),
                ("GET", "/resp/nosuch", 404, b"no such path /nosuch"),
                ("GET", "/noapp", 404, b""),
                ("GET", "/resp/list", 200, b"alpha-beta-gamma"),
            ];
            for round in 0..2 {
                for (method, path, status, body) in plan {
                    let what = format!("round {round}, {method} {path}");
                    let r = keepalive_exchange(&mut s, &host, method, path);
                    assert_eq!(r.status, *status, "{what}: {}", short(&r.text()));
                    // Apache's own error page for a script without a callable.
                    if *path != "/noapp" {
                        assert!(r.body == *body, "{what}: body {:?}", short(&r.text()));
                    }
                    assert!(
                        !r.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close")),
                        "{what}: the server ended keep-alive: {:?}",
                        r.headers
                    );
                }
            }
            // A 500 ends the connection (Apache's rule); the page still comes whole.
            let r = keepalive_exchange(&mut s, &host, "GET", "/resp/exc_before");
            assert_eq!(r.status, 500, "{}", short(&r.text()));
            let rest = read_until_close(&mut s, Duration::from_secs(10));
            assert!(rest.closed && rest.bytes.is_empty(), "after the 500: {:?}", short(&rest.text()));
        });
        c.run(&format!("exception before headers -> 500 and traceback [{v}]"), || {
            let mark = log_mark(&apache);
            let r = cl.get("/resp/exc_before");
            assert_eq!(r.status, 500, "{}", short(&r.text()));
            wait_line_after(&apache, mark, Duration::from_secs(5), &["RuntimeError: rp-before-headers", "[wsgi_rs:error]", "[client 127.0.0.1:"])
                .unwrap();
            let log = apache.error_log();
            assert!(
                log[mark..].lines().any(|l| l.contains(&format!("File \"{app}\"")) && l.contains("line ")),
                "traceback should name {app}"
            );
        });
        c.run(&format!("exception after headers -> connection cut, chunked body unterminated [{v}]"), || {
            let r = raw_get(&cl, "GET", "/resp/exc_after");
            assert!(r.closed, "connection must be cut");
            assert_eq!(r.status(), Some(200), "{}", r.text());
            assert!(r.is_chunked(), "{}", r.head());
            let body = r.after_head();
            assert!(String::from_utf8_lossy(&body).contains("first-part|"), "{:?}", r.text());
            assert!(!chunked_complete(&body), "the chunked body must be left unterminated: {:?}", r.text());
            wait_line(&apache, Duration::from_secs(5), &["RuntimeError: rp-after-headers"]).unwrap();
        });
        c.run(&format!("second start_response before output replaces the first [{v}]"), || {
            let r = cl.get("/resp/second_sr");
            assert_eq!(r.status, 202, "{}", short(&r.text()));
            assert_eq!(r.header("X-Second"), Some("1"));
            assert_eq!(r.header("X-First"), None);
            assert_eq!(r.text(), "second wins");
        });
        c.run(&format!("start_response after output without exc_info raises [{v}]"), || {
            let t = ok_text(&cl, "/resp/sr_after_output");
            assert!(t.starts_with("started|raised="), "{t}");
            assert_ne!(t, "started|raised=none", "second start_response after output must raise");
            assert!(!t.contains("AssertionError"), "the validator objected: {t}");
        });
        c.run(&format!("exc_info before output: the new status wins [{v}]"), || {
            let r = cl.get("/resp/exc_info_before");
            assert_eq!(r.status, 503, "{}", short(&r.text()));
            assert_eq!(r.text(), "custom error page");
        });
        c.run(&format!("exc_info after output: re-raised, connection cut [{v}]"), || {
            let r = raw_get(&cl, "GET", "/resp/exc_info_after");
            assert!(r.closed);
            assert_eq!(r.status(), Some(200), "{}", r.text());
            let body = String::from_utf8_lossy(&r.after_head()).into_owned();
            assert!(body.contains("partial|"), "{body:?}");
            assert!(!body.contains("must not be reached"), "{body:?}");
            assert!(r.is_chunked() && !chunked_complete(&r.after_head()), "response must be cut: {:?}", r.text());
            wait_line(&apache, Duration::from_secs(5), &["ValueError: rp-excinfo-after-output"]).unwrap();
        });
    }

    c.run("plain and validated responses match", || {
        let p = Client::new(&apache, Via::Plain);
        let w = Client::new(&apache, Via::Validated);
        for path in [
            "/resp/list",
            "/resp/gen",
            "/resp/write",
            "/resp/write_only",
            "/resp/second_sr",
            "/resp/exc_info_before",
            "/resp/fw_file",
            "/resp/fw_bytesio",
            "/resp/fw_file_cl?n=77",
            "/resp/cl_extra",
            "/resp/s204",
            "/resp/nosuch",
        ] {
            let a = p.get(path);
            let b = w.get(path);
            assert_eq!(a.status, b.status, "{path}: status");
            assert!(a.body == b.body, "{path}: bodies differ");
            assert_eq!(a.header("Content-Type"), b.header("Content-Type"), "{path}");
        }
    });

    let cases: &[(&str, &str)] = &[
        ("status_int", "TypeError"),
        ("status_short", "ValueError"),
        ("status_abc", "ValueError"),
        ("status_nospace", "ValueError"),
        ("status_ctrl", "ValueError"),
        ("headers_tuple", "TypeError"),
        ("headers_dict", "TypeError"),
        ("item_3tuple", "TypeError"),
        ("item_str", "TypeError"),
        ("name_bytes", "TypeError"),
        ("value_int", "TypeError"),
        ("value_bytes", "TypeError"),
        ("value_nonlatin", "ValueError"),
        ("value_cr", "ValueError"),
        ("value_lf", "ValueError"),
        ("value_nul", "ValueError"),
        ("name_space", "ValueError"),
        ("name_colon", "ValueError"),
        ("name_crlf", "ValueError"),
        ("name_empty", "ValueError"),
        ("status_bare", "none"),
        ("value_latin1", "none"),
    ];
    for (case, want) in cases {
        c.run(&format!("start_response {case} -> {want} inside the app"), || {
            let r = apache.get(&format!("/bad/caught?case={case}"));
            assert_eq!(r.status, 200, "{}", short(&r.text()));
            assert_eq!(r.text(), format!("exc={want}"));
        });
    }
    c.run("start_response error uncaught -> 500, traceback names the script and the type", || {
        for (case, exc) in [("status_short", "ValueError"), ("value_int", "TypeError")] {
            let mark = log_mark(&apache);
            let r = apache.get(&format!("/bad/uncaught?case={case}"));
            assert_eq!(r.status, 500, "{case}: {}", short(&r.text()));
            wait_line_after(&apache, mark, Duration::from_secs(5), &[&format!("{exc}:"), "[wsgi_rs:error]"]).unwrap();
            let log = apache.error_log();
            assert!(
                log[mark..].lines().any(|l| l.contains(&format!("File \"{bad}\""))),
                "traceback must name {bad}:\n{}",
                &log[mark..]
            );
        }
    });
    c.run("non-bytes body item -> 500, TypeError naming the type", || {
        let mark = log_mark(&apache);
        let r = apache.get("/bad/nonbytes");
        assert_eq!(r.status, 500, "{}", short(&r.text()));
        let line = wait_line_after(&apache, mark, Duration::from_secs(5), &["TypeError", "str"]).unwrap();
        assert!(line.contains("[wsgi_rs:error]"), "{line}");
    });
    rp_final_checks(&mut c, &apache);
    drop(apache);
    rp_finish(c);
}

#[test]
fn response_event() {
    suite(Mpm::Event);
}

#[test]
fn response_worker() {
    suite(Mpm::Worker);
}

#[test]
fn response_prefork() {
    suite(Mpm::Prefork);
}
