//! Daemon mode against the real Apache: requests routed with WSGIProcessGroup to
//! WSGIDaemonProcess groups run in daemon processes (not in the Apache children), with
//! the group's user, threads and title; bodies, streams, files and errors travel over the
//! group's socket; a daemon killed or stopping by itself is replaced; daemons follow
//! Apache's restarts and stop with it; the socket refuses other users.
mod common;
use common::*;
use std::fs;
use std::path::Path;
use std::time::Duration;

const NOBODY_UID: i64 = 65534;

fn start(mpm: Mpm, tag: &str, groups: &str) -> Apache {
    let dir = TestDir::new(&format!("daemon-{tag}-{}", mpm.name()));
    dir.write("apps/blob.bin", pseudo_random_bytes(300_000, 7));
    let app = dir.install_app("daemon_probe.wsgi", &[]);
    let app = app.display();
    let extra = groups.replace("@@APP@@", &app.to_string());
    let conf = Conf::new(mpm).log_level("info").extra(&extra);
    Apache::start(dir, &conf, &[])
}

/// Requests `path` on 4 threads for `seconds` in the background; the load's result
/// comes from the handle.
fn load_in_background(a: &Apache, path: &'static str, group: &str, seconds: u64) -> std::thread::JoinHandle<LoadResult> {
    let port = a.port;
    let expect = format!("\"process_group\": \"{group}\"");
    std::thread::spawn(move || load(port, &[(path, &expect)], 4, Duration::from_secs(seconds)))
}

/// The load ran long enough to mean something, and not one request failed.
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

fn info(a: &Apache, path: &str) -> Json {
    let r = a.get(path);
    assert_eq!(r.status, 200, "GET {path}: {}\n{}", r.text(), a.error_log());
    r.json()
}

fn basic(mpm: Mpm) {
    // A group name of its own per test, so the titles of one test's daemons are not
    // another's (tests run side by side).
    let site = format!("site-{}", mpm.name());
    let mut a = start(
        mpm,
        "basic",
        &format!(
            "WSGIDaemonProcess {site} processes=2 threads=4 display-name=%{{GROUP}}\n\
             WSGIScriptAlias /site @@APP@@ process-group={site}\n\
             WSGIScriptAlias /embedded @@APP@@\n"
        ),
    );
    let children = a.child_pids();
    let j = info(&a, "/site/where");
    let pid = j.get("pid").as_i64() as u32;
    assert!(!children.is_empty());
    assert_eq!(j.get("process_group").as_str(), site, "{j}");
    assert_eq!(j.get("environ_process_group").as_str(), site, "{j}");
    assert_eq!(j.get("maximum_processes").as_i64(), 2, "{j}");
    assert_eq!(j.get("threads_per_process").as_i64(), 4, "{j}");
    assert!(j.get("multithread").as_bool() && j.get("multiprocess").as_bool(), "{j}");
    assert_eq!(j.get("argv").str_list(), vec!["mod_wsgi".to_string()], "{j}");
    assert_eq!((j.get("script_name").as_str(), j.get("path_info").as_str()), ("/site", "/where"), "{j}");
    assert_eq!(j.get("remote_addr").as_str(), "127.0.0.1");
    if running_as_root() {
        assert_eq!(j.get("uid").as_i64(), WWW_UID as i64, "daemons default to Apache's user: {j}");
    }
    // Two daemons, titled, neither of them an Apache child serving HTTP.
    wait_for("two titled daemons", Duration::from_secs(10), || daemons_titled(&site).len() == 2);
    let daemons = daemons_titled(&site);
    assert!(daemons.contains(&pid), "pid {pid} not among the titled daemons {daemons:?}");
    assert!(!children.contains(&pid));
    // The embedded alias still runs in the Apache child.
    let e = info(&a, "/embedded/where");
    assert_eq!(e.get("process_group").as_str(), "", "{e}");
    assert!(!daemons.contains(&(e.get("pid").as_i64() as u32)));
    // How a request reached its daemon, in the environ (microseconds and counts, as
    // strings) and in request_started (seconds and counts), as under mod_wsgi; embedded
    // requests have no daemon queue.
    let j = info(&a, "/site/where");
    let queue: Vec<String> = j.get("queue").as_arr().iter().map(|v| v.as_str().to_string()).collect();
    let micros = |s: &str| s.parse::<i64>().unwrap_or_else(|_| panic!("not microseconds: {s:?} in {j}"));
    let (queue_start, daemon_start) = (micros(&queue[0]), micros(&queue[1]));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
    assert!(queue_start <= daemon_start && daemon_start <= now && now - queue_start < 60_000_000, "{j}");
    assert_eq!((queue[2].as_str(), queue[3].as_str()), ("1", "0"), "one attempt, no restart: {j}");
    let event = j.get("queue_event").as_arr();
    let seconds = |v: &Json| match v {
        Json::Num(n) => *n,
        other => panic!("not a number: {other:?} in {j}"),
    };
    assert!((seconds(&event[0]) - queue_start as f64 / 1e6).abs() < 1e-3, "{j}");
    assert!((seconds(&event[1]) - daemon_start as f64 / 1e6).abs() < 1e-3, "{j}");
    assert_eq!((event[2].as_i64(), event[3].as_i64()), (1, 0), "{j}");
    assert!(e.get("queue").as_arr().iter().all(|v| matches!(v, Json::Null)), "{e}");
    let embedded_event: Vec<f64> = e.get("queue_event").as_arr().iter().map(seconds).collect();
    assert_eq!(embedded_event, vec![0.0; 4], "{e}");

    // Bodies both ways, streaming, a file, HEAD, an error.
    let body = pseudo_random_bytes(1 << 20, 3);
    let r = a.post("/site/echo", &body);
    assert_eq!(r.status, 200);
    assert!(r.body == body, "the 1 MiB echo came back different ({} bytes)", r.body.len());
    let r = a.get("/site/stream");
    assert_eq!(r.status, 200);
    let expected: String = (0..50).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(r.text(), expected);
    let r = a.get("/site/file");
    assert_eq!(r.status, 200);
    assert!(r.body == pseudo_random_bytes(300_000, 7), "file_wrapper body differs ({} bytes)", r.body.len());
    let r = a.request("HEAD", "/site/where", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let r = a.get("/site/raise");
    assert_eq!(r.status, 500);
    let (found, log) = a.wait_log(Duration::from_secs(5), |l| l.contains("RuntimeError: raised in the daemon"));
    assert!(found, "no traceback in the error log:\n{log}");
    let traceback_line = log.lines().find(|l| l.contains("RuntimeError: raised in the daemon")).unwrap();
    assert!(traceback_line.contains("[client 127.0.0.1:"), "daemon log lines carry the client: {traceback_line}");

    // Output of the application reaches Apache's log with the client address.
    assert_eq!(a.get("/site/log?marker-1").status, 200);
    let (found, log) = a.wait_log(Duration::from_secs(5), |l| l.contains("daemon-probe wsgi.errors marker-1"));
    assert!(found, "{log}");
    assert!(log.lines().any(|l| l.contains("daemon-probe print marker-1") && l.contains("[client 127.0.0.1:")), "{log}");

    // A daemon killed with SIGKILL is replaced; the group keeps serving.
    let victim = daemons[0];
    run_ok("/bin/kill", &["-KILL", &victim.to_string()], Path::new("/"), &[]);
    let (found, log) = a.wait_log(Duration::from_secs(10), |l| l.contains(&format!("process {victim} was killed by signal 9")));
    assert!(found, "no log line for the killed daemon:\n{log}");
    wait_for("a replacement daemon", Duration::from_secs(10), || {
        let now = daemons_titled(&site);
        now.len() == 2 && !now.contains(&victim)
    });
    for _ in 0..20 {
        assert_eq!(a.get("/site/where").status, 200);
    }

    // An application that sends itself SIGINT (a common way to reload) gets a
    // new process; the request that did it is answered.
    let before = daemons_titled(&site);
    let r = a.get("/site/sigint");
    assert_eq!(r.status, 200, "{}", r.text());
    wait_for("the SIGINTed daemon to be replaced", Duration::from_secs(15), || {
        let now = daemons_titled(&site);
        now.len() == 2 && now != before
    });
    for _ in 0..20 {
        assert_eq!(a.get("/site/where").status, 200);
    }

    // Stopping Apache stops the daemons: none outlives it.
    let remaining = daemons_titled(&site);
    a.stop();
    wait_for("the daemons to exit with Apache", Duration::from_secs(10), || {
        remaining.iter().all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    });
    assert_no_crash(&a.error_log());
}

#[test]
fn daemon_basic_event() {
    basic(Mpm::Event);
}

#[test]
fn daemon_basic_prefork() {
    basic(Mpm::Prefork);
}

#[test]
fn daemon_basic_worker() {
    basic(Mpm::Worker);
}

/// Two groups with different users and python-paths are two sets of processes, each
/// with its own settings; a user without a home directory does not make a restart loop.
#[test]
fn two_groups_with_their_own_users_and_paths() {
    if !running_as_root() {
        panic!("this test needs root: the daemons change user");
    }
    let dir_a = "/tmp/mod_wsgi_rs-daemon-path-a";
    let dir_b = "/tmp/mod_wsgi_rs-daemon-path-b";
    for d in [dir_a, dir_b] {
        fs::create_dir_all(d).unwrap();
    }
    let a = start(
        Mpm::Event,
        "twogroups",
        &format!(
            "WSGIDaemonProcess one threads=2 python-path={dir_a}\n\
             WSGIDaemonProcess two user=nobody group=nogroup threads=3 python-path={dir_b}\n\
             WSGIScriptAlias /one @@APP@@ process-group=one\n\
             WSGIScriptAlias /two @@APP@@ process-group=two\n"
        ),
    );
    let one = info(&a, "/one/where");
    let two = info(&a, "/two/where");
    assert_ne!(one.get("pid").as_i64(), two.get("pid").as_i64());
    assert_eq!(one.get("uid").as_i64(), WWW_UID as i64, "{one}");
    assert_eq!(two.get("uid").as_i64(), NOBODY_UID, "{two}");
    assert_eq!(one.get("threads_per_process").as_i64(), 2);
    assert_eq!(two.get("threads_per_process").as_i64(), 3);
    assert!(one.get("sys_path").str_list().contains(&dir_a.to_string()), "{one}");
    assert!(!one.get("sys_path").str_list().contains(&dir_b.to_string()), "{one}");
    assert!(two.get("sys_path").str_list().contains(&dir_b.to_string()), "{two}");
    // nobody's home (/nonexistent) does not exist: the daemon runs in / and says so.
    assert_eq!(two.get("cwd").as_str(), "/", "{two}");
    let log = a.error_log();
    assert!(log.lines().any(|l| l.contains("daemon process group two") && l.contains("/nonexistent")), "{log}");
    // And it was started once: no restart loop.
    std::thread::sleep(Duration::from_millis(1500));
    let log = a.error_log();
    let restarts = log.lines().filter(|l| l.contains("daemon process group two") && l.contains("starting a new one")).count();
    assert_eq!(restarts, 0, "{log}");
    assert_no_crash(&log);
}

/// The group's socket is for Apache's children only: another user cannot connect.
#[test]
fn socket_refuses_other_users() {
    if !running_as_root() {
        panic!("this test needs root: it connects as another user");
    }
    let a = start(
        Mpm::Event,
        "socket",
        "WSGIDaemonProcess guarded threads=1\nWSGIScriptAlias /g @@APP@@ process-group=guarded\n",
    );
    assert_eq!(a.get("/g/where").status, 200);
    let run = a.dir.path().join("run");
    let socket = fs::read_dir(&run)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".sock"))
        .unwrap_or_else(|| panic!("no socket in {}", run.display()));
    let probe = format!(
        "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n    s.connect({:?})\n    print('connected')\nexcept OSError as e:\n    print('refused', e.errno)\n",
        socket.display().to_string()
    );
    let out = std::process::Command::new("/usr/sbin/runuser")
        .args(["-u", "nobody", "--", "/usr/bin/python3.11", "-c", &probe])
        .output()
        .expect("runuser");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("refused"), "a process running as nobody could connect: {text} {}", String::from_utf8_lossy(&out.stderr));

    // Past the socket's permissions (opened up here on purpose), the daemon itself
    // refuses a peer that is neither Apache's user nor root, and says so.
    run_ok("/bin/chmod", &["0666", &socket.display().to_string()], Path::new("/"), &[]);
    let probe = format!(
        "import socket\ns=socket.socket(socket.AF_UNIX)\ns.connect({:?})\ns.settimeout(5)\nprint('closed' if s.recv(64) == b'' else 'answered')\n",
        socket.display().to_string()
    );
    let out = std::process::Command::new("/usr/sbin/runuser")
        .args(["-u", "nobody", "--", "/usr/bin/python3.11", "-c", &probe])
        .output()
        .expect("runuser");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.trim(), "closed", "{text} {}", String::from_utf8_lossy(&out.stderr));
    let (found, log) = a.wait_log(Duration::from_secs(5), |l| l.contains("refused a connection") && l.contains(&format!("uid {NOBODY_UID}")));
    assert!(found, "no log line for the refused peer:\n{log}");
}

/// After a graceful restart the groups run with new daemons and serve; requests under
/// load across two graceful restarts all succeed.
#[test]
fn graceful_restart_replaces_daemons() {
    let _heavy = heavy();
    let a = start(
        Mpm::Event,
        "graceful",
        "WSGIDaemonProcess graceful processes=1 threads=2 display-name=%{GROUP}\n\
         WSGIScriptAlias /site @@APP@@ process-group=graceful\n",
    );
    let first = info(&a, "/site/where").get("pid").as_i64();
    let loader = load_in_background(&a, "/site/where", "graceful", 6);
    std::thread::sleep(Duration::from_secs(1));
    run_ok("/bin/kill", &["-USR1", &a.pid.to_string()], Path::new("/"), &[]);
    wait_for("a new daemon after the graceful restart", Duration::from_secs(20), || {
        let r = a.get("/site/where");
        r.status == 200 && r.json().get("pid").as_i64() != first
    });
    wait_for("the old daemon to exit", Duration::from_secs(10), || !Path::new(&format!("/proc/{first}")).exists());
    std::thread::sleep(Duration::from_secs(1));
    run_ok("/bin/kill", &["-USR1", &a.pid.to_string()], Path::new("/"), &[]);
    assert_nothing_failed(&loader.join().unwrap(), "two graceful restarts");
    wait_for("one daemon after the restarts", Duration::from_secs(10), || daemons_titled("graceful").len() == 1);
    assert_no_crash(&a.error_log());
}

/// Planned replacements under load lose no request: touching the WSGI script and an
/// application sending itself SIGINT each start a successor, which is ready before the
/// old process stops accepting.
#[test]
fn planned_replacements_under_load_lose_nothing() {
    let _heavy = heavy();
    let a = start(
        Mpm::Event,
        "replace",
        "WSGIDaemonProcess repl processes=1 threads=4 display-name=%{GROUP}\n\
         WSGIScriptAlias /r @@APP@@ process-group=repl\n",
    );
    let first = info(&a, "/r/where").get("pid").as_i64();
    let script = a.dir.p("apps/daemon_probe.wsgi");
    let loader = load_in_background(&a, "/r/where", "repl", 8);
    std::thread::sleep(Duration::from_secs(2));
    bump_mtime(&script, 5);
    let (found, log) = a.wait_log(Duration::from_secs(10), |l| l.contains("ready;") && l.contains(&format!("{first} stops")));
    assert!(found, "the touched script did not replace process {first}:\n{log}");
    let mut second = first;
    wait_for("a request served by the successor", Duration::from_secs(5), || {
        second = info(&a, "/r/where").get("pid").as_i64();
        second != first
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(a.get("/r/sigint").status, 200);
    let (found, log) = a.wait_log(Duration::from_secs(10), |l| l.contains("ready;") && l.contains(&format!("{second} stops")));
    assert!(found, "the SIGINT did not replace process {second}:\n{log}");
    assert_nothing_failed(&loader.join().unwrap(), "the replacements");
    assert_no_crash(&a.error_log());
}

/// WSGIRestrictEmbedded On: the Apache children start no Python; a request routed to
/// embedded mode gets 500 with a log line saying why, daemon groups serve; and
/// WSGIProcessGroup %{ENV:...} picks the group per request.
#[test]
fn restrict_embedded_and_env_groups() {
    let a = start(
        Mpm::Event,
        "restrict",
        "LoadModule env_module /usr/lib/apache2/modules/mod_env.so\n\
         LoadModule setenvif_module /usr/lib/apache2/modules/mod_setenvif.so\n\
         WSGIRestrictEmbedded On\n\
         WSGIDaemonProcess blue threads=2\n\
         WSGIDaemonProcess green threads=2\n\
         WSGIScriptAlias /blue @@APP@@ process-group=blue\n\
         WSGIScriptAlias /embedded @@APP@@\n\
         WSGIScriptAlias /byenv @@APP@@\n\
         <Location /byenv>\n    WSGIProcessGroup %{ENV:PICK}\n</Location>\n\
         SetEnvIf X-Pick ^(blue|green|nope)$ PICK=$1\n",
    );
    assert_eq!(info(&a, "/blue/x").get("process_group").as_str(), "blue");
    let r = a.get("/embedded/x");
    assert_eq!(r.status, 500);
    let (found, log) = a.wait_log(Duration::from_secs(5), |l| l.contains("WSGIRestrictEmbedded On forbids"));
    assert!(found, "{log}");
    // Python started in the daemons only, in no Apache child.
    let children = a.child_pids();
    let started: Vec<u32> = init_lines(&log).iter().map(|i| i.pid).collect();
    assert!(!started.is_empty(), "{log}");
    assert!(started.iter().all(|pid| !children.contains(pid)), "Python started in an Apache child: {started:?} {children:?}");
    for group in ["blue", "green"] {
        let r = a.request("GET", "/byenv/x", &[("X-Pick", group)], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json().get("process_group").as_str(), group);
    }
    let r = a.request("GET", "/byenv/x", &[("X-Pick", "nope")], b"");
    assert_eq!(r.status, 500);
    let (found, log) = a.wait_log(Duration::from_secs(5), |l| l.contains("there is no daemon process group named 'nope'"));
    assert!(found, "{log}");
    // Without the variable the request would be embedded, which is restricted.
    assert_eq!(a.get("/byenv/x").status, 500);
}

/// Beside mod_python, which starts Python in the Apache parent, daemons use the
/// interpreter they inherit, say which settings they could not apply, and serve.
#[test]
fn daemons_beside_mod_python() {
    let dir = TestDir::new("daemon-mod_python");
    let run_dir = dir.p("run");
    let app = dir.install_app("daemon_probe.wsgi", &[]);
    dir.write("apps/blob.bin", pseudo_random_bytes(1000, 1));
    let conf = Conf::new(Mpm::Event)
        .log_level("info")
        .module_before("python_module", MOD_PYTHON_SO)
        .extra(&format!(
            "PythonOption mod_python.mutex_directory {run_dir}\n\
             WSGIDaemonProcess beside threads=2 python-optimize=1\n\
             WSGIScriptAlias /d {} process-group=beside\n",
            app.display()
        ));
    let a = Apache::start(dir, &conf, &[]);
    let j = info(&a, "/d/x");
    assert_eq!(j.get("process_group").as_str(), "beside", "{j}");
    let log = a.error_log();
    assert!(
        log.lines().any(|l| l.contains("owned by mod_python") && l.contains("python-optimize") || l.contains("owned by mod_python") && l.contains("WSGIPythonOptimize 1")),
        "the daemon does not say which settings it could not apply:\n{log}"
    );
    for _ in 0..20 {
        assert_eq!(a.get("/d/x").status, 200);
    }
    assert_no_crash(&a.error_log());
}

fn rss_kib(pid: u32, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.split_whitespace().next()?.parse().ok()))
        .unwrap_or(0)
}

/// A 1 GiB upload and a 1 GiB response through a daemon are streamed: neither the daemon
/// nor the Apache child holds them in memory (peak RSS grows by far less than the body).
#[test]
fn a_gibibyte_each_way_with_flat_memory() {
    use std::io::{Read, Write};
    let _heavy = heavy();
    let a = start(
        Mpm::Event,
        "gib",
        "WSGIDaemonProcess big processes=1 threads=2\n\
         WSGIScriptAlias /big @@APP@@ process-group=big callable-object=big_application\n\
         LimitRequestBody 0\n",
    );
    let daemon = info_pid(&a);
    let before = rss_kib(daemon, "VmHWM:");
    const GIB: u64 = 1 << 30;
    // Upload: a raw request with a Content-Length, written in 1 MiB pieces.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", a.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(s, "POST /big/count HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {GIB}\r\nConnection: close\r\n\r\n").unwrap();
    let piece = vec![b'u'; 1 << 20];
    for _ in 0..(GIB >> 20) {
        s.write_all(&piece).unwrap();
    }
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{}", short(&reply));
    assert!(reply.ends_with(&format!("\r\n\r\n{GIB}")), "{}", short(&reply));
    // Download: read and count, without keeping it.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", a.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(s, "GET /big/stream?{GIB} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    assert!(total > GIB, "received {total} bytes");
    let daemon_growth = rss_kib(daemon, "VmHWM:").saturating_sub(before);
    assert!(daemon_growth < 64 * 1024, "the daemon's peak RSS grew by {daemon_growth} KiB");
    for child in a.child_pids() {
        let peak = rss_kib(child, "VmHWM:");
        assert!(peak < 256 * 1024, "Apache process {child} peaked at {peak} KiB");
    }
    assert_no_crash(&a.error_log());
}

fn info_pid(a: &Apache) -> u32 {
    let r = a.get("/big/stream?10");
    assert_eq!(r.status, 200, "{}", a.error_log());
    // The daemon is the only process titled with nothing; find it by asking /proc for
    // processes whose parent is one of Apache's children (the supervisor).
    let supervisors = a.child_pids();
    let mut daemons = Vec::new();
    for sup in supervisors {
        daemons.extend(children_of(sup));
    }
    assert_eq!(daemons.len(), 1, "expected one daemon, found {daemons:?}");
    daemons[0]
}

/// A daemon killed with SIGKILL under load loses at most the requests it had in flight
/// (502), is replaced, and every other request succeeds.
#[test]
fn sigkill_under_load_loses_only_requests_in_flight() {
    let _heavy = heavy();
    let a = start(
        Mpm::Event,
        "kill",
        "WSGIDaemonProcess killed processes=2 threads=2 display-name=%{GROUP}\n\
         WSGIScriptAlias /k @@APP@@ process-group=killed\n",
    );
    assert_eq!(a.get("/k/where").status, 200);
    wait_for("two daemons", Duration::from_secs(10), || daemons_titled("killed").len() == 2);
    let victim = daemons_titled("killed")[0];
    let loader = load_in_background(&a, "/k/where", "killed", 5);
    std::thread::sleep(Duration::from_millis(1500));
    run_ok("/bin/kill", &["-KILL", &victim.to_string()], Path::new("/"), &[]);
    let result = loader.join().unwrap();
    let failed = result.non_200() + result.error_count;
    // The victim had at most `threads` requests running.
    assert!(failed <= 2, "{failed} requests failed (at most 2 were in flight): {:?} {:?}", result.counts, result.errors);
    assert!(result.counts.keys().all(|(_, status)| *status == 200 || *status == 502), "{:?}", result.counts);
    assert!(result.total > 100, "only {} requests", result.total);
    wait_for("a replacement", Duration::from_secs(10), || {
        let now = daemons_titled("killed");
        now.len() == 2 && !now.contains(&victim)
    });
    for _ in 0..20 {
        assert_eq!(a.get("/k/where").status, 200);
    }
}
