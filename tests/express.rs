//! `pip install` of the checkout and `mod_wsgi_rs-express`: every command and option against
//! the real Apache, from fresh virtual environments that pip-install this checkout (cached
//! under `target/express-venvs/`, keyed by the sources' hash), for Debian's Python 3.11 and for
//! the other CPythons on the machine (pyenv's 3.12 and 3.13).

mod common;
use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const CHECKOUT: &str = env!("CARGO_MANIFEST_DIR");
const DEBIAN_PYTHON: &str = "/usr/bin/python3.11";
const PYENV_VERSIONS: &str = "/root/.pyenv/versions";
const CLEAN_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

// ---------------------------------------------------------------------------------------
// the venvs

/// Hash of everything the pip build reads, so an edit makes a new venv.
fn sources_key(python: &Path) -> String {
    let mut files = Vec::new();
    for tree in ["src", "apxs", "python"] {
        collect_files(&Path::new(CHECKOUT).join(tree), &mut files);
    }
    for f in ["Cargo.toml", "Cargo.lock", "build.rs", "pyproject.toml"] {
        files.push(Path::new(CHECKOUT).join(f));
    }
    files.sort();
    let mut material = python.to_string_lossy().into_owned().into_bytes();
    for f in files {
        material.extend_from_slice(f.to_string_lossy().as_bytes());
        material.extend_from_slice(&fs::read(&f).unwrap());
    }
    format!("{:016x}", fnv1a64(&material))
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "__pycache__") {
            continue;
        }
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// HOME is /tmp, as under pip run from another user's environment: the build must find
/// cargo by itself.
fn run_ok(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all = vec![("HOME", "/tmp")];
    all.extend_from_slice(env);
    run_clean_ok(program, args, &all)
}

/// A fresh venv made by `python`, with `pip install CHECKOUT` done in it; built once per
/// source hash under an exclusive lock. HOME is /tmp, as under pip run by another user's
/// environment: the build must find cargo by itself.
fn express_venv(python: &Path) -> PathBuf {
    static BUILT: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, venv)) = built.iter().find(|(p, _)| p == python) {
        return venv.clone();
    }
    let base = Path::new(CHECKOUT).join("target/express-venvs");
    fs::create_dir_all(&base).unwrap();
    let lock = fs::OpenOptions::new().create(true).write(true).truncate(false).open(base.join(".lock")).unwrap();
    lock.lock().expect("lock target/express-venvs/.lock");
    let venv = base.join(sources_key(python));
    if !venv.join(".complete").is_file() {
        eprintln!("[express] pip install {CHECKOUT} into {} ({})", venv.display(), python.display());
        let _ = fs::remove_dir_all(&venv);
        run_ok(python, &["-m", "venv", &venv.to_string_lossy()], &[]);
        run_ok(
            &venv.join("bin/pip"),
            &["install", "--no-input", "--disable-pip-version-check", "--no-cache-dir", CHECKOUT],
            &[],
        );
        fs::write(venv.join(".complete"), "").unwrap();
    }
    drop(lock);
    built.push((python.to_path_buf(), venv.clone()));
    venv
}

/// `/root/.pyenv/versions/MINOR.*`: a CPython the test's Apache user cannot read (/root is
/// 0700). Copied (the interpreter and its standard library, not its site-packages or test
/// suite) under `target/`, made world-readable there, so nothing outside the test's own files
/// changes; its venv's WSGIPythonHome then resolves to that copy. libpython itself stays
/// where it is: Apache's parent, root, loads it with the module, through the rpath the
/// build records.
fn readable_pyenv_python(minor: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = fs::read_dir(PYENV_VERSIONS)
        .unwrap_or_else(|e| panic!("{PYENV_VERSIONS}: {e}: the other CPythons of this machine are needed"))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{minor}.")))
        .collect();
    found.sort();
    let source = found.pop().unwrap_or_else(|| panic!("no CPython {minor} under {PYENV_VERSIONS}"));
    let version = source.file_name().unwrap().to_string_lossy().into_owned();
    let copy = Path::new(CHECKOUT).join("target/express-pythons").join(&version);
    let base = copy.parent().unwrap();
    fs::create_dir_all(base).unwrap();
    let lock = fs::OpenOptions::new().create(true).write(true).truncate(false).open(base.join(".lock")).unwrap();
    lock.lock().unwrap();
    if !copy.join(".complete").is_file() {
        let _ = fs::remove_dir_all(&copy);
        fs::create_dir_all(copy.join("bin")).unwrap();
        fs::create_dir_all(copy.join("lib")).unwrap();
        let stdlib = format!("lib/python{minor}");
        run_ok(Path::new("/bin/cp"), &["-a", &source.join(format!("bin/python{minor}")).to_string_lossy(),
            &copy.join("bin").to_string_lossy()], &[]);
        run_ok(Path::new("/bin/cp"), &["-a", &source.join(&stdlib).to_string_lossy(), &copy.join("lib").to_string_lossy()], &[]);
        for heavy in ["test", "site-packages", "idlelib", "tkinter", "turtledemo"] {
            let _ = fs::remove_dir_all(copy.join(&stdlib).join(heavy));
        }
        fs::create_dir_all(copy.join(&stdlib).join("site-packages")).unwrap();
        run_ok(Path::new("/bin/chmod"), &["-R", "a+rX", &copy.to_string_lossy()], &[]);
        fs::write(copy.join(".complete"), "").unwrap();
    }
    copy.join(format!("bin/python{minor}"))
}

fn express(venv: &Path) -> PathBuf {
    venv.join("bin/mod_wsgi_rs-express")
}

/// Runs a command of mod_wsgi_rs-express to its end.
fn run_express(venv: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(express(venv))
        .env_clear()
        .env("PATH", CLEAN_PATH)
        .env("LANG", "C")
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A failure reported as one line a person can act on.
fn assert_clear_failure(out: &Output, needle: &str) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains(needle), "expected {needle:?} in:\n{all}");
    assert!(!all.contains("Traceback"), "a traceback:\n{all}");
}

// ---------------------------------------------------------------------------------------
// start-server

/// A running `start-server`, its output in files of the test directory.
struct Express {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Express {
    fn start(venv: &Path, dir: &TestDir, script: &str, args: &[&str]) -> Express {
        let port = free_port();
        let out = dir.path().join("express.out");
        let file = fs::File::create(&out).unwrap();
        let root = dir.p("server");
        let port_s = port.to_string();
        let mut all = vec!["start-server", script, "--port", &port_s, "--server-root", &root, "--log-to-terminal"];
        all.extend_from_slice(args);
        let child = Command::new(express(venv))
            .env_clear()
            .env("PATH", CLEAN_PATH)
            .env("LANG", "C")
            .args(&all)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let mut e = Express { child, port, out };
        let started = e.wait_ready();
        assert!(started, "start-server did not answer:\n{}", e.output());
        e
    }

    fn wait_ready(&mut self) -> bool {
        for _ in 0..600 {
            if let Ok(r) = http_request(self.port, "GET", "/", &[], b"", Duration::from_secs(10)) {
                if r.status != 503 {
                    return true;
                }
            }
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn output(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn get(&self, path: &str) -> Response {
        http_request(self.port, "GET", path, &[], b"", Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.output()))
    }

    /// Sends `signal` as a terminal or a service manager would, waits for the command to end;
    /// checks that it left no process of its Apache session and no daemon socket behind.
    fn stop(mut self, signal: i32, server_root: &Path) -> String {
        let apache = children_of(self.child.id());
        assert_eq!(apache.len(), 1, "one Apache parent under start-server: {apache:?}");
        let session = session_of(apache[0]);
        let before = session_members(session);
        assert!(before.len() >= 3, "Apache, a supervisor, a daemon, a child: {before:?}");
        unsafe { libc_kill(self.child.id() as i32, signal) };
        let status = self.child.wait().unwrap();
        let output = self.output();
        assert_eq!(status.code(), Some(0), "start-server after signal {signal}:\n{output}");
        assert!(output.contains("mod_wsgi_rs-express: stopped"), "{output}");
        assert!(!output.contains("left behind by Apache"), "processes had to be killed:\n{output}");
        let left = session_members(session);
        assert!(left.is_empty(), "processes left behind: {left:?}");
        let sockets: Vec<_> = fs::read_dir(server_root.join("run"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sock"))
            .collect();
        assert!(sockets.is_empty(), "sockets left behind: {sockets:?}");
        assert!(std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err(), "port still served");
        output
    }
}

impl Drop for Express {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            unsafe { libc_kill(self.child.id() as i32, 15) };
            let _ = self.child.wait();
        }
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
    #[link_name = "getsid"]
    fn libc_getsid(pid: i32) -> i32;
}

fn session_of(pid: u32) -> i32 {
    unsafe { libc_getsid(pid as i32) }
}

fn session_members(session: i32) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| session_of(*pid) == session)
        .collect()
}

/// The probe application: what the daemon's Python looks like from inside.
const PROBE: &str = r#"
import json, os, sys
import mod_wsgi

def documented():
    "a docstring"

def app(environ, start_response):
    body = json.dumps({
        "optimize": sys.flags.optimize,
        "doc": documented.__doc__,
        "version": "%d.%d" % sys.version_info[:2],
        "prefix": sys.prefix,
        "process_group": mod_wsgi.process_group,
        "threads": mod_wsgi.threads_per_process,
        "processes": mod_wsgi.maximum_processes,
        "cwd": os.getcwd(),
        "path": sys.path,
        "uid": os.getuid(),
        "pid": os.getpid(),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"#;

fn world_readable_dir(dir: &TestDir, rel: &str) -> PathBuf {
    let p = dir.mkdir(rel);
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn debian_venv() -> PathBuf {
    express_venv(Path::new(DEBIAN_PYTHON))
}

// ---------------------------------------------------------------------------------------
// tests

#[test]
fn module_config_names_the_installed_build_and_its_python() {
    let venv = debian_venv();
    let out = run_express(&venv, &["module-config"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let so = venv.join("lib/python3.11/site-packages/mod_wsgi_rs/server/mod_wsgi_rs-py311.so");
    assert!(so.is_file());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("LoadModule wsgi_rs_module {}\nWSGIPythonHome {}\n", so.display(), venv.display())
    );
}

#[test]
fn install_module_copies_the_build_and_its_lines_load_in_apache() {
    let venv = debian_venv();
    let dir = TestDir::new("express-install");
    let modules = world_readable_dir(&dir, "modules");
    let out = run_express(&venv, &["install-module", "--modules-directory", &modules.to_string_lossy()], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let installed = modules.join("mod_wsgi_rs-py311.so");
    let built = venv.join("lib/python3.11/site-packages/mod_wsgi_rs/server/mod_wsgi_rs-py311.so");
    assert_eq!(fs::read(&installed).unwrap(), fs::read(&built).unwrap());
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(lines, format!("LoadModule wsgi_rs_module {}\nWSGIPythonHome {}\n", installed.display(), venv.display()));
    // The printed lines are a working configuration.
    let conf = Conf::new(Mpm::Event).without_wsgi().extra(&lines);
    let (code, log, _, _) = apache_config_test_conf(&conf);
    assert_eq!(code, 0, "{log}");

    // Without apxs and without --modules-directory: one line saying what to do.
    let out = run_express(&venv, &["install-module"], &[("APXS", "/nonexistent/apxs"), ("PATH", "/nonexistent")]);
    assert_clear_failure(&out, "apxs was not found");
    let out = run_express(&venv, &["install-module", "--modules-directory", &dir.p("nope")], &[]);
    assert_clear_failure(&out, "does not exist");
}

#[test]
fn setup_server_writes_a_server_that_its_apachectl_runs() {
    let venv = debian_venv();
    let dir = TestDir::new("express-setup");
    let app = dir.write("app/probe.wsgi", PROBE.replace("def app(", "def application("));
    let root = dir.path().join("server");
    let port = free_port();
    let out = run_express(
        &venv,
        &["setup-server", &app.to_string_lossy(), "--server-root", &root.to_string_lossy(), "--port", &port.to_string()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let conf = fs::read_to_string(root.join("httpd.conf")).unwrap();
    for line in ["WSGIRestrictEmbedded On", "WSGIDaemonProcess express processes=1 threads=5", "request-timeout=60",
                 "queue-timeout=45", "startup-timeout=15", "shutdown-timeout=5", "WSGIPythonOptimize 0"] {
        assert!(conf.contains(line), "{line:?} missing:\n{conf}");
    }
    // Nothing started.
    assert!(!root.join("run/httpd.pid").exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    let ctl = root.join("apachectl");
    let test = Command::new(&ctl).arg("configtest").output().unwrap();
    assert!(test.status.success(), "{}", text(&test));
    let start = Command::new(&ctl).arg("start").output().unwrap();
    assert!(start.status.success(), "{}", text(&start));
    let pid: u32 = {
        wait_for("the pid file", Duration::from_secs(30), || root.join("run/httpd.pid").is_file());
        fs::read_to_string(root.join("run/httpd.pid")).unwrap().trim().parse().unwrap()
    };
    let session = session_of(pid);
    let mut answer = None;
    wait_for("an answer", Duration::from_secs(60), || {
        answer = http_request(port, "GET", "/", &[], b"", Duration::from_secs(10)).ok().filter(|r| r.status == 200);
        answer.is_some()
    });
    let probe = answer.unwrap().json();
    assert_eq!(probe.get("process_group").as_str(), "express");
    let stop = Command::new(&ctl).arg("stop").output().unwrap();
    assert!(stop.status.success(), "{}", text(&stop));
    wait_for("Apache and its daemons to end", Duration::from_secs(30), || session_members(session).is_empty());
}

#[test]
fn start_server_serves_through_the_daemon_group_at_optimize_2_and_sigint_stops_all_of_it() {
    let venv = debian_venv();
    let dir = TestDir::new("express-start");
    let app = dir.write("app/probe.wsgi", PROBE);
    let lib = world_readable_dir(&dir, "lib");
    let work = world_readable_dir(&dir, "work");
    let statics = world_readable_dir(&dir, "static");
    fs::write(statics.join("style.css"), "body {}\n").unwrap();
    let one_file = dir.write("robots.txt", "User-agent: *\n");
    let include = dir.write("extra.conf", "ServerTokens Prod\n");
    let (lib_s, work_s, static_s, robots_s, include_s) = (
        lib.to_string_lossy().into_owned(),
        work.to_string_lossy().into_owned(),
        statics.to_string_lossy().into_owned(),
        one_file.to_string_lossy().into_owned(),
        include.to_string_lossy().into_owned(),
    );
    let server = Express::start(
        &venv,
        &dir,
        &app.to_string_lossy(),
        &[
            "--optimize", "2", "--processes", "2", "--threads", "3", "--callable-object", "app",
            "--python-path", &lib_s, "--working-directory", &work_s,
            "--url-alias", "/static", &static_s, "--url-alias", "/robots.txt", &robots_s,
            "--access-log", "--log-level", "info", "--include-file", &include_s,
            "--mpm", "worker", "--max-clients", "30",
            "--maximum-requests", "1000", "--restart-interval", "3600", "--inactivity-timeout", "600",
            "--request-timeout", "30", "--queue-timeout", "20", "--startup-timeout", "10",
            "--graceful-timeout", "5", "--shutdown-timeout", "4", "--connect-timeout", "10",
            "--socket-timeout", "40", "--deadlock-timeout", "120",
        ],
    );
    let r = server.get("/");
    assert_eq!(r.status, 200, "{}", server.output());
    let probe = r.json();
    assert_eq!(probe.get("optimize").as_i64(), 2);
    assert!(matches!(probe.get("doc"), Json::Null), "docstrings are gone at level 2");
    assert_eq!(probe.get("process_group").as_str(), "express");
    assert_eq!(probe.get("threads").as_i64(), 3);
    assert_eq!(probe.get("processes").as_i64(), 2);
    assert_eq!(probe.get("prefix").as_str(), venv.to_string_lossy());
    assert_eq!(probe.get("cwd").as_str(), work_s);
    let path = probe.get("path").to_string();
    assert!(path.contains(&lib_s) && path.contains(&work_s), "{path}");
    if running_as_root() {
        assert_eq!(probe.get("uid").as_i64(), WWW_UID as i64, "as root the default user is www-data");
    }
    assert_eq!(server.get("/static/style.css").text(), "body {}\n");
    assert_eq!(server.get("/robots.txt").text(), "User-agent: *\n");
    assert_eq!(r.header("Server"), Some("Apache"), "--include-file's ServerTokens Prod");
    let conf = fs::read_to_string(dir.path().join("server/httpd.conf")).unwrap();
    for option in ["maximum-requests=1000", "restart-interval=3600", "inactivity-timeout=600", "request-timeout=30",
                   "queue-timeout=20", "startup-timeout=10", "graceful-timeout=5", "shutdown-timeout=4",
                   "connect-timeout=10", "socket-timeout=40", "deadlock-timeout=120", "MaxRequestWorkers 50"] {
        assert!(conf.contains(option), "{option} missing:\n{conf}");
    }
    let output = server.stop(2, &dir.path().join("server"));
    assert!(output.contains("\"GET /static/style.css HTTP/1.1\" 200"), "access log on the terminal:\n{output}");
    assert!(output.contains("optimisation level 2"), "{output}");
}

#[test]
fn start_server_prefork_stops_on_sigterm_and_serves_a_document_root() {
    let venv = debian_venv();
    let dir = TestDir::new("express-docroot");
    let app = dir.write("app/probe.wsgi", PROBE.replace("def app(", "def application("));
    let docroot = world_readable_dir(&dir, "htdocs");
    fs::write(docroot.join("index.html"), "<p>static</p>\n").unwrap();
    let server = Express::start(&venv, &dir, &app.to_string_lossy(),
        &["--mpm", "prefork", "--document-root", &docroot.to_string_lossy()]);
    assert_eq!(server.get("/index.html").text(), "<p>static</p>\n");
    assert_eq!(server.get("/anything/else").json().get("process_group").as_str(), "express");
    server.stop(15, &dir.path().join("server"));
}

#[test]
fn application_type_module_serves_a_django_style_module() {
    let venv = debian_venv();
    let dir = TestDir::new("express-module");
    let project = world_readable_dir(&dir, "project");
    dir.write("project/mysite/__init__.py", "");
    dir.write("project/mysite/wsgi.py", PROBE);
    let server = Express::start(&venv, &dir, "mysite.wsgi",
        &["--application-type", "module", "--callable-object", "app", "--working-directory", &project.to_string_lossy()]);
    let probe = server.get("/").json();
    assert_eq!(probe.get("cwd").as_str(), project.to_string_lossy());
    server.stop(2, &dir.path().join("server"));
}

#[test]
fn reload_on_changes_picks_up_an_edited_module_without_failed_requests() {
    let venv = debian_venv();
    let dir = TestDir::new("express-reload");
    let app = dir.write(
        "app/app.wsgi",
        "import message\n\ndef application(environ, start_response):\n    \
         start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [message.TEXT.encode()]\n",
    );
    let message = dir.write("app/message.py", "TEXT = 'before'\n");
    let server = Express::start(&venv, &dir, &app.to_string_lossy(), &["--reload-on-changes", "--reload-interval", "0.2"]);
    assert_eq!(server.get("/").text(), "before");

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(Mutex::new(Vec::new())));
    let port = server.port;
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match http_request(port, "GET", "/", &[], b"", Duration::from_secs(20)) {
                    Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::SeqCst),
                    other => { failed.lock().unwrap().push(format!("{other:?}")); 0 }
                };
            }
        })
    };
    fs::write(&message, "TEXT = 'after'\n").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while server.get("/").text() != "after" {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for the edit to be served; the server's output:\n{}",
            server.output()
        );
        thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    assert!(ok.load(Ordering::SeqCst) > 0);
    assert!(failed.lock().unwrap().is_empty(), "failed requests: {:?}", failed.lock().unwrap());
    let output = server.stop(2, &dir.path().join("server"));
    assert!(output.contains("message.py changed; replacing process"), "{output}");
}

/// The reloader's rule for a module it first sees at a poll, run in Python itself: a file
/// older than the process is the version imported, a newer one may have been edited after the
/// import. An edit made just after the start can carry a time just before it (file times come
/// from a clock that advances once per tick), and must still count.
#[test]
fn the_reloader_counts_an_edit_stamped_a_tick_before_the_start() {
    let dir = TestDir::new("express-reloader-lag");
    let script = r#"
import importlib.util, os, sys, threading, time
spec = importlib.util.spec_from_file_location("reloader", sys.argv[1])
reloader = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reloader)
work = sys.argv[2]
sys.path.insert(0, work)
long_ago = time.time_ns() - 2_000_000_000
for name in ("untouched", "edited"):
    path = os.path.join(work, name + ".py")
    with open(path, "w") as f:
        f.write("X = 1\n")
    os.utime(path, ns=(long_ago, long_ago))
replaced = threading.Event()
os.kill = lambda pid, sig: replaced.set()
start = time.time_ns()
reloader.watch([], 0.05)
import untouched, edited
# The edit, stamped 3 ms before the start by a clock a tick behind.
stamp = start - 3_000_000
os.utime(os.path.join(work, "edited.py"), ns=(stamp, stamp))
print("replaced" if replaced.wait(5) else "not replaced", flush=True)
"#;
    let out = Command::new(DEBIAN_PYTHON)
        .args(["-c", script, &format!("{CHECKOUT}/python/mod_wsgi_rs/reloader.py"), &dir.p("")])
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.trim() == "replaced", "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("edited.py changed; replacing process"), "{stderr}");
    assert!(!stderr.contains("untouched.py"), "{stderr}");
}

#[test]
fn user_and_group_run_apache_and_the_application_as_them() {
    if !running_as_root() {
        let out = run_express(&debian_venv(), &["setup-server", "/dev/null", "--user", "nobody"], &[]);
        assert_clear_failure(&out, "need mod_wsgi_rs-express to be started as root");
        return;
    }
    let venv = debian_venv();
    let dir = TestDir::new("express-user");
    let app = dir.write("app/probe.wsgi", PROBE);
    let server = Express::start(&venv, &dir, &app.to_string_lossy(),
        &["--callable-object", "app", "--user", "nobody", "--group", "nogroup"]);
    assert_eq!(server.get("/").json().get("uid").as_i64(), 65534);
    server.stop(2, &dir.path().join("server"));
}

#[test]
fn mistakes_are_one_line_saying_what_to_do() {
    let venv = debian_venv();
    let dir = TestDir::new("express-errors");
    let app = dir.write("app/probe.wsgi", PROBE).to_string_lossy().into_owned();
    let root = dir.p("server");
    let setup = |args: &[&str]| {
        let mut all = vec!["setup-server", "--server-root", &root];
        all.extend_from_slice(args);
        run_express(&venv, &all, &[])
    };
    assert_clear_failure(&setup(&[&dir.p("missing.wsgi")]), "does not exist");
    assert_clear_failure(&setup(&[&app]), "defines no 'application'");
    let broken = dir.write("app/broken.wsgi", "def application(:\n").to_string_lossy().into_owned();
    assert_clear_failure(&setup(&[&broken]), "broken.wsgi, line 1");
    assert_clear_failure(&setup(&[&app, "--callable-object", "app", "--httpd-executable", "/nonexistent/apache2"]),
                         "no such executable");
    assert_clear_failure(&setup(&["--application-type", "module", "nosuch.wsgi"]), "module nosuch.wsgi was not found");
    if running_as_root() {
        assert_clear_failure(&setup(&[&app, "--callable-object", "app", "--user", "no-such-user-here"]),
                             "--user no-such-user-here: no such user");
    }
    // A port something else listens on.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run_express(&venv, &["start-server", &app, "--callable-object", "app", "--server-root", &root, "--port", &port], &[]);
    assert_clear_failure(&out, &format!("port {port} on 127.0.0.1 is already in use"));
    // Bad values are argparse's usage errors (exit status 2), not tracebacks.
    let out = run_express(&venv, &["setup-server", &app, "--optimize", "3"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("invalid choice: 3"), "{}", text(&out));
}

/// `precompile` compiles the standard library, the venv it is installed in and the
/// application at the levels asked into each user's directory of the bytecode cache,
/// made as Apache's parent makes it (tests/pycache.rs checks that a server then compiles
/// nothing, through `make precompile`, which runs this command).
#[test]
fn precompile_fills_each_users_cache_for_the_venv_and_the_application() {
    use std::os::unix::fs::MetadataExt;
    let venv = debian_venv();
    let dir = TestDir::new("express-precompile");
    let app = world_readable_dir(&dir, "app");
    fs::write(app.join("site_module.py"), "VALUE = 1\n").unwrap();
    let prefix = dir.p("aot");
    let app_dir = app.to_string_lossy().into_owned();
    let args = ["precompile", "--levels", "2", "--pycache-prefix", &prefix, "--cache-user", "www-data", "--app-dir", &app_dir];
    let out = run_express(&venv, &args, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let owner_and_mode = |p: &str| {
        let m = fs::metadata(p).unwrap_or_else(|e| panic!("{p}: {e}\n{}", text(&out)));
        (m.uid(), m.mode() & 0o777)
    };
    assert_eq!(owner_and_mode(&prefix), (0, 0o755));
    let user_dir = format!("{prefix}/www-data");
    assert_eq!(owner_and_mode(&user_dir), (WWW_UID, 0o700));
    let venv = venv.to_string_lossy();
    for compiled in [
        format!("{user_dir}{app_dir}/site_module.cpython-311.opt-2.pyc"),
        format!("{user_dir}{venv}/lib/python3.11/site-packages/mod_wsgi_rs/express.cpython-311.opt-2.pyc"),
        format!("{user_dir}/usr/lib/python3.11/json/decoder.cpython-311.opt-2.pyc"),
    ] {
        assert_eq!(owner_and_mode(&compiled).0, WWW_UID, "{compiled}");
    }
    assert!(!Path::new(&format!("{user_dir}{app_dir}/site_module.cpython-311.opt-1.pyc")).exists(), "a level not asked for");

    let venv = Path::new(&*venv);
    let out = run_express(venv, &["precompile", "--cache-user", "nosuch-user", "--pycache-prefix", &prefix], &[]);
    assert_clear_failure(&out, "--cache-user nosuch-user: no such user");
    let out = run_express(venv, &["precompile", "--no-stdlib", "--app-dir", &dir.p("nope"), "--pycache-prefix", &prefix], &[]);
    assert_clear_failure(&out, "no such directory");
    let out = run_express(venv, &["precompile", "--pycache-prefix", "relative/dir"], &[]);
    assert_clear_failure(&out, "must be an absolute directory or Off");
}

#[test]
fn pip_wheel_and_an_sdist_build_the_module() {
    let venv = debian_venv();
    let dir = TestDir::new("express-wheel");
    let wheels = dir.mkdir("wheels");
    run_ok(&venv.join("bin/pip"), &["wheel", "--no-deps", "--no-input", "--disable-pip-version-check", "-w",
        &wheels.to_string_lossy(), CHECKOUT], &[]);
    let names: Vec<String> = fs::read_dir(&wheels).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("mod_wsgi_rs-0.1.0-cp311-cp311-linux_"), "{names:?}");
    let listing = run_ok(Path::new(DEBIAN_PYTHON), &["-m", "zipfile", "-l", &wheels.join(&names[0]).to_string_lossy()], &[]);
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("mod_wsgi_rs/server/mod_wsgi_rs-py311.so"), "{listing}");
    assert!(listing.contains("mod_wsgi_rs/express.py"), "{listing}");

    // The sdist, as `python -m build --sdist` would make it, installs into a fresh venv and
    // serves.
    let sdists = dir.mkdir("sdist");
    let made = run_ok(Path::new(DEBIAN_PYTHON), &["-c", &format!(
        "import os, sys; os.chdir({CHECKOUT:?}); sys.path.insert(0, 'python/build_backend'); \
         import mod_wsgi_rs_build as b; print(b.build_sdist({:?}))", sdists.to_string_lossy())], &[]);
    let sdist = sdists.join(String::from_utf8_lossy(&made.stdout).trim());
    let fresh = dir.path().join("venv");
    run_ok(Path::new(DEBIAN_PYTHON), &["-m", "venv", &fresh.to_string_lossy()], &[]);
    // Cargo's target directory of the checkout build: only this crate is compiled again.
    let target = format!("{CHECKOUT}/target/python/sdist-py311");
    run_ok(&fresh.join("bin/pip"), &["install", "--no-input", "--disable-pip-version-check", "--no-cache-dir",
        &sdist.to_string_lossy()], &[("CARGO_TARGET_DIR", &target)]);
    let app = dir.write("app/probe.wsgi", PROBE);
    let server = Express::start(&fresh, &dir, &app.to_string_lossy(), &["--callable-object", "app", "--optimize", "2"]);
    assert_eq!(server.get("/").json().get("optimize").as_i64(), 2);
    server.stop(2, &dir.path().join("server"));
}

/// pip install into a venv of another CPython, and a request at level 2 through the daemon
/// group.
fn smoke_test_other_python(minor: &str) {
    let python = readable_pyenv_python(minor);
    let venv = express_venv(&python);
    let tag = minor.replace('.', "");
    assert!(venv.join(format!("lib/python{minor}/site-packages/mod_wsgi_rs/server/mod_wsgi_rs-py{tag}.so")).is_file());
    let dir = TestDir::new(&format!("express-py{tag}"));
    let app = dir.write("app/probe.wsgi", PROBE);
    let server = Express::start(&venv, &dir, &app.to_string_lossy(), &["--callable-object", "app", "--optimize", "2"]);
    let r = server.get("/");
    assert_eq!(r.status, 200, "{}", server.output());
    let probe = r.json();
    assert_eq!(probe.get("version").as_str(), minor);
    assert_eq!(probe.get("optimize").as_i64(), 2);
    assert_eq!(probe.get("process_group").as_str(), "express");
    assert!(r.header("Server").unwrap().contains(&format!("Python/{minor}")), "{:?}", r.header("Server"));
    server.stop(2, &dir.path().join("server"));
}

#[test]
fn python_3_12_builds_and_serves() {
    smoke_test_other_python("3.12");
}

#[test]
fn python_3_13_builds_and_serves() {
    smoke_test_other_python("3.13");
}
