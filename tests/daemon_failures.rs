//! Daemon mode when things go wrong, against the real Apache: each failure gets the
//! status README's daemon-mode section promises and a log line naming the group, the
//! daemon's pid (when one was reached) and the script, and the Apache children and the
//! group serve on afterwards.
//!
//! * full restarts of Apache (`apache2 -k restart`) under load: the new daemons run the
//!   new configuration, no request gets a 5xx from the module, and the only requests lost
//!   are those Apache itself cuts (in flight at the restart);
//! * `socket-timeout`: 504 before the response head, a cut response after it;
//! * `header-buffer-size`: a larger response head gets 502;
//! * a client leaving mid-response (the application's close() runs, its iteration is cut
//!   short) or mid-upload (wsgi.input raises OSError);
//! * a group that cannot be reached within `connect-timeout` (its daemon stopped with a
//!   full backlog, or its supervisor killed and its daemons gone): 503;
//! * a daemon exiting before the response head (502) or after it (the response is cut),
//!   and its supervisor starting another;
//! * a group still stopping after Apache has exited does not hold Apache's port;
//! * the daemons of a group sharing its socket all stop when told to, whichever of them
//!   took the last connection, and run their atexit handlers.
mod common;
use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A server whose groups are given as config text: `@@APP@@` is tests/apps/daemon_faults.wsgi,
/// `@@FAULTS@@` tests/apps/faults.wsgi (recording into `records`).
struct Server {
    apache: Apache,
    app: String,
    faults: String,
    records: String,
}

fn start(mpm: Mpm, tag: &str, groups: &str) -> Server {
    let dir = TestDir::new(&format!("dfail-{tag}-{}", mpm.name()));
    let records = dir.mkdir_www("records").to_string_lossy().into_owned();
    let app = dir.install_app("daemon_faults.wsgi", &[]).to_string_lossy().into_owned();
    let faults = dir.install_app("faults.wsgi", &[("STATE_DIR", &records)]).to_string_lossy().into_owned();
    let extra = groups.replace("@@APP@@", &app).replace("@@FAULTS@@", &faults);
    let conf = Conf::new(mpm).log_level("info").extra(&extra);
    let apache = Apache::start(dir, &conf, &[]);
    Server { apache, app, faults, records }
}

impl Server {
    /// The pid of the daemon answering `prefix`/where.
    fn daemon_pid(&self, prefix: &str) -> u32 {
        let r = self.apache.get(&format!("{prefix}/where"));
        assert_eq!(r.status, 200, "GET {prefix}/where: {}", short(&r.text()));
        r.json().get("pid").as_i64() as u32
    }

    /// Lines of a record file of faults.wsgi.
    fn record(&self, name: &str) -> Vec<String> {
        fs::read_to_string(Path::new(&self.records).join(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn wait_record(&self, name: &str, lines: usize) -> Vec<String> {
        let mut got = Vec::new();
        wait_for(&format!("{lines} lines in {name}"), Duration::from_secs(10), || {
            got = self.record(name);
            got.len() >= lines
        });
        got
    }
}

/// Sends `request` and reads what comes back until the server closes (or 15 s).
fn exchange(a: &Apache, target: &str) -> RawReply {
    let request = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", a.port);
    raw_exchange(a.port, request.as_bytes(), Duration::from_secs(15))
}

/// A chunked body that ends without its last chunk: the client can tell it was cut.
fn assert_cut_chunked(reply: &RawReply, starts_with: &[u8]) {
    assert_eq!(reply.status(), Some(200), "{}", short(&reply.text()));
    assert!(reply.is_chunked(), "not chunked: {}", reply.head());
    assert!(reply.closed, "the connection was left open after a cut response");
    let body = reply.after_head();
    assert!(!body.ends_with(b"0\r\n\r\n"), "the cut response ended like a complete one");
    let first_chunk = body.splitn(2, |b| *b == b'\n').nth(1).unwrap_or_default();
    assert!(
        first_chunk.starts_with(starts_with),
        "the body lacks what was sent before the failure: {}",
        short(&String::from_utf8_lossy(&body))
    );
}

/// The line the error log gains after `mark` with every one of `needles` (waiting up to
/// 10 s for it); panics with the new lines if none comes.
fn logged(a: &Apache, mark: usize, needles: &[&str]) -> String {
    wait_line_after(a, mark, Duration::from_secs(10), needles).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_serves_on(a: &Apache, prefix: &str, pid: u32) {
    for _ in 0..10 {
        let r = a.get(&format!("{prefix}/where"));
        assert_eq!(r.status, 200, "{}", short(&r.text()));
        assert_eq!(r.json().get("pid").as_i64() as u32, pid, "another process answered");
    }
}

// ---------------------------------------------------------------------------------------
// full restarts

/// Full restarts of Apache under load. At each, Apache stops its children at once: the
/// requests they have in flight are cut, with or without this module (event's and
/// worker's children close their client connections, and the thread writing the
/// daemon's complete answer finds the socket gone; prefork's children die of the SIGHUP
/// Apache sends its whole process group). Measured with the same load, embedded mode
/// lost 0 to 2 requests over 3 restarts on event and prefork, daemon mode 2 to 22, as a
/// request stays longer in the Apache child, waiting for the daemon; on worker both
/// lost about 15, some clients several times a restart. Meanwhile the
/// daemon groups are stopped and started again with the new configuration. What daemon
/// mode adds must lose nothing: no request is answered with a 5xx, every request that
/// fails, fails as a connection closed without an answer, and neither the supervisors'
/// ends nor the daemons' are reported as failures.
fn full_restarts_under_load(mpm: Mpm) {
    let _heavy = heavy();
    const RESTARTS: usize = 3;
    const CLIENTS: usize = 8;
    let group = format!("full-{}", mpm.name());
    let srv = start(
        mpm,
        "full-restart",
        &format!(
            "WSGIDaemonProcess {group} processes=2 threads=4 display-name=%{{GROUP}} python-path=@@DIR@@/path0\n\
             WSGIScriptAlias /r @@APP@@ process-group={group}\n"
        ),
    );
    let a = &srv.apache;
    for i in 0..=RESTARTS {
        a.dir.mkdir(&format!("path{i}"));
    }
    let mut conf_text = a.conf_text.clone();
    wait_for("two titled daemons", Duration::from_secs(10), || daemons_titled(&group).len() == 2);
    let load = BackgroundLoad::start(a.port, &[("/r/where", "\"sys_path\"")], CLIENTS);
    std::thread::sleep(Duration::from_secs(1));
    for i in 1..=RESTARTS {
        let old_path = a.dir.p(&format!("path{}", i - 1));
        let new_path = a.dir.p(&format!("path{i}"));
        conf_text = conf_text.replace(&format!("python-path={old_path}"), &format!("python-path={new_path}"));
        fs::write(&a.conf_path, &conf_text).unwrap();
        let old_daemons = daemons_titled(&group);
        let mark = log_mark(a);
        a.control("restart");
        // The new daemons run the new configuration.
        wait_for(&format!("a daemon with python-path {new_path} after restart {i}"), Duration::from_secs(30), || {
            matches!(http_request(a.port, "GET", "/r/where", &[], b"", Duration::from_secs(10)),
                     Ok(r) if r.status == 200 && r.json().get("sys_path").str_list().contains(&new_path))
        });
        wait_for("the old daemons to exit", Duration::from_secs(15), || {
            old_daemons.iter().all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        });
        wait_for("two new daemons", Duration::from_secs(10), || {
            let now = daemons_titled(&group);
            now.len() == 2 && now.iter().all(|p| !old_daemons.contains(p))
        });
        logged(a, mark, &[&format!("daemon process group {group}: supervisor"), "started"]);
        let j = srv.apache.get("/r/where").json();
        assert!(!j.get("sys_path").str_list().contains(&old_path), "restart {i}: the old python-path is still there: {j}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let result = load.finish();
    eprintln!("[full restarts] {}: {:?}, {} transport errors: {:?}", mpm.name(), result.counts, result.error_count, result.errors);
    assert!(result.ok_for("/r/where") > 100, "the load made few requests: {:?}", result.counts);
    let statuses: BTreeSet<u16> = result.counts.keys().map(|(_, status)| *status).collect();
    assert_eq!(statuses, BTreeSet::from([200]), "answers other than 200 across full restarts: {:?}\n{}", result.counts, a.error_log());
    for e in &result.errors {
        assert!(
            e.contains("empty response") || e.contains("os error 104"),
            "a failure that is not a connection cut by the restart: {e}"
        );
    }
    let log = a.error_log();
    for bad in [
        "cannot reach daemon process group",
        "did not take the request",
        "still running 5 s after",
        "the supervisor of daemon process group",
        "lost its supervisor",
    ] {
        let hits = lines_with(&log, bad);
        assert!(hits.is_empty(), "{bad:?} in the error log:\n{}", hits.join("\n"));
    }
    // Event's children sometimes crash in close_worker_sockets during an ungraceful
    // restart with connections ending, without this module too (see load_restarts.rs),
    // and worker's close their sockets the same way, so on those only what would be
    // ours counts.
    if mpm.threaded() {
        for ours in ["Fatal Python error", "panicked at"] {
            assert!(lines_with(&log, ours).is_empty(), "{ours:?} in the error log");
        }
    } else {
        assert_no_crash(&log);
    }
}

#[test]
fn full_restarts_under_load_event() {
    full_restarts_under_load(Mpm::Event);
}

#[test]
fn full_restarts_under_load_prefork() {
    full_restarts_under_load(Mpm::Prefork);
}

#[test]
fn full_restarts_under_load_worker() {
    full_restarts_under_load(Mpm::Worker);
}

// ---------------------------------------------------------------------------------------
// socket-timeout, header-buffer-size

/// An application slower than `socket-timeout=2`: 504 before the head, a cut response
/// after it; the Apache child and the daemon serve on, also once the slow requests end.
#[test]
fn socket_timeout_gives_504() {
    let srv = start(
        Mpm::Event,
        "socket-timeout",
        "WSGIDaemonProcess slow processes=1 threads=3 socket-timeout=2\n\
         WSGIScriptAlias /slow @@APP@@ process-group=slow\n",
    );
    let a = &srv.apache;
    let pid = srv.daemon_pid("/slow");
    let mark = log_mark(a);
    let r = a.get("/slow/sleep?4");
    assert_eq!(r.status, 504, "{}", short(&r.text()));
    let daemon = format!("daemon process {pid} of group 'slow'");
    let line = logged(a, mark, &[&daemon, "gave no answer within 2 s", "before the response head", &srv.app]);
    assert!(line.contains("[client 127.0.0.1:"), "{line}");
    assert_serves_on(a, "/slow", pid);

    let mark = log_mark(a);
    let reply = exchange(a, "/slow/sleep-after-head?4");
    assert_cut_chunked(&reply, b"first chunk\n");
    logged(a, mark, &[&daemon, "gave no answer within 2 s", "after the response head; the response is cut short", &srv.app]);
    // The slow requests end meanwhile, writing to connections the Apache child has
    // dropped: the daemon takes that as a client gone.
    std::thread::sleep(Duration::from_secs(3));
    assert_serves_on(a, "/slow", pid);
    assert_no_crash(&a.error_log());
}

/// A response head larger than `header-buffer-size` gets 502 with a log line naming the
/// option; one within it is sent; the next request is served.
#[test]
fn header_buffer_size_gives_502() {
    let srv = start(
        Mpm::Event,
        "header-buffer",
        "WSGIDaemonProcess heads processes=1 threads=2 header-buffer-size=8192\n\
         WSGIScriptAlias /h @@APP@@ process-group=heads\n",
    );
    let a = &srv.apache;
    let pid = srv.daemon_pid("/h");
    let r = a.get("/h/head?8192");
    assert_eq!(r.status, 200, "a head of exactly header-buffer-size: {}", short(&r.text()));
    assert_eq!(r.header("x-padding").map(str::len), Some(8192 - 32 - 13));
    let mark = log_mark(a);
    let r = a.get("/h/head?8193");
    assert_eq!(r.status, 502, "{}", short(&r.text()));
    let daemon = format!("daemon process {pid} of group 'heads'");
    let line = logged(a, mark, &[&daemon, "response head of 8193 bytes", &srv.app, "more than header-buffer-size (8192)"]);
    assert!(line.contains("[client 127.0.0.1:"), "{line}");
    assert_serves_on(a, "/h", pid);
    assert_no_crash(&a.error_log());
}

// ---------------------------------------------------------------------------------------
// clients that leave

/// A client leaving in the middle of a streamed response: the Apache child's write
/// fails, the application's iteration stops and its close() runs, in the daemon. A
/// client leaving in the middle of its upload: wsgi.input raises OSError in the daemon.
/// The daemon serves on after each.
#[test]
fn clients_leaving_mid_response_and_mid_upload() {
    const TIMES: usize = 5;
    let srv = start(
        Mpm::Event,
        "client-leaves",
        "WSGIDaemonProcess leaving processes=1 threads=4\n\
         WSGIScriptAlias /f @@FAULTS@@ process-group=leaving\n\
         WSGIScriptAlias /d @@APP@@ process-group=leaving\n",
    );
    let a = &srv.apache;
    let pid = srv.daemon_pid("/d");
    let mark = log_mark(a);
    for _ in 0..TIMES {
        disconnect_mid_response(a.port, "/f/stream");
    }
    let closes = srv.wait_record("closes.txt", TIMES);
    assert_eq!(closes.len(), TIMES, "close() must run once per response: {closes:?}");
    for line in &closes {
        let (by, items) = line.split_once(' ').expect("a close record");
        assert_eq!(by.parse::<u32>().unwrap(), pid, "close() ran outside the daemon: {line}");
        let items: usize = items.parse().unwrap();
        assert!(items < 4000, "the iteration went on to the end after the client left: {line}");
    }
    let needle = format!("exception raised by WSGI script {}", srv.faults);
    let (_, log) = a.wait_log(Duration::from_secs(5), |log| lines_with(log.get(mark..).unwrap_or(""), &needle).len() >= TIMES);
    let cut = lines_with(log.get(mark..).unwrap_or(""), &needle);
    assert_eq!(cut.len(), TIMES, "a log line naming the script per response cut short:\n{}", log.get(mark..).unwrap_or(""));
    assert_serves_on(a, "/d", pid);

    let mark = log_mark(a);
    for _ in 0..TIMES {
        disconnect_mid_body(a.port, "/f/upload");
    }
    let bodies = srv.wait_record("bodies.txt", TIMES);
    assert_eq!(bodies.len(), TIMES, "one record per upload: {bodies:?}");
    for line in &bodies {
        assert!(line.starts_with(&format!("{pid} OSError after ")), "the daemon's application must see an OSError: {line}");
        assert!(line.contains("closed the connection"), "the OSError should say why: {line}");
    }
    let needle = format!("cannot read the request body for WSGI script {}", srv.faults);
    let (_, log) = a.wait_log(Duration::from_secs(5), |log| lines_with(log.get(mark..).unwrap_or(""), &needle).len() >= TIMES);
    let named = lines_with(log.get(mark..).unwrap_or(""), &needle);
    assert_eq!(named.len(), TIMES, "a log line naming the script per failed body:\n{}", log.get(mark..).unwrap_or(""));
    let body = pseudo_random_bytes(100_000, 3);
    let r = a.post("/f/upload", &body);
    assert_eq!((r.status, r.text()), (200, "got 100000 bytes".to_string()));
    assert_serves_on(a, "/d", pid);
    assert_no_crash(&a.error_log());
}

// ---------------------------------------------------------------------------------------
// a group that cannot be reached

/// The group's socket, in the server's runtime directory.
fn group_socket(a: &Apache, group: &str) -> String {
    let run = a.dir.path().join("run");
    let suffix = format!(".{group}.sock");
    fs::read_dir(&run)
        .unwrap()
        .flatten()
        .map(|e| e.path().to_string_lossy().into_owned())
        .find(|p| p.ends_with(&suffix))
        .unwrap_or_else(|| panic!("no socket for {group} in {}", run.display()))
}

/// Connections made from here until connecting blocks (the listen backlog is full),
/// at most `limit`; they are held until the returned handle is dropped.
fn fill_backlog(socket: &str, limit: usize) -> Arc<Mutex<Vec<UnixStream>>> {
    let held = Arc::new(Mutex::new(Vec::new()));
    let (socket, filler) = (socket.to_string(), held.clone());
    // A connect to a full backlog blocks (the listener never accepts), so the
    // connects run on a thread of their own, which ends once the daemon accepts again.
    std::thread::spawn(move || {
        for _ in 0..limit {
            match UnixStream::connect(&socket) {
                Ok(stream) => filler.lock().unwrap().push(stream),
                Err(_) => return,
            }
        }
    });
    let mut count = usize::MAX;
    wait_for("connects to the stopped daemon to block", Duration::from_secs(10), || {
        std::thread::sleep(Duration::from_millis(300));
        let now = held.lock().unwrap().len();
        let settled = now == count;
        count = now;
        settled
    });
    assert!(count < limit, "{limit} connects to a daemon that accepts nothing: the backlog never filled");
    held
}

/// A group whose daemon does not accept (stopped with SIGSTOP, its backlog of 1 full):
/// 503 within `connect-timeout=1` and a log line naming the group and the script, and
/// the Apache child serves on once the daemon goes on. A group whose supervisor was
/// killed (its daemons stop by themselves, so nothing listens on its socket): 503 too,
/// and Apache says so when the supervisor ends.
#[test]
fn unreachable_group_gives_503() {
    // One Apache child, so that the requests below reach the one holding the idle
    // daemon connection as well as the others: with several, event's idle-server
    // maintenance may retire that child, or send every request elsewhere.
    let srv = start(
        Mpm::Event,
        "unreachable",
        "StartServers 1\nServerLimit 1\nThreadsPerChild 16\nMaxRequestWorkers 16\n\
         WSGIDaemonProcess stopped processes=1 threads=2 listen-backlog=1 connect-timeout=1 socket-timeout=3 display-name=%{GROUP}\n\
         WSGIDaemonProcess orphaned processes=1 threads=2 connect-timeout=1 display-name=%{GROUP}\n\
         WSGIScriptAlias /s @@APP@@ process-group=stopped\n\
         WSGIScriptAlias /o @@APP@@ process-group=orphaned\n",
    );
    let a = &srv.apache;
    let socket = group_socket(a, "stopped");
    let pid = srv.daemon_pid("/s");
    wait_for("the daemon of stopped", Duration::from_secs(10), || daemons_titled("stopped") == vec![pid]);
    // The child keeps the connection of the request above idle: the next request, sent
    // on it, waits socket-timeout for the stopped daemon to take it and is answered 503
    // without having run. That connection is then dropped, and the request after it,
    // on a new connection, finds the backlog full.
    run_ok("/bin/kill", &["-STOP", &pid.to_string()], Path::new("/"), &[]);
    let held = fill_backlog(&socket, 8);
    let not_taken = ["daemon process", "of group 'stopped' had no free thread for the request within 3 s", &srv.app, "it did not run"];
    let unreachable = ["cannot reach daemon process group 'stopped'", &socket, &srv.app, "Resource temporarily unavailable"];
    for needles in [&not_taken[..], &unreachable[..]] {
        let mark = log_mark(a);
        let reply = http_request(a.port, "GET", "/s/where", &[("Connection", "close")], b"", Duration::from_secs(30));
        let r = reply.unwrap_or_else(|e| panic!("no answer while the daemon was stopped: {e}\n{}", a.error_log()));
        assert_eq!(r.status, 503, "{}", short(&r.text()));
        logged(a, mark, needles);
    }
    run_ok("/bin/kill", &["-CONT", &pid.to_string()], Path::new("/"), &[]);
    drop(held);
    assert_serves_on(a, "/s", pid);

    // The orphaned group: its supervisor killed, its daemon gone.
    let daemon = srv.daemon_pid("/o");
    let supervisor = parent_of(daemon).expect("the daemon's parent");
    assert!(a.child_pids().contains(&supervisor), "the daemon's parent {supervisor} is not a child of Apache");
    let mark = log_mark(a);
    run_ok("/bin/kill", &["-KILL", &supervisor.to_string()], Path::new("/"), &[]);
    logged(a, mark, &["the supervisor of daemon process group orphaned ended", "503"]);
    logged(a, mark, &[&format!("process {daemon} lost its supervisor; stopping")]);
    wait_for("the orphaned daemon to exit", Duration::from_secs(10), || !Path::new(&format!("/proc/{daemon}")).exists());
    let socket = group_socket(a, "orphaned");
    for _ in 0..3 {
        let mark = log_mark(a);
        let r = a.get("/o/where");
        assert_eq!(r.status, 503, "{}", short(&r.text()));
        logged(a, mark, &["cannot reach daemon process group 'orphaned'", &socket, &srv.app, "Connection refused"]);
    }
    // The other group is not affected.
    assert_serves_on(a, "/s", pid);
    assert_no_crash(&a.error_log());
}

// ---------------------------------------------------------------------------------------
// a daemon that exits

/// A daemon exiting before the response head gets 502; after the head the response
/// is cut. Each time the Apache child names the group, the pid and the script, the
/// supervisor names the group, the pid and the exit status and starts another, which
/// serves the next request.
#[test]
fn daemon_exiting_mid_request() {
    let srv = start(
        Mpm::Event,
        "exiting",
        "WSGIDaemonProcess exiting processes=1 threads=2 display-name=%{GROUP}\n\
         WSGIScriptAlias /x @@APP@@ process-group=exiting\n",
    );
    let a = &srv.apache;
    let first = srv.daemon_pid("/x");
    let mark = log_mark(a);
    let r = a.get("/x/exit-before-head");
    assert_eq!(r.status, 502, "{}", short(&r.text()));
    let line = logged(a, mark, &[&format!("daemon process {first} of group 'exiting'"), "before the response head", &srv.app]);
    assert!(line.contains("[client 127.0.0.1:"), "{line}");
    logged(a, mark, &[&format!("daemon process group exiting: process {first} exited with status 3"), "starting a new one"]);
    let second = srv.daemon_pid("/x");
    assert_ne!(second, first);
    assert_eq!(daemons_titled("exiting"), vec![second]);

    let mark = log_mark(a);
    let reply = exchange(a, "/x/exit-after-head");
    assert_cut_chunked(&reply, &[b'p'; 1000]);
    let daemon = format!("daemon process {second} of group 'exiting'");
    logged(a, mark, &[&daemon, "after the response head; the response is cut short", &srv.app]);
    logged(a, mark, &[&format!("daemon process group exiting: process {second} exited with status 4"), "starting a new one"]);
    let third = srv.daemon_pid("/x");
    assert!(third != first && third != second);
    assert_serves_on(a, "/x", third);
    assert_no_crash(&a.error_log());
}

// ---------------------------------------------------------------------------------------
// a group stopping after Apache

/// Apache has exited while a daemon of a group still finishes (an atexit handler that
/// takes 3 s): Apache's port is free at once, so a new Apache can start on it, and no
/// connection is left queued where nobody will accept it.
#[test]
fn a_stopping_group_does_not_hold_apaches_port() {
    let mut srv = start(
        Mpm::Event,
        "port",
        "WSGIDaemonProcess lingering processes=1 threads=2 display-name=%{GROUP}\n\
         WSGIScriptAlias /l @@APP@@ process-group=lingering\n",
    );
    let a = &mut srv.apache;
    let r = a.get("/l/slow-exit");
    assert_eq!((r.status, r.text()), (200, "registered".to_string()));
    let daemon = daemons_titled("lingering");
    assert_eq!(daemon.len(), 1, "{daemon:?}");
    let supervisor = parent_of(daemon[0]).expect("the daemon's parent");
    run_ok("/bin/kill", &["-TERM", &a.pid.to_string()], Path::new("/"), &[]);
    wait_for("Apache to exit", Duration::from_secs(15), || !process_alive(a.pid));
    assert!(process_alive(supervisor), "the group stopped before the check: the atexit handler did not run?");
    let bound = std::net::TcpListener::bind(("127.0.0.1", a.port));
    if let Err(err) = &bound {
        let listening = std::process::Command::new("/usr/bin/ss").arg("-ltnp").output().expect("run ss");
        let holders: Vec<String> = String::from_utf8_lossy(&listening.stdout)
            .lines()
            .filter(|l| l.contains(&format!(":{} ", a.port)))
            .map(str::to_string)
            .collect();
        panic!("port {} is still taken after Apache exited, while its daemon process group stops: {err}\n{}", a.port, holders.join("\n"));
    }
    drop(bound);
    wait_for("the group to stop", Duration::from_secs(10), || !process_alive(supervisor));
    let log = a.error_log();
    assert!(lines_with(&log, "still running 5 s after").is_empty(), "{log}");
    a.stop();
}

/// Threads of `pid` blocked in accept4(2) (x86-64 system call 288).
fn threads_in_accept(pid: u32) -> usize {
    const ACCEPT4: &str = "288";
    fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter(|t| {
                    fs::read_to_string(t.path().join("syscall")).is_ok_and(|s| s.split_whitespace().next() == Some(ACCEPT4))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Two daemons share the group's socket, and a connection wakes both when they wait
/// for one. Told to stop, each finishes and runs its atexit handlers (faults.wsgi,
/// imported at the start, records its pid), also one that lost the race for the last
/// connection: none waits in accept() for a connection that will not come until it is
/// killed.
#[test]
fn every_daemon_of_a_group_stops_when_told() {
    // Each daemon loads the script (registering its atexit handler) at its start.
    let mut srv = start(
        Mpm::Event,
        "shared-socket",
        "WSGIDaemonProcess sharing processes=2 threads=2 display-name=%{GROUP}\n\
         WSGIImportScript @@FAULTS@@ process-group=sharing application-group=%{GLOBAL}\n",
    );
    let (_, log) = srv.apache.wait_log(Duration::from_secs(20), |log| {
        lines_with(log, "daemon process group sharing: process").iter().filter(|l| l.contains(" serving as ")).count() == 2
    });
    let daemons: BTreeSet<u32> = daemons_titled("sharing").into_iter().collect();
    assert_eq!(daemons.len(), 2, "{daemons:?}\n{log}");
    let socket = group_socket(&srv.apache, "sharing");
    // Connections while both wait, until one daemon is left in accept() after the
    // other took the connection (with a listener that does not block there, never;
    // with one that did, within 60 connections in most runs).
    let mut blocked = false;
    for _ in 0..60 {
        drop(UnixStream::connect(&socket));
        std::thread::sleep(Duration::from_millis(100));
        if daemons.iter().any(|pid| threads_in_accept(*pid) > 0) {
            blocked = true;
            break;
        }
    }
    eprintln!("[shared socket] a daemon waiting in accept() at the stop: {blocked}");
    let mark = log_mark(&srv.apache);
    srv.apache.stop();
    let log = srv.apache.error_log();
    let tail = log.get(mark..).unwrap_or("");
    let killed = lines_with(tail, "still running 5 s after it was told to stop");
    assert!(killed.is_empty(), "daemons had to be killed:\n{}", killed.join("\n"));
    let ran_atexit: BTreeSet<u32> = srv.record("atexit.txt").iter().filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(ran_atexit, daemons, "daemons that did not run their atexit handlers at stop");
}
