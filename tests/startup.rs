//! Startup: the version banner, one interpreter per child, and a child whose interpreter
//! fails to start (it must keep serving, with 500 for WSGI and static files as usual).
mod common;
use common::*;
use std::time::Duration;

#[test]
fn banner_names_module_and_python() {
    let dir = TestDir::new("banner");
    let apps = Apps::install(&dir);
    let conf = Conf::new(Mpm::Event).extra(&format!("WSGIScriptAlias /hello {}\n", apps.hello));
    let apache = Apache::start(dir, &conf, &[]);
    let (found, log) =
        apache.wait_log(Duration::from_secs(5), |l| l.contains("resuming normal operations"));
    assert!(found, "no 'resuming normal operations' line:\n{log}");
    let banner = lines_with(&log, "resuming normal operations");
    assert_eq!(banner.len(), 1, "{banner:?}");
    assert!(
        banner[0].contains("mod_wsgi_rs/0.1.0 Python/3.11"),
        "banner lacks 'mod_wsgi_rs/0.1.0 Python/3.11': {}",
        banner[0]
    );
    // The same version component reaches the Server header (ServerTokens defaults to Full).
    let r = apache.get("/hello");
    assert_eq!(r.status, 200, "{}", r.text());
    let server = r.header("Server").unwrap_or("");
    assert!(server.contains("mod_wsgi_rs/0.1.0 Python/3.11"), "Server: {server}");
}

/// Every child logs exactly one init line, including children the MPM spawns later under
/// load; serving requests never initialises again; the parent never initialises.
fn one_init_per_child(mpm: Mpm) {
    let _g = heavy();
    let dir = TestDir::new(&format!("init-per-child-{}", mpm.name()));
    let apps = Apps::install(&dir);
    let conf = Conf::new(mpm).extra(&format!("WSGIScriptAlias /hello {}\n", apps.hello));
    let apache = Apache::start(dir, &conf, &[]);
    let is_init = |l: &str, pid: u32| parse_init_line(l).map(|i| i.pid == pid).unwrap_or(false);
    let (pids, log) = apache.wait_children_logged(Duration::from_secs(10), is_init);
    assert!(pids.len() >= 2, "StartServers 2 but children {pids:?}");
    for &pid in &pids {
        let n = init_lines(&log).iter().filter(|i| i.pid == pid).count();
        assert_eq!(n, 1, "child {pid} has {n} init lines:\n{log}");
    }
    // Requests (and, for prefork, the extra children concurrency makes) must not add
    // second lines for any process.
    let res = load(apache.port, &[("/hello", "wsgi ok optimize=0")], 6, Duration::from_secs(3));
    assert_eq!(res.error_count, 0, "load errors: {:?}", res.errors);
    assert_eq!(res.non_200(), 0, "non-200 answers: {:?}", res.counts);
    let (pids, log) = apache.wait_children_logged(Duration::from_secs(10), is_init);
    let inits = init_lines(&log);
    for &pid in &pids {
        let n = inits.iter().filter(|i| i.pid == pid).count();
        assert_eq!(n, 1, "child {pid} has {n} init lines after load:\n{log}");
    }
    let mut seen = std::collections::BTreeSet::new();
    for i in &inits {
        assert!(seen.insert(i.pid), "pid {} initialised twice:\n{log}", i.pid);
        assert_ne!(i.pid, apache.pid, "the parent initialised Python: {}", i.line);
        assert_eq!(i.log_pid, Some(i.pid), "{}", i.line);
        assert_eq!(i.level_tag, "info", "{}", i.line);
        assert_eq!((i.optimize, i.source.as_str()), (0, "default"), "{}", i.line);
    }
    assert_no_crash(&log);
}

#[test]
fn one_init_line_per_child_event() {
    one_init_per_child(Mpm::Event);
}

#[test]
fn one_init_line_per_child_worker() {
    one_init_per_child(Mpm::Worker);
}

#[test]
fn one_init_line_per_child_prefork() {
    one_init_per_child(Mpm::Prefork);
}

/// PYTHONHOME=/nonexistent makes Py_InitializeFromConfig fail ("failed to get the Python
/// codec of the filesystem encoding"). The child must log it, stay up, answer WSGI
/// requests with 500 and a clear line, and keep serving static files.
fn failed_interpreter_start(mpm: Mpm) {
    let dir = TestDir::new(&format!("failed-start-{}", mpm.name()));
    let apps = Apps::install(&dir);
    let conf = Conf::new(mpm).extra(&format!("WSGIScriptAlias /hello {}\n", apps.hello));
    let apache = Apache::start(dir, &conf, &[("PYTHONHOME", "/nonexistent")]);
    let failed_line = |l: &str, pid: u32| {
        l.contains("[wsgi_rs:")
            && l.contains(&format!("Python failed to initialise in process {pid}: "))
    };
    let (pids, log) = apache.wait_children_logged(Duration::from_secs(10), failed_line);
    assert!(!pids.is_empty());
    for &pid in &pids {
        let mine: Vec<&str> = log.lines().filter(|l| failed_line(l, pid)).collect();
        assert_eq!(mine.len(), 1, "child {pid}: expected one failure line:\n{log}");
        assert!(
            mine[0].contains("failed to get the Python codec of the filesystem encoding"),
            "the failure line should carry CPython's message: {}",
            mine[0]
        );
    }
    assert!(init_lines(&log).is_empty(), "an init line despite the failure:\n{log}");

    for i in 0..8 {
        let r = apache.get("/hello");
        assert_eq!(r.status, 500, "request {i}: {}", r.text());
        let s = apache.get("/static.txt");
        assert_eq!(s.status, 200, "static file, request {i}");
        assert_eq!(s.text(), STATIC_BODY);
    }
    let want = format!(
        "cannot run WSGI script {}: Python is not available in this process",
        apps.hello
    );
    let (found, log) = apache.wait_log(Duration::from_secs(5), |l| l.contains(&want));
    assert!(found, "expected {want:?} in:\n{log}");
    let n = lines_with(&log, &want).len();
    assert!(n >= 8, "expected one {want:?} line per request (8), got {n}");
    // No crash loop: the same children are still there.
    let after = apache.child_pids();
    for p in &pids {
        assert!(after.contains(p), "child {p} disappeared (before {pids:?}, after {after:?})");
    }
    assert!(!log.contains("exit signal"), "a child crashed:\n{log}");
    assert!(!log.contains("Fatal Python error"), "CPython aborted:\n{log}");
    assert_no_crash(&log);
}

#[test]
fn failed_interpreter_start_event() {
    failed_interpreter_start(Mpm::Event);
}

#[test]
fn failed_interpreter_start_prefork() {
    failed_interpreter_start(Mpm::Prefork);
}
