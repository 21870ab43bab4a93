//! mod_python in the same server: it owns the interpreter, we do not initialise, say so
//! once per child, and serve WSGI beside its handlers, under load, without crashing.
//!
//! Note on levels: mod_python's `PythonOptimize On` sets `Py_OptimizeFlag = 2` (its
//! source: `if (val && Py_OptimizeFlag != 2) Py_OptimizeFlag = 2;`, and measured here:
//! a handler sees `sys.flags.optimize == 2`), not 1. So the tests pick combinations
//! where our directive's value differs from the level mod_python produces, which shows
//! the directive was really not applied.
mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[derive(Clone, Copy, PartialEq)]
enum Order {
    MpFirst,
    WsgiFirst,
}

struct Case {
    mpm: Mpm,
    order: Order,
    python_optimize_on: bool,
    wsgi_optimize: Option<u32>,
    load: bool,
}

fn run_case(c: Case) {
    let _g = heavy();
    let expected_level = if c.python_optimize_on { 2 } else { 0 };
    let dir = TestDir::new(&format!("mod_python-{}", c.mpm.name()));
    let apps = Apps::install(&dir);
    let run_dir = dir.p("run");
    let conf = Conf::new(c.mpm);
    let conf = match c.order {
        Order::MpFirst => conf.module_before("python_module", MOD_PYTHON_SO),
        Order::WsgiFirst => conf.module_after("python_module", MOD_PYTHON_SO),
    };
    let mut extra = String::new();
    extra.push_str(&format!("PythonOption mod_python.mutex_directory {run_dir}\n"));
    if c.python_optimize_on {
        extra.push_str("PythonOptimize On\n");
    }
    if let Some(v) = c.wsgi_optimize {
        extra.push_str(&format!("WSGIPythonOptimize {v}\n"));
    }
    extra.push_str(&format!(
        "<Location /mp>\n    SetHandler mod_python\n    PythonHandler mp_handler\n    \
         PythonPath \"sys.path+['{}']\"\n</Location>\n",
        apps.apps_dir
    ));
    if c.load && c.mpm.threaded() {
        // mod_python imports a handler module on the first request for it
        // in each child, and two threads doing that at once may find the
        // module half-initialised: a 500 with "contains no 'handler'" from
        // mod_python's own importer, about once in 50,000 requests under
        // this load. One child, warmed up before the load (below), keeps
        // that race of mod_python's out of a check about the two modules
        // living together.
        extra.push_str(
            "StartServers 1\nServerLimit 1\nMaxRequestWorkers 25\nMinSpareThreads 1\nMaxSpareThreads 25\n",
        );
    }
    extra.push_str(&format!("WSGIScriptAlias /hello {}\n", apps.hello));
    extra.push_str(&format!("WSGIScriptAlias /probe {}\n", apps.probe));
    let conf = conf.extra(&extra);
    let apache = Apache::start(dir, &conf, &[]);
    let mut checks = Checks::new(format!(
        "{} {} PythonOptimize {} WSGIPythonOptimize {:?}",
        c.mpm.name(),
        if c.order == Order::MpFirst { "mod_python first" } else { "mod_wsgi_rs first" },
        if c.python_optimize_on { "On" } else { "unset" },
        c.wsgi_optimize
    ));

    let not_applied = match c.wsgi_optimize {
        Some(v) => format!("Interpreter directives not applied: WSGIPythonOptimize {v}"),
        None => "Interpreter directives not applied: none".to_string(),
    };
    let owner = "Python is owned by mod_python in this process; not initialising it.";
    checks.run("notice line once per child", || {
        let is_notice = |l: &str, pid: u32| {
            l.contains("[wsgi_rs:notice]") && l.contains(owner) && log_pid(l) == Some(pid)
        };
        let (pids, log) = apache.wait_children_logged(Duration::from_secs(10), is_notice);
        assert!(!pids.is_empty());
        for &pid in &pids {
            let mine: Vec<&str> = log.lines().filter(|l| is_notice(l, pid)).collect();
            assert_eq!(mine.len(), 1, "child {pid}: expected one notice, got {mine:#?}\n{log}");
            assert!(mine[0].contains(&not_applied), "expected {not_applied:?} in {}", mine[0]);
        }
        let all = lines_with(&log, owner);
        for l in &all {
            assert_ne!(log_pid(l), Some(apache.pid), "notice from the parent: {l}");
        }
        assert!(init_lines(&log).is_empty(), "we initialised Python anyway:\n{log}");
        assert!(
            lines_with(&log, "Python failed to initialise").is_empty(),
            "an init failure was logged:\n{log}"
        );
    });

    checks.run("both URLs answer", || {
        for _ in 0..4 {
            let mp = apache.get("/mp");
            assert_eq!(mp.status, 200, "/mp: {}", mp.text());
            assert!(
                mp.text().starts_with(&format!("mod_python ok optimize={expected_level} ")),
                "/mp body: {:?}",
                mp.text()
            );
            let w = apache.get("/hello");
            assert_eq!(w.status, 200, "/hello: {}", w.text());
            assert!(
                w.text().starts_with(&format!("wsgi ok optimize={expected_level} ")),
                "/hello body (the level is mod_python's, not WSGIPythonOptimize's): {:?}",
                w.text()
            );
        }
    });

    checks.run("WSGI probe sees mod_python's level", || {
        let r = apache.get("/probe");
        assert_eq!(r.status, 200, "/probe: {}", r.text());
        let j = r.json();
        assert_eq!(j.get("optimize").as_i64(), expected_level, "{j}");
        // Imported modules follow the process-wide level.
        assert_eq!(j.get("helper_assert_raises").as_bool(), expected_level == 0, "{j}");
        assert_eq!(j.get("helper_doc_is_none").as_bool(), expected_level == 2, "{j}");
    });

    if c.load {
        let warm = apache.get("/mp");
        assert_eq!(warm.status, 200, "/mp before the load: {}", warm.text());
        checks.run("10 s of concurrent load on both", || {
            let targets = [
                ("/mp", "mod_python ok optimize="),
                ("/hello", "wsgi ok optimize="),
            ];
            let res = load(apache.port, &targets, 4, Duration::from_secs(10));
            eprintln!("[mod_python load {}] {} requests: {:?}", c.mpm.name(), res.total, res.counts);
            assert_eq!(res.error_count, 0, "errors: {:?}", res.errors);
            if res.non_200() != 0 {
                let log = apache.error_log();
                let errors: Vec<&str> = log.lines().filter(|l| l.contains(":error]") || l.contains(":crit]")).collect();
                panic!("non-200 answers: {:?}\nerror log lines:\n{}", res.counts, errors.join("\n"));
            }
            assert!(res.ok_for("/mp") > 50, "too few /mp answers: {:?}", res.counts);
            assert!(res.ok_for("/hello") > 50, "too few /hello answers: {:?}", res.counts);
        });
        if Path::new("/usr/bin/wrk").exists() {
            checks.run("wrk keep-alive load on both", || {
                let mut kids = Vec::new();
                for path in ["/mp", "/hello"] {
                    let mut cmd = Command::new("/usr/bin/wrk");
                    cmd.args(["-t1", "-c4", "-d3s", "--timeout", "5s"])
                        .arg(apache.url(path))
                        .env_clear()
                        .env("PATH", "/usr/bin:/bin");
                    kids.push((path, cmd.output_in_thread()));
                }
                for (path, h) in kids {
                    let out = h.join().unwrap();
                    let text = String::from_utf8_lossy(&out.stdout).into_owned();
                    assert!(out.status.success(), "wrk {path} failed: {text}");
                    assert!(!text.contains("Non-2xx"), "wrk {path}: non-2xx answers:\n{text}");
                    assert!(!text.contains("Socket errors"), "wrk {path}: socket errors:\n{text}");
                    assert!(text.contains("Requests/sec"), "wrk {path}: {text}");
                }
            });
        }
    }

    checks.run("no crash in the error log", || {
        // give any crashing child time to be reaped and reported by the parent
        std::thread::sleep(Duration::from_millis(500));
        let log = apache.error_log();
        assert_no_crash(&log);
    });
    drop(apache);
    checks.finish();
}

trait OutputInThread {
    fn output_in_thread(self) -> std::thread::JoinHandle<std::process::Output>;
}

impl OutputInThread for Command {
    fn output_in_thread(mut self) -> std::thread::JoinHandle<std::process::Output> {
        std::thread::spawn(move || self.output().expect("run wrk"))
    }
}

#[test]
fn mod_python_loaded_first_event() {
    run_case(Case {
        mpm: Mpm::Event,
        order: Order::MpFirst,
        python_optimize_on: true,
        wsgi_optimize: Some(1),
        load: true,
    });
}

#[test]
fn mod_python_loaded_after_event() {
    run_case(Case {
        mpm: Mpm::Event,
        order: Order::WsgiFirst,
        python_optimize_on: false,
        wsgi_optimize: Some(2),
        load: true,
    });
}

#[test]
fn mod_python_loaded_first_prefork() {
    // The brief's combination: PythonOptimize On + WSGIPythonOptimize 2.
    run_case(Case {
        mpm: Mpm::Prefork,
        order: Order::MpFirst,
        python_optimize_on: true,
        wsgi_optimize: Some(2),
        load: true,
    });
}

#[test]
fn mod_python_loaded_after_prefork() {
    run_case(Case {
        mpm: Mpm::Prefork,
        order: Order::WsgiFirst,
        python_optimize_on: false,
        wsgi_optimize: Some(1),
        load: true,
    });
}

#[test]
fn mod_python_worker_without_interpreter_directives() {
    run_case(Case {
        mpm: Mpm::Worker,
        order: Order::WsgiFirst,
        python_optimize_on: true,
        wsgi_optimize: None,
        load: false,
    });
}
