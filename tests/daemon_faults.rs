//! Faults in daemon mode, against the real Apache, each on event and prefork:
//!
//! * the broken-application catalogue of tests/bad_apps.rs run through a daemon process
//!   group, with the same expectations (tests/common/bad_apps.rs): the client's answer,
//!   the log lines, close(); the daemon survives every case;
//! * a segfault in a daemon (`ctypes.string_at(0)`): 502 for its in-flight request, a log
//!   line naming the group, the pid and the signal, the other daemon serving on, its
//!   requests in flight answered, and the crashed daemon replaced;
//! * a daemon that cannot start (a `python-home=` that is no Python installation): one
//!   line per attempt naming the group, the pid and the problem, 503 for requests, the
//!   attempts spaced by a growing back-off;
//! * a socket directory the group cannot use (`WSGISocketPrefix` in a directory that
//!   does not exist, or one that cannot be written): `apache2 -t` fails naming it;
//! * an Apache child killed (SIGKILL) in the middle of a request, while the daemon
//!   streams the response or reads the body: the daemon notices, the application's
//!   close() runs or its `wsgi.input` raises, and the only worker thread serves the
//!   next request;
//! * a slow client reading the response and a slow client sending the body: other
//!   requests to the group are served meanwhile, and the slow one holds one thread;
//! * 1,000 client disconnects mid-response: close() each time, the daemon's descriptors
//!   and resident memory flat after a warm-up.
mod common;
use common::bad_apps::*;
use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The line the error log gains after `mark` with every one of `needles` (waiting up to
/// 20 s for it); panics with the new lines if none comes.
fn logged(a: &Apache, mark: usize, needles: &[&str]) -> String {
    wait_line_after(a, mark, Duration::from_secs(20), needles).unwrap_or_else(|e| panic!("{e}"))
}

/// Crash markers of our own; an Apache child this test killed is reported by Apache
/// with an exit signal, so those lines are not looked for.
fn assert_no_crash_of_ours(log: &str) {
    for bad in ["Fatal Python error", "Segmentation fault", "panicked at"] {
        let hits = lines_with(log, bad);
        assert!(hits.is_empty(), "error log contains {bad:?}:\n{}", hits.join("\n"));
    }
}

/// How many processes an MPM runs, small, for a test that needs more than one
/// Apache child to be possible but does not care which serves.
fn few_children(mpm: Mpm) -> &'static str {
    match mpm {
        Mpm::Prefork => "StartServers 2\nMinSpareServers 2\nMaxSpareServers 4\nServerLimit 8\nMaxRequestWorkers 8\n",
        _ => "StartServers 1\nServerLimit 2\nThreadsPerChild 8\nMaxRequestWorkers 16\nMinSpareThreads 1\nMaxSpareThreads 16\n",
    }
}

// ---------------------------------------------------------------------------------------
// the broken-application catalogue

/// Every case of the catalogue in one daemon (processes=1): the client gets what it
/// gets in embedded mode, the Apache child logs the fault with the client's address,
/// and the daemon is never replaced.
fn catalogue(mpm: Mpm) {
    let group = format!("catalogue-{}", mpm.name());
    let dir = TestDir::new(&format!("dfaults-catalogue-{}", mpm.name()));
    let apps = BadApps::install(&dir);
    let conf = Conf::new(mpm).log_level("info").extra(&format!(
        "{}KeepAliveTimeout 30\nWSGIDaemonProcess {group} processes=1 threads=4 display-name=%{{GROUP}}\n\
         WSGIProcessGroup {group}\n{}",
        few_children(mpm),
        apps.aliases()
    ));
    let apache = Apache::start(dir, &conf, &[]);
    let daemon = apps.probe_pid(&apache);
    let mut c = Checks::new(format!("bad apps in a daemon, {}", mpm.name()));
    c.run("the probe is answered by the group's daemon", || {
        assert_eq!(daemons_titled(&group), vec![daemon]);
    });
    for (n, case) in CASES.iter().enumerate() {
        c.run(&format!("{} -> {:?}", case.url, case.expect), || {
            let seen = apps.run_case(&apache, case, n);
            assert_eq!((seen.served_before, seen.served_after), (daemon, daemon), "the daemon was replaced");
            // Log lines of a request are written by the Apache child that passed it on.
            assert_eq!(parent_of(seen.logged_by), Some(apache.pid), "the fault was not logged by an Apache child");
        });
    }
    c.run("the daemon served everything and nothing crashed", || {
        assert_eq!(daemons_titled(&group), vec![daemon]);
        let log = apache.error_log();
        assert_no_crash(&log);
        let started = lines_with(&log, &format!("daemon process group {group}: process"));
        let serving: Vec<&&str> = started.iter().filter(|l| l.contains(" serving as ")).collect();
        assert_eq!(serving.len(), 1, "the group started more than one process: {serving:?}");
    });
    eprintln!("[daemon_faults] catalogue {}: {} cases tried", mpm.name(), CASES.len());
    drop(apache);
    rp_finish(c);
}

#[test]
fn bad_apps_in_a_daemon_event() {
    catalogue(Mpm::Event);
}

#[test]
fn bad_apps_in_a_daemon_prefork() {
    catalogue(Mpm::Prefork);
}

// ---------------------------------------------------------------------------------------
// a segfault

/// Two daemons; one crashes in C in the middle of a request. Its in-flight request gets
/// 502 and the Apache child names the group and the pid; the supervisor names the
/// signal and starts another daemon. Requests in flight in the other daemon are
/// answered, and it serves on.
fn segfault(mpm: Mpm) {
    let group = format!("crash-{}", mpm.name());
    let dir = TestDir::new(&format!("dfaults-segfault-{}", mpm.name()));
    let apps = BadApps::install(&dir);
    let app = dir.install_app("daemon_faults.wsgi", &[]).to_string_lossy().into_owned();
    let conf = Conf::new(mpm).log_level("info").extra(&format!(
        "{}WSGIDaemonProcess {group} processes=2 threads=2 display-name=%{{GROUP}}\n\
         WSGIProcessGroup {group}\n{}WSGIScriptAlias /d {app}\n",
        few_children(mpm),
        apps.aliases()
    ));
    let a = Apache::start(dir, &conf, &[]);
    wait_for("two daemons", Duration::from_secs(20), || daemons_titled(&group).len() == 2);
    let before: BTreeSet<u32> = daemons_titled(&group).into_iter().collect();

    // Requests in flight while the crash happens, on either daemon.
    let port = a.port;
    let in_flight: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || http_request(port, "GET", "/d/sleep-pid?2", &[], b"", Duration::from_secs(20))))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mark = log_mark(&a);
    let r = a.get("/bad?case=crash");
    assert_eq!(r.status, 502, "the crashing request: {}", short(&r.text()));
    let said = logged(&a, mark, &["crashing in pid"]);
    let crashed: u32 = said.rsplit("crashing in pid ").next().unwrap().trim().parse().unwrap();
    assert!(before.contains(&crashed), "{crashed} is not one of the group's daemons {before:?}");
    let survivor = *before.iter().find(|p| **p != crashed).unwrap();
    let line = logged(&a, mark, &[&format!("daemon process {crashed} of group '{group}'"), "before the response head", &apps.script]);
    assert!(line.contains("[client 127.0.0.1:"), "{line}");
    let signal = logged(
        &a,
        mark,
        &[&format!("daemon process group {group}: process {crashed} was killed by signal 11 (Segmentation fault)"), "starting a new one"],
    );
    assert!(signal.contains("[wsgi_rs:error]"), "{signal}");

    // A request in flight gets its answer, or 502 if the crashed daemon was running it
    // beside the crashing one (it has two threads). One that waited on the crashed
    // daemon's connection for a free thread is answered by another daemon, and one
    // the crashed daemon finished before it took the crashing request by it.
    let mut answers = Vec::new();
    for handle in in_flight {
        let r = handle.join().unwrap().expect("a request in flight during the crash");
        match r.status {
            200 => answers.push(r.text()),
            502 => answers.push("502".to_string()),
            other => panic!("a request in flight during the crash got {other}: {}", short(&r.text())),
        }
    }
    let cut = answers.iter().filter(|a| *a == "502").count();
    assert!(cut <= 1, "more requests got 502 than the crashed daemon could run beside the crash: {answers:?}");
    let mut after = BTreeSet::new();
    wait_for("the crashed daemon's replacement", Duration::from_secs(20), || {
        after = daemons_titled(&group).into_iter().collect();
        after.len() == 2 && !after.contains(&crashed)
    });
    assert!(after.contains(&survivor), "the other daemon did not survive: {before:?} -> {after:?}");
    // The survivor answers new requests too. Which daemon takes a new connection is
    // the kernel's choice, and a fresh daemon may win it many times in a row: rounds
    // of four at once, more than either daemon's two threads take.
    let mut answering = BTreeSet::new();
    for _ in 0..10 {
        let round: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(move || http_request(port, "GET", "/d/sleep-pid?0.3", &[], b"", Duration::from_secs(20))))
            .collect();
        for handle in round {
            let r = handle.join().unwrap().expect("a request after the crash");
            assert_eq!(r.status, 200, "{}", short(&r.text()));
            answering.insert(r.text().trim_start_matches("slept in pid ").parse::<u32>().unwrap());
        }
        if answering.contains(&survivor) {
            break;
        }
    }
    assert!(answering.contains(&survivor), "the survivor stopped answering: {answering:?}");
    let log = a.error_log();
    let signals = lines_with(&log[mark..], "was killed by signal");
    assert_eq!(signals.len(), 1, "other daemons ended too: {signals:?}");
    for bad in ["panicked at", "exit signal"] {
        assert!(lines_with(&log, bad).is_empty(), "{bad:?} in the log:\n{log}");
    }
    eprintln!("[daemon_faults] segfault {}: daemon {crashed} crashed, {survivor} survived; in flight: {answers:?}", mpm.name());
}

#[test]
fn segfault_in_a_daemon_event() {
    segfault(Mpm::Event);
}

#[test]
fn segfault_in_a_daemon_prefork() {
    segfault(Mpm::Prefork);
}

// ---------------------------------------------------------------------------------------
// a daemon that cannot start

/// `python-home=` naming a directory that holds no Python: each attempt to start the
/// daemon logs one line naming the group, the pid and the problem; requests get 503
/// with a line saying why; the attempts come after a growing back-off, never in a
/// loop; a group beside it serves.
fn cannot_start(mpm: Mpm) {
    let dir = TestDir::new(&format!("dfaults-nohome-{}", mpm.name()));
    let not_python = dir.mkdir("not-python").to_string_lossy().into_owned();
    let app = dir.install_app("daemon_faults.wsgi", &[]).to_string_lossy().into_owned();
    let conf = Conf::new(mpm).log_level("info").extra(&format!(
        "{}WSGIDaemonProcess broken processes=1 threads=2 python-home={not_python} connect-timeout=2\n\
         WSGIScriptAlias /broken {app} process-group=broken\n\
         WSGIDaemonProcess fine processes=1 threads=2\n\
         WSGIScriptAlias /fine {app} process-group=fine\n",
        few_children(mpm)
    ));
    let a = Apache::start(dir, &conf, &[]);
    let mark = 0;
    let problem = ["daemon process group broken:", &not_python];
    let first = logged(&a, mark, &problem);
    assert!(first.contains("[wsgi_rs:crit]") || first.contains("[wsgi_rs:error]"), "{first}");
    for _ in 0..3 {
        let m = log_mark(&a);
        let r = a.get("/broken/where");
        assert_eq!(r.status, 503, "{}", short(&r.text()));
        logged(&a, m, &["daemon process group broken: process", "could not start Python and is being replaced", &app]);
    }
    let r = a.get("/fine/where");
    assert_eq!(r.status, 200, "the other group: {}", short(&r.text()));
    // Watch the attempts for a while: a back-off of 0.5 s doubling gives 5 or 6 in 12 s.
    std::thread::sleep(Duration::from_secs(12));
    let log = a.error_log();
    let attempts: Vec<&str> = lines_with(&log, "daemon process group broken:")
        .into_iter()
        .filter(|l| l.contains(&not_python))
        .collect();
    assert!(attempts.len() >= 3, "the group gave up starting its daemon:\n{log}");
    assert!(attempts.len() <= 10, "{} attempts in about 13 s: a start loop:\n{}", attempts.len(), attempts.join("\n"));
    let pids: BTreeSet<u32> = attempts.iter().filter_map(|l| log_pid(l)).collect();
    assert_eq!(pids.len(), attempts.len(), "more than one problem line per attempt:\n{}", attempts.join("\n"));
    let restarts = lines_with(&log, "could not start its application; its successor starts in ");
    let delays: Vec<f64> = restarts
        .iter()
        .filter_map(|l| l.split("its successor starts in ").nth(1))
        .filter_map(|rest| rest.trim_end_matches(" s").trim().parse().ok())
        .collect();
    assert!(delays.len() >= 2, "no back-off in the log:\n{}", restarts.join("\n"));
    assert!(delays.windows(2).all(|w| w[1] >= w[0]) && delays.last() > delays.first(), "the back-off does not grow: {delays:?}");
    assert_no_crash(&log);
    eprintln!("[daemon_faults] cannot start {}: {} attempts, back-off {delays:?}", mpm.name(), attempts.len());
}

#[test]
fn daemon_that_cannot_start_event() {
    let _g = heavy();
    cannot_start(Mpm::Event);
}

#[test]
fn daemon_that_cannot_start_prefork() {
    let _g = heavy();
    cannot_start(Mpm::Prefork);
}

// ---------------------------------------------------------------------------------------
// a socket directory it cannot use

/// Makes `path` immutable (chattr +i): not even root can create a file in it. Undone by
/// the guard's drop.
struct Immutable(String);

impl Immutable {
    fn set(path: &str) -> Immutable {
        run_ok("/usr/bin/chattr", &["+i", path], Path::new("/"), &[]);
        Immutable(path.to_string())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("/usr/bin/chattr").args(["-i", &self.0]).status();
    }
}

/// WSGISocketPrefix in a directory that does not exist, or in one nobody may create a
/// socket in: `apache2 -t` fails, naming the directive and the directory, and Apache
/// does not start.
fn unusable_socket_directory(mpm: Mpm) {
    let dir = TestDir::new(&format!("dfaults-sock-{}", mpm.name()));
    let app = dir.install_app("daemon_faults.wsgi", &[]).to_string_lossy().into_owned();
    let locked = dir.mkdir("ro").to_string_lossy().into_owned();
    let group = format!("WSGIDaemonProcess sockets processes=1 threads=2\nWSGIScriptAlias /s {app} process-group=sockets\n");
    // Short names: the prefix must leave room for the sockets' names.
    let missing = dir.p("none");
    let _immutable = Immutable::set(&locked);
    for (what, prefix, says) in [
        ("a missing directory", format!("{missing}/s"), format!("the directory '{missing}' of '{missing}/s' does not exist")),
        ("an unwritable directory", format!("{locked}/s"), format!("the directory '{locked}' of '{locked}/s' is not writable")),
    ] {
        let conf = Conf::new(mpm).extra(&format!("WSGISocketPrefix {prefix}\n{group}"));
        let (code, out, _, _) = apache_config_test_conf(&conf);
        assert_eq!(code, 1, "{what}: apache2 -t accepted WSGISocketPrefix {prefix}:\n{out}");
        assert!(out.contains("WSGISocketPrefix: ") && out.contains(&says), "{what}: {out}");
        let conf_text = conf.render(&dir, free_port());
        let (exit, log) = apache_start_expect_exit(&dir, &conf_text, Duration::from_secs(20));
        assert_eq!(exit, Some(1), "{what}: Apache did not stop at the configuration error:\n{log}");
        assert!(log.contains(&says), "{what}: {log}");
    }
}

#[test]
fn unusable_socket_directory_event() {
    unusable_socket_directory(Mpm::Event);
}

#[test]
fn unusable_socket_directory_prefork() {
    unusable_socket_directory(Mpm::Prefork);
}

// ---------------------------------------------------------------------------------------
// an Apache child killed mid-request

/// The Apache child holding the client connection that has local port `client_port`:
/// the owner of the socket /proc/net/tcp lists from Apache's port to it.
fn apache_child_of_connection(a: &Apache, client_port: u16) -> Option<u32> {
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    let port_hex = |addr: &str| addr.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
    let inode = table.lines().skip(1).find_map(|row| {
        let fields: Vec<&str> = row.split_whitespace().collect();
        (fields.len() > 9 && port_hex(fields[1]) == Some(a.port) && port_hex(fields[2]) == Some(client_port))
            .then(|| fields[9].to_string())
    })?;
    let socket = format!("socket:[{inode}]");
    a.child_pids().into_iter().find(|pid| {
        fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| fds.flatten().any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == socket)))
            .unwrap_or(false)
    })
}

/// An Apache child killed with SIGKILL while its daemon streams a response to it (the
/// client reads nothing, so the daemon is blocked writing), and while the daemon's
/// application reads a body the client sends slowly: the daemon notices, close() of the
/// response runs, `wsgi.input` raises OSError, and the group's only thread serves the
/// next request.
fn apache_child_killed(mpm: Mpm) {
    let group = format!("single-{}", mpm.name());
    let dir = TestDir::new(&format!("dfaults-childkill-{}", mpm.name()));
    let records = dir.mkdir_www("records").to_string_lossy().into_owned();
    let faults = dir.install_app("faults.wsgi", &[("STATE_DIR", &records)]).to_string_lossy().into_owned();
    let app = dir.install_app("daemon_faults.wsgi", &[]).to_string_lossy().into_owned();
    let conf = Conf::new(mpm).log_level("info").extra(&format!(
        "{}WSGIDaemonProcess {group} processes=1 threads=1 socket-timeout=10 display-name=%{{GROUP}}\n\
         WSGIScriptAlias /f {faults} process-group={group}\n\
         WSGIScriptAlias /d {app} process-group={group}\n",
        few_children(mpm)
    ));
    let a = Apache::start(dir, &conf, &[]);
    let daemon = a.get("/d/busy").json().get("pid").as_i64() as u32;
    let record = |name: &str| -> Vec<String> {
        fs::read_to_string(Path::new(&records).join(name)).unwrap_or_default().lines().map(str::to_string).collect()
    };
    let kill_child_of = |s: &TcpStream| -> u32 {
        let client_port = s.local_addr().unwrap().port();
        let mut child = None;
        wait_for("the Apache child of the connection", Duration::from_secs(10), || {
            child = apache_child_of_connection(&a, client_port);
            child.is_some()
        });
        let child = child.unwrap();
        run_ok("/bin/kill", &["-KILL", &child.to_string()], Path::new("/"), &[]);
        child
    };

    // A response the client does not read: the daemon blocks writing it.
    let mut s = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
    s.write_all(format!("GET /f/stream HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n", a.port).as_bytes()).unwrap();
    let mut head = [0u8; 12];
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    std::thread::sleep(Duration::from_millis(500));
    assert!(record("closes.txt").is_empty(), "the response ended before the Apache child was killed");
    let child = kill_child_of(&s);
    wait_for("close() of the response", Duration::from_secs(15), || !record("closes.txt").is_empty());
    let closes = record("closes.txt");
    let (by, items) = closes[0].split_once(' ').unwrap();
    assert_eq!(by.parse::<u32>().unwrap(), daemon, "close() ran elsewhere: {closes:?}");
    assert!(items.parse::<u32>().unwrap() < 4000, "the whole stream was produced: {closes:?}");
    drop(s);
    // The only thread is free again: the next request is served by the same daemon.
    let r = a.get("/d/busy");
    assert_eq!(r.status, 200, "after the child {child} was killed: {}", short(&r.text()));
    assert_eq!((r.json().get("pid").as_i64() as u32, r.json().get("active").as_i64()), (daemon, 1));

    // A body arriving slowly: the application waits in wsgi.input when the child dies.
    let mut s = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
    s.write_all(
        format!(
            "POST /f/upload HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: 1000000\r\n\r\n",
            a.port
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(&pseudo_random_bytes(20_000, 5)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let child = kill_child_of(&s);
    wait_for("the upload's outcome", Duration::from_secs(15), || !record("bodies.txt").is_empty());
    let bodies = record("bodies.txt");
    assert!(bodies[0].starts_with(&format!("{daemon} OSError after ")), "the application did not see the body fail: {bodies:?}");
    drop(s);
    let r = a.get("/d/busy");
    assert_eq!(r.status, 200, "after the child {child} was killed: {}", short(&r.text()));
    assert_eq!((r.json().get("pid").as_i64() as u32, r.json().get("active").as_i64()), (daemon, 1));
    assert_eq!(daemons_titled(&group), vec![daemon], "the daemon was replaced");
    assert_no_crash_of_ours(&a.error_log());
}

#[test]
fn apache_child_killed_mid_request_event() {
    apache_child_killed(Mpm::Event);
}

#[test]
fn apache_child_killed_mid_request_prefork() {
    apache_child_killed(Mpm::Prefork);
}

// ---------------------------------------------------------------------------------------
// slow clients

/// While `slow` runs (a client reading or sending slowly), requests to the same group
/// (threads=2) are served, and the group runs exactly two requests: the slow one and
/// the one asking. `slow` must still be running when the checks end.
fn served_beside(a: &Apache, what: &str, slow: impl FnOnce(Arc<AtomicBool>) + Send + 'static) {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let slow = std::thread::spawn(move || {
        slow(flag.clone());
        flag.store(true, Ordering::SeqCst);
    });
    // Let the slow client reach the daemon.
    std::thread::sleep(Duration::from_millis(500));
    let mut busy = Vec::new();
    for _ in 0..20 {
        let r = http_request(a.port, "GET", "/d/busy", &[], b"", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("beside {what}: {e}"));
        assert_eq!(r.status, 200, "beside {what}: {}", short(&r.text()));
        busy.push(r.json().get("active").as_i64());
    }
    assert!(!done.load(Ordering::SeqCst), "{what} was over before the other requests were made");
    slow.join().unwrap_or_else(|e| panic!("{what}: {}", panic_message(&*e)));
    assert!(busy.iter().all(|n| *n <= 2), "{what} holds more than one thread: requests running {busy:?}");
    assert!(busy.contains(&2), "{what} was not in the daemon while the others were served: {busy:?}");
}

fn slow_clients(mpm: Mpm) {
    const UPLOAD: usize = 256 << 10;
    let dir = TestDir::new(&format!("dfaults-slow-{}", mpm.name()));
    let records = dir.mkdir_www("records").to_string_lossy().into_owned();
    let faults = dir.install_app("faults.wsgi", &[("STATE_DIR", &records)]).to_string_lossy().into_owned();
    let app = dir.install_app("daemon_faults.wsgi", &[]).to_string_lossy().into_owned();
    let conf = Conf::new(mpm).log_level("info").extra(&format!(
        "{}WSGIDaemonProcess slow processes=1 threads=2\n\
         WSGIScriptAlias /f {faults} process-group=slow\n\
         WSGIScriptAlias /d {app} process-group=slow\n",
        few_children(mpm)
    ));
    let a = Apache::start(dir, &conf, &[]);
    let port = a.port;

    // A client reading a long streamed response (250 MiB) 64 KiB every 50 ms for 3 s,
    // then leaving: the daemon's thread waits for it, the other thread serves.
    let closes = Path::new(&records).join("closes.txt");
    served_beside(&a, "a slow reader", move |_| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(format!("GET /f/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").as_bytes())
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        for _ in 0..60 {
            let n = s.read(&mut buf).expect("the slow reader's response");
            assert!(n > 0, "the response ended after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
            std::thread::sleep(Duration::from_millis(50));
        }
        let text = String::from_utf8_lossy(&got[..got.len().min(200)]).into_owned();
        assert!(text.starts_with("HTTP/1.1 200 "), "{text:?}");
        let body_start = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(got[body_start..].iter().filter(|b| **b == b's').count() > 1 << 20, "less than 1 MiB of the body arrived");
    });
    wait_for("close() of the slow reader's response", Duration::from_secs(15), || closes.exists());
    // A client sending a 256 KiB body 4 KiB every 50 ms.
    served_beside(&a, "a slow sender", move |_| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(
            format!(
                "POST /f/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {UPLOAD}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        for piece in pseudo_random_bytes(UPLOAD, 9).chunks(4096) {
            s.write_all(piece).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        let reply = read_until_close(&mut s, Duration::from_secs(20));
        let r = reply.response().expect("a response for the slow sender");
        assert_eq!((r.status, r.text()), (200, format!("got {UPLOAD} bytes")));
    });
    assert_no_crash(&a.error_log());
}

#[test]
fn slow_clients_do_not_block_the_group_event() {
    slow_clients(Mpm::Event);
}

#[test]
fn slow_clients_do_not_block_the_group_prefork() {
    slow_clients(Mpm::Prefork);
}

// ---------------------------------------------------------------------------------------
// 1,000 disconnects

fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for {pid}"))
}

/// 1,000 clients leaving in the middle of a streamed response from the daemon: close()
/// runs for each, and after a warm-up of 50 the daemon's descriptors and resident
/// memory stay where they were (a leak of one descriptor or 64 KiB per request would
/// show as 1,000 of them or 64 MiB).
fn disconnects(mpm: Mpm) {
    const WARM_UP: usize = 50;
    const TIMES: usize = 1000;
    let group = format!("leaving-{}", mpm.name());
    let dir = TestDir::new(&format!("dfaults-disconnects-{}", mpm.name()));
    let records = dir.mkdir_www("records").to_string_lossy().into_owned();
    let faults = dir.install_app("faults.wsgi", &[("STATE_DIR", &records)]).to_string_lossy().into_owned();
    let conf = Conf::new(mpm).log_level("warn").extra(&format!(
        "{}WSGIDaemonProcess {group} processes=1 threads=4 display-name=%{{GROUP}}\n\
         WSGIScriptAlias /f {faults} process-group={group}\n",
        few_children(mpm)
    ));
    let a = Apache::start(dir, &conf, &[]);
    let closes = || fs::read_to_string(Path::new(&records).join("closes.txt")).unwrap_or_default().lines().count();
    for _ in 0..WARM_UP {
        disconnect_mid_response(a.port, "/f/stream");
    }
    wait_for("the warm-up's close() calls", Duration::from_secs(20), || closes() == WARM_UP);
    let daemon = daemons_titled(&group);
    assert_eq!(daemon.len(), 1, "{daemon:?}");
    let daemon = daemon[0];
    std::thread::sleep(Duration::from_secs(1));
    let (fds_before, rss_before) = (fd_count(daemon), vm_rss_kib(daemon));
    for _ in 0..TIMES {
        disconnect_mid_response(a.port, "/f/stream");
    }
    wait_for("every close()", Duration::from_secs(60), || closes() == WARM_UP + TIMES);
    let mut fds_after = fd_count(daemon);
    // Connections from Apache children may still be closing.
    wait_for("the daemon's descriptors to settle", Duration::from_secs(15), || {
        fds_after = fd_count(daemon);
        fds_after <= fds_before + 4
    });
    let rss_after = vm_rss_kib(daemon);
    eprintln!(
        "[daemon_faults] disconnects {}: {TIMES} in daemon {daemon}: fds {fds_before} -> {fds_after}, VmRSS {rss_before} -> {rss_after} KiB",
        mpm.name()
    );
    assert!(rss_after <= rss_before + 8192, "the daemon grew from {rss_before} to {rss_after} KiB over {TIMES} disconnects");
    assert_eq!(daemons_titled(&group), vec![daemon], "the daemon was replaced");
    let log = a.error_log();
    assert_no_crash(&log);
}

#[test]
fn a_thousand_disconnects_leave_the_daemon_flat_event() {
    let _g = heavy();
    disconnects(Mpm::Event);
}

#[test]
fn a_thousand_disconnects_leave_the_daemon_flat_prefork() {
    let _g = heavy();
    disconnects(Mpm::Prefork);
}
