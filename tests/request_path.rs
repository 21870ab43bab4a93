//! The request path on all three MPMs: WSGIScriptAlias mapping (server config and
//! <VirtualHost>), the environ, wsgi.input, response shapes, close(), and the error
//! cases (missing script, no `application`, exception).
mod common;
use common::*;
use std::time::Duration;

fn env_of(apache: &Apache, path: &str) -> (Json, Json) {
    let r = apache.get(path);
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    let j = r.json();
    (j.get("environ").clone(), j.get("types").clone())
}

fn suite(mpm: Mpm) {
    let dir = TestDir::new(&format!("request-path-{}", mpm.name()));
    let apps = Apps::install(&dir);
    let conf = Conf::new(mpm).extra(&apps.aliases());
    let apache = Apache::start(dir, &conf, &[]);
    let port = apache.port;
    let mut c = Checks::new(format!("request path {}", mpm.name()));

    c.run("environ: CGI keys", || {
        let (e, t) = env_of(&apache, "/env/a/b?x=1&y=two");
        assert_eq!(e.get("REQUEST_METHOD").as_str(), "GET");
        assert_eq!(e.get("SCRIPT_NAME").as_str(), "/env");
        assert_eq!(e.get("PATH_INFO").as_str(), "/a/b");
        assert_eq!(e.get("QUERY_STRING").as_str(), "x=1&y=two");
        assert_eq!(e.get("SERVER_NAME").as_str(), "127.0.0.1");
        assert_eq!(t.get("SERVER_PORT").as_str(), "str", "SERVER_PORT must be a str");
        assert_eq!(e.get("SERVER_PORT").as_str(), port.to_string());
        assert_eq!(e.get("REMOTE_ADDR").as_str(), "127.0.0.1");
        for k in ["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "REMOTE_ADDR"] {
            assert_eq!(t.get(k).as_str(), "str", "{k} must be a str");
        }
    });

    c.run("environ: wsgi.* keys", || {
        let (e, t) = env_of(&apache, "/env");
        assert_eq!(t.get("wsgi.version").as_str(), "tuple");
        assert_eq!(e.get("wsgi.version"), &Json::Arr(vec![Json::Num(1.0), Json::Num(0.0)]));
        assert_eq!(e.get("wsgi.url_scheme").as_str(), "http");
        assert_eq!(t.get("wsgi.multithread").as_str(), "bool");
        assert_eq!(t.get("wsgi.multiprocess").as_str(), "bool");
        assert_eq!(
            e.get("wsgi.multithread").as_bool(),
            mpm.threaded(),
            "wsgi.multithread under {}",
            mpm.name()
        );
        assert!(e.get("wsgi.multiprocess").as_bool(), "wsgi.multiprocess under {}", mpm.name());
        assert!(e.has("wsgi.input"), "wsgi.input missing: {e}");
        assert!(e.has("wsgi.errors"), "wsgi.errors missing: {e}");
    });

    c.run("environ: SCRIPT_NAME/PATH_INFO without path info", || {
        let (e, _) = env_of(&apache, "/env");
        assert_eq!(e.get("SCRIPT_NAME").as_str(), "/env");
        assert_eq!(e.get("PATH_INFO").as_str(), "", "PATH_INFO defaults to \"\"");
        assert_eq!(e.get("QUERY_STRING").as_str(), "");
        let (e, _) = env_of(&apache, "/env/");
        assert_eq!(e.get("SCRIPT_NAME").as_str(), "/env");
        assert_eq!(e.get("PATH_INFO").as_str(), "/");
    });

    c.run("alias matches on a segment boundary only", || {
        // /envx is not under /env: no WSGI app, so the static handler answers 404.
        let r = apache.get("/envx/a");
        assert_eq!(r.status, 404, "GET /envx/a must not reach /env: {}", r.text());
    });

    c.run("environ: POST method and headers", || {
        let r = apache.request(
            "POST",
            "/env/p",
            &[("Content-Type", "text/x-test"), ("X-Test-Header", "hello there")],
            b"abc",
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let e = r.json().get("environ").clone();
        assert_eq!(e.get("REQUEST_METHOD").as_str(), "POST");
        assert_eq!(e.get("CONTENT_TYPE").as_str(), "text/x-test");
        assert_eq!(e.get("CONTENT_LENGTH").as_str(), "3");
        assert_eq!(e.get("HTTP_X_TEST_HEADER").as_str(), "hello there");
    });

    c.run("wsgi.input.read() echoes the body", || {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let r = apache.post("/echo?mode=read", &body);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.body.len(), body.len(), "echoed length");
        assert!(r.body == body, "echoed body differs");
        assert_eq!(r.header("X-Content-Length"), Some("200000"));
    });

    c.run("wsgi.input.read(n) in a loop", || {
        let body: Vec<u8> = (0..100u8).collect();
        let r = apache.post("/echo?mode=readn&n=7", &body);
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.body == body, "echoed body differs: {:?}", r.body);
        let sizes: Vec<usize> = r
            .header("X-Read-Chunks")
            .unwrap_or("")
            .split(',')
            .map(|s| s.parse().unwrap())
            .collect();
        let mut want = vec![7usize; 14];
        want.push(2);
        assert_eq!(sizes, want, "read(7) sizes over a 100-byte body");
    });

    c.run("empty POST body", || {
        let r = apache.post("/echo?mode=read", b"");
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.body.is_empty());
        assert_eq!(r.header("X-Read-Chunks"), Some("0"));
    });

    c.run("list body", || {
        let r = apache.get("/resp/list");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "alpha-beta-gamma");
        assert_eq!(r.header("Content-Type"), Some("text/plain"));
    });

    c.run("generator body", || {
        let r = apache.get("/resp/gen");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "chunk0;chunk1;chunk2;chunk3;chunk4;");
    });

    c.run("status and custom headers", || {
        let r = apache.get("/resp/status");
        assert_eq!(r.status, 418, "{}", r.text());
        assert_eq!(r.reason, "I'm a teapot");
        assert_eq!(r.header("X-Custom"), Some("custom-value"));
        assert_eq!(r.text(), "teapot");
        let r = apache.get("/resp/created");
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.header("X-Other"), Some("other value; with=params"));
        assert_eq!(r.text(), "created");
    });

    c.run("close() of the returned iterable is called", || {
        let token = format!("t{}", std::process::id());
        let r = apache.get(&format!("/resp/closed?token={token}"));
        assert_eq!(r.text(), "closed=no", "marker exists before the request");
        let r = apache.get(&format!("/resp/close?token={token}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "closing-body");
        // close() runs after the body went out; allow it a moment.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let r = apache.get(&format!("/resp/closed?token={token}"));
            assert_eq!(r.status, 200);
            if r.text() == "closed=yes" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "close() was not called: {}", r.text());
            std::thread::sleep(Duration::from_millis(100));
        }
    });

    c.run("missing script: 404 and log line", || {
        let r = apache.get("/missing");
        assert_eq!(r.status, 404, "{}", r.text());
        let want = format!("target WSGI script not found: {}", apps.missing);
        let (found, log) = apache.wait_log(Duration::from_secs(5), |l| l.contains(&want));
        assert!(found, "expected {want:?} in:\n{log}");
    });

    c.run("script without application: 404 and log line", || {
        let r = apache.get("/noapp");
        assert_eq!(r.status, 404, "{}", r.text());
        let want = format!(
            "target WSGI script {} does not contain WSGI application 'application'",
            apps.noapp
        );
        let (found, log) = apache.wait_log(Duration::from_secs(5), |l| l.contains(&want));
        assert!(found, "expected {want:?} in:\n{log}");
    });

    c.run("exception: 500 and traceback in the log", || {
        let r = apache.get("/boom");
        assert_eq!(r.status, 500, "{}", r.text());
        let want = format!("exception raised by WSGI script {}", apps.boom);
        let (found, log) =
            apache.wait_log(Duration::from_secs(5), |l| l.contains(&want) && l.contains("ValueError: boom"));
        assert!(found, "expected {want:?} and 'ValueError: boom' in:\n{log}");
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.iter().position(|l| l.contains(&want)).unwrap();
        let rest = &lines[start..];
        let tb = rest.iter().position(|l| l.contains("Traceback (most recent call last)"));
        let exc = rest.iter().position(|l| l.contains("ValueError: boom"));
        assert!(tb.is_some(), "no traceback header after {want:?}:\n{}", rest.join("\n"));
        assert!(exc > tb, "exception text should follow the traceback header");
        assert!(
            rest[..=exc.unwrap()].iter().any(|l| l.contains(&apps.boom) && l.contains("line ")),
            "traceback should name the script's frame:\n{}",
            rest.join("\n")
        );
        for l in &rest[..=exc.unwrap()] {
            assert!(l.contains("[wsgi_rs:error]"), "traceback line not at [wsgi_rs:error]: {l}");
        }
    });

    c.run("the app still works after the errors", || {
        let r = apache.get("/resp/list");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "alpha-beta-gamma");
    });

    c.run("no crash", || {
        assert_no_crash(&apache.error_log());
    });
    drop(apache);
    c.finish();
}

#[test]
fn request_path_event() {
    suite(Mpm::Event);
}

#[test]
fn request_path_worker() {
    suite(Mpm::Worker);
}

#[test]
fn request_path_prefork() {
    suite(Mpm::Prefork);
}

/// Keys COMPAT.md lists beyond the WSGI minimum (mod_wsgi parity).
#[test]
fn environ_compat_keys() {
    let dir = TestDir::new("environ-compat");
    let apps = Apps::install(&dir);
    let conf = Conf::new(Mpm::Event).extra(&apps.aliases());
    let apache = Apache::start(dir, &conf, &[]);
    let (e, t) = env_of(&apache, "/env/x/y?q=1");
    let mut c = Checks::new("environ compat");
    c.run("CGI extras", || {
        assert_eq!(e.get("REQUEST_URI").as_str(), "/env/x/y?q=1");
        assert_eq!(e.get("SCRIPT_FILENAME").as_str(), apps.environ);
        assert_eq!(e.get("SERVER_PROTOCOL").as_str(), "HTTP/1.1");
        assert_eq!(e.get("GATEWAY_INTERFACE").as_str(), "CGI/1.1");
        assert_eq!(e.get("REQUEST_SCHEME").as_str(), "http");
        assert_eq!(e.get("SERVER_ADDR").as_str(), "127.0.0.1");
        assert_eq!(t.get("REMOTE_PORT").as_str(), "str");
        assert!(e.get("SERVER_SOFTWARE").as_str().contains("Apache"), "{e}");
        assert_eq!(e.get("HTTP_HOST").as_str(), format!("127.0.0.1:{}", apache.port));
        assert!(!e.has("PATH"), "PATH must not be passed: {e}");
        assert!(!e.has("CONTENT_LENGTH"), "CONTENT_LENGTH only when sent: {e}");
        assert!(!e.has("HTTPS"), "HTTPS only on TLS: {e}");
    });
    c.run("wsgi extras", || {
        assert!(!e.get("wsgi.run_once").as_bool(), "wsgi.run_once");
        assert!(e.get("wsgi.input_terminated").as_bool(), "wsgi.input_terminated");
        assert!(e.has("wsgi.file_wrapper"), "wsgi.file_wrapper missing from environ: {e}");
        assert_eq!(e.get("mod_wsgi.callable_object").as_str(), "application");
        assert!(e.get("mod_wsgi_rs.version").as_str().starts_with("0.1"), "mod_wsgi_rs.version: {e}");
    });
    drop(apache);
    c.finish();
}

/// WSGIScriptAlias inside a name-based <VirtualHost>: it applies to that host only.
#[test]
fn script_alias_in_virtualhost() {
    let dir = TestDir::new("vhost");
    let apps = Apps::install(&dir);
    let conf = Conf::new(Mpm::Event).extra(&format!(
        "<VirtualHost 127.0.0.1:@@PORT@@>\n    ServerName 127.0.0.1\n</VirtualHost>\n\
         <VirtualHost 127.0.0.1:@@PORT@@>\n    ServerName vhost.test\n    \
         WSGIScriptAlias /vapp {}\n</VirtualHost>\n",
        apps.environ
    ));
    let apache = Apache::start(dir, &conf, &[]);
    let mut c = Checks::new("vhost");
    c.run("alias answers on its vhost", || {
        // With a port in Host, SERVER_PORT is that port (UseCanonicalName Off; a bare
        // "vhost.test" would give httpd's default port 80).
        let host = format!("vhost.test:{}", apache.port);
        let r = apache.request("GET", "/vapp/a/b?k=v", &[("Host", host.as_str())], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        let e = r.json().get("environ").clone();
        assert_eq!(e.get("SERVER_NAME").as_str(), "vhost.test");
        assert_eq!(e.get("SCRIPT_NAME").as_str(), "/vapp");
        assert_eq!(e.get("PATH_INFO").as_str(), "/a/b");
        assert_eq!(e.get("QUERY_STRING").as_str(), "k=v");
        assert_eq!(e.get("SERVER_PORT").as_str(), apache.port.to_string());
    });
    c.run("alias is absent on the other vhost", || {
        let r = apache.get("/vapp/a/b");
        assert_eq!(r.status, 404, "the default vhost must not map /vapp: {}", r.text());
    });
    c.run("static files still served on the default vhost", || {
        let r = apache.get("/static.txt");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), STATIC_BODY);
    });
    drop(apache);
    c.finish();
}
