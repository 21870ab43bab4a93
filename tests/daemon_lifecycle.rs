//! The lifecycle and limit options of WSGIDaemonProcess, against the real Apache. Each
//! group sets one option and the test makes it fire:
//!
//! * recycling without loss: `maximum-requests` and `restart-interval` under load (0
//!   failed requests), `inactivity-timeout`, `rss-limit` (ours: a planned replacement
//!   after the request that took resident memory past it), SIGUSR1;
//! * how long a replaced process's requests get: `graceful-timeout`, then
//!   `shutdown-timeout`, after which the process exits and says so;
//! * stuck work: `request-timeout` (504, every thread's Python stack in the log, the
//!   process replaced), `deadlock-timeout` (the GIL held by a C call: stacks, 504, the
//!   process exits and is restarted), `queue-timeout` (503, the application not run),
//!   `startup-timeout` (a script that never loads: 503 and successors after a growing
//!   back-off; a daemon never ready: killed and restarted after the back-off);
//! * operating-system limits: `memory-limit`, `virtual-memory-limit`, `cpu-time-limit`
//!   (the process is replaced once it has used that much CPU), `cpu-priority`,
//!   `stack-size`.
mod common;
use common::*;
use std::time::{Duration, Instant};

fn start(mpm: Mpm, tag: &str, groups: &str) -> Apache {
    let dir = TestDir::new(&format!("dlife-{tag}-{}", mpm.name()));
    let app = dir.install_app("daemon_lifecycle.wsgi", &[]).to_string_lossy().into_owned();
    let failing = dir.install_app("fails_to_load.wsgi", &[]).to_string_lossy().into_owned();
    let slow_import = dir.install_app("slow_import.py", &[]).to_string_lossy().into_owned();
    let extra = groups.replace("@@APP@@", &app).replace("@@FAILING@@", &failing).replace("@@SLOW_IMPORT@@", &slow_import);
    let conf = Conf::new(mpm).log_level("info").extra(&extra);
    Apache::start(dir, &conf, &[])
}

/// The pid of the daemon answering under `prefix`.
fn pid_of(a: &Apache, prefix: &str) -> u32 {
    let r = a.get(&format!("{prefix}/where"));
    assert_eq!(r.status, 200, "GET {prefix}/where: {}\n{}", short(&r.text()), a.error_log());
    r.json().get("pid").as_i64() as u32
}

/// Waits until another process than `old` answers under `prefix`; returns its pid.
fn wait_replaced(a: &Apache, prefix: &str, old: u32) -> u32 {
    let mut new = old;
    wait_for(&format!("a process other than {old} to answer {prefix}"), Duration::from_secs(20), || {
        new = pid_of(a, prefix);
        new != old
    });
    new
}

fn logged(a: &Apache, mark: usize, needles: &[&str]) -> String {
    wait_line_after(a, mark, Duration::from_secs(20), needles).unwrap_or_else(|e| panic!("{e}"))
}

fn count_lines(a: &Apache, needle: &str) -> usize {
    a.error_log().lines().filter(|l| l.contains(needle)).count()
}

fn assert_nothing_failed(result: &LoadResult, during: &str) {
    assert!(result.total > 50, "the load made only {} requests", result.total);
    assert_eq!(
        (result.non_200(), result.error_count),
        (0, 0),
        "failed requests during {during}: {:?} {:?}",
        result.counts,
        result.errors
    );
}

// ---------------------------------------------------------------------------------------
// recycling

fn recycling_without_loss(mpm: Mpm) {
    let m = mpm.name();
    let mut a = start(
        mpm,
        "recycle",
        &format!(
            "WSGIDaemonProcess maxreq-{m} processes=2 threads=4 maximum-requests=40\n\
             WSGIScriptAlias /maxreq @@APP@@ process-group=maxreq-{m}\n\
             WSGIDaemonProcess interval-{m} threads=4 restart-interval=2\n\
             WSGIScriptAlias /interval @@APP@@ process-group=interval-{m}\n"
        ),
    );
    let first = (pid_of(&a, "/maxreq"), pid_of(&a, "/interval"));
    let result = load(a.port, &[("/maxreq/sleep?0.005", "slept"), ("/interval/sleep?0.005", "slept")], 4, Duration::from_secs(8));
    assert_nothing_failed(&result, "maximum-requests and restart-interval replacements");
    let log = a.error_log();
    let max_requests = lines_with(&log, &format!("daemon process group maxreq-{m}: process")).into_iter()
        .filter(|l| l.contains("asks to be replaced (maximum-requests: 40 requests served)"))
        .count();
    let intervals = lines_with(&log, &format!("daemon process group interval-{m}: process")).into_iter()
        .filter(|l| l.contains("asks to be replaced (restart-interval: it ran 2 s)"))
        .count();
    // About 2,000 requests over 2 processes: many times 40 each; 8 s: about 3 intervals.
    assert!(max_requests >= 3, "{max_requests} maximum-requests replacements:\n{log}");
    assert!(intervals >= 2, "{intervals} restart-interval replacements:\n{log}");
    assert!(count_lines(&a, &format!("daemon process group maxreq-{m}: replaced process")) >= 3, "{log}");
    assert_ne!(pid_of(&a, "/maxreq"), first.0);
    assert_ne!(pid_of(&a, "/interval"), first.1);
    assert_no_crash(&log);
    a.stop();
}

#[test]
fn recycling_without_loss_event() {
    let _g = heavy();
    recycling_without_loss(Mpm::Event);
}

#[test]
fn recycling_without_loss_prefork() {
    let _g = heavy();
    recycling_without_loss(Mpm::Prefork);
}

#[test]
fn idle_memory_and_eviction_replace_the_process() {
    let _g = heavy();
    let mut a = start(
        Mpm::Event,
        "idle",
        "WSGIDaemonProcess idle threads=2 inactivity-timeout=2\n\
         WSGIScriptAlias /idle @@APP@@ process-group=idle\n\
         WSGIDaemonProcess rss threads=2 rss-limit=104857600\n\
         WSGIScriptAlias /rss @@APP@@ process-group=rss\n\
         WSGIDaemonProcess evict threads=2\n\
         WSGIScriptAlias /evict @@APP@@ process-group=evict\n",
    );
    // inactivity-timeout: nothing for 2 s, and the process is replaced by itself.
    let mark = log_mark(&a);
    let idle = pid_of(&a, "/idle");
    logged(&a, mark, &["daemon process group idle:", &format!("process {idle} asks to be replaced (inactivity-timeout: no request for 2 s)")]);
    logged(&a, mark, &["daemon process group idle:", &format!("replaced process {idle} exited normally")]);
    assert_ne!(pid_of(&a, "/idle"), idle);

    // rss-limit: the request that takes the process past 100 MiB is answered, then the
    // process is replaced; a request below the limit changes nothing.
    let mark = log_mark(&a);
    let rss = pid_of(&a, "/rss");
    let r = a.get("/rss/grow?10");
    assert_eq!((r.status, r.json().get("pid").as_i64() as u32), (200, rss));
    assert_eq!(pid_of(&a, "/rss"), rss, "replaced below its rss-limit");
    let r = a.get("/rss/grow?120");
    assert_eq!(r.status, 200, "{}", r.text());
    let line = logged(&a, mark, &[&format!("process {rss} asks to be replaced (rss-limit: resident memory"), "above 100 MiB"]);
    assert!(line.contains("MiB after a request"), "{line}");
    wait_replaced(&a, "/rss", rss);

    // SIGUSR1 (mod_wsgi's eviction signal) asks for a replacement too.
    let mark = log_mark(&a);
    let evict = pid_of(&a, "/evict");
    assert!(std::process::Command::new("kill").args(["-USR1", &evict.to_string()]).status().unwrap().success());
    logged(&a, mark, &[&format!("process {evict} asks to be replaced (SIGUSR1)")]);
    wait_replaced(&a, "/evict", evict);
    assert_no_crash(&a.error_log());
    a.stop();
}

/// graceful-timeout gives a replaced process's requests that long, plus
/// shutdown-timeout; without it they get shutdown-timeout, and a request still running
/// then is cut when the process exits, which it logs.
#[test]
fn graceful_and_shutdown_timeouts_bound_a_replaced_process() {
    let _g = heavy();
    let mut a = start(
        Mpm::Event,
        "grace",
        "WSGIDaemonProcess grace threads=2 graceful-timeout=6 shutdown-timeout=1\n\
         WSGIScriptAlias /grace @@APP@@ process-group=grace\n\
         WSGIDaemonProcess brief threads=2 shutdown-timeout=1\n\
         WSGIScriptAlias /brief @@APP@@ process-group=brief\n",
    );
    for (prefix, survives) in [("/grace", true), ("/brief", false)] {
        let mark = log_mark(&a);
        let old = pid_of(&a, prefix);
        let port = a.port;
        let path = format!("{prefix}/sleep?4");
        let slow = std::thread::spawn(move || http_request(port, "GET", &path, &[], b"", Duration::from_secs(20)));
        std::thread::sleep(Duration::from_millis(500));
        assert!(std::process::Command::new("kill").args(["-INT", &old.to_string()]).status().unwrap().success());
        let new = wait_replaced(&a, prefix, old);
        assert_ne!(new, old);
        let reply = slow.join().unwrap();
        if survives {
            let reply = reply.unwrap_or_else(|e| panic!("{prefix}: {e}"));
            assert_eq!(reply.status, 200, "{prefix}: {}", reply.text());
            assert_eq!(reply.json().get("pid").as_i64() as u32, old);
            logged(&a, mark, &[&format!("replaced process {old} exited normally")]);
        } else {
            // Cut: the daemon ended after taking the request, before its head.
            let status = reply.map(|r| r.status).unwrap_or(0);
            assert!(status == 502 || status == 0, "{prefix}: a request past shutdown-timeout got {status}");
            logged(
                &a,
                mark,
                &[&format!("process {old} exits with 1 request(s) still running 1 s after it stopped accepting")],
            );
        }
    }
    assert_no_crash(&a.error_log());
    a.stop();
}

// ---------------------------------------------------------------------------------------
// stuck work

fn request_and_deadlock_timeouts(mpm: Mpm) {
    let m = mpm.name();
    let mut a = start(
        mpm,
        "stuck",
        &format!(
            "WSGIDaemonProcess stuck-{m} threads=2 request-timeout=2 shutdown-timeout=2\n\
             WSGIScriptAlias /stuck @@APP@@ process-group=stuck-{m}\n\
             WSGIDaemonProcess gil-{m} threads=2 deadlock-timeout=2\n\
             WSGIScriptAlias /gil @@APP@@ process-group=gil-{m}\n"
        ),
    );
    // request-timeout: 504 after about 2 s, naming the script; every thread's stack,
    // the stuck one named by its request; the process replaced.
    let mark = log_mark(&a);
    let stuck = pid_of(&a, "/stuck");
    let started = Instant::now();
    let r = a.get("/stuck/sleep?30");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(9), "the 504 took {:?}", started.elapsed());
    let line = logged(&a, mark, &["[client 127.0.0.1", "request for ", "daemon_lifecycle.wsgi ran for", "more than request-timeout (2 s); answered 504"]);
    assert!(line.contains(&format!("process {stuck} is being replaced")), "{line}");
    logged(&a, mark, &[&format!("process {stuck}: 1 request(s) ran longer than request-timeout; Python stacks")]);
    let log = a.error_log()[mark..].to_string();
    assert!(log.contains("daemon_lifecycle.wsgi\", line") && log.contains("in application"), "no application frame:\n{log}");
    assert!(log.contains("time.sleep(_arg(environ))"), "the stuck line is not in the stack:\n{log}");
    assert!(log.contains("request for ") && log.contains("from 127.0.0.1"), "the stuck thread is not named:\n{log}");
    wait_replaced(&a, "/stuck", stuck);
    logged(&a, mark, &[&format!("process {stuck} exits with 1 request(s) still running 2 s after it stopped accepting")]);

    // deadlock-timeout: a C call keeps the GIL; the heartbeat cannot take it.
    let mark = log_mark(&a);
    let gil = pid_of(&a, "/gil");
    let started = Instant::now();
    let r = a.get("/gil/hold-gil?30");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(9), "the 504 took {:?}", started.elapsed());
    let line = logged(&a, mark, &[&format!("process {gil}: the Python GIL could not be taken for"), "(deadlock-timeout)"]);
    assert!(line.contains("its requests get 504 and it exits"), "{line}");
    let log = a.error_log()[mark..].to_string();
    assert!(log.contains("daemon_lifecycle.wsgi\", line") && log.contains("in application"), "no stack:\n{log}");
    logged(&a, mark, &["[client 127.0.0.1", "is deadlocked (deadlock-timeout, 2 s); answered 504"]);
    logged(&a, mark, &[&format!("daemon process group gil-{m}: process {gil} exited with status 3")]);
    wait_replaced(&a, "/gil", gil);
    assert_no_crash(&a.error_log());
    a.stop();
}

#[test]
fn request_and_deadlock_timeouts_event() {
    let _g = heavy();
    request_and_deadlock_timeouts(Mpm::Event);
}

#[test]
fn request_and_deadlock_timeouts_prefork() {
    let _g = heavy();
    request_and_deadlock_timeouts(Mpm::Prefork);
}

/// queue-timeout: a request that waited longer for the group's only thread gets 503
/// and never runs; the one holding the thread finishes.
#[test]
fn queue_timeout_refuses_requests_that_waited_too_long() {
    let _g = heavy();
    let mut a = start(
        Mpm::Event,
        "queue",
        "WSGIDaemonProcess queue threads=1 queue-timeout=1\n\
         WSGIScriptAlias /queue @@APP@@ process-group=queue\n",
    );
    let pid = pid_of(&a, "/queue");
    let mark = log_mark(&a);
    let port = a.port;
    let busy = std::thread::spawn(move || http_request(port, "GET", "/queue/sleep?3", &[], b"", Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(500));
    let r = a.get("/queue/grow?1");
    assert_eq!(r.status, 503, "{}", r.text());
    let line = logged(&a, mark, &["[client 127.0.0.1", "request for ", "daemon_lifecycle.wsgi waited", "more than queue-timeout (1 s); it did not run"]);
    assert!(!line.contains("waited 0."), "{line}");
    assert_eq!(busy.join().unwrap().unwrap().status, 200);
    // Not run: /grow would have kept memory; the process serves on with nothing kept.
    let r = a.get("/queue/grow?0");
    assert_eq!((r.status, r.json().get("kept_mib").as_i64(), r.json().get("pid").as_i64() as u32), (200, 0, pid));
    a.stop();
}

/// startup-timeout: a script that never loads makes the process answer 503 and be
/// replaced, its successors after a growing back-off; a daemon that never becomes
/// ready (its import script hangs) is killed and started again after the back-off.
#[test]
fn startup_timeout_replaces_processes_that_do_not_come_up() {
    let _g = heavy();
    let mut a = start(
        Mpm::Event,
        "startup",
        "WSGIDaemonProcess failing threads=2 startup-timeout=2\n\
         WSGIScriptAlias /failing @@FAILING@@ process-group=failing\n\
         WSGIDaemonProcess slow threads=2 startup-timeout=2\n\
         WSGIImportScript @@SLOW_IMPORT@@ process-group=slow application-group=%{GLOBAL}\n",
    );
    let mark = log_mark(&a);
    let r = a.get("/failing");
    assert_eq!(r.status, 500, "{}", r.text());
    // Keep requesting: each fails to load the script, until startup-timeout gives up.
    let mut saw_503 = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !(saw_503 && count_lines(&a, "could not start its application; its successor starts in 1.0 s") > 0) {
        let status = a.get("/failing").status;
        assert!(status == 500 || status == 503, "got {status}");
        saw_503 |= status == 503;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(saw_503, "no 503 after startup-timeout:\n{}", a.error_log());
    logged(&a, mark, &["asks to be replaced (startup-timeout: its WSGI script failed to load", "did not load within 2 s)"]);
    logged(&a, mark, &["[client 127.0.0.1", "could not load its application within startup-timeout (2 s) and is being replaced"]);
    logged(&a, mark, &["daemon process group failing: process", "could not start its application; its successor starts in 0.5 s"]);
    logged(&a, mark, &["daemon process group failing: process", "could not start its application; its successor starts in 1.0 s"]);

    logged(&a, mark, &["daemon process group slow: process", "was not ready 2 s after it started (startup-timeout); killing it"]);
    let restart = logged(&a, mark, &["daemon process group slow: process", "was killed by signal 9", "starting a new one in 0.5 s"]);
    assert!(restart.contains("after 2."), "{restart}");
    assert_no_crash(&a.error_log());
    a.stop();
}

// ---------------------------------------------------------------------------------------
// operating-system limits

#[test]
fn resource_limits_apply_to_the_daemons() {
    let _g = heavy();
    let mut a = start(
        Mpm::Event,
        "limits",
        "WSGIDaemonProcess limits threads=2 memory-limit=2147483648 virtual-memory-limit=8589934592 \
         cpu-priority=5 stack-size=524288 cpu-time-limit=3\n\
         WSGIScriptAlias /limits @@APP@@ process-group=limits\n\
         WSGIDaemonProcess defaults threads=2\n\
         WSGIScriptAlias /defaults @@APP@@ process-group=defaults\n",
    );
    // Without stack-size, worker threads get what the system gives threads (as under
    // mod_wsgi), not Rust's smaller default.
    let defaults = a.get("/defaults/limits").json();
    let rlimit = defaults.get("stack_rlimit").as_i64();
    let expected = if rlimit <= 0 { 8 << 20 } else { rlimit.clamp(1 << 20, 1 << 30) };
    assert_eq!(defaults.get("stack_size").as_i64(), expected, "{defaults}");
    assert_eq!(defaults.get("nice").as_i64(), 0, "{defaults}");
    let r = a.get("/limits/limits");
    assert_eq!(r.status, 200, "{}", r.text());
    let limits = r.json();
    assert_eq!(limits.get("data").as_arr()[0].as_i64(), 2147483648, "{limits}");
    assert_eq!(limits.get("as").as_arr()[0].as_i64(), 8589934592, "{limits}");
    assert_eq!(limits.get("cpu").as_arr()[0].as_i64(), 3, "{limits}");
    assert_eq!(limits.get("nice").as_i64(), 5, "{limits}");
    assert_eq!(limits.get("stack_size").as_i64(), 524288, "{limits}");

    // cpu-time-limit: past 3 s of CPU the process is replaced, the request answered.
    let mark = log_mark(&a);
    let pid = limits.get("pid").as_i64() as u32;
    let r = http_request(a.port, "GET", "/limits/spin?4", &[], b"", Duration::from_secs(30)).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    logged(&a, mark, &[&format!("process {pid} asks to be replaced (cpu-time-limit: 3 s of CPU used)")]);
    wait_replaced(&a, "/limits", pid);
    assert_no_crash(&a.error_log());
    a.stop();
}
