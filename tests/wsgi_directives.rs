//! The per-location directives (contract "Directives"): WSGICallableObject,
//! WSGIApplicationGroup, WSGIPassAuthorization, WSGIScriptReloading, WSGIChunkedRequest,
//! WSGIPathTranslated (its values; its effect is in wsgi_environ.rs), WSGIExportCGIVariables
//! (its values; its effect is in environ_unexported.rs), WSGIMapHEADToGET
//! and WSGIImportScript, each in the contexts the contract names
//! (server, vhost, <Directory>/<Location>, .htaccess), their case-insensitive On/Off
//! values, and bad values (`apache2 -t` exits 1 with a message naming the directive,
//! the value and the allowed values; in .htaccess a 500 and that message in the log).
//! Apps are also served through wsgiref.validate.validator where they are called.
//! Exempt from the validator: rp_import.wsgi/rp_import_bad.wsgi (import scripts, never
//! called as apps).
mod common;
use common::*;
use std::fs;
use std::time::{Duration, Instant};

fn start(dir: TestDir, conf: &Conf, what: &str) -> Apache {
    rp_start(dir, conf).unwrap_or_else(|e| panic!("[{what}] {e}"))
}

fn envj(apache: &Apache, host: Option<&str>, path: &str, headers: &[(&str, &str)]) -> Json {
    let h = host.map(|h| format!("{h}:{}", apache.port));
    let mut hs: Vec<(&str, &str)> = Vec::new();
    if let Some(h) = &h {
        hs.push(("Host", h.as_str()));
    }
    hs.extend_from_slice(headers);
    let r = apache.request("GET", path, &hs, b"");
    assert_eq!(r.status, 200, "GET {path} (host {host:?}): {}", short(&r.text()));
    r.json()
}

// ---------------------------------------------------------------------------------------

#[test]
fn callable_object() {
    let dir = TestDir::new("dir-callable");
    let (app, _) = rp_install(&dir, "rp_env.wsgi", &[]);
    let (calldir, _) = rp_install_to(&dir, "rp_env.wsgi", "apps/calldir/app.wsgi", &[]);
    let (htcall, _) = rp_install_to(&dir, "rp_env.wsgi", "apps/htcall/app.wsgi", &[]);
    let (nosuch, _) = rp_install_to(&dir, "rp_env.wsgi", "apps/nosuch/app.wsgi", &[]);
    let walt = rp_wrapper(&dir, &app, "validated/alt/app.wsgi", "alt");
    dir.write("apps/htcall/.htaccess", "WSGICallableObject alt\n");
    let d = dir.p("apps");
    let conf = Conf::new(Mpm::Event).extra(&format!(
        "WSGIScriptAlias /env {app}\nWSGIScriptAlias /calldir {calldir}\nWSGIScriptAlias /htcall {htcall}\n\
         WSGIScriptAlias /nosuch {nosuch}\nWSGIScriptAlias /valt {walt}\n\
         <Directory {d}/calldir>\n  WSGICallableObject alt\n</Directory>\n\
         <Directory {d}/htcall>\n  AllowOverride FileInfo\n</Directory>\n\
         <Directory {d}/nosuch>\n  WSGICallableObject nosuch\n</Directory>\n\
         <Directory {}>\n  WSGICallableObject alt\n</Directory>\n\
         <VirtualHost 127.0.0.1:@@PORT@@>\n  ServerName 127.0.0.1\n</VirtualHost>\n\
         <VirtualHost 127.0.0.1:@@PORT@@>\n  ServerName c1.test\n  WSGICallableObject alt\n</VirtualHost>\n",
        dir.p("validated/alt")
    ));
    let apache = start(dir, &conf, "WSGICallableObject");
    let mut c = Checks::new("WSGICallableObject");
    c.run("default is 'application'", || {
        let j = envj(&apache, None, "/env", &[]);
        assert_eq!(j.get("app").as_str(), "application");
        assert_eq!(j.get("environ").get("mod_wsgi.callable_object").as_str(), "application");
    });
    c.run("in <Directory>", || {
        let j = envj(&apache, None, "/calldir", &[]);
        assert_eq!(j.get("app").as_str(), "alt");
        assert_eq!(j.get("environ").get("mod_wsgi.callable_object").as_str(), "alt");
    });
    c.run("in .htaccess (AllowOverride FileInfo)", || {
        let j = envj(&apache, None, "/htcall", &[]);
        assert_eq!(j.get("app").as_str(), "alt");
    });
    c.run("in <VirtualHost>", || {
        let j = envj(&apache, Some("c1.test"), "/env", &[]);
        assert_eq!(j.get("app").as_str(), "alt");
        assert_eq!(j.get("environ").get("mod_wsgi.callable_object").as_str(), "alt");
    });
    c.run("validated 'alt' callable", || {
        let j = envj(&apache, None, "/valt/x", &[]);
        assert_eq!(j.get("app").as_str(), "alt");
        assert!(j.get("types").get("wsgi.input").as_str().contains("Wrapper"), "not validated: {}", j.get("types"));
    });
    c.run("a missing callable -> 404 and log line naming it", || {
        let r = apache.get("/nosuch");
        assert_eq!(r.status, 404, "{}", short(&r.text()));
        let want = format!("target WSGI script {nosuch} does not contain WSGI application 'nosuch'");
        wait_line(&apache, Duration::from_secs(5), &[&want]).unwrap();
    });
    rp_final_checks(&mut c, &apache);
    drop(apache);
    rp_finish(c);
}

#[test]
fn application_group() {
    let dir = TestDir::new("dir-appgroup");
    let (app, wrapped) = rp_install(&dir, "rp_env.wsgi", &[]);
    let (ht, _) = rp_install_to(&dir, "rp_env.wsgi", "apps/ht/app.wsgi", &[]);
    let (htbad, _) = rp_install_to(&dir, "rp_env.wsgi", "apps/htbad/app.wsgi", &[]);
    let (indir, _) = rp_install_to(&dir, "rp_env.wsgi", "apps/indir/app.wsgi", &[]);
    dir.write("apps/ht/.htaccess", "WSGIApplicationGroup %{GLOBAL}\n");
    dir.write("apps/htbad/.htaccess", "WSGIApplicationGroup other-group\n");
    let d = dir.p("apps");
    let conf = Conf::new(Mpm::Event).extra(&format!(
        "WSGIApplicationGroup %{{GLOBAL}}\n\
         WSGIScriptAlias /env {app}\nWSGIScriptAlias /ht {ht}\nWSGIScriptAlias /htbad {htbad}\nWSGIScriptAlias /indir {indir}\n\
         <Directory {d}/indir>\n  WSGIApplicationGroup %{{GLOBAL}}\n</Directory>\n\
         <Directory {d}/ht>\n  AllowOverride All\n</Directory>\n<Directory {d}/htbad>\n  AllowOverride All\n</Directory>\n\
         <VirtualHost 127.0.0.1:@@PORT@@>\n  ServerName 127.0.0.1\n</VirtualHost>\n\
         <VirtualHost 127.0.0.1:@@PORT@@>\n  ServerName {RP_VALIDATED_HOST}\n  WSGIApplicationGroup %{{GLOBAL}}\n  WSGIScriptAlias /env {wrapped}\n</VirtualHost>\n"
    ));
    let apache = start(dir, &conf, "WSGIApplicationGroup");
    let mut c = Checks::new("WSGIApplicationGroup");
    for (what, host, path) in [
        ("server", None, "/env"),
        ("<VirtualHost> (validated app)", Some(RP_VALIDATED_HOST), "/env"),
        ("<Directory>", None, "/indir"),
    ] {
        c.run(&format!("%{{GLOBAL}} accepted in {what}"), || {
            let j = envj(&apache, host, path, &[]);
            assert_eq!(j.get("environ").get("mod_wsgi.application_group").as_str(), "", "{path}");
        });
    }
    // As with mod_wsgi, the directive belongs to the server configuration
    // (server, virtual host, <Directory>), not to .htaccess files.
    c.run("not allowed in .htaccess -> 500 and Apache's message in the log", || {
        for path in ["/ht", "/htbad"] {
            let r = apache.get(path);
            assert_eq!(r.status, 500, "{path}: {}", short(&r.text()));
        }
        wait_line(&apache, Duration::from_secs(5), &["WSGIApplicationGroup not allowed here"]).unwrap();
    });
    rp_final_checks(&mut c, &apache);
    drop(apache);
    rp_finish(c);
}

#[test]
fn pass_authorization() {
    let dir = TestDir::new("dir-passauth");
    let (app, wrapped) = rp_install(&dir, "rp_env.wsgi", &[]);
    let (ht, _) = rp_install_to(&dir, "rp_env.wsgi", "apps/ht/app.wsgi", &[]);
    dir.write("apps/ht/.htaccess", "WSGIPassAuthorization On\n");
    let d = dir.p("apps");
    let table = |a: &str| {
        format!(
            "WSGIScriptAlias /on {a}\nWSGIScriptAlias /lower {a}\nWSGIScriptAlias /off {a}\nWSGIScriptAlias /default {a}\n\
             <Location /on>\n  WSGIPassAuthorization On\n</Location>\n\
             <Location /lower>\n  WSGIPassAuthorization on\n</Location>\n\
             <Location /off>\n  WSGIPassAuthorization Off\n</Location>\n"
        )
    };
    let conf = Conf::new(Mpm::Event).extra(&format!(
        "{}WSGIScriptAlias /ht {ht}\n<Directory {d}/ht>\n  AllowOverride All\n</Directory>\n{}",
        table(&app),
        rp_vhosts(&table(&wrapped))
    ));
    let apache = start(dir, &conf, "WSGIPassAuthorization");
    let mut c = Checks::new("WSGIPassAuthorization");
    let auth = [("Authorization", "Bearer rp-token-123")];
    for (host, v) in [(None, "plain"), (Some(RP_VALIDATED_HOST), "validated")] {
        c.run(&format!("On (and 'on') passes HTTP_AUTHORIZATION [{v}]"), || {
            for p in ["/on", "/lower"] {
                let e = envj(&apache, host, p, &auth).get("environ").clone();
                assert_eq!(e.get("HTTP_AUTHORIZATION").as_str(), "Bearer rp-token-123", "{p}");
            }
        });
        c.run(&format!("Off and the default hide it [{v}]"), || {
            for p in ["/off", "/default"] {
                let e = envj(&apache, host, p, &auth).get("environ").clone();
                assert!(!e.has("HTTP_AUTHORIZATION"), "{p}: {e}");
            }
        });
    }
    c.run("On in .htaccess", || {
        let e = envj(&apache, None, "/ht", &auth).get("environ").clone();
        assert_eq!(e.get("HTTP_AUTHORIZATION").as_str(), "Bearer rp-token-123");
    });
    rp_final_checks(&mut c, &apache);
    drop(apache);
    rp_finish(c);
}

// ---------------------------------------------------------------------------------------
// WSGIScriptReloading

const ONE_CHILD_EVENT: &str = "ServerLimit 1\nStartServers 1\nThreadsPerChild 10\nMaxRequestWorkers 10\nMinSpareThreads 1\nMaxSpareThreads 10\n";
const ONE_CHILD_PREFORK: &str = "StartServers 1\nMinSpareServers 1\nMaxSpareServers 1\nServerLimit 1\nMaxRequestWorkers 1\n";

fn body_of(apache: &Apache, host: Option<&str>, path: &str) -> String {
    let h = host.map(|h| format!("{h}:{}", apache.port));
    let hs: Vec<(&str, &str)> = h.iter().map(|h| ("Host", h.as_str())).collect();
    let r = apache.request("GET", path, &hs, b"");
    assert_eq!(r.status, 200, "GET {path}: {}", short(&r.text()));
    r.text()
}

fn field<'a>(body: &'a str, key: &str) -> &'a str {
    body.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {body:?}"))
}

fn rewrite(dir_path: &str, rel: &str, version: &str) {
    let src = fs::read_to_string(apps_dir().join("rp_reload.wsgi")).unwrap();
    let p = format!("{dir_path}/{rel}");
    fs::write(&p, src.replace("@@VERSION@@", version)).unwrap();
    bump_mtime(&p, 5);
}

fn reloading(mpm: Mpm) {
    let dir = TestDir::new(&format!("dir-reload-{}", mpm.name()));
    let on = dir.install_app_to("rp_reload.wsgi", "apps/on/app.wsgi", &[("VERSION", "v1")]);
    let off = dir.install_app_to("rp_reload.wsgi", "apps/off/app.wsgi", &[("VERSION", "v1")]);
    let lower = dir.install_app_to("rp_reload.wsgi", "apps/lower/app.wsgi", &[("VERSION", "v1")]);
    let (on, off, lower) = (on.display().to_string(), off.display().to_string(), lower.display().to_string());
    let won = rp_wrapper(&dir, &on, "validated/on/app.wsgi", "application");
    let d = dir.p("apps");
    let one_child = if mpm == Mpm::Prefork { ONE_CHILD_PREFORK } else { ONE_CHILD_EVENT };
    let conf = Conf::new(mpm).extra(&format!(
        "{one_child}WSGIScriptAlias /on {on}\nWSGIScriptAlias /off {off}\nWSGIScriptAlias /lower {lower}\nWSGIScriptAlias /von {won}\n\
         <Directory {d}/off>\n  WSGIScriptReloading Off\n</Directory>\n\
         <Directory {d}/lower>\n  WSGIScriptReloading oFf\n</Directory>\n"
    ));
    let root = dir.p("");
    let root = root.trim_end_matches('/').to_string();
    let apache = start(dir, &conf, "WSGIScriptReloading");
    let mut c = Checks::new(format!("WSGIScriptReloading {}", mpm.name()));
    let mut before_pids = std::collections::BTreeSet::new();
    c.run("before the change every location serves v1", || {
        for p in ["/on", "/off", "/lower", "/von"] {
            for _ in 0..4 {
                let b = body_of(&apache, None, p);
                assert_eq!(field(&b, "version"), "v1", "{p}: {b}");
                if p == "/off" {
                    before_pids.insert(field(&b, "pid").to_string());
                }
            }
        }
        let b = body_of(&apache, None, "/on");
        assert_eq!(field(&b, "reloading"), "1", "mod_wsgi.script_reloading with On: {b}");
        let b = body_of(&apache, None, "/off");
        assert_eq!(field(&b, "reloading"), "0", "mod_wsgi.script_reloading with Off: {b}");
    });
    rewrite(&root, "apps/on/app.wsgi", "v2");
    rewrite(&root, "apps/off/app.wsgi", "v2");
    rewrite(&root, "apps/lower/app.wsgi", "v2");
    c.run("On (default): the changed script is reloaded on the next request", || {
        for _ in 0..4 {
            let b = body_of(&apache, None, "/on");
            assert_eq!(field(&b, "version"), "v2", "{b}");
        }
    });
    c.run("On: through the validator wrapper too (the wrapper's target changed)", || {
        // The wrapper itself did not change, so it keeps its loaded target: only the
        // wrapper file's mtime triggers a reload. Touch it and expect v2.
        bump_mtime(&format!("{root}/validated/on/app.wsgi"), 5);
        let b = body_of(&apache, None, "/von");
        assert_eq!(field(&b, "version"), "v2", "{b}");
    });
    c.run("Off: loaded once per process, the change is not seen", || {
        assert!(!before_pids.is_empty());
        let mut seen_old_pid = false;
        for _ in 0..6 {
            for p in ["/off", "/lower"] {
                let b = body_of(&apache, None, p);
                let pid = field(&b, "pid").to_string();
                if before_pids.contains(&pid) {
                    seen_old_pid = true;
                    assert_eq!(field(&b, "version"), "v1", "{p} in a process that had loaded v1: {b}");
                }
            }
        }
        assert!(seen_old_pid, "no response came from a process that served v1 before (single-child config)");
    });
    rp_final_checks(&mut c, &apache);
    drop(apache);
    rp_finish(c);
}

#[test]
fn script_reloading_event() {
    reloading(Mpm::Event);
}

#[test]
fn script_reloading_prefork() {
    reloading(Mpm::Prefork);
}

// ---------------------------------------------------------------------------------------

#[test]
fn chunked_request() {
    let dir = TestDir::new("dir-chunked");
    let state = dir.mkdir_www("state").display().to_string();
    let (app, wrapped) = rp_install(&dir, "rp_input.wsgi", &[("STATE_DIR", &state)]);
    let table = |a: &str| {
        format!(
            "WSGIScriptAlias /on {a}\nWSGIScriptAlias /upper {a}\nWSGIScriptAlias /off {a}\nWSGIScriptAlias /default {a}\n\
             <Location /on>\n  WSGIChunkedRequest On\n</Location>\n\
             <Location /upper>\n  WSGIChunkedRequest ON\n</Location>\n\
             <Location /off>\n  WSGIChunkedRequest Off\n</Location>\n"
        )
    };
    let conf = Conf::new(Mpm::Event).extra(&format!("{}{}", table(&app), rp_vhosts(&table(&wrapped))));
    let apache = start(dir, &conf, "WSGIChunkedRequest");
    let mut c = Checks::new("WSGIChunkedRequest");
    let body: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    for via in Via::BOTH {
        let cl = Client::new(&apache, via);
        let v = via.name();
        let send = |p: &str| {
            cl.raw(
                &format!("POST {p}?mode=readn&n=5000 HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close"),
                &chunk_encode(&body, 777),
                Duration::from_secs(15),
            )
        };
        c.run(&format!("Off and the default -> 411 [{v}]"), || {
            for p in ["/off", "/default"] {
                let r = send(p);
                assert_eq!(r.status(), Some(411), "{p}: {}", short(&r.text()));
            }
        });
        c.run(&format!("On (and 'ON') -> the body is read [{v}]"), || {
            for p in ["/on", "/upper"] {
                let r = send(p).response().unwrap();
                assert_eq!(r.status, 200, "{p}: {}", short(&r.text()));
                let j = r.json();
                assert_eq!(j.get("len").as_i64(), body.len() as i64, "{p}");
                assert_eq!(j.get("sizes").as_arr().len(), 10, "{p}: read(5000) pieces");
            }
        });
        c.run(&format!("fixed-length bodies unaffected by Off [{v}]"), || {
            let r = cl.request("POST", "/off?mode=read_neg", &[], b"fixed");
            assert_eq!(r.status, 200, "{}", short(&r.text()));
            assert_eq!(r.json().get("len").as_i64(), 5);
        });
    }
    rp_final_checks(&mut c, &apache);
    drop(apache);
    rp_finish(c);
}

#[test]
fn map_head_to_get() {
    let dir = TestDir::new("dir-head");
    let state = dir.mkdir_www("state").display().to_string();
    let data = dir.write("apps/data.bin", "x").display().to_string();
    let (app, wrapped) = rp_install(&dir, "rp_response.wsgi", &[("STATE_DIR", &state), ("DATA_FILE", &data)]);
    let table = |a: &str| {
        let mut s = String::new();
        for (p, v) in [("on", "On"), ("lower", "on"), ("off", "Off"), ("auto", "Auto"), ("deflate", "Auto")] {
            s.push_str(&format!("WSGIScriptAlias /{p} {a}\n<Location /{p}>\n  WSGIMapHEADToGET {v}\n</Location>\n"));
        }
        s.push_str(&format!("WSGIScriptAlias /default {a}\nWSGIScriptAlias /defdeflate {a}\n"));
        s
    };
    let conf = Conf::new(Mpm::Event).module_before("deflate_module", "mod_deflate.so").extra(&format!(
        "{}<Location /deflate>\n  SetOutputFilter DEFLATE\n</Location>\n<Location /defdeflate>\n  SetOutputFilter DEFLATE\n</Location>\n{}",
        table(&app),
        rp_vhosts(&table(&wrapped))
    ));
    let apache = start(dir, &conf, "WSGIMapHEADToGET");
    let mut c = Checks::new("WSGIMapHEADToGET");
    for via in Via::BOTH {
        let cl = Client::new(&apache, via);
        let v = via.name();
        for (p, want) in [
            ("on", "GET"),
            ("lower", "GET"),
            ("off", "HEAD"),
            ("auto", "HEAD"),
            ("default", "HEAD"),
            ("deflate", "GET"),
            ("defdeflate", "GET"),
        ] {
            c.run(&format!("/{p}: app sees {want}, no body sent [{v}]"), || {
                let r = cl.raw(
                    &format!("HEAD /{p}/head HTTP/1.1\r\nAccept-Encoding: gzip\r\nConnection: close"),
                    b"",
                    Duration::from_secs(10),
                );
                assert_eq!(r.status(), Some(200), "{}", short(&r.text()));
                assert_eq!(r.header("x-method").as_deref(), Some(want), "{}", r.head());
                assert!(r.after_head().is_empty(), "HEAD got a body: {:?}", r.text());
            });
        }
        c.run(&format!("/on: GET and HEAD in turn each see GET [{v}]"), || {
            // The environ of a HEAD shown as GET has REQUEST_METHOD twice,
            // HEAD then GET: the later one wins, whatever came before.
            for _ in 0..10 {
                assert_eq!(cl.get("/on/head").header("X-Method"), Some("GET"));
                let r = cl.raw("HEAD /on/head HTTP/1.1\r\nConnection: close", b"", Duration::from_secs(10));
                assert_eq!(r.header("x-method").as_deref(), Some("GET"), "{}", r.head());
            }
        });
        c.run(&format!("GET unaffected [{v}]"), || {
            let r = cl.get("/on/head");
            assert_eq!(r.header("X-Method"), Some("GET"));
            assert_eq!(r.text(), "head-body-must-not-be-sent");
        });
    }
    rp_final_checks(&mut c, &apache);
    drop(apache);
    rp_finish(c);
}

// ---------------------------------------------------------------------------------------
// WSGIImportScript

#[test]
fn import_script() {
    let dir = TestDir::new("dir-import");
    let state = dir.mkdir_www("state").display().to_string();
    let imp = dir.install_app("rp_import.wsgi", &[("STATE_DIR", &state)]).display().to_string();
    let (check, wcheck) = rp_install(&dir, "rp_import_check.wsgi", &[]);
    let conf = Conf::new(Mpm::Event).extra(&format!(
        "WSGIImportScript {imp} process-group=%{{GLOBAL}} application-group=%{{GLOBAL}}\n\
         WSGIScriptAlias /check {check}\n{}",
        rp_vhosts(&format!("WSGIScriptAlias /check {wcheck}"))
    ));
    let apache = start(dir, &conf, "WSGIImportScript");
    let mut c = Checks::new("WSGIImportScript");
    c.run("loaded in every child before any WSGI request", || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = apache.child_pids();
            let missing: Vec<u32> =
                pids.iter().copied().filter(|p| !std::path::Path::new(&format!("{state}/imported-{p}")).exists()).collect();
            if !pids.is_empty() && missing.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "children {pids:?} without the import side effect: {missing:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    for (host, v) in [(None, "plain"), (Some(RP_VALIDATED_HOST), "validated")] {
        c.run(&format!("side effect visible in the first request [{v}]"), || {
            let b = body_of(&apache, host, "/check");
            assert!(b.starts_with("imported=yes"), "{b}");
        });
    }
    rp_final_checks(&mut c, &apache);
    drop(apache);
    rp_finish(c);
}

#[test]
fn import_script_failure_is_logged_and_child_serves() {
    let dir = TestDir::new("dir-import-bad");
    let bad = dir.install_app("rp_import_bad.wsgi", &[]).display().to_string();
    let (check, _) = rp_install(&dir, "rp_import_check.wsgi", &[]);
    let conf = Conf::new(Mpm::Event).extra(&format!(
        "WSGIImportScript {bad} process-group=%{{GLOBAL}} application-group=%{{GLOBAL}}\nWSGIScriptAlias /check {check}\n"
    ));
    let apache = start(dir, &conf, "WSGIImportScript failing");
    let mut c = Checks::new("WSGIImportScript failing");
    c.run("the failure is logged with the script path", || {
        wait_line(&apache, Duration::from_secs(10), &["RuntimeError: rp-import-script-failed"]).unwrap();
        wait_line(&apache, Duration::from_secs(10), &[&bad, "[wsgi_rs:error]"]).unwrap();
    });
    c.run("the child keeps serving", || {
        let b = body_of(&apache, None, "/check");
        assert!(b.starts_with("imported=no"), "{b}");
    });
    c.run("no crash", || assert_no_crash(&apache.error_log()));
    drop(apache);
    rp_finish(c);
}

// ---------------------------------------------------------------------------------------
// bad values

fn config_test(extra: &str) -> (i32, String) {
    let conf = Conf::new(Mpm::Event).extra(extra);
    let (code, out, _, _) = apache_config_test_conf(&conf);
    (code, out)
}

#[test]
fn bad_values_fail_config_test() {
    let cases: &[(&str, &[&str])] = &[
        ("WSGIScriptReloading maybe", &["WSGIScriptReloading: invalid value 'maybe'; expected On or Off"]),
        ("WSGIChunkedRequest yes", &["WSGIChunkedRequest: invalid value 'yes'; expected On or Off"]),
        ("<Location /x>\nWSGIPathTranslated no\n</Location>", &["WSGIPathTranslated: invalid value 'no'; expected On or Off"]),
        ("WSGIExportCGIVariables none", &["WSGIExportCGIVariables: invalid value 'none'; expected On or Off"]),
        ("WSGIExportCGIVariables", &["WSGIExportCGIVariables takes one argument"]),
        ("<Directory /tmp>\nWSGIPassAuthorization 1\n</Directory>", &["WSGIPassAuthorization: invalid value '1'; expected On or Off"]),
        ("<Location /x>\nWSGIPassAuthorization enabled\n</Location>", &["WSGIPassAuthorization: invalid value 'enabled'; expected On or Off"]),
        ("WSGIMapHEADToGET sometimes", &["WSGIMapHEADToGET", "sometimes", "On", "Off", "Auto"]),
        ("WSGIApplicationGroup %{global}", &["WSGIApplicationGroup: invalid application group '%{global}'; expected %{GLOBAL}"]),
        ("<VirtualHost 127.0.0.1:80>\nWSGIApplicationGroup %{ENV:}\n</VirtualHost>", &["invalid application group '%{ENV:}'"]),
        ("WSGIScriptAlias /x /tmp/x.wsgi application-group=%other", &["WSGIScriptAlias: invalid application group '%other'"]),
        ("WSGIImportScript /tmp/x.wsgi application-group=%{SERVER}", &["WSGIImportScript: application-group '%{SERVER}' cannot be used here"]),
        ("WSGIScriptAlias /x /tmp/x.wsgi process-group=%{SERVER}", &["WSGIScriptAlias: invalid process group '%{SERVER}'"]),
        ("WSGIScriptAlias /x /tmp/x.wsgi pass-authorization=maybe", &["pass-authorization", "maybe"]),
        ("WSGIScriptAlias /x /tmp/x.wsgi bogus-option=1", &["bogus-option"]),
        ("WSGIScriptAliasMatch ^/x/(.* /tmp/$1.wsgi", &["WSGIScriptAliasMatch"]),
        ("<Directory /tmp>\nWSGIImportScript /tmp/x.wsgi process-group=%{GLOBAL} application-group=%{GLOBAL}\n</Directory>", &["WSGIImportScript"]),
    ];
    let mut c = Checks::new("bad values");
    for (text, wants) in cases {
        c.run(&format!("{:?} -> apache2 -t fails", text.replace('\n', " ")), || {
            let (code, out) = config_test(text);
            assert_eq!(code, 1, "apache2 -t should fail:\n{out}");
            assert!(out.contains("AH00526"), "no syntax error report:\n{out}");
            for w in *wants {
                assert!(out.contains(w), "message lacks {w:?}:\n{out}");
            }
        });
    }
    let good = [
        "WSGIScriptReloading oFF",
        "WSGIChunkedRequest ON",
        "WSGIPathTranslated off",
        "<Directory /tmp>\nWSGIExportCGIVariables Off\n</Directory>",
        "<If \"%{HTTP:X-A} == 'b'\">\nWSGIExportCGIVariables off\n</If>",
        "<Location /x>\nWSGIPassAuthorization on\n</Location>",
        "WSGIMapHEADToGET auto",
        "WSGIMapHEADToGET ON",
        "WSGIApplicationGroup %{GLOBAL}",
        "WSGIApplicationGroup site",
        "<VirtualHost 127.0.0.1:80>\nWSGIApplicationGroup %{SERVER}\n</VirtualHost>",
        "WSGICallableObject my_app",
        "WSGIScriptAlias /x /tmp/x.wsgi process-group=%{GLOBAL} application-group=%{GLOBAL} callable-object=app2 pass-authorization=On",
        "WSGIImportScript /tmp/x.wsgi process-group=%{GLOBAL} application-group=%{GLOBAL}",
        "WSGIDaemonProcess daemon1\nWSGIScriptAlias /x /tmp/x.wsgi process-group=daemon1",
    ];
    for g in good {
        c.run(&format!("{g:?} accepted"), || {
            let (code, out) = config_test(g);
            assert_eq!(code, 0, "apache2 -t should pass:\n{out}");
        });
    }
    rp_finish(c);
}
