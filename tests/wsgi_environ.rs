//! The WSGI environ (contract "environ"): every key and value, the SCRIPT_NAME/PATH_INFO
//! split (including a `/` mount and percent-decoding), the raw QUERY_STRING and
//! REQUEST_URI, HTTP_* headers and their anti-spoofing rule, SetEnv values, and
//! wsgi.multithread/multiprocess by MPM. Every check runs against the app itself and
//! against the same app wrapped in wsgiref.validate.validator, on event, worker and
//! prefork.
mod common;
use common::*;
use std::time::Duration;

struct Env {
    environ: Json,
    types: Json,
    extra: Json,
}

fn env_req(c: &Client, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Env {
    let r = c.request(method, path, headers, body);
    assert_eq!(r.status, 200, "{method} {path} via {}: {}", c.via.name(), short(&r.text()));
    let j = r.json();
    Env { environ: j.get("environ").clone(), types: j.get("types").clone(), extra: j.get("extra").clone() }
}

fn env_get(c: &Client, path: &str) -> Env {
    env_req(c, "GET", path, &[], b"")
}

fn keys(j: &Json) -> Vec<String> {
    match j {
        Json::Obj(m) => m.iter().map(|(k, _)| k.clone()).collect(),
        _ => panic!("not an object"),
    }
}

fn suite(mpm: Mpm) {
    let dir = TestDir::new(&format!("wsgi-environ-{}", mpm.name()));
    let (app, wrapped) = rp_install(&dir, "rp_env.wsgi", &[]);
    let htdocs = dir.p("htdocs");
    let conf = Conf::new(mpm)
        .module_before("env_module", "mod_env.so")
        .extra(&format!(
            "SetEnv RP_SETENV hello-setenv\n\
             WSGIScriptAlias /env {app}\n\
             WSGIScriptAlias /no-translated {app}\n\
             <Location /no-translated>\n    WSGIPathTranslated Off\n</Location>\n\
             {}\
             <VirtualHost 127.0.0.1:@@PORT@@>\n    ServerName root.test\n    WSGIScriptAlias / {app}\n</VirtualHost>\n\
             <VirtualHost 127.0.0.1:@@PORT@@>\n    ServerName vroot.test\n    WSGIScriptAlias / {wrapped}\n</VirtualHost>\n",
            rp_vhosts(&format!("WSGIScriptAlias /env {wrapped}"))
        ));
    let apache = match rp_start(dir, &conf) {
        Ok(a) => a,
        Err(e) => panic!("[environ {}] {e}", mpm.name()),
    };
    let port = apache.port;
    let mut c = Checks::new(format!("environ {}", mpm.name()));

    for via in Via::BOTH {
        let cl = Client::new(&apache, via);
        let v = via.name();
        let script = if via == Via::Plain { app.clone() } else { wrapped.clone() };
        let server_name = if via == Via::Plain { "127.0.0.1" } else { RP_VALIDATED_HOST };

        c.run(&format!("CGI keys and values [{v}]"), || {
            let Env { environ: e, types: t, .. } = env_get(&cl, "/env/a/b?x=1&y=a%20b&z");
            assert_eq!(e.get("REQUEST_METHOD").as_str(), "GET");
            assert_eq!(e.get("SCRIPT_NAME").as_str(), "/env");
            assert_eq!(e.get("PATH_INFO").as_str(), "/a/b");
            assert_eq!(e.get("QUERY_STRING").as_str(), "x=1&y=a%20b&z", "QUERY_STRING must be raw");
            assert_eq!(e.get("REQUEST_URI").as_str(), "/env/a/b?x=1&y=a%20b&z");
            assert_eq!(e.get("SERVER_NAME").as_str(), server_name);
            assert_eq!(e.get("SERVER_PORT").as_str(), port.to_string());
            assert_eq!(e.get("SERVER_PROTOCOL").as_str(), "HTTP/1.1");
            assert!(e.get("SERVER_SOFTWARE").as_str().contains("Apache/2.4"), "SERVER_SOFTWARE {e}");
            assert_eq!(e.get("SERVER_ADDR").as_str(), "127.0.0.1");
            assert!(!e.get("SERVER_ADMIN").as_str().is_empty(), "SERVER_ADMIN empty");
            assert_eq!(e.get("REMOTE_ADDR").as_str(), "127.0.0.1");
            let rp: u32 = e.get("REMOTE_PORT").as_str().parse().expect("REMOTE_PORT numeric");
            assert!(rp > 0 && rp < 65536 && rp != port as u32, "REMOTE_PORT {rp}");
            assert_eq!(e.get("REQUEST_SCHEME").as_str(), "http");
            assert_eq!(e.get("SCRIPT_FILENAME").as_str(), script);
            assert_eq!(e.get("DOCUMENT_ROOT").as_str(), htdocs);
            assert_eq!(e.get("CONTEXT_DOCUMENT_ROOT").as_str(), htdocs);
            assert_eq!(e.get("CONTEXT_PREFIX").as_str(), "");
            assert_eq!(e.get("GATEWAY_INTERFACE").as_str(), "CGI/1.1");
            for k in keys(&e) {
                if !k.contains('.') {
                    assert_eq!(t.get(&k).as_str(), "str", "{k} must be a str");
                }
            }
        });

        c.run(&format!("defaults: PATH_INFO and QUERY_STRING empty, no CONTENT_*, no PATH, no HTTPS [{v}]"), || {
            let Env { environ: e, .. } = env_get(&cl, "/env");
            assert_eq!(e.get("SCRIPT_NAME").as_str(), "/env");
            assert_eq!(e.get("PATH_INFO").as_str(), "");
            assert_eq!(e.get("QUERY_STRING").as_str(), "");
            for k in ["CONTENT_TYPE", "CONTENT_LENGTH", "PATH", "HTTPS", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"] {
                assert!(!e.has(k), "{k} must not be in environ: {e}");
            }
            let Env { environ: e, .. } = env_get(&cl, "/env/");
            assert_eq!(e.get("SCRIPT_NAME").as_str(), "/env");
            assert_eq!(e.get("PATH_INFO").as_str(), "/");
        });

        c.run(&format!("PATH_INFO percent-decoded (latin-1 native string), REQUEST_URI raw [{v}]"), || {
            let Env { environ: e, .. } = env_get(&cl, "/env/a%20b/%7Euser/caf%C3%A9?q=%41");
            assert_eq!(e.get("SCRIPT_NAME").as_str(), "/env");
            assert_eq!(e.get("PATH_INFO").as_str(), "/a b/~user/caf\u{c3}\u{a9}");
            assert_eq!(e.get("REQUEST_URI").as_str(), "/env/a%20b/%7Euser/caf%C3%A9?q=%41");
            assert_eq!(e.get("QUERY_STRING").as_str(), "q=%41");
        });

        c.run(&format!("CONTENT_TYPE/CONTENT_LENGTH when a body is sent [{v}]"), || {
            let Env { environ: e, types: t, .. } =
                env_req(&cl, "POST", "/env/p", &[("Content-Type", "text/x-test; charset=utf-8")], b"abc");
            assert_eq!(e.get("REQUEST_METHOD").as_str(), "POST");
            assert_eq!(e.get("CONTENT_TYPE").as_str(), "text/x-test; charset=utf-8");
            assert_eq!(e.get("CONTENT_LENGTH").as_str(), "3");
            assert_eq!(t.get("CONTENT_LENGTH").as_str(), "str");
            assert!(!e.has("HTTP_CONTENT_TYPE") && !e.has("HTTP_CONTENT_LENGTH"), "{e}");
        });

        c.run(&format!("HTTP_* from request headers [{v}]"), || {
            let Env { environ: e, .. } = env_req(
                &cl,
                "GET",
                "/env",
                &[("X-Test-Header", "hello there"), ("Accept-Language", "de, en;q=0.5"), ("X-Num-9", "nine")],
                b"",
            );
            assert_eq!(e.get("HTTP_X_TEST_HEADER").as_str(), "hello there");
            assert_eq!(e.get("HTTP_ACCEPT_LANGUAGE").as_str(), "de, en;q=0.5");
            assert_eq!(e.get("HTTP_X_NUM_9").as_str(), "nine");
            assert_eq!(e.get("HTTP_HOST").as_str(), cl.host());
        });

        c.run(&format!("anti-spoofing: a header 'X_Evil: 1' never reaches environ [{v}]"), || {
            let Env { environ: e, .. } = env_req(&cl, "GET", "/env", &[("X_Evil", "1")], b"");
            assert!(!e.has("HTTP_X_EVIL"), "X_Evil must be dropped: {e}");
            let Env { environ: e, .. } =
                env_req(&cl, "GET", "/env", &[("X-Evil", "good"), ("X_Evil", "bad")], b"");
            assert_eq!(e.get("HTTP_X_EVIL").as_str(), "good", "X_Evil must not override X-Evil");
            let Env { environ: e, .. } = env_req(&cl, "GET", "/env", &[("X.Dot", "1"), ("X~Tilde", "1")], b"");
            for k in keys(&e) {
                assert!(!k.contains("DOT") && !k.contains("TILDE"), "header with odd chars reached environ as {k}");
            }
        });

        c.run(&format!("Authorization hidden by default [{v}]"), || {
            let Env { environ: e, .. } =
                env_req(&cl, "GET", "/env", &[("Authorization", "Basic dXNlcjpwYXNz")], b"");
            assert!(!e.has("HTTP_AUTHORIZATION"), "Authorization must be hidden by default: {e}");
        });

        c.run(&format!("SetEnv values [{v}]"), || {
            let Env { environ: e, .. } = env_get(&cl, "/env");
            assert_eq!(e.get("RP_SETENV").as_str(), "hello-setenv");
        });

        c.run(&format!("wsgi.* keys [{v}]"), || {
            let Env { environ: e, types: t, extra: x } = env_get(&cl, "/env");
            assert_eq!(t.get("wsgi.version").as_str(), "tuple");
            assert_eq!(e.get("wsgi.version"), &Json::Arr(vec![Json::Num(1.0), Json::Num(0.0)]));
            assert_eq!(e.get("wsgi.url_scheme").as_str(), "http");
            assert_eq!(t.get("wsgi.input_terminated").as_str(), "bool");
            assert!(e.get("wsgi.input_terminated").as_bool());
            assert_eq!(t.get("wsgi.multithread").as_str(), "bool");
            assert_eq!(e.get("wsgi.multithread").as_bool(), mpm.threaded(), "wsgi.multithread on {}", mpm.name());
            assert_eq!(t.get("wsgi.multiprocess").as_str(), "bool");
            assert!(e.get("wsgi.multiprocess").as_bool(), "wsgi.multiprocess");
            assert_eq!(t.get("wsgi.run_once").as_str(), "bool");
            assert!(!e.get("wsgi.run_once").as_bool());
            assert_eq!(x.get("input_methods").str_list(), ["read", "readline", "readlines", "__iter__"]);
            assert_eq!(x.get("errors_methods").str_list(), ["write", "writelines", "flush"]);
            assert!(x.get("file_wrapper_callable").as_bool(), "wsgi.file_wrapper must be callable");
        });

        c.run(&format!("mod_wsgi.*, apache.version, mod_wsgi_rs.version [{v}]"), || {
            let Env { environ: e, types: t, extra: x } = env_get(&cl, "/env");
            assert_eq!(e.get("mod_wsgi.process_group").as_str(), "");
            assert_eq!(e.get("mod_wsgi.application_group").as_str(), "");
            assert_eq!(e.get("mod_wsgi.callable_object").as_str(), "application");
            assert_eq!(e.get("mod_wsgi.script_reloading").as_str(), "1");
            assert_eq!(t.get("apache.version").as_str(), "tuple");
            assert!(x.get("apache_version_ints").as_bool(), "apache.version must hold ints");
            let av = e.get("apache.version").as_arr();
            assert!(av.len() >= 2 && av[0].as_i64() == 2 && av[1].as_i64() == 4, "apache.version {av:?}");
            assert_eq!(t.get("mod_wsgi_rs.version").as_str(), "str");
            assert!(!e.get("mod_wsgi_rs.version").as_str().is_empty());
        });

        c.run(&format!("mod_wsgi.request_id: a str, different for each request [{v}]"), || {
            let Env { environ: e, types: t, .. } = env_get(&cl, "/env");
            assert_eq!(t.get("mod_wsgi.request_id").as_str(), "str");
            let id1 = e.get("mod_wsgi.request_id").as_str().to_string();
            assert!(!id1.is_empty());
            let Env { environ: e2, .. } = env_get(&cl, "/env");
            assert_ne!(e2.get("mod_wsgi.request_id").as_str(), id1, "request ids must differ");
        });

        c.run(&format!("request after request, each environ has its own values [{v}]"), || {
            // The strs of the variables are reused across requests while a value repeats
            // at its position: changed values, swapped headers, long values and fewer
            // headers must each show exactly what that request sent.
            let long_a = "a".repeat(300);
            let long_b = "b".repeat(300);
            let sequence: [&[(&str, &str)]; 12] = [
                &[("X-A", "one"), ("X-B", "two")],
                // A changed value before a name the last request did not have.
                &[("X-A", "eins"), ("X-C", "new"), ("X-B", "two")],
                &[("X-A", "one"), ("X-B", "two")],
                // More names than the last request, then fewer.
                &[("X-A", "one"), ("X-B", "two"), ("X-C", "three")],
                &[("X-A", "one"), ("X-B", "two")],
                &[("X-A", "uno"), ("X-B", "two")],
                // Back to the value the first request had at this position.
                &[("X-A", "one"), ("X-B", "two")],
                &[("X-B", "two"), ("X-A", "one")],
                &[("X-A", &long_a), ("X-B", "two")],
                &[("X-A", &long_b), ("X-B", "two")],
                &[("X-A", "one")],
                &[("X-A", "one"), ("X-B", "zwei")],
            ];
            for headers in sequence {
                let Env { environ: e, .. } = env_req(&cl, "GET", "/env", headers, b"");
                for name in ["X-A", "X-B", "X-C"] {
                    let key = format!("HTTP_{}", name.replace('-', "_"));
                    match headers.iter().find(|(n, _)| *n == name) {
                        Some((_, value)) => assert_eq!(e.get(&key).as_str(), *value, "{key} after sending {headers:?}"),
                        None => assert!(!e.has(&key), "{key} not sent in {headers:?}: {}", e.get(&key)),
                    }
                }
                let id = e.get("mod_wsgi.request_id").as_str();
                let parts: Vec<_> = id.split('-').collect();
                assert!(
                    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_hexdigit())),
                    "request id {id}"
                );
            }
        });

        let root_host = if via == Via::Plain { "root.test" } else { "vroot.test" };
        c.run(&format!("WSGIScriptAlias / : SCRIPT_NAME empty, PATH_INFO the whole path [{v}]"), || {
            let host = format!("{root_host}:{port}");
            let get = |p: &str| {
                let r = apache.request("GET", p, &[("Host", host.as_str())], b"");
                assert_eq!(r.status, 200, "GET {p} on {root_host}: {}", short(&r.text()));
                r.json().get("environ").clone()
            };
            let e = get("/x/y%20z?q=1");
            assert_eq!(e.get("SCRIPT_NAME").as_str(), "");
            assert_eq!(e.get("PATH_INFO").as_str(), "/x/y z");
            assert_eq!(e.get("QUERY_STRING").as_str(), "q=1");
            let e = get("/");
            assert_eq!(e.get("SCRIPT_NAME").as_str(), "");
            assert_eq!(e.get("PATH_INFO").as_str(), "/");
        });
    }

    c.run("PATH_TRANSLATED: PATH_INFO mapped by a sub-request; absent with WSGIPathTranslated Off", || {
        let cl = Client::new(&apache, Via::Plain);
        let e = env_get(&cl, "/env/a/b?x=1").environ;
        assert_eq!(e.get("PATH_TRANSLATED").as_str(), format!("{htdocs}/a/b"), "{e}");
        let e = env_get(&cl, "/no-translated/a/b?x=1").environ;
        assert!(!keys(&e).contains(&"PATH_TRANSLATED".to_string()), "PATH_TRANSLATED with WSGIPathTranslated Off: {e}");
        // Nothing else of the CGI split changes.
        assert_eq!(e.get("SCRIPT_NAME").as_str(), "/no-translated");
        assert_eq!(e.get("PATH_INFO").as_str(), "/a/b");
        assert_eq!(e.get("REQUEST_URI").as_str(), "/no-translated/a/b?x=1");
        assert_eq!(e.get("QUERY_STRING").as_str(), "x=1");
    });

    c.run("plain and validated apps see the same environ keys", || {
        let a = env_get(&Client::new(&apache, Via::Plain), "/env/k?x=1");
        let b = env_get(&Client::new(&apache, Via::Validated), "/env/k?x=1");
        assert_eq!(keys(&a.environ), keys(&b.environ));
    });

    c.run("validator raised nothing", || {
        let (_, log) = apache.wait_log(Duration::from_millis(300), |_| false);
        let v = validator_complaints(&log);
        assert!(v.is_empty(), "validator complaints:\n{}", v.join("\n"));
    });
    c.run("no crash", || assert_no_crash(&apache.error_log()));
    drop(apache);
    rp_finish(c);
}

#[test]
fn environ_event() {
    suite(Mpm::Event);
}

#[test]
fn environ_worker() {
    suite(Mpm::Worker);
}

#[test]
fn environ_prefork() {
    suite(Mpm::Prefork);
}

/// Over TLS (mod_ssl, a self-signed certificate, curl as the client): wsgi.url_scheme
/// and REQUEST_SCHEME are https and HTTPS is set; plain HTTP beside it stays http.
#[test]
fn environ_over_tls() {
    let dir = TestDir::new("wsgi-environ-tls");
    let (app, wrapped) = rp_install(&dir, "rp_env.wsgi", &[]);
    let key = dir.p("tls.key");
    let crt = dir.p("tls.crt");
    let st = std::process::Command::new("/usr/bin/openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-keyout", &key, "-out", &crt])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(st.success(), "openssl req failed");
    let tls_port = free_port();
    let conf = Conf::new(Mpm::Event).module_before("ssl_module", "mod_ssl.so").extra(&format!(
        "WSGIScriptAlias /env {app}\nListen 127.0.0.1:{tls_port}\n\
         <VirtualHost 127.0.0.1:{tls_port}>\n  ServerName 127.0.0.1\n  SSLEngine on\n  SSLCertificateFile {crt}\n  SSLCertificateKeyFile {key}\n  WSGIScriptAlias /venv {wrapped}\n</VirtualHost>\n"
    ));
    let apache = rp_start(dir, &conf).unwrap_or_else(|e| panic!("[tls] {e}"));
    let mut c = Checks::new("environ over TLS");
    for (path, v) in [("/env/t", "plain"), ("/venv/t", "validated")] {
        c.run(&format!("https keys [{v}]"), || {
            let out = std::process::Command::new("/usr/bin/curl")
                .args(["-sk", "--max-time", "10", &format!("https://127.0.0.1:{tls_port}{path}?q=1")])
                .output()
                .expect("curl");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let j = Json::parse(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", short(&text)));
            let e = j.get("environ");
            assert_eq!(e.get("wsgi.url_scheme").as_str(), "https");
            assert_eq!(e.get("REQUEST_SCHEME").as_str(), "https");
            assert!(e.has("HTTPS"), "HTTPS missing on TLS: {e}");
            assert_eq!(j.get("types").get("HTTPS").as_str(), "str");
            assert_eq!(e.get("SERVER_PORT").as_str(), tls_port.to_string());
        });
    }
    c.run("plain HTTP beside it stays http", || {
        let r = apache.get("/env");
        assert_eq!(r.status, 200);
        let e = r.json().get("environ").clone();
        assert_eq!(e.get("wsgi.url_scheme").as_str(), "http");
        assert!(!e.has("HTTPS"), "{e}");
    });
    c.run("no crash", || assert_no_crash(&apache.error_log()));
    drop(apache);
    rp_finish(c);
}
