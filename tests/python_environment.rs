//! The Python-side environment beyond what the conformance probe compares with mod_wsgi
//! (tests/conformance.rs, pyenv.wsgi): the `mod_wsgi` and `apache` modules used from a
//! `WSGIImportScript` file, shutdown callbacks at process exit (once, before atexit), a
//! request_started subscriber that wraps the application, a subscriber that raises,
//! `request_data()` across threads, `process_metrics()`, `wsgi.errors.detach()`, and
//! WSGIRestrictStdout beside the new streams. On event and prefork.
mod common;
use common::*;
use std::fs;
use std::time::Duration;

struct Site {
    apache: Apache,
    state: std::path::PathBuf,
}

fn start(mpm: Mpm, extra: &str) -> Site {
    let dir = TestDir::new(&format!("pyenv-{}", mpm.name()));
    let state = dir.mkdir_www("state");
    let state_s = state.to_string_lossy().into_owned();
    let startup = dir.install_app("pyenv_startup.py", &[("STATE_DIR", &state_s)]);
    let app = dir.install_app("pyenv_hooks.wsgi", &[]);
    let conf = Conf::new(mpm).extra(&format!(
        "WSGIImportScript {}\nWSGIScriptAlias /hooks {}\n{extra}",
        startup.display(),
        app.display()
    ));
    let apache = Apache::start(dir, &conf, &[]);
    Site { apache, state }
}

fn read_lines(path: &std::path::Path) -> Vec<String> {
    fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

fn modules_at_startup_and_shutdown(mpm: Mpm) {
    let mut site = start(mpm, "");
    let a = &site.apache;

    // WSGIImportScript ran in each child with both modules importable.
    let (_, log) = a.wait_log(Duration::from_secs(10), |l| l.contains("imported WSGI script"));
    let startup = read_lines(&site.state.join("startup.txt"));
    assert!(!startup.is_empty(), "the import script did not run:\n{log}");
    for line in &startup {
        assert!(
            line.contains("process_group='' mpm=") && line.contains(&format!("mpm={}", mpm.name())),
            "{line}"
        );
        assert!(line.ends_with("argv=['mod_wsgi']"), "{line}");
    }

    // A request_started subscriber can replace the application with a wrapper.
    let r = a.get("/hooks/wrapped");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-wrapped"), Some("by request_started"));
    assert_eq!(a.get("/hooks/plain").header("x-wrapped"), None);

    // A subscriber that raises is logged with its traceback; the request is served.
    let r = a.get("/hooks/callback-raises");
    assert_eq!(r.status, 200, "{}", r.text());
    let (found, log) = a.wait_log(Duration::from_secs(5), |l| l.contains("this callback fails on purpose"));
    assert!(found, "no traceback of the failing callback:\n{log}");
    assert!(log.contains("exception in a mod_wsgi 'request_started' event callback"), "{log}");

    // request_data(): the same dict while the request runs, listed in active_requests,
    // and RuntimeError on a thread that serves no request.
    let j = a.get("/hooks/data").json();
    assert!(j.get("same_dict_twice").as_bool(), "{j}");
    assert!(j.get("active_has_me").as_bool(), "{j}");
    assert_eq!(j.get("outside").get("raised").as_str(), "no active request for thread", "{j}");

    // process_metrics(): counters of this process.
    let mut counts = Vec::new();
    for _ in 0..6 {
        let m = a.get("/hooks/metrics").json();
        assert!(m.get("pid").as_bool(), "{m}");
        assert!(m.get("busy_is_float").as_bool() && m.get("cpu_is_float").as_bool(), "{m}");
        assert!(m.get("rss_sane").as_bool(), "{m}");
        assert!(m.get("running_time_is_int").as_bool(), "{m}");
        // This request is the one running (the suite sends one at a time).
        assert_eq!(m.get("active_requests").as_i64(), 1, "{m}");
        let threads = m.get("threads").as_arr();
        assert_eq!(threads.len() as i64, m.get("request_threads").as_i64(), "{m}");
        let served: i64 = threads.iter().map(|t| t.get("request_count").as_i64()).sum();
        assert_eq!(served, m.get("request_count").as_i64(), "{m}");
        counts.push(m.get("request_count").as_i64());
    }
    assert!(counts.iter().any(|c| *c >= 2), "request_count never grew: {counts:?}");

    // detach() is refused with io.UnsupportedOperation; the stream goes on working,
    // in that request and later ones.
    let j = a.get("/hooks/detach").json();
    assert_eq!(j.get("detach").as_str(), "UnsupportedOperation", "{j}");
    for i in 0..8 {
        assert_eq!(a.get(&format!("/hooks/write?after-detach-{i}")).status, 200);
    }
    let (found, log) =
        a.wait_log(Duration::from_secs(5), |l| l.contains("pyenv-hooks wsgi.errors after-detach-7"));
    assert!(found, "wsgi.errors lost after a detach:\n{log}");
    assert!(log.contains("pyenv-hooks after the detach attempt"), "{log}");
    for i in 0..8 {
        assert!(log.contains(&format!("pyenv-hooks wsgi.errors after-detach-{i}")), "{log}");
    }

    // At stop: each child that started runs its shutdown callback once, with
    // mod_wsgi's arguments, before its atexit handlers.
    let pids: Vec<String> =
        startup.iter().map(|l| l.split_whitespace().next().unwrap_or_default().to_string()).collect();
    site.apache.stop();
    let shutdown = read_lines(&site.state.join("shutdown.txt"));
    let atexit = read_lines(&site.state.join("atexit.txt"));
    for pid in &pids {
        let mine: Vec<&String> = shutdown.iter().filter(|l| l.starts_with(&format!("{pid} "))).collect();
        assert_eq!(mine.len(), 1, "child {pid}: shutdown callbacks {shutdown:?}");
        assert_eq!(mine[0], &format!("{pid} process_stopping reason='' atexit_already=False"));
        assert!(atexit.contains(pid), "child {pid}: atexit {atexit:?}");
    }
    assert_no_crash(&site.apache.error_log());
}

#[test]
fn modules_at_startup_and_shutdown_event() {
    modules_at_startup_and_shutdown(Mpm::Event);
}

#[test]
fn modules_at_startup_and_shutdown_prefork() {
    modules_at_startup_and_shutdown(Mpm::Prefork);
}

/// WSGIRestrictStdout On keeps its meaning: print() raises, sys.stderr and wsgi.errors
/// still log.
#[test]
fn restrict_stdout_beside_the_text_streams() {
    let dir = TestDir::new("pyenv-restrict");
    let app = dir.write(
        "apps/restricted.wsgi",
        "import sys\n\
         def application(environ, start_response):\n\
         \x20   try:\n\
         \x20       print('must not be printed')\n\
         \x20       outcome = b'printed'\n\
         \x20   except OSError as e:\n\
         \x20       outcome = str(e).encode()\n\
         \x20   sys.stderr.buffer.write(b'restricted: stderr still logs\\n')\n\
         \x20   environ['wsgi.errors'].write('restricted: wsgi.errors still logs\\n')\n\
         \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
         \x20   return [outcome]\n",
    );
    let conf =
        Conf::new(Mpm::Event).extra(&format!("WSGIRestrictStdout On\nWSGIScriptAlias /r {}\n", app.display()));
    let a = Apache::start(dir, &conf, &[]);
    let r = a.get("/r");
    assert_eq!((r.status, r.text().as_str()), (200, "sys.stdout access restricted by WSGIRestrictStdout On"));
    let (found, log) = a.wait_log(Duration::from_secs(5), |l| l.contains("restricted: wsgi.errors still logs"));
    assert!(found && log.contains("restricted: stderr still logs"), "{log}");
    assert!(!log.contains("must not be printed"), "{log}");
}
