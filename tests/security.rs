//! Security guarantees, stated in one place (some are also exercised, with other aims,
//! by wsgi_environ.rs, wsgi_directives.rs, wsgi_mapping.rs, interpreter_directives.rs and
//! optimize_config.rs):
//!
//! 1. The `Authorization` header reaches the environ only with `WSGIPassAuthorization On`
//!    (or `pass-authorization=On`); `Proxy-Authorization` never does.
//! 2. Request headers whose names hold `_` or anything other than letters, digits and `-`
//!    never reach the environ, so they cannot pose as another header
//!    (`X_Forwarded_For` is not `HTTP_X_FORWARDED_FOR`) or as a CGI variable; the
//!    `Proxy` header is dropped (httpoxy); `Remote-User` does not set `REMOTE_USER`.
//! 3. Interpreter directives and daemon mode's server-wide ones (and the script-mapping
//!    ones and `WSGIDaemonProcess`) are refused outside the main server config (outside
//!    the server and virtual-host level): in `<VirtualHost>` and `<Directory>` by
//!    `apache2 -t`, and in `.htaccess` (`AllowOverride All`) by a 500 whose log line names
//!    the directive. So an `.htaccess` can never define a daemon process group.
//! 4. A `.wsgi` or `.py` file outside every WSGIScriptAlias is never executed: under the
//!    DocumentRoot without a handler it is served as a plain file; with a wsgi-script
//!    handler but without `Options ExecCGI` (including a handler set from an `.htaccess`
//!    under `AllowOverride FileInfo`) it is refused with 403; dot segments (plain or
//!    percent-encoded) cannot lead a `WSGIScriptAliasMatch` target out of its directory.
//!    The script would leave a marker file if it ever ran; the marker must never appear.
//! 5. Response splitting is impossible: CR, LF (and NUL, and non-Latin-1 line breaks) in
//!    a status, header name or header value never produce an extra header line or body
//!    in the raw bytes, whether the application catches the error or not.
//!
//! Run: `cargo test --release --test security -- --test-threads=2 --nocapture`.
mod common;
use common::*;
use std::time::Duration;

/// Directives that configure the interpreter, and daemon mode's server-wide ones: main
/// server only.
fn interpreter_directives() -> Vec<(&'static str, &'static str)> {
    let mut all = vec![("WSGIPythonOptimize", "1")];
    all.extend(INTERPRETER_SETTINGS);
    all.extend([("WSGISocketPrefix", "/tmp/wsgi"), ("WSGIRestrictEmbedded", "On")]);
    all
}/// Directives that map URLs to scripts, load scripts or define daemon process groups:
/// server and virtual host only (never per directory, never from .htaccess).
const MAPPING_DIRECTIVES: [(&str, &str); 4] = [
    ("WSGIScriptAlias", "/x /tmp/x.wsgi"),
    ("WSGIScriptAliasMatch", "^/x(.*) /tmp/x$1.wsgi"),
    ("WSGIImportScript", "/tmp/x.wsgi process-group=%{GLOBAL} application-group=%{GLOBAL}"),
    ("WSGIDaemonProcess", "sec threads=2"),
];

fn environ_of(apache: &Apache, path: &str, headers: &[(&str, &str)]) -> Json {
    let r = apache.request("GET", path, headers, b"");
    assert_eq!(r.status, 200, "GET {path}: {}", short(&r.text()));
    r.json().get("environ").clone()
}

fn environ_keys(e: &Json) -> Vec<String> {
    match e {
        Json::Obj(m) => m.iter().map(|(k, _)| k.clone()).collect(),
        _ => panic!("not an object: {e}"),
    }
}

// ---------------------------------------------------------------------------------------
// 1, 2, 4, 5 and 3 (.htaccess) against one running server

struct Server {
    apache: Apache,
    state: String,
    htdocs: String,
}

fn start_server() -> Server {
    let dir = TestDir::new("security");
    let state = dir.mkdir_www("state").to_string_lossy().into_owned();
    let env = dir.install_app("environ.wsgi", &[]).to_string_lossy().into_owned();
    let inject = dir.install_app("sec_inject.wsgi", &[]).to_string_lossy().into_owned();
    dir.write("htdocs/static.txt", STATIC_BODY);
    // scripts that must never run
    let marker = |dest: &str, name: &str| {
        dir.install_app_to("sec_marker.wsgi", dest, &[("STATE_DIR", &state), ("NAME", name)]);
    };
    marker("htdocs/plain.wsgi", "plain-wsgi");
    marker("htdocs/plain.py", "plain-py");
    marker("htdocs/noexec/app.wsgi", "noexec-addhandler");
    marker("htdocs/noexec_set/app.wsgi", "noexec-sethandler");
    marker("htdocs/fileinfo/app.wsgi", "fileinfo-addhandler");
    dir.write("htdocs/fileinfo/.htaccess", "AddHandler wsgi-script .wsgi\n");
    dir.install_app_to("hello.wsgi", "apps/m/ok.wsgi", &[]);
    marker("htdocs/fileinfo_set/app.wsgi", "fileinfo-sethandler");
    dir.write("htdocs/fileinfo_set/.htaccess", "SetHandler wsgi-script\n");
    marker("htdocs/fileinfo_opts/app.wsgi", "fileinfo-options");
    dir.write("htdocs/fileinfo_opts/.htaccess", "Options +ExecCGI\nAddHandler wsgi-script .wsgi\n");
    let mut extra = format!(
        "WSGIScriptAlias /env {env}\n\
         WSGIScriptAlias /env_on {env} pass-authorization=On\n\
         WSGIScriptAlias /env_loc {env}\n\
         <Location /env_loc>\n    WSGIPassAuthorization On\n</Location>\n\
         WSGIScriptAlias /env_off {env}\n\
         <Location /env_off>\n    WSGIPassAuthorization Off\n</Location>\n\
         WSGIScriptAlias /inject {inject}\n\
         WSGIScriptAliasMatch ^/m/(.+)$ @@DIR@@/apps/m/$1.wsgi\n\
         <Directory @@DIR@@/htdocs/noexec>\n    Options None\n    AddHandler wsgi-script .wsgi\n</Directory>\n\
         <Directory @@DIR@@/htdocs/noexec_set>\n    Options None\n    SetHandler wsgi-script\n</Directory>\n\
         <Directory @@DIR@@/htdocs/fileinfo>\n    Options None\n    AllowOverride FileInfo\n</Directory>\n\
         <Directory @@DIR@@/htdocs/fileinfo_set>\n    Options None\n    AllowOverride FileInfo\n</Directory>\n\
         <Directory @@DIR@@/htdocs/fileinfo_opts>\n    Options None\n    AllowOverride FileInfo\n</Directory>\n"
    );
    for (i, (d, v)) in interpreter_directives().iter().chain(MAPPING_DIRECTIVES.iter()).enumerate() {
        dir.write(&format!("htdocs/ht{i}/f.txt"), "behind an .htaccess\n");
        dir.write(&format!("htdocs/ht{i}/.htaccess"), format!("{d} {v}\n"));
        extra.push_str(&format!("<Directory @@DIR@@/htdocs/ht{i}>\n    AllowOverride All\n</Directory>\n"));
    }
    let htdocs = dir.p("htdocs");
    // mod_mime with the system's types, as a real server has it: .py is a known type.
    let types = if std::path::Path::new("/etc/mime.types").is_file() { "/etc/mime.types" } else { "/dev/null" };
    let conf = Conf::new(Mpm::Event)
        .module_before("mime_module", "mod_mime.so")
        .extra(&format!("TypesConfig {types}\n{extra}"));
    let apache = Apache::start(dir, &conf, &[]);
    Server { apache, state, htdocs }
}

fn authorization(s: &Server, c: &mut Checks) {
    let a = &s.apache;
    let secret = "Basic dXNlcjpzM2NyZXQ=";
    c.run("Authorization hidden without WSGIPassAuthorization (default and Off)", || {
        for p in ["/env", "/env_off"] {
            for name in ["Authorization", "authorization", "AUTHORIZATION"] {
                let e = environ_of(a, p, &[(name, secret)]);
                assert!(!e.has("HTTP_AUTHORIZATION"), "{p} with {name}: {e}");
                let leaked: Vec<String> =
                    environ_keys(&e).into_iter().filter(|k| format!("{}", e.get(k)).contains("dXNlcjpzM2NyZXQ")).collect();
                assert!(leaked.is_empty(), "{p}: the credentials leaked through {leaked:?}");
            }
        }
    });
    c.run("Authorization shown with WSGIPassAuthorization On and pass-authorization=On", || {
        for p in ["/env_on", "/env_loc"] {
            let e = environ_of(a, p, &[("Authorization", secret)]);
            assert_eq!(e.get("HTTP_AUTHORIZATION").as_str(), secret, "{p}");
        }
    });
    c.run("Proxy-Authorization never reaches the environ, even with pass-authorization", || {
        for p in ["/env", "/env_on"] {
            let e = environ_of(a, p, &[("Proxy-Authorization", secret)]);
            assert!(!e.has("HTTP_PROXY_AUTHORIZATION"), "{p}: {e}");
        }
    });
}

fn header_names(s: &Server, c: &mut Checks) {
    let a = &s.apache;
    c.run("headers with '_' or odd characters never reach the environ", || {
        let odd = [
            ("X_Forwarded_For", "6.6.6.6"),
            ("X.Y", "dot"),
            ("X~Y", "tilde"),
            ("X+Y", "plus"),
            ("X!Y", "bang"),
            ("X*Y", "star"),
            ("Content_Type", "text/evil"),
            ("Script_Name", "/evil"),
            ("Remote_Addr", "6.6.6.6"),
        ];
        let e = environ_of(a, "/env", &odd);
        assert!(!e.has("HTTP_X_FORWARDED_FOR"), "X_Forwarded_For posed as X-Forwarded-For: {e}");
        for k in environ_keys(&e) {
            let v = format!("{}", e.get(&k));
            for (name, value) in odd {
                assert!(!v.contains(value) || k == "REQUEST_URI", "{name} reached the environ as {k}={v}");
            }
            assert!(k.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '.'), "odd key {k:?}");
        }
        assert_eq!(e.get("SCRIPT_NAME").as_str(), "/env");
        assert_eq!(e.get("REMOTE_ADDR").as_str(), "127.0.0.1");
        assert!(!e.has("CONTENT_TYPE") || e.get("CONTENT_TYPE").as_str() != "text/evil");
    });
    c.run("an underscore header cannot override the real one", || {
        for order in [[("X-Forwarded-For", "10.0.0.1"), ("X_Forwarded_For", "6.6.6.6")], [("X_Forwarded_For", "6.6.6.6"), ("X-Forwarded-For", "10.0.0.1")]] {
            let e = environ_of(a, "/env", &order);
            assert_eq!(e.get("HTTP_X_FORWARDED_FOR").as_str(), "10.0.0.1", "{order:?}");
        }
    });
    c.run("Proxy header dropped (httpoxy); Remote-User does not set REMOTE_USER", || {
        let e = environ_of(a, "/env", &[("Proxy", "http://evil.test:8080"), ("Remote-User", "admin")]);
        assert!(!e.has("HTTP_PROXY"), "HTTP_PROXY must never be set from a request header: {e}");
        assert!(!e.has("REMOTE_USER"), "{e}");
        assert_eq!(e.get("HTTP_REMOTE_USER").as_str(), "admin", "ordinary headers still arrive, prefixed");
    });
}

fn never_executed(s: &Server, c: &mut Checks) {
    let a = &s.apache;
    let markers = || -> Vec<String> {
        std::fs::read_dir(&s.state)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("executed-"))
            .collect()
    };
    c.run("a .wsgi or .py under the DocumentRoot without a handler is served as a file", || {
        for p in ["/plain.wsgi", "/plain.py"] {
            let r = a.get(p);
            assert_eq!(r.status, 200, "{p}");
            let source = std::fs::read_to_string(format!("{}{p}", s.htdocs)).unwrap();
            assert_eq!(r.text(), source, "{p}: expected the file's own bytes");
        }
    });
    c.run("a wsgi-script handler without Options ExecCGI gives 403", || {
        for p in ["/noexec/app.wsgi", "/noexec_set/app.wsgi", "/fileinfo/app.wsgi", "/fileinfo_set/app.wsgi"] {
            let mark = log_mark(a);
            let r = a.get(p);
            assert_eq!(r.status, 403, "{p}: {}", short(&r.text()));
            let script = format!("{}{p}", s.htdocs);
            wait_line_after(a, mark, Duration::from_secs(5), &["Options ExecCGI is off in this directory", &script])
                .unwrap();
        }
    });
    c.run("AllowOverride FileInfo cannot turn on ExecCGI from .htaccess", || {
        let mark = log_mark(a);
        let r = a.get("/fileinfo_opts/app.wsgi");
        assert_eq!(r.status, 500, "{}", short(&r.text()));
        wait_line_after(a, mark, Duration::from_secs(5), &["Options not allowed here"]).unwrap();
    });
    c.run("dot segments cannot lead a WSGIScriptAliasMatch target out of its directory", || {
        let ok = a.get("/m/ok");
        assert_eq!(ok.status, 200, "the mapping itself works: {}", short(&ok.text()));
        assert!(ok.text().starts_with("wsgi ok"), "{}", ok.text());
        // $1 = ../../htdocs/plain would name htdocs/plain.wsgi
        for attempt in [
            "/m/../../htdocs/plain",
            "/m/%2e%2e/%2e%2e/htdocs/plain",
            "/m/.%2e/.%2e/htdocs/plain",
            "/m/..%2f..%2fhtdocs%2fplain",
            "/m/%252e%252e/%252e%252e/htdocs/plain",
            "/m/ok/../../../htdocs/plain",
        ] {
            let raw = raw_exchange(
                a.port,
                format!("GET {attempt} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
                Duration::from_secs(10),
            );
            let status = raw.status();
            assert!(!raw.text().contains("SCRIPT WAS EXECUTED"), "{attempt}: {}", raw.text());
            assert!(
                matches!(status, Some(400) | Some(403) | Some(404)),
                "{attempt}: expected a refusal, got {status:?}: {}",
                short(&raw.text())
            );
        }
    });
    c.run("none of those scripts ever ran", || {
        // give a (wrongly) started script time to write its marker
        std::thread::sleep(Duration::from_millis(300));
        let m = markers();
        assert!(m.is_empty(), "scripts were executed: {m:?}");
    });
}

fn htaccess(s: &Server, c: &mut Checks) {
    let a = &s.apache;
    for (i, (d, _)) in interpreter_directives().iter().chain(MAPPING_DIRECTIVES.iter()).enumerate() {
        c.run(&format!("{d} in .htaccess: 500, the log names it"), || {
            let mark = log_mark(a);
            let r = a.get(&format!("/ht{i}/f.txt"));
            assert_eq!(r.status, 500, "{}", short(&r.text()));
            let line = wait_line_after(a, mark, Duration::from_secs(5), &[&format!("{d} not allowed here")]).unwrap();
            assert!(line.contains(".htaccess"), "{line}");
        });
    }
}

fn injection(s: &Server, c: &mut Checks) {
    let a = &s.apache;
    // (vector, accepted): the only accepted one is U+0085, a Latin-1 character that is not
    // a line break in HTTP; it stays inside its header line.
    let vectors = [
        ("value_crlf", false),
        ("value_lf", false),
        ("value_cr", false),
        ("value_crlf_body", false),
        ("value_crlf_setcookie", false),
        ("content_type_crlf", false),
        ("value_nul", false),
        ("value_u2028", false),
        ("value_u0085", true),
        ("name_crlf", false),
        ("name_lf", false),
        ("name_colon", false),
        ("status_crlf", false),
        ("status_lf", false),
        ("status_cr", false),
        ("status_crlf_body", false),
    ];
    let no_injection = |raw: &RawReply, what: &str| {
        let text = raw.text();
        let lower = text.to_ascii_lowercase();
        let head = raw.head().to_ascii_lowercase();
        for l in head.split("\r\n").skip(1) {
            assert!(
                !l.starts_with("x-injected") && !l.starts_with("set-cookie"),
                "{what}: injected header line {l:?} in:\n{text}"
            );
            assert!(!l.contains('\r') && !l.contains('\n'), "{what}: a bare CR/LF inside a header line: {l:?}");
        }
        assert!(!lower.contains("\nx-injected") && !lower.contains("\rx-injected"), "{what}: {text}");
        assert!(!lower.contains("injected body") && !lower.contains("<html>injected"), "{what}: injected body: {text}");
        assert!(!lower.contains("x-injected=1"), "{what}: injected cookie: {text}");
    };
    for (v, accepted) in vectors {
        c.run(&format!("response splitting via {v} (caught by the app)"), || {
            let raw = raw_exchange(
                a.port,
                format!("GET /inject?v={v}&mode=caught HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
                Duration::from_secs(10),
            );
            assert!(raw.closed);
            assert_eq!(raw.status(), Some(200), "{}", raw.text());
            let body = raw.response().unwrap().text();
            if accepted {
                assert_eq!(body, "accepted");
                let line = raw.head().split("\r\n").find(|l| l.starts_with("X-A:")).map(str::to_string);
                assert!(line.is_some_and(|l| l.contains("X-Injected: 1")), "kept inside X-A: {}", raw.head());
            } else {
                assert!(body.starts_with("refused "), "start_response accepted {v}: {body:?}");
            }
            no_injection(&raw, v);
        });
        if !accepted {
            c.run(&format!("response splitting via {v} (uncaught): 500, no injected line"), || {
                let mark = log_mark(a);
                let raw = raw_exchange(
                    a.port,
                    format!("GET /inject?v={v}&mode=uncaught HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                    Duration::from_secs(10),
                );
                assert_eq!(raw.status(), Some(500), "{}", raw.text());
                no_injection(&raw, v);
                wait_line_after(a, mark, Duration::from_secs(5), &["exception raised by WSGI script", "sec_inject.wsgi"])
                    .unwrap();
            });
        }
    }
}

#[test]
fn security_guarantees_on_a_running_server() {
    let s = start_server();
    let mut c = Checks::new("security");
    authorization(&s, &mut c);
    header_names(&s, &mut c);
    never_executed(&s, &mut c);
    htaccess(&s, &mut c);
    injection(&s, &mut c);
    c.run("no crash", || assert_no_crash(&s.apache.error_log()));
    drop(s);
    rp_finish(c);
}

// ---------------------------------------------------------------------------------------
// 3: <VirtualHost> and <Directory>, refused by the configuration check

fn refused(extra: &str, line: &str, needles: &[&str]) -> Result<(), String> {
    let (code, out, text, path) = apache_config_test_conf(&Conf::new(Mpm::Event).extra(extra));
    if code == 0 || out.contains("Syntax OK") {
        return Err(format!("accepted:\n{extra}\n{out}"));
    }
    let n = line_of(&text, line);
    let syntax = format!("AH00526: Syntax error on line {n} of {path}:");
    if !out.contains(&syntax) {
        return Err(format!("expected {syntax:?} for `{line}`:\n{out}"));
    }
    if !out.lines().any(|l| needles.iter().all(|w| l.contains(w))) {
        return Err(format!("no line with all of {needles:?} for `{line}`:\n{out}"));
    }
    Ok(())
}

#[test]
fn interpreter_directives_only_in_the_main_server() {
    let mut failures = Vec::new();
    let mut tried = 0;
    for (d, v) in interpreter_directives() {
        let line = format!("{d} {v}");
        let vhost = format!("<VirtualHost 127.0.0.1:@@PORT@@>\n    ServerName vhost.test\n    {line}\n</VirtualHost>\n");
        let directory = format!("<Directory @@DIR@@/htdocs>\n    {line}\n</Directory>\n");
        for (ctx, extra, needles) in [
            ("<VirtualHost>", vhost, vec![d.to_string(), "cannot occur within <VirtualHost> section".to_string()]),
            ("<Directory>", directory, vec![d.to_string(), "not allowed".to_string()]),
        ] {
            tried += 1;
            let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
            if let Err(e) = refused(&extra, &line, &needles) {
                failures.push(format!("{d} in {ctx}: {e}"));
            }
        }
        // and accepted in the main server (so the refusals above are about the context)
        let (code, out, _, _) = apache_config_test_conf(&Conf::new(Mpm::Event).extra(&line));
        if code != 0 {
            failures.push(format!("{line} refused in the main server:\n{out}"));
        }
    }
    for (d, v) in MAPPING_DIRECTIVES {
        let line = format!("{d} {v}");
        let directory = format!("<Directory @@DIR@@/htdocs>\n    {line}\n</Directory>\n");
        tried += 1;
        if let Err(e) = refused(&directory, &line, &[d, "not allowed"]) {
            failures.push(format!("{d} in <Directory>: {e}"));
        }
    }
    eprintln!("[security] {tried} directive placements checked");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
