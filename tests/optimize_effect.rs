//! What WSGIPythonOptimize does to the interpreter, as an app sees it and as the error
//! log reports it: the level matrix over the three MPMs, the repeated directive, and
//! PYTHONOPTIMIZE in Apache's environment.
mod common;
use common::*;
use std::time::Duration;

/// Expected probe answers at optimisation level `level` (PEP 488 file names).
fn check_probe_json(j: &Json, level: i64) {
    let l0 = level == 0;
    let l2 = level == 2;
    assert_eq!(j.get("optimize").as_i64(), level, "sys.flags.optimize; probe: {j}");
    assert_eq!(j.get("debug").as_bool(), l0, "__debug__ in the script; probe: {j}");
    assert_eq!(j.get("script_assert_raises").as_bool(), l0, "assert in the script; probe: {j}");
    assert_eq!(j.get("dynamic_assert_raises").as_bool(), l0, "assert in compile(); probe: {j}");
    assert_eq!(j.get("helper_assert_raises").as_bool(), l0, "assert in an imported module; probe: {j}");
    assert_eq!(j.get("helper_debug").as_bool(), l0, "__debug__ in an imported module; probe: {j}");
    assert_eq!(j.get("script_doc_is_none").as_bool(), l2, "script docstring; probe: {j}");
    assert_eq!(j.get("helper_doc_is_none").as_bool(), l2, "imported docstring; probe: {j}");
    let pyc = match level {
        0 => "probe_helper.cpython-311.pyc".to_string(),
        n => format!("probe_helper.cpython-311.opt-{n}.pyc"),
    };
    assert_eq!(j.get("helper_cached").as_str(), pyc, "module __cached__; probe: {j}");
    // At levels 1 and 2 the default bytecode cache under DefaultRuntimeDir takes the
    // cache file; at 0 it stays beside the source (tests/pycache.rs covers the cache).
    let prefix = j.get("pycache_prefix").as_str();
    if level == 0 {
        assert_eq!(j.get("pyc").str_list(), vec![pyc], "__pycache__ contents; probe: {j}");
        assert_eq!(prefix, "", "sys.pycache_prefix at level 0; probe: {j}");
    } else {
        assert!(j.get("pyc").str_list().is_empty(), "__pycache__ written beside the source; probe: {j}");
        assert!(prefix.contains("/run/wsgi_rs-pycache/"), "sys.pycache_prefix; probe: {j}");
        assert!(j.get("helper_cached_dir").as_str().starts_with(prefix), "module __cached__ outside the cache; probe: {j}");
    }
    assert!(j.get("python").as_str().starts_with("3.11."), "python version; probe: {j}");
}

struct Run {
    apache: Apache,
}

fn start_probe(mpm: Mpm, directives: &str, env: &[(&str, &str)], tag: &str) -> Run {
    let dir = TestDir::new(tag);
    let apps = Apps::install(&dir);
    let conf = Conf::new(mpm).extra(directives).extra(&format!("WSGIScriptAlias /probe {}\n", apps.probe));
    let apache = Apache::start(dir, &conf, env);
    Run { apache }
}

/// Probes several times (so more than one child usually answers) and checks each answer.
fn check_probe(checks: &mut Checks, run: &Run, level: i64) {
    checks.run("probe answers", || {
        for _ in 0..6 {
            let r = run.apache.get("/probe");
            assert_eq!(r.status, 200, "GET /probe: {}", r.text());
            check_probe_json(&r.json(), level);
        }
    });
}

/// Exactly one init line per child, none from the parent, each with the expected level,
/// source and log level.
fn check_init_lines(checks: &mut Checks, run: &Run, level: u32, source: &str, tag: &str) {
    checks.run("init line per child", || {
        let a = &run.apache;
        let (pids, log) = a.wait_children_logged(Duration::from_secs(10), |l, pid| {
            parse_init_line(l).map(|i| i.pid == pid).unwrap_or(false)
        });
        let inits = init_lines(&log);
        assert!(!pids.is_empty(), "no children found");
        for &pid in &pids {
            let mine: Vec<&InitLine> = inits.iter().filter(|i| i.pid == pid).collect();
            assert_eq!(mine.len(), 1, "child {pid}: expected exactly one init line, got {mine:#?}\nlog:\n{log}");
        }
        let mut seen = std::collections::BTreeSet::new();
        for i in &inits {
            assert!(seen.insert(i.pid), "two init lines for pid {}:\n{log}", i.pid);
            assert_ne!(i.pid, a.pid, "Python initialised in the parent: {}", i.line);
            assert_eq!(i.log_pid, Some(i.pid), "logged by another process than it names: {}", i.line);
            assert_eq!(i.optimize, level, "level in {}", i.line);
            assert_eq!(i.source, source, "source in {}", i.line);
            assert_eq!(i.level_tag, tag, "log level of {}", i.line);
        }
        assert_no_crash(&log);
    });
}

fn matrix(mpm: Mpm) {
    let _g = heavy();
    let mut all = Checks::new(format!("matrix {}", mpm.name()));
    let cases: [(Option<u32>, u32, String); 4] = [
        (None, 0, "default".into()),
        (Some(0), 0, "WSGIPythonOptimize 0".into()),
        (Some(1), 1, "WSGIPythonOptimize 1".into()),
        (Some(2), 2, "WSGIPythonOptimize 2".into()),
    ];
    for (directive, level, source) in cases {
        let directives = directive.map(|d| format!("WSGIPythonOptimize {d}\n")).unwrap_or_default();
        let label = directive.map(|d| d.to_string()).unwrap_or_else(|| "unset".into());
        let mut checks = Checks::new(format!("{} WSGIPythonOptimize {label}", mpm.name()));
        let run = start_probe(mpm, &directives, &[], &format!("matrix-{}-{label}", mpm.name()));
        check_probe(&mut checks, &run, level as i64);
        check_init_lines(&mut checks, &run, level, &source, "info");
        drop(run);
        all.absorb(checks);
    }
    all.finish();
}

#[test]
fn level_matrix_event() {
    matrix(Mpm::Event);
}

#[test]
fn level_matrix_worker() {
    matrix(Mpm::Worker);
}

#[test]
fn level_matrix_prefork() {
    matrix(Mpm::Prefork);
}

#[test]
fn repeated_directive_last_wins() {
    let _g = heavy();
    let mut all = Checks::new("repeated");
    for (first, last) in [(2u32, 1u32), (0, 2), (1, 0)] {
        let mut checks = Checks::new(format!("WSGIPythonOptimize {first} then {last}"));
        let run = start_probe(
            Mpm::Event,
            &format!("WSGIPythonOptimize {first}\nWSGIPythonOptimize {last}\n"),
            &[],
            "repeated",
        );
        check_probe(&mut checks, &run, last as i64);
        check_init_lines(&mut checks, &run, last, &format!("WSGIPythonOptimize {last}"), "info");
        drop(run);
        all.absorb(checks);
    }
    all.finish();
}

/// PYTHONOPTIMIZE in Apache's environment: CPython keeps max(directive, env); the init
/// line names where the level came from, at notice when the environment raised it.
#[test]
fn pythonoptimize_environment() {
    let _g = heavy();
    let mut all = Checks::new("PYTHONOPTIMIZE");
    // (env value, directive, effective level, source, log level)
    let cases: Vec<(&str, Option<u32>, u32, String, &str)> = vec![
        ("2", Some(1), 2, "WSGIPythonOptimize 1, raised by PYTHONOPTIMIZE=2".into(), "notice"),
        ("2", Some(0), 2, "WSGIPythonOptimize 0, raised by PYTHONOPTIMIZE=2".into(), "notice"),
        ("1", Some(2), 2, "WSGIPythonOptimize 2".into(), "info"),
        ("1", Some(1), 1, "WSGIPythonOptimize 1".into(), "info"),
        ("1", None, 1, "PYTHONOPTIMIZE=1".into(), "info"),
    ];
    for (env, directive, level, source, tag) in cases {
        let directives = directive.map(|d| format!("WSGIPythonOptimize {d}\n")).unwrap_or_default();
        let mut checks = Checks::new(format!(
            "PYTHONOPTIMIZE={env} WSGIPythonOptimize {}",
            directive.map(|d| d.to_string()).unwrap_or_else(|| "unset".into())
        ));
        let mpm = if level == 2 && directive == Some(1) { Mpm::Prefork } else { Mpm::Event };
        let run = start_probe(mpm, &directives, &[("PYTHONOPTIMIZE", env)], "pythonoptimize");
        check_probe(&mut checks, &run, level as i64);
        check_init_lines(&mut checks, &run, level, &source, tag);
        drop(run);
        all.absorb(checks);
    }
    all.finish();
}
