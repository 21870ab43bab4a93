//! URL mapping (contract "Mapping"): WSGIScriptAlias prefix matching on segment
//! boundaries, runs of slashes, first match in config order, directories of scripts,
//! WSGIScriptAliasMatch with $N, AddHandler/SetHandler wsgi-script with and without
//! Options ExecCGI, the callable-object/pass-authorization/group options, vhost
//! aliases, and the 404/500 error cases. Each group of behaviours gets its own server
//! per MPM (so a directive the module lacks fails only its group); every app is also
//! served wrapped in wsgiref.validate.validator on the `validated.test` vhost.
//! Exempt from the validator (error cases, the app is never called): rp_noapp.wsgi,
//! rp_import_bad.wsgi.
mod common;
use common::*;
use std::time::Duration;

/// environ of a 200 response from rp_env.wsgi
fn envj(c: &Client, path: &str, headers: &[(&str, &str)]) -> Json {
    let r = c.request("GET", path, headers, b"");
    assert_eq!(r.status, 200, "GET {path} via {}: {}", c.via.name(), short(&r.text()));
    r.json().get("environ").clone()
}

/// Asserts that `path` runs `script` with the given SCRIPT_NAME and PATH_INFO.
fn maps(c: &Client, path: &str, script: &str, sn: &str, pi: &str) {
    let e = envj(c, path, &[]);
    assert_eq!(e.get("SCRIPT_FILENAME").as_str(), script, "GET {path}: script");
    assert_eq!(e.get("SCRIPT_NAME").as_str(), sn, "GET {path}: SCRIPT_NAME");
    assert_eq!(e.get("PATH_INFO").as_str(), pi, "GET {path}: PATH_INFO");
}

/// Runs `body` against a fresh server; a server that fails to start fails the group.
fn group(c: &mut Checks, name: &str, dir: TestDir, conf: Conf, body: impl FnOnce(&mut Checks, &Apache)) {
    match rp_start(dir, &conf) {
        Err(e) => c.run(&format!("{name}: server start"), || panic!("{e}")),
        Ok(apache) => {
            body(c, &apache);
            c.run(&format!("{name}: validator raised nothing"), || {
                let v = validator_complaints(&apache.error_log());
                assert!(v.is_empty(), "validator complaints:\n{}", v.join("\n"));
            });
            c.run(&format!("{name}: no crash"), || assert_no_crash(&apache.error_log()));
        }
    }
}

/// Installs rp_env.wsgi at `dest` (relative to the dir) with its validator wrapper at
/// `validated/<dest>`; returns (app, wrapper).
fn env_at(dir: &TestDir, dest: &str) -> (String, String) {
    rp_install_to(dir, "rp_env.wsgi", dest, &[])
}

fn pick<'a>(via: Via, pair: &'a (String, String)) -> &'a str {
    if via == Via::Plain {
        &pair.0
    } else {
        &pair.1
    }
}

fn aliases(c: &mut Checks, mpm: Mpm) {
    let dir = TestDir::new(&format!("map-alias-{}", mpm.name()));
    let env = env_at(&dir, "apps/rp_env.wsgi");
    let sub = env_at(&dir, "apps/map/sub.wsgi");
    let pre = env_at(&dir, "apps/map/pre.wsgi");
    let q = env_at(&dir, "apps/map/q.wsgi");
    let qsub = env_at(&dir, "apps/map/qsub.wsgi");
    let a = env_at(&dir, "apps/scripts/a.wsgi");
    let b = env_at(&dir, "apps/scripts/b.wsgi");
    let noapp = dir.install_app("rp_noapp.wsgi", &[]).to_string_lossy().into_owned();
    let loadfail = dir.install_app("rp_import_bad.wsgi", &[]).to_string_lossy().into_owned();
    // Source in Latin-1 that imports from __future__: it loads only when its
    // coding declaration is honoured, and its annotation (a name defined
    // nowhere) stays unevaluated only under its own future import.
    let source_forms = dir.p("apps/rp_source_forms.wsgi");
    std::fs::write(
        &source_forms,
        b"# -*- coding: latin-1 -*-\nfrom __future__ import annotations\nWORD = 'caf\xe9'\n\
          def annotated(x: undefined_name) -> None:\n    pass\n\
          def application(environ, start_response):\n\
          \x20   start_response('200 OK', [('Content-Type', 'text/plain; charset=utf-8')])\n\
          \x20   return [f\"{WORD} {annotated.__annotations__['x']}\".encode('utf-8')]\n",
    )
    .unwrap();
    // Source that cannot be compiled at all: a NUL byte in it.
    let nul = dir.p("apps/rp_nul.wsgi");
    std::fs::write(&nul, b"def application(environ, start_response):\n    return [b'\x00']\n\x00\n").unwrap();
    let missing = dir.p("apps/not-there.wsgi");
    let scripts = dir.p("apps/scripts");
    let vscripts = dir.p("validated/apps/scripts");
    let table = |v: bool| {
        let s = |p: &(String, String)| if v { p.1.clone() } else { p.0.clone() };
        let (sd, sd2) = if v { (format!("{vscripts}/"), vscripts.clone()) } else { (format!("{scripts}/"), scripts.clone()) };
        format!(
            "WSGIScriptAlias /env {}\nWSGIScriptAlias /pre/sub {}\nWSGIScriptAlias /pre {}\n\
             WSGIScriptAlias /q {}\nWSGIScriptAlias /q/sub {}\nWSGIScriptAlias /dir/ {sd}\n\
             WSGIScriptAlias /dir2 {sd2}\n",
            s(&env),
            s(&sub),
            s(&pre),
            s(&q),
            s(&qsub)
        )
    };
    let conf = Conf::new(mpm).extra(&format!(
        "# Apache would merge the slashes itself; the module must cope with them.\nMergeSlashes Off\n\
         {}WSGIScriptAlias /noapp {noapp}\nWSGIScriptAlias /loadfail {loadfail}\nWSGIScriptAlias /missing {missing}\n\
         WSGIScriptAlias /source-forms {source_forms}\nWSGIScriptAlias /nul {nul}\n{}",
        table(false),
        rp_vhosts(&table(true))
    ));
    let name = format!("aliases {}", mpm.name());
    group(c, &name, dir, conf, |c, apache| {
        for via in Via::BOTH {
            let cl = Client::new(apache, via);
            let v = via.name();
            c.run(&format!("{name}: prefix match, SCRIPT_NAME/PATH_INFO split [{v}]"), || {
                maps(&cl, "/env/a/b", pick(via, &env), "/env", "/a/b");
                maps(&cl, "/env", pick(via, &env), "/env", "");
                maps(&cl, "/env/", pick(via, &env), "/env", "/");
            });
            c.run(&format!("{name}: match only at a segment boundary [{v}]"), || {
                let r = cl.get("/envx/a");
                assert_eq!(r.status, 404, "/envx must not reach /env: {}", short(&r.text()));
                let r = cl.get("/env.x");
                assert_eq!(r.status, 404, "/env.x must not reach /env: {}", short(&r.text()));
                maps(&cl, "/pre/subx", pick(via, &pre), "/pre", "/subx");
            });
            c.run(&format!("{name}: runs of slashes count as one [{v}]"), || {
                let e = envj(&cl, "//env///a", &[]);
                assert_eq!(e.get("SCRIPT_FILENAME").as_str(), pick(via, &env));
                assert!(e.get("PATH_INFO").as_str().trim_start_matches('/') == "a", "PATH_INFO {e}");
                let e = envj(&cl, "/pre//sub/x", &[]);
                assert_eq!(e.get("SCRIPT_FILENAME").as_str(), pick(via, &sub), "/pre//sub/x must reach /pre/sub");
                assert_eq!(e.get("PATH_INFO").as_str(), "/x");
            });
            c.run(&format!("{name}: first match in config order [{v}]"), || {
                maps(&cl, "/pre/sub/x", pick(via, &sub), "/pre/sub", "/x");
                maps(&cl, "/pre/x", pick(via, &pre), "/pre", "/x");
                // /q comes before /q/sub, so /q/sub is never reached
                maps(&cl, "/q/sub/x", pick(via, &q), "/q", "/sub/x");
            });
            c.run(&format!("{name}: directory of scripts (target ends in /) [{v}]"), || {
                maps(&cl, "/dir/a.wsgi/rest/of", pick(via, &a), "/dir/a.wsgi", "/rest/of");
                maps(&cl, "/dir/b.wsgi", pick(via, &b), "/dir/b.wsgi", "");
            });
            c.run(&format!("{name}: directory of scripts (target an existing directory) [{v}]"), || {
                maps(&cl, "/dir2/b.wsgi/x", pick(via, &b), "/dir2/b.wsgi", "/x");
            });
        }
        c.run(&format!("{name}: directory alone -> 403 and log line"), || {
            let r = apache.get("/dir/");
            assert_eq!(r.status, 403, "{}", short(&r.text()));
            wait_line(apache, Duration::from_secs(5), &["target WSGI script is a directory, not a file: ", &scripts])
                .unwrap();
        });
        c.run(&format!("{name}: missing script in a directory -> 404 and log line"), || {
            let r = apache.get("/dir/nosuch.wsgi");
            assert_eq!(r.status, 404, "{}", short(&r.text()));
            let p = format!("target WSGI script not found: {scripts}/nosuch.wsgi");
            wait_line(apache, Duration::from_secs(5), &[&p]).unwrap();
        });
        c.run(&format!("{name}: missing script -> 404 and log line with client"), || {
            let r = apache.get("/missing/x");
            assert_eq!(r.status, 404, "{}", short(&r.text()));
            let p = format!("target WSGI script not found: {missing}");
            wait_line(apache, Duration::from_secs(5), &[&p, "[client 127.0.0.1:"]).unwrap();
        });
        c.run(&format!("{name}: script without the callable -> 404 and log line"), || {
            let r = apache.get("/noapp");
            assert_eq!(r.status, 404, "{}", short(&r.text()));
            let p = format!("target WSGI script {noapp} does not contain WSGI application 'application'");
            wait_line(apache, Duration::from_secs(5), &[&p]).unwrap();
        });
        c.run(&format!("{name}: exception while loading -> 500, log line and traceback"), || {
            let r = apache.get("/loadfail");
            assert_eq!(r.status, 500, "{}", short(&r.text()));
            let p = format!("failed to load WSGI script {loadfail}");
            wait_line(apache, Duration::from_secs(5), &[&p]).unwrap();
            wait_line(apache, Duration::from_secs(5), &["RuntimeError: rp-import-script-failed"]).unwrap();
            wait_line(apache, Duration::from_secs(5), &["Traceback (most recent call last)"]).unwrap();
        });
        c.run(&format!("{name}: a script's coding declaration and __future__ imports are its own"), || {
            let r = apache.get("/source-forms");
            assert_eq!(r.status, 200, "{}", short(&r.text()));
            assert_eq!(r.text(), "caf\u{e9} undefined_name");
        });
        c.run(&format!("{name}: a NUL byte in the source -> 500 and log line naming it"), || {
            let r = apache.get("/nul");
            assert_eq!(r.status, 500, "{}", short(&r.text()));
            let p = format!("failed to load WSGI script {nul}");
            wait_line(apache, Duration::from_secs(5), &[&p]).unwrap();
            wait_line(apache, Duration::from_secs(5), &["source code string cannot contain null bytes"]).unwrap();
        });
    });
}

fn alias_match(c: &mut Checks, mpm: Mpm) {
    let dir = TestDir::new(&format!("map-match-{}", mpm.name()));
    let a = env_at(&dir, "apps/scripts/a.wsgi");
    let b = env_at(&dir, "apps/scripts/b.wsgi");
    let table = |root: &str| {
        format!(
            "WSGIScriptAliasMatch ^/match/([a-z]+) {root}/apps/scripts/$1.wsgi\n\
             WSGIScriptAliasMatch ^/two/([a-z]+)/([a-z]+)\\.py {root}/apps/scripts/$2.wsgi\n"
        )
    };
    let d = dir.p("");
    let d = d.trim_end_matches('/');
    let conf = Conf::new(mpm).extra(&format!("{}{}", table(d), rp_vhosts(&table(&format!("{d}/validated")))));
    let name = format!("aliasmatch {}", mpm.name());
    group(c, &name, dir, conf, |c, apache| {
        for via in Via::BOTH {
            let cl = Client::new(apache, via);
            let v = via.name();
            c.run(&format!("{name}: $1 in the target, matched part is SCRIPT_NAME [{v}]"), || {
                maps(&cl, "/match/a/x/y", pick(via, &a), "/match/a", "/x/y");
                maps(&cl, "/match/b", pick(via, &b), "/match/b", "");
            });
            c.run(&format!("{name}: $2 in the target [{v}]"), || {
                maps(&cl, "/two/zz/b.py/rest", pick(via, &b), "/two/zz/b.py", "/rest");
            });
            c.run(&format!("{name}: no match -> not WSGI [{v}]"), || {
                let r = cl.get("/match/");
                assert_eq!(r.status, 404, "{}", short(&r.text()));
            });
        }
    });
}

fn handlers(c: &mut Checks, mpm: Mpm) {
    let dir = TestDir::new(&format!("map-handler-{}", mpm.name()));
    let mut pairs = Vec::new();
    for sub in ["h_exec", "h_noexec", "s_exec", "s_noexec"] {
        let app = dir.install_app_to("rp_env.wsgi", &format!("htdocs/{sub}/app.wsgi"), &[]);
        let app = app.to_string_lossy().into_owned();
        let w = rp_wrapper(&dir, &app, &format!("vdocs/{sub}/app.wsgi"), "application");
        pairs.push((app, w));
    }
    dir.write("htdocs/h_exec/plain.txt", "not a script\n");
    let d = dir.p("");
    let d = d.trim_end_matches('/').to_string();
    let mut blocks = String::new();
    for root in ["htdocs", "vdocs"] {
        blocks.push_str(&format!(
            "<Directory {d}/{root}/h_exec>\n  Options ExecCGI\n  AddHandler wsgi-script .wsgi\n</Directory>\n\
             <Directory {d}/{root}/h_noexec>\n  Options None\n  AddHandler wsgi-script .wsgi\n</Directory>\n\
             <Directory {d}/{root}/s_exec>\n  Options ExecCGI\n  SetHandler wsgi-script\n</Directory>\n\
             <Directory {d}/{root}/s_noexec>\n  Options None\n  SetHandler wsgi-script\n</Directory>\n"
        ));
    }
    let conf = Conf::new(mpm)
        .module_before("mime_module", "mod_mime.so")
        .extra(&format!("TypesConfig /dev/null\n{blocks}{}", rp_vhosts(&format!("DocumentRoot {d}/vdocs"))));
    let name = format!("handlers {}", mpm.name());
    group(c, &name, dir, conf, |c, apache| {
        for via in Via::BOTH {
            let cl = Client::new(apache, via);
            let v = via.name();
            c.run(&format!("{name}: AddHandler wsgi-script with ExecCGI runs the script [{v}]"), || {
                let e = envj(&cl, "/h_exec/app.wsgi?k=1", &[]);
                assert_eq!(e.get("SCRIPT_FILENAME").as_str(), pick(via, &pairs[0]));
                assert_eq!(e.get("SCRIPT_NAME").as_str(), "/h_exec/app.wsgi");
                assert_eq!(e.get("QUERY_STRING").as_str(), "k=1");
                let r = cl.get("/h_exec/plain.txt");
                if via == Via::Plain {
                    assert_eq!(r.status, 200, "other files stay static");
                    assert_eq!(r.text(), "not a script\n");
                }
            });
            c.run(&format!("{name}: SetHandler wsgi-script with ExecCGI runs the script [{v}]"), || {
                let e = envj(&cl, "/s_exec/app.wsgi", &[]);
                assert_eq!(e.get("SCRIPT_FILENAME").as_str(), pick(via, &pairs[2]));
                assert_eq!(e.get("SCRIPT_NAME").as_str(), "/s_exec/app.wsgi");
            });
        }
        for (i, sub) in [(1, "h_noexec"), (3, "s_noexec")] {
            let what = if sub.starts_with('h') { "AddHandler" } else { "SetHandler" };
            let app = pairs[i].0.clone();
            c.run(&format!("{name}: {what} without ExecCGI -> 403 and log line"), || {
                let r = apache.get(&format!("/{sub}/app.wsgi"));
                assert_eq!(r.status, 403, "{}", short(&r.text()));
                assert!(!r.text().contains("\"environ\""), "the app must not run");
                wait_line(apache, Duration::from_secs(5), &["Options ExecCGI is off in this directory: ", &app])
                    .unwrap();
            });
        }
    });
}

fn options(c: &mut Checks, mpm: Mpm) {
    let dir = TestDir::new(&format!("map-options-{}", mpm.name()));
    let (app, wrapped) = rp_install(&dir, "rp_env.wsgi", &[]);
    let walt = rp_wrapper(&dir, &app, "validated/alt.wsgi", "alt");
    let table = |a: &str, alt: &str| {
        format!(
            "WSGIScriptAlias /alt {alt} callable-object=alt\n\
             WSGIScriptAlias /auth {a} pass-authorization=On\n\
             WSGIScriptAlias /authoff {a} pass-authorization=Off\n\
             WSGIScriptAlias /glob {a} process-group=%{{GLOBAL}} application-group=%{{GLOBAL}}\n\
             WSGIScriptAlias /env {a}\n"
        )
    };
    let conf = Conf::new(mpm).extra(&format!("{}{}", table(&app, &app), rp_vhosts(&table(&wrapped, &walt))));
    let name = format!("options {}", mpm.name());
    group(c, &name, dir, conf, |c, apache| {
        for via in Via::BOTH {
            let cl = Client::new(apache, via);
            let v = via.name();
            c.run(&format!("{name}: callable-object=alt [{v}]"), || {
                let r = cl.get("/alt/x");
                assert_eq!(r.status, 200, "{}", short(&r.text()));
                let j = r.json();
                assert_eq!(j.get("app").as_str(), "alt", "the 'alt' callable must answer");
                assert_eq!(j.get("environ").get("mod_wsgi.callable_object").as_str(), "alt");
                let r = cl.get("/env/x");
                assert_eq!(r.json().get("app").as_str(), "application");
            });
            c.run(&format!("{name}: pass-authorization=On passes Authorization [{v}]"), || {
                let auth = [("Authorization", "Basic dXNlcjpwYXNz")];
                let e = envj(&cl, "/auth", &auth);
                assert_eq!(e.get("HTTP_AUTHORIZATION").as_str(), "Basic dXNlcjpwYXNz");
                let e = envj(&cl, "/authoff", &auth);
                assert!(!e.has("HTTP_AUTHORIZATION"), "pass-authorization=Off: {e}");
                let e = envj(&cl, "/env", &auth);
                assert!(!e.has("HTTP_AUTHORIZATION"), "default: {e}");
            });
            c.run(&format!("{name}: process-group/application-group %{{GLOBAL}} accepted [{v}]"), || {
                let e = envj(&cl, "/glob/y", &[]);
                assert_eq!(e.get("SCRIPT_NAME").as_str(), "/glob");
                assert_eq!(e.get("mod_wsgi.application_group").as_str(), "");
                assert_eq!(e.get("mod_wsgi.process_group").as_str(), "");
            });
        }
    });
}

fn vhosts(c: &mut Checks, mpm: Mpm) {
    let dir = TestDir::new(&format!("map-vhost-{}", mpm.name()));
    let env = env_at(&dir, "apps/rp_env.wsgi");
    let a = env_at(&dir, "apps/scripts/a.wsgi");
    let b = env_at(&dir, "apps/scripts/b.wsgi");
    let conf = Conf::new(mpm).extra(&format!(
        "WSGIScriptAlias /env {}\nWSGIScriptAlias /shared {}\n\
         <VirtualHost 127.0.0.1:@@PORT@@>\n    ServerName 127.0.0.1\n</VirtualHost>\n\
         <VirtualHost 127.0.0.1:@@PORT@@>\n    ServerName v1.test\n    WSGIScriptAlias /env {}\n    WSGIScriptAlias /vonly {}\n</VirtualHost>\n\
         <VirtualHost 127.0.0.1:@@PORT@@>\n    ServerName v2.test\n    WSGIScriptAlias /env {}\n    WSGIScriptAlias /vonly {}\n</VirtualHost>\n",
        env.0, b.0, a.0, env.0, a.1, env.1
    ));
    let name = format!("vhosts {}", mpm.name());
    group(c, &name, dir, conf, |c, apache| {
        let port = apache.port;
        let on = |host: &str, path: &str| {
            let h = format!("{host}:{port}");
            apache.request("GET", path, &[("Host", h.as_str())], b"")
        };
        for (host, v) in [("v1.test", false), ("v2.test", true)] {
            let vn = if v { "validated" } else { "plain" };
            c.run(&format!("{name}: a vhost's own alias comes before the main server's [{vn}]"), || {
                let r = on(host, "/env/p");
                assert_eq!(r.status, 200, "{}", short(&r.text()));
                let e = r.json().get("environ").clone();
                assert_eq!(e.get("SCRIPT_FILENAME").as_str(), if v { &a.1 } else { &a.0 });
                assert_eq!(e.get("SERVER_NAME").as_str(), host);
                assert_eq!(e.get("PATH_INFO").as_str(), "/p");
            });
            c.run(&format!("{name}: main-server aliases still apply in a vhost [{vn}]"), || {
                let r = on(host, "/shared/q");
                assert_eq!(r.status, 200, "{}", short(&r.text()));
                let e = r.json().get("environ").clone();
                assert_eq!(e.get("SCRIPT_FILENAME").as_str(), b.0);
                assert_eq!(e.get("SCRIPT_NAME").as_str(), "/shared");
            });
            c.run(&format!("{name}: vhost-only alias [{vn}]"), || {
                let r = on(host, "/vonly");
                assert_eq!(r.status, 200, "{}", short(&r.text()));
                let e = r.json().get("environ").clone();
                assert_eq!(e.get("SCRIPT_FILENAME").as_str(), if v { &env.1 } else { &env.0 });
            });
        }
        c.run(&format!("{name}: other hosts do not see a vhost's aliases"), || {
            let r = apache.get("/vonly");
            assert_eq!(r.status, 404, "{}", short(&r.text()));
            let r = apache.get("/env/p");
            assert_eq!(r.status, 200);
            assert_eq!(r.json().get("environ").get("SCRIPT_FILENAME").as_str(), env.0);
        });
    });
}

fn suite(mpm: Mpm) {
    let mut c = Checks::new(format!("mapping {}", mpm.name()));
    aliases(&mut c, mpm);
    alias_match(&mut c, mpm);
    handlers(&mut c, mpm);
    options(&mut c, mpm);
    vhosts(&mut c, mpm);
    rp_finish(c);
}

#[test]
fn mapping_event() {
    suite(Mpm::Event);
}

#[test]
fn mapping_worker() {
    suite(Mpm::Worker);
}

#[test]
fn mapping_prefork() {
    suite(Mpm::Prefork);
}
