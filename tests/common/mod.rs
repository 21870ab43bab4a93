//! Shared harness for the mod_wsgi_rs integration tests.
//!
//! Every test starts its own private Apache httpd (Debian's /usr/sbin/apache2) with a
//! generated configuration in a temporary ServerRoot under /tmp, on a free 127.0.0.1 port,
//! with a clean environment, in its own process group; it is stopped by its own pid.
//!
//! Expected invocation (the module must be built by the same command, which it is):
//!
//!     cd /work/main && cargo test --release --no-fail-fast -- --test-threads=2
//!
//! (`--no-fail-fast` so one failing test binary does not skip the others; one area:
//! `cargo test --release --test request_path -- --test-threads=2`.)
//!
//! * The module is taken from `<crate>/target/release/libmod_wsgi_rs.so` (or
//!   `target/debug/...` for a debug test build, falling back to release), or from
//!   `$MOD_WSGI_RS_SO` (needed with a custom CARGO_TARGET_DIR).
//! * Heavy areas: `mod_python` (~60 s, load), `optimize_effect` (~20 httpd starts).
//! * Tests that start many servers or put load on them take the process-wide [`heavy`]
//!   lock, so with `--test-threads=2` at most two httpd instances run at a time and at
//!   most one of them is a heavy one (cargo runs the test binaries one after another).
//! * `KEEP_TEST_DIRS=1` keeps every temporary ServerRoot (config, error.log, apps) for
//!   inspection; its path is printed.
//! * Run as root (the normal case here) the children run as www-data; apps and the
//!   directories Python writes to are made readable/writable for www-data.
//! * The whole suite takes a few minutes, most of it in the mod_python load tests and the
//!   optimisation-level matrix.
#![allow(dead_code)]

pub mod bad_apps;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const APACHE: &str = "/usr/sbin/apache2";
pub const MODULES_DIR: &str = "/usr/lib/apache2/modules";
pub const MOD_PYTHON_SO: &str = "/usr/lib/apache2/modules/mod_python.so";
pub const WWW_UID: u32 = 33;
pub const WWW_GID: u32 = 33;
const CLEAN_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

// ---------------------------------------------------------------------------------------
// locking

static HEAVY: Mutex<()> = Mutex::new(());

/// Serialises heavy tests (load, many httpd starts) within one test binary.
pub fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------
// the module

/// Path of the built module; panics with instructions when it does not exist.
pub fn module_so() -> PathBuf {
    if let Ok(p) = std::env::var("MOD_WSGI_RS_SO") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "MOD_WSGI_RS_SO={} does not exist", p.display());
        return p;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut candidates = Vec::new();
    if cfg!(debug_assertions) {
        candidates.push(root.join("target/debug/libmod_wsgi_rs.so"));
    }
    candidates.push(root.join("target/release/libmod_wsgi_rs.so"));
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "mod_wsgi_rs module not found (looked at {:?}). Build it with `cargo build --release` \
         (or run the tests with `cargo test --release`), or point MOD_WSGI_RS_SO at the .so",
        candidates
    );
}

// ---------------------------------------------------------------------------------------
// temporary directories and files

static DIR_SEQ: AtomicUsize = AtomicUsize::new(0);

fn is_root() -> bool {
    // No libc: ask the kernel through /proc.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

pub fn running_as_root() -> bool {
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOT.get_or_init(is_root)
}

/// A unique temporary directory under /tmp (mode 0755), removed on drop unless
/// `KEEP_TEST_DIRS` is set.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new(tag: &str) -> TestDir {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let seq = DIR_SEQ.fetch_add(1, Ordering::SeqCst);
        let tag: String = tag
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        let path = PathBuf::from(format!(
            "/tmp/mod_wsgi_rs-test-{}-{}-{}-{}",
            tag,
            std::process::id(),
            seq,
            nanos % 1_000_000_000
        ));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        let d = TestDir { path };
        for sub in ["run", "htdocs", "apps", "logs"] {
            d.mkdir(sub);
        }
        d
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Absolute path of `rel` inside the directory (as a String, for config text).
    pub fn p(&self, rel: &str) -> String {
        self.path.join(rel).to_string_lossy().into_owned()
    }

    /// Creates a directory (and parents), mode 0755.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.path.join(rel);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// Writes a file (mode 0644), creating parent directories.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path.join(rel);
        if let Some(parent) = p.parent() {
            if !parent.exists() {
                fs::create_dir_all(parent).unwrap();
                fs::set_permissions(parent, fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        p
    }

    /// Creates a directory www-data may write to (chown 33:33 when running as root,
    /// mode 0777 otherwise).
    pub fn mkdir_www(&self, rel: &str) -> PathBuf {
        let p = self.mkdir(rel);
        if running_as_root() {
            let st = Command::new("/bin/chown")
                .arg(format!("{WWW_UID}:{WWW_GID}"))
                .arg(&p)
                .status()
                .expect("run chown");
            assert!(st.success(), "chown www-data {}", p.display());
        } else {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o777)).unwrap();
        }
        p
    }

    /// Copies `tests/apps/<name>` into `<dir>/apps/<name>`, replacing each `@@KEY@@`
    /// with its value. Panics if a placeholder is left unreplaced.
    pub fn install_app(&self, name: &str, subs: &[(&str, &str)]) -> PathBuf {
        self.install_app_to(name, &format!("apps/{name}"), subs)
    }

    /// Like [`TestDir::install_app`] with an explicit destination (relative to the dir).
    pub fn install_app_to(&self, name: &str, dest: &str, subs: &[(&str, &str)]) -> PathBuf {
        let src = apps_dir().join(name);
        let mut text = fs::read_to_string(&src)
            .unwrap_or_else(|e| panic!("read {}: {e}", src.display()));
        for (k, v) in subs {
            text = text.replace(&format!("@@{k}@@"), v);
        }
        assert!(!text.contains("@@"), "unreplaced placeholder in {name}: {text}");
        self.write(dest, text)
    }
}

pub const STATIC_BODY: &str = "static file ok\n";

/// Every test app installed into a [`TestDir`], with the paths the tests mount.
pub struct Apps {
    pub probe: String,
    pub hello: String,
    pub environ: String,
    pub echo: String,
    pub responses: String,
    pub noapp: String,
    pub boom: String,
    /// a path that does not exist
    pub missing: String,
    /// www-data-writable dir holding probe_helper.py (probe's import target)
    pub helper_dir: String,
    /// www-data-writable dir where responses.wsgi records close() calls
    pub state_dir: String,
    /// the dir holding mp_handler.py (for PythonPath)
    pub apps_dir: String,
}

impl Apps {
    pub fn install(dir: &TestDir) -> Apps {
        let helper_dir = dir.mkdir_www("pylib");
        let helper_dir = helper_dir.to_string_lossy().into_owned();
        let state_dir = dir.mkdir_www("state").to_string_lossy().into_owned();
        dir.install_app_to("probe_helper.py", "pylib/probe_helper.py", &[]);
        let s = |p: PathBuf| p.to_string_lossy().into_owned();
        let apps = Apps {
            probe: s(dir.install_app("probe.wsgi", &[("HELPER_DIR", &helper_dir)])),
            hello: s(dir.install_app("hello.wsgi", &[])),
            environ: s(dir.install_app("environ.wsgi", &[])),
            echo: s(dir.install_app("echo.wsgi", &[])),
            responses: s(dir.install_app("responses.wsgi", &[("STATE_DIR", &state_dir)])),
            noapp: s(dir.install_app("noapp.wsgi", &[])),
            boom: s(dir.install_app("boom.wsgi", &[])),
            missing: dir.p("apps/does-not-exist.wsgi"),
            helper_dir,
            state_dir,
            apps_dir: dir.p("apps"),
        };
        dir.install_app("mp_handler.py", &[]);
        dir.write("htdocs/static.txt", STATIC_BODY);
        apps
    }

    /// WSGIScriptAlias lines for every app: /probe /hello /env /echo /resp /noapp /boom /missing.
    pub fn aliases(&self) -> String {
        format!(
            "WSGIScriptAlias /probe {}\n\
             WSGIScriptAlias /hello {}\n\
             WSGIScriptAlias /env {}\n\
             WSGIScriptAlias /echo {}\n\
             WSGIScriptAlias /resp {}\n\
             WSGIScriptAlias /noapp {}\n\
             WSGIScriptAlias /boom {}\n\
             WSGIScriptAlias /missing {}\n",
            self.probe,
            self.hello,
            self.environ,
            self.echo,
            self.responses,
            self.noapp,
            self.boom,
            self.missing
        )
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_TEST_DIRS").is_some() {
            eprintln!("[harness] keeping {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// The source directory of the test apps (tests/apps).
pub fn apps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps")
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------
// configuration

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mpm {
    Event,
    Worker,
    Prefork,
}

impl Mpm {
    pub const ALL: [Mpm; 3] = [Mpm::Event, Mpm::Worker, Mpm::Prefork];
    pub fn name(self) -> &'static str {
        match self {
            Mpm::Event => "event",
            Mpm::Worker => "worker",
            Mpm::Prefork => "prefork",
        }
    }
    pub fn threaded(self) -> bool {
        self != Mpm::Prefork
    }
}

/// Builds a complete httpd.conf for a test server.
#[derive(Clone, Debug)]
pub struct Conf {
    pub mpm: Mpm,
    pub log_level: String,
    /// `(module_name, path)` LoadModule lines before ours.
    pub modules_before: Vec<(String, String)>,
    /// `(module_name, path)` LoadModule lines after ours.
    pub modules_after: Vec<(String, String)>,
    /// Whether to load mod_wsgi_rs at all.
    pub load_wsgi: bool,
    /// Free text appended after the LoadModule lines. `@@DIR@@` and `@@PORT@@` are
    /// replaced with the ServerRoot and the port.
    pub extra: String,
}

impl Conf {
    pub fn new(mpm: Mpm) -> Conf {
        Conf {
            mpm,
            log_level: "info".into(),
            modules_before: Vec::new(),
            modules_after: Vec::new(),
            load_wsgi: true,
            extra: String::new(),
        }
    }
    pub fn log_level(mut self, l: &str) -> Self {
        self.log_level = l.into();
        self
    }
    /// Loads a module from Debian's module directory before ours, e.g. `("authz_core_module", "mod_authz_core.so")`.
    pub fn module_before(mut self, name: &str, file: &str) -> Self {
        self.modules_before.push((name.into(), module_path(file)));
        self
    }
    pub fn module_after(mut self, name: &str, file: &str) -> Self {
        self.modules_after.push((name.into(), module_path(file)));
        self
    }
    pub fn without_wsgi(mut self) -> Self {
        self.load_wsgi = false;
        self
    }
    pub fn extra(mut self, text: &str) -> Self {
        self.extra.push_str(text);
        if !text.ends_with('\n') {
            self.extra.push('\n');
        }
        self
    }

    pub fn render(&self, dir: &TestDir, port: u16) -> String {
        let d = dir.path().display().to_string();
        let mut s = String::new();
        let _ = writeln!(s, "# generated by the mod_wsgi_rs test harness");
        let _ = writeln!(s, "ServerRoot \"{d}\"");
        let _ = writeln!(s, "Listen 127.0.0.1:{port}");
        let _ = writeln!(s, "ServerName 127.0.0.1");
        let _ = writeln!(s, "PidFile {d}/run/httpd.pid");
        let _ = writeln!(s, "DefaultRuntimeDir {d}/run");
        let _ = writeln!(s, "Mutex file:{d}/run default");
        let _ = writeln!(s, "ErrorLog {d}/error.log");
        let _ = writeln!(s, "LogLevel {}", self.log_level);
        let m = self.mpm.name();
        let _ = writeln!(s, "LoadModule mpm_{m}_module {MODULES_DIR}/mod_mpm_{m}.so");
        if running_as_root() {
            let _ = writeln!(s, "User www-data");
            let _ = writeln!(s, "Group www-data");
        }
        let _ = writeln!(s, "StartServers 2");
        let _ = writeln!(s, "DocumentRoot {d}/htdocs");
        // Without an access checker and an authn hook httpd 2.4 answers every request
        // with 500 ("AH00025: configuration error: couldn't check user"); Debian builds
        // neither in.
        let _ = writeln!(s, "LoadModule authn_core_module {MODULES_DIR}/mod_authn_core.so");
        let _ = writeln!(s, "LoadModule authz_core_module {MODULES_DIR}/mod_authz_core.so");
        for (n, p) in &self.modules_before {
            let _ = writeln!(s, "LoadModule {n} {p}");
        }
        if self.load_wsgi {
            let _ = writeln!(s, "LoadModule wsgi_rs_module {}", module_so().display());
        }
        for (n, p) in &self.modules_after {
            let _ = writeln!(s, "LoadModule {n} {p}");
        }
        s.push_str(&self.extra.replace("@@DIR@@", &d).replace("@@PORT@@", &port.to_string()));
        if !s.ends_with('\n') {
            s.push('\n');
        }
        s
    }
}

pub fn module_path(file: &str) -> String {
    if file.starts_with('/') {
        file.to_string()
    } else {
        format!("{MODULES_DIR}/{file}")
    }
}

/// 1-based line number of the first line of `conf` whose trimmed text equals `line`
/// (or starts with it, if no exact match).
pub fn line_of(conf: &str, line: &str) -> usize {
    conf.lines()
        .position(|l| l.trim() == line.trim())
        .or_else(|| conf.lines().position(|l| l.trim().starts_with(line.trim())))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("line {line:?} not in config:\n{conf}"))
}

fn clean_env_command(program: &str, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(program);
    c.env_clear();
    c.env("PATH", CLEAN_PATH);
    c.env("LANG", "C");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Runs `apache2 -t -f <conf>` on the given config text (written to a fresh temp dir,
/// `@@DIR@@` replaced by it) with a clean environment. Returns (exit code, stderr+stdout).
pub fn apache_config_test(conf_text: &str) -> (i32, String) {
    let dir = TestDir::new("configtest");
    let conf_text = conf_text.replace("@@DIR@@", &dir.path().display().to_string());
    config_test_in(&dir, &conf_text)
}

/// Like [`apache_config_test`] but renders a [`Conf`] first; returns the rendered text too.
pub fn apache_config_test_conf(conf: &Conf) -> (i32, String, String, String) {
    let dir = TestDir::new("configtest");
    let text = conf.render(&dir, free_port());
    let (code, out) = config_test_in(&dir, &text);
    let path = dir.p("httpd.conf");
    (code, out, text, path)
}

fn config_test_in(dir: &TestDir, conf_text: &str) -> (i32, String) {
    let conf = dir.write("httpd.conf", conf_text);
    let out = clean_env_command(APACHE, &[])
        .arg("-t")
        .arg("-f")
        .arg(&conf)
        .stdin(Stdio::null())
        .output()
        .expect("run apache2 -t");
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    (out.status.code().unwrap_or(-1), text)
}

/// Starts `apache2 -f <conf> -DFOREGROUND` on a config that is expected to make it exit
/// (a config error); waits up to `timeout`. Returns (exit code, stderr) or, if httpd is
/// still running at the deadline, stops it and returns (None, stderr).
pub fn apache_start_expect_exit(dir: &TestDir, conf_text: &str, timeout: Duration) -> (Option<i32>, String) {
    let conf = dir.write("httpd.conf", conf_text);
    let errf = dir.path().join("logs/start-stderr.log");
    let mut child = clean_env_command(APACHE, &[])
        .arg("-f")
        .arg(&conf)
        .arg("-DFOREGROUND")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&errf).unwrap())
        .process_group(0)
        .spawn()
        .expect("spawn apache2");
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if Instant::now() > deadline {
            let pid = child.id();
            let _ = Command::new("/bin/kill").args(["-TERM", &pid.to_string()]).status();
            thread::sleep(Duration::from_secs(3));
            let _ = Command::new("/bin/kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let err = fs::read(&errf).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    (code, err)
}

// ---------------------------------------------------------------------------------------
// the server

pub struct Apache {
    child: Option<Child>,
    pub pid: u32,
    pub port: u16,
    pub conf_path: PathBuf,
    pub conf_text: String,
    // Declared last: dropped after the server has been stopped.
    pub dir: TestDir,
}

impl Apache {
    /// Starts httpd with a config rendered from `conf` and the given extra environment.
    /// Retries with another port if the chosen one was taken meanwhile.
    pub fn start(dir: TestDir, conf: &Conf, env: &[(&str, &str)]) -> Apache {
        let mut dir = Some(dir);
        for attempt in 0..3 {
            let d = dir.take().unwrap();
            let port = free_port();
            let text = conf.render(&d, port);
            match Apache::try_start(d, port, text, env) {
                Ok(a) => return a,
                Err((d, log)) => {
                    if attempt < 2 && log.contains("Address already in use") {
                        let _ = fs::remove_file(d.path().join("error.log"));
                        dir = Some(d);
                        continue;
                    }
                    panic!("httpd failed to start:\n{log}");
                }
            }
        }
        unreachable!()
    }

    /// Starts httpd on a raw config text (`@@DIR@@`/`@@PORT@@` replaced). The text must
    /// contain `Listen 127.0.0.1:@@PORT@@` for readiness to be detected.
    pub fn start_raw(dir: TestDir, conf_text: &str, env: &[(&str, &str)]) -> Apache {
        let port = free_port();
        let text = conf_text
            .replace("@@DIR@@", &dir.path().display().to_string())
            .replace("@@PORT@@", &port.to_string());
        match Apache::try_start(dir, port, text, env) {
            Ok(a) => a,
            Err((_, log)) => panic!("httpd failed to start:\n{log}"),
        }
    }

    fn try_start(
        dir: TestDir,
        port: u16,
        text: String,
        env: &[(&str, &str)],
    ) -> Result<Apache, (TestDir, String)> {
        let conf_path = dir.write("httpd.conf", &text);
        let stdout = fs::File::create(dir.path().join("logs/stdout.log")).unwrap();
        let stderr = fs::File::create(dir.path().join("logs/stderr.log")).unwrap();
        let child = clean_env_command(APACHE, env)
            .arg("-f")
            .arg(&conf_path)
            .arg("-DFOREGROUND")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .expect("spawn /usr/sbin/apache2");
        let pid = child.id();
        let mut a = Apache { child: Some(child), pid, port, conf_path, conf_text: text, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = a.child.as_mut().unwrap().try_wait().unwrap() {
                a.child = None;
                let log = format!(
                    "httpd exited during startup ({st})\n--- stderr ---\n{}\n--- error.log ---\n{}\n--- config ---\n{}",
                    a.stderr_log(),
                    a.error_log(),
                    a.conf_text
                );
                let dir = a.take_dir_without_stop();
                return Err((dir, log));
            }
            if let Ok(_r) = http_request(port, "GET", "/", &[], b"", Duration::from_secs(2)) {
                return Ok(a);
            }
            if Instant::now() > deadline {
                let log = format!(
                    "httpd did not answer HTTP within 20 s\n--- stderr ---\n{}\n--- error.log ---\n{}",
                    a.stderr_log(),
                    a.error_log()
                );
                drop(a);
                panic!("{log}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn take_dir_without_stop(mut self) -> TestDir {
        // The process is gone; kill any stragglers of its group, then hand back the dir.
        self.kill_group_leftovers();
        self.child = None;
        let placeholder = TestDir { path: PathBuf::new() };
        let dir = std::mem::replace(&mut self.dir, placeholder);
        std::mem::forget(self);
        dir
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn error_log(&self) -> String {
        fs::read(self.dir.path().join("error.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn stderr_log(&self) -> String {
        fs::read(self.dir.path().join("logs/stderr.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Polls the error log until `pred` holds or `timeout` passes; returns the last log.
    pub fn wait_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> (bool, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.error_log();
            if pred(&log) {
                return (true, log);
            }
            if Instant::now() > deadline {
                return (false, log);
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Response {
        self.request("POST", path, &[("Content-Type", "application/octet-stream")], body)
    }

    /// Sends one request; panics (failing the test) on a transport error or timeout.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        http_request(self.port, method, path, headers, body, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n--- error.log ---\n{}", self.error_log()))
    }

    /// Pids of the live direct children of the httpd parent.
    pub fn child_pids(&self) -> Vec<u32> {
        children_of(self.pid)
    }

    /// Waits until every live child has logged a line matching `is_line(line, pid)`,
    /// returns the children and the log.
    pub fn wait_children_logged(
        &self,
        timeout: Duration,
        is_line: impl Fn(&str, u32) -> bool,
    ) -> (Vec<u32>, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let pids = self.child_pids();
            let log = self.error_log();
            let ok = !pids.is_empty()
                && pids.iter().all(|&p| log.lines().any(|l| is_line(l, p)));
            if ok || Instant::now() > deadline {
                return (pids, log);
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// `apache2 -f CONF -k <action>` (graceful, restart, ...), with the environment a
    /// service gets; panics unless it succeeds.
    pub fn control(&self, action: &str) {
        let out = clean_env_command(APACHE, &[])
            .arg("-f")
            .arg(&self.conf_path)
            .args(["-k", action])
            .stdin(Stdio::null())
            .output()
            .expect("run apache2 -k");
        assert!(
            out.status.success(),
            "apache2 -k {action}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server (SIGTERM to the parent, up to 15 s, then SIGKILL to the group).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("/bin/kill")
                .args(["-TERM", &self.pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut exited = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    exited = true;
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
            if !exited {
                eprintln!("[harness] httpd {} ignored SIGTERM for 15 s; SIGKILL to its group", self.pid);
                let _ = Command::new("/bin/kill")
                    .args(["-KILL", "--", &format!("-{}", self.pid)])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let _ = child.wait();
            }
            self.kill_group_leftovers();
        }
    }

    fn kill_group_leftovers(&self) {
        // Children that outlived the parent are still in its process group.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !processes_in_group(self.pid).is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
        }
        if !processes_in_group(self.pid).is_empty() {
            let _ = Command::new("/bin/kill")
                .args(["-KILL", "--", &format!("-{}", self.pid)])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            let log = self.error_log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "[harness] test failed; last error.log lines of {}:\n{}",
                self.dir.path().display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

fn proc_stat(pid: &str) -> Option<(u32, u32)> {
    // returns (ppid, pgrp)
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let mut it = rest.split_whitespace();
    let _state = it.next()?;
    let ppid = it.next()?.parse().ok()?;
    let pgrp = it.next()?.parse().ok()?;
    Some((ppid, pgrp))
}

fn all_pids() -> Vec<String> {
    fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `pid` is running: it exists and is not a zombie waiting to be reaped.
pub fn process_alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 1..].trim_start().starts_with(|c| c != 'Z')))
        .unwrap_or(false)
}

/// The parent of `pid`, if it is running.
pub fn parent_of(pid: u32) -> Option<u32> {
    proc_stat(&pid.to_string()).map(|(ppid, _)| ppid)
}

pub fn children_of(parent: u32) -> Vec<u32> {
    let mut v: Vec<u32> = all_pids()
        .into_iter()
        .filter(|p| matches!(proc_stat(p), Some((pp, _)) if pp == parent))
        .filter_map(|p| p.parse().ok())
        .collect();
    v.sort();
    v
}

fn processes_in_group(pgrp: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|p| matches!(proc_stat(p), Some((_, g)) if g == pgrp))
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The daemon processes of a group with `display-name=%{GROUP}`: processes whose
/// command line shows `(wsgi:NAME)`.
pub fn daemons_titled(name: &str) -> Vec<u32> {
    let title = format!("(wsgi:{name})");
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&title) {
            pids.push(pid);
        }
    }
    pids.sort();
    pids
}

/// Polls `ok` every 50 ms; panics naming `what` if it does not hold within `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------
// error-log helpers

/// The error-log lines containing `needle`.
pub fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

/// The `[pid N` field Apache puts in every error-log line.
pub fn log_pid(line: &str) -> Option<u32> {
    let i = line.find("[pid ")? + 5;
    let digits: String = line[i..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// A parsed `Python 3.11.x ... initialised in process <pid>; optimisation level <N> (<source>)` line.
#[derive(Debug, Clone, PartialEq)]
pub struct InitLine {
    pub level_tag: String, // "info", "notice", ...
    pub pid: u32,
    pub log_pid: Option<u32>,
    pub optimize: u32,
    pub source: String,
    pub line: String,
}

pub fn parse_init_line(line: &str) -> Option<InitLine> {
    let key = "initialised in process ";
    let i = line.find(key)?;
    if !line.contains("[wsgi_rs:") || !line[..i].contains("Python 3.11.") {
        return None;
    }
    let rest = &line[i + key.len()..];
    let pid_s: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let pid = pid_s.parse().ok()?;
    let rest = &rest[pid_s.len()..];
    let rest = rest.strip_prefix("; optimisation level ")?;
    let lvl_s: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let optimize = lvl_s.parse().ok()?;
    let rest = rest[lvl_s.len()..].strip_prefix(" (")?;
    let end = rest.find(')')?;
    let source = rest[..end].to_string();
    let t = line.find("[wsgi_rs:")? + "[wsgi_rs:".len();
    let level_tag: String = line[t..].chars().take_while(|&c| c != ']').collect();
    Some(InitLine { level_tag, pid, log_pid: log_pid(line), optimize, source, line: line.to_string() })
}

pub fn init_lines(log: &str) -> Vec<InitLine> {
    log.lines().filter_map(parse_init_line).collect()
}

/// Asserts the log contains none of the crash markers.
pub fn assert_no_crash(log: &str) {
    for bad in ["Fatal Python error", "exit signal", "Segmentation fault", "AH00052", "panicked at"] {
        let hits = lines_with(log, bad);
        assert!(hits.is_empty(), "error log contains {bad:?}:\n{}", hits.join("\n"));
    }
}

// ---------------------------------------------------------------------------------------
// HTTP client

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn headers_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Json {
        Json::parse(&self.text()).unwrap_or_else(|e| {
            panic!("response is not JSON ({e}): status {} body {:?}", self.status, self.text())
        })
    }
}

/// One HTTP/1.1 request to 127.0.0.1:port with `Connection: close`. A `Host` header
/// defaults to `127.0.0.1:<port>` unless given. The body, if not empty (or if the method
/// is POST/PUT), is sent with a Content-Length.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        let _ = write!(req, "Host: 127.0.0.1:{port}\r\n");
    }
    for (k, v) in headers {
        let _ = write!(req, "{k}: {v}\r\n");
    }
    let has_te = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"));
    if !has_te && (!body.is_empty() || method == "POST" || method == "PUT") {
        let _ = write!(req, "Content-Length: {}\r\n", body.len());
    }
    req.push_str("Connection: close\r\n\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    s.flush()?;
    let deadline = Instant::now() + timeout * 3;
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("reading response ({} bytes so far): {e}", raw.len()),
                ))
            }
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "response took too long"));
        }
    }
    let _ = s.shutdown(Shutdown::Both);
    parse_response(&raw, method == "HEAD")
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn parse_response(raw: &[u8], head: bool) -> io::Result<Response> {
    if raw.is_empty() {
        return Err(bad("empty response (connection closed without a status line)"));
    }
    let end = find(raw, b"\r\n\r\n")
        .ok_or_else(|| bad(format!("no end of headers in {:?}", String::from_utf8_lossy(raw))))?;
    let head_text = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let proto = parts.next().unwrap_or("");
    if !proto.starts_with("HTTP/") {
        return Err(bad(format!("bad status line {status_line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let reason = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let rest = &raw[end + 4..];
    let mut r = Response { status, reason, headers, body: Vec::new() };
    if head || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(r);
    }
    let chunked = r
        .header("transfer-encoding")
        .map(|v| v.to_ascii_lowercase().contains("chunked"))
        .unwrap_or(false);
    if chunked {
        r.body = dechunk(rest)?;
    } else if let Some(cl) = r.header("content-length") {
        let n: usize = cl.parse().map_err(|_| bad(format!("bad Content-Length {cl:?}")))?;
        if rest.len() < n {
            return Err(bad(format!(
                "truncated body: Content-Length {n}, got {} bytes",
                rest.len()
            )));
        }
        r.body = rest[..n].to_vec();
    } else {
        r.body = rest.to_vec();
    }
    Ok(r)
}

fn dechunk(mut data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = find(data, b"\r\n").ok_or_else(|| bad("truncated chunked body (no size line)"))?;
        let size_line = String::from_utf8_lossy(&data[..eol]).into_owned();
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| bad(format!("bad chunk size {size_line:?}")))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err(bad("truncated chunked body"));
        }
        out.extend_from_slice(&data[..size]);
        if &data[size..size + 2] != b"\r\n" {
            return Err(bad("chunk not followed by CRLF"));
        }
        data = &data[size + 2..];
    }
}

// ---------------------------------------------------------------------------------------
// load

/// What a load run saw.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// (path, status) -> count
    pub counts: BTreeMap<(String, u16), u64>,
    /// number of transport errors and body mismatches
    pub error_count: u64,
    /// the first few error messages
    pub errors: Vec<String>,
    pub total: u64,
}

impl LoadResult {
    pub fn non_200(&self) -> u64 {
        self.counts.iter().filter(|((_, s), _)| *s != 200).map(|(_, n)| n).sum()
    }
    pub fn ok_for(&self, path: &str) -> u64 {
        self.counts.get(&(path.to_string(), 200)).copied().unwrap_or(0)
    }
}

/// `threads` threads request the `targets` round-robin for `duration`. Each target is
/// `(path, expected body substring)`; a 200 whose body lacks the substring counts as an
/// error.
pub fn load(port: u16, targets: &[(&str, &str)], threads: usize, duration: Duration) -> LoadResult {
    let running = BackgroundLoad::start(port, targets, threads);
    thread::sleep(duration);
    running.finish()
}

/// A load running in the background until [`BackgroundLoad::finish`]: `threads` threads
/// request the `targets` round-robin, as [`load`] does, for as long as the caller needs
/// (across restarts whose duration is not known beforehand).
pub struct BackgroundLoad {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handles: Vec<thread::JoinHandle<LoadResult>>,
}

impl BackgroundLoad {
    pub fn start(port: u16, targets: &[(&str, &str)], threads: usize) -> BackgroundLoad {
        let targets: Arc<Vec<(String, String)>> =
            Arc::new(targets.iter().map(|(p, e)| (p.to_string(), e.to_string())).collect());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handles = (0..threads)
            .map(|t| {
                let (targets, stop) = (targets.clone(), stop.clone());
                thread::spawn(move || {
                    let mut local = LoadResult::default();
                    let mut i = t;
                    while !stop.load(Ordering::Relaxed) {
                        let (path, expect) = &targets[i % targets.len()];
                        i += 1;
                        local.total += 1;
                        match http_request(port, "GET", path, &[], b"", Duration::from_secs(10)) {
                            Ok(r) => {
                                *local.counts.entry((path.clone(), r.status)).or_insert(0) += 1;
                                if r.status == 200 && !r.text().contains(expect.as_str()) {
                                    local.error_count += 1;
                                    if local.errors.len() < 10 {
                                        local.errors.push(format!("{path}: body {:?} lacks {expect:?}", short(&r.text())));
                                    }
                                }
                            }
                            Err(e) => {
                                local.error_count += 1;
                                if local.errors.len() < 10 {
                                    local.errors.push(format!("{path}: {e}"));
                                }
                            }
                        }
                    }
                    local
                })
            })
            .collect();
        BackgroundLoad { stop, handles }
    }

    /// Stops the threads and adds up what they saw.
    pub fn finish(self) -> LoadResult {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = LoadResult::default();
        for h in self.handles {
            let local = h.join().expect("load thread panicked");
            for (k, v) in local.counts {
                *all.counts.entry(k).or_insert(0) += v;
            }
            all.total += local.total;
            all.error_count += local.error_count;
            all.errors.extend(local.errors.into_iter().take(20usize.saturating_sub(all.errors.len())));
        }
        all
    }
}

// ---------------------------------------------------------------------------------------
// several checks in one server run

/// Runs named checks, catching failures, so one httpd start can verify many things and
/// report every failing one. Call [`Checks::finish`] at the end.
pub struct Checks {
    pub context: String,
    failures: Vec<String>,
    passed: Vec<String>,
}

impl Checks {
    pub fn new(context: impl Into<String>) -> Checks {
        Checks { context: context.into(), failures: Vec::new(), passed: Vec::new() }
    }
    pub fn run(&mut self, name: &str, f: impl FnOnce()) {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(()) => self.passed.push(name.to_string()),
            Err(e) => {
                let msg = panic_message(&*e);
                self.failures.push(format!("[{}] {name}: {msg}", self.context));
            }
        }
    }
    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
    }
    pub fn absorb(&mut self, other: Checks) {
        self.failures.extend(other.failures);
        self.passed.extend(other.passed);
    }
    pub fn finish(self) {
        if !self.failures.is_empty() {
            panic!(
                "{} of {} checks failed ({} passed: {:?}):\n\n{}",
                self.failures.len(),
                self.failures.len() + self.passed.len(),
                self.passed.len(),
                self.passed,
                self.failures.join("\n\n")
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// a small JSON reader (no serde in this crate)

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn parse(s: &str) -> Result<Json, String> {
        let b = s.as_bytes();
        let mut i = 0;
        let v = parse_value(b, &mut i)?;
        skip_ws(b, &mut i);
        if i != b.len() {
            return Err(format!("trailing data at {i}"));
        }
        Ok(v)
    }
    /// Member of an object; panics with the whole object if absent.
    pub fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(m) => m
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("key {key:?} missing in {self}")),
            _ => panic!("not an object: {self}"),
        }
    }
    pub fn has(&self, key: &str) -> bool {
        matches!(self, Json::Obj(m) if m.iter().any(|(k, _)| k == key))
    }
    pub fn as_bool(&self) -> bool {
        match self {
            Json::Bool(b) => *b,
            _ => panic!("not a bool: {self}"),
        }
    }
    pub fn as_i64(&self) -> i64 {
        match self {
            Json::Num(n) if n.fract() == 0.0 => *n as i64,
            _ => panic!("not an integer: {self}"),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            _ => panic!("not a string: {self}"),
        }
    }
    pub fn as_arr(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            _ => panic!("not an array: {self}"),
        }
    }
    pub fn str_list(&self) -> Vec<String> {
        self.as_arr().iter().map(|v| v.as_str().to_string()).collect()
    }
}

impl std::fmt::Display for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Json::Null => write!(f, "null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Num(n) => write!(f, "{n}"),
            Json::Str(s) => write!(f, "{s:?}"),
            Json::Arr(a) => {
                write!(f, "[")?;
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{v}")?;
                }
                write!(f, "]")
            }
            Json::Obj(m) => {
                write!(f, "{{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k:?}: {v}")?;
                }
                write!(f, "}}")
            }
        }
    }
}

fn skip_ws(b: &[u8], i: &mut usize) {
    while *i < b.len() && b[*i].is_ascii_whitespace() {
        *i += 1;
    }
}

fn parse_value(b: &[u8], i: &mut usize) -> Result<Json, String> {
    skip_ws(b, i);
    match b.get(*i) {
        None => Err("unexpected end".into()),
        Some(b'n') if b[*i..].starts_with(b"null") => {
            *i += 4;
            Ok(Json::Null)
        }
        Some(b't') if b[*i..].starts_with(b"true") => {
            *i += 4;
            Ok(Json::Bool(true))
        }
        Some(b'f') if b[*i..].starts_with(b"false") => {
            *i += 5;
            Ok(Json::Bool(false))
        }
        Some(b'"') => parse_string(b, i).map(Json::Str),
        Some(b'[') => {
            *i += 1;
            let mut v = Vec::new();
            skip_ws(b, i);
            if b.get(*i) == Some(&b']') {
                *i += 1;
                return Ok(Json::Arr(v));
            }
            loop {
                v.push(parse_value(b, i)?);
                skip_ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b']') => {
                        *i += 1;
                        return Ok(Json::Arr(v));
                    }
                    _ => return Err(format!("expected , or ] at {i}")),
                }
            }
        }
        Some(b'{') => {
            *i += 1;
            let mut m = Vec::new();
            skip_ws(b, i);
            if b.get(*i) == Some(&b'}') {
                *i += 1;
                return Ok(Json::Obj(m));
            }
            loop {
                skip_ws(b, i);
                let k = parse_string(b, i)?;
                skip_ws(b, i);
                if b.get(*i) != Some(&b':') {
                    return Err(format!("expected : at {i}"));
                }
                *i += 1;
                let v = parse_value(b, i)?;
                m.push((k, v));
                skip_ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b'}') => {
                        *i += 1;
                        return Ok(Json::Obj(m));
                    }
                    _ => return Err(format!("expected , or }} at {i}")),
                }
            }
        }
        Some(_) => {
            let start = *i;
            while *i < b.len() && (b[*i].is_ascii_digit() || b"+-.eE".contains(&b[*i])) {
                *i += 1;
            }
            let t = std::str::from_utf8(&b[start..*i]).unwrap();
            t.parse::<f64>().map(Json::Num).map_err(|_| format!("bad token at {start}"))
        }
    }
}

fn parse_string(b: &[u8], i: &mut usize) -> Result<String, String> {
    if b.get(*i) != Some(&b'"') {
        return Err(format!("expected string at {i}"));
    }
    *i += 1;
    let mut out: Vec<u16> = Vec::new();
    let mut s = String::new();
    let flush = |out: &mut Vec<u16>, s: &mut String| {
        if !out.is_empty() {
            s.push_str(&String::from_utf16_lossy(out));
            out.clear();
        }
    };
    loop {
        let c = *b.get(*i).ok_or("unterminated string")?;
        *i += 1;
        match c {
            b'"' => {
                flush(&mut out, &mut s);
                return Ok(s);
            }
            b'\\' => {
                let e = *b.get(*i).ok_or("bad escape")?;
                *i += 1;
                let ch = match e {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => {
                        let h = std::str::from_utf8(b.get(*i..*i + 4).ok_or("bad \\u")?)
                            .map_err(|_| "bad \\u")?;
                        let u = u16::from_str_radix(h, 16).map_err(|_| "bad \\u")?;
                        *i += 4;
                        out.push(u);
                        continue;
                    }
                    _ => return Err("bad escape".into()),
                };
                flush(&mut out, &mut s);
                s.push(ch);
            }
            _ => {
                flush(&mut out, &mut s);
                // copy one UTF-8 sequence
                let start = *i - 1;
                let len = match c {
                    0x00..=0x7f => 1,
                    0xc0..=0xdf => 2,
                    0xe0..=0xef => 3,
                    _ => 4,
                };
                let end = (start + len).min(b.len());
                s.push_str(&String::from_utf8_lossy(&b[start..end]));
                *i = end;
            }
        }
    }
}

// =======================================================================================
// Request-path contract helpers (tests/wsgi_*.rs). Additive section; the apps live in
// tests/apps/rp_*.
// =======================================================================================

/// Host name of the virtual host that serves every app a second time, wrapped in
/// `wsgiref.validate.validator` (see tests/apps/rp_validated.wsgi).
pub const RP_VALIDATED_HOST: &str = "validated.test";

/// Which copy of an app a request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// the app itself, on the default virtual host
    Plain,
    /// the app wrapped in wsgiref.validate.validator, on `validated.test`
    Validated,
}

impl Via {
    pub const BOTH: [Via; 2] = [Via::Plain, Via::Validated];
    pub fn name(self) -> &'static str {
        match self {
            Via::Plain => "plain",
            Via::Validated => "validated",
        }
    }
}

/// Sends requests to one server through one [`Via`].
#[derive(Clone, Copy)]
pub struct Client<'a> {
    pub apache: &'a Apache,
    pub via: Via,
}

impl<'a> Client<'a> {
    pub fn new(apache: &'a Apache, via: Via) -> Client<'a> {
        Client { apache, via }
    }
    /// The Host header value for this client.
    pub fn host(&self) -> String {
        match self.via {
            Via::Plain => format!("127.0.0.1:{}", self.apache.port),
            Via::Validated => format!("{RP_VALIDATED_HOST}:{}", self.apache.port),
        }
    }
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let host = self.host();
        let mut h: Vec<(&str, &str)> = vec![("Host", host.as_str())];
        h.extend_from_slice(headers);
        self.apache.request(method, path, &h, body)
    }
    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }
    /// Sends `head` (request line and headers, without Host and without the blank line)
    /// plus `body` over a raw socket and reads until EOF or `timeout`.
    pub fn raw(&self, head: &str, body: &[u8], timeout: Duration) -> RawReply {
        let mut req = String::new();
        let mut lines = head.trim_end().split("\r\n");
        req.push_str(lines.next().unwrap());
        req.push_str("\r\n");
        let _ = write!(req, "Host: {}\r\n", self.host());
        for l in lines {
            req.push_str(l);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        let mut all = req.into_bytes();
        all.extend_from_slice(body);
        raw_exchange(self.apache.port, &all, timeout)
    }
}

/// What a raw exchange read.
#[derive(Debug, Clone)]
pub struct RawReply {
    pub bytes: Vec<u8>,
    /// true if the server closed the connection (EOF or reset) before the timeout
    pub closed: bool,
    /// true if the read ended with a connection reset
    pub reset: bool,
}

impl RawReply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
    /// Status code of the (last non-1xx) status line.
    pub fn status(&self) -> Option<u16> {
        let (h, _) = self.split_final()?;
        h.split(' ').nth(1)?.parse().ok()
    }
    /// The final (non-1xx) head and everything after it.
    pub fn split_final(&self) -> Option<(String, Vec<u8>)> {
        let mut data: &[u8] = &self.bytes;
        loop {
            let end = find(data, b"\r\n\r\n")?;
            let head = String::from_utf8_lossy(&data[..end]).into_owned();
            let rest = &data[end + 4..];
            let code: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            if (100..200).contains(&code) {
                data = rest;
                continue;
            }
            return Some((head, rest.to_vec()));
        }
    }
    pub fn head(&self) -> String {
        self.split_final().map(|(h, _)| h).unwrap_or_default()
    }
    /// The bytes after the final head, undecoded.
    pub fn after_head(&self) -> Vec<u8> {
        self.split_final().map(|(_, b)| b).unwrap_or_default()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.head();
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            if k.trim().eq_ignore_ascii_case(name) {
                Some(v.trim().to_string())
            } else {
                None
            }
        })
    }
    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding").map(|v| v.to_ascii_lowercase().contains("chunked")).unwrap_or(false)
    }
}

/// Writes `request` to 127.0.0.1:port, then reads until EOF, reset or `timeout`.
pub fn raw_exchange(port: u16, request: &[u8], timeout: Duration) -> RawReply {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).expect("write request");
    read_until_close(&mut s, timeout)
}

/// Reads from `s` until EOF, reset or `timeout` (total).
pub fn read_until_close(s: &mut TcpStream, timeout: Duration) -> RawReply {
    let deadline = Instant::now() + timeout;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return RawReply { bytes, closed: false, reset: false };
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return RawReply { bytes, closed: true, reset: false },
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
                return RawReply { bytes, closed: false, reset: false }
            }
            Err(_) => return RawReply { bytes, closed: true, reset: true },
        }
    }
}

/// Asks for a large streamed response at `path`, reads the first ~200 KB of it and goes
/// away with the rest unread (the kernel answers further data with a reset).
pub fn disconnect_mid_response(port: u16, path: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let mut got = 0;
    while got < 200_000 {
        let n = s.read(&mut buf).expect("read the start of the streamed response");
        assert!(n > 0, "server closed after {got} bytes");
        if got == 0 {
            assert!(buf[..n].starts_with(b"HTTP/1.1 200 "), "{:?}", String::from_utf8_lossy(&buf[..n.min(200)]));
        }
        got += n;
    }
}

/// POSTs to `path` announcing a 1,000,000-byte body, sends 10,000 bytes of it and goes
/// away.
pub fn disconnect_mid_body(port: u16, path: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: 1000000\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(&pseudo_random_bytes(10_000, 7)).unwrap();
}

/// Encodes `body` as HTTP/1.1 chunks of at most `size` bytes, with the last chunk.
pub fn chunk_encode(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(size.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Installs `tests/apps/<name>` at `apps/<name>` (placeholders replaced) and a validator
/// wrapper for it at `apps/validated/<name>`; returns (app path, wrapper path).
pub fn rp_install(dir: &TestDir, name: &str, subs: &[(&str, &str)]) -> (String, String) {
    rp_install_to(dir, name, &format!("apps/{name}"), subs)
}

/// Like [`rp_install`] with an explicit destination (relative to the dir); the wrapper
/// goes to `validated/<dest>`.
pub fn rp_install_to(dir: &TestDir, name: &str, dest: &str, subs: &[(&str, &str)]) -> (String, String) {
    let app = dir.install_app_to(name, dest, subs).to_string_lossy().into_owned();
    let wrapper = rp_wrapper(dir, &app, &format!("validated/{dest}"), "application");
    (app, wrapper)
}

/// Writes a validator wrapper (tests/apps/rp_validated.wsgi) at `dest` that serves
/// `callable` of the script `target`.
pub fn rp_wrapper(dir: &TestDir, target: &str, dest: &str, callable: &str) -> String {
    dir.install_app_to("rp_validated.wsgi", dest, &[("TARGET", target), ("CALLABLE", callable)])
        .to_string_lossy()
        .into_owned()
}

/// Config text: a default virtual host (`127.0.0.1`) that inherits the main server's
/// directives, and the `validated.test` virtual host holding `validated` (aliases to
/// the validator wrappers), both on the test port.
pub fn rp_vhosts(validated: &str) -> String {
    format!(
        "<VirtualHost 127.0.0.1:@@PORT@@>\n    ServerName 127.0.0.1\n</VirtualHost>\n\
         <VirtualHost 127.0.0.1:@@PORT@@>\n    ServerName {RP_VALIDATED_HOST}\n{}\n</VirtualHost>\n",
        validated
            .lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// Starts httpd; a failure to start comes back as Err with the reason (the config
/// may use directives the module does not know yet), so callers can fail each of
/// their checks with it instead of aborting the whole test.
pub fn rp_start(dir: TestDir, conf: &Conf) -> Result<Apache, String> {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Apache::start(dir, conf, &[])));
    r.map_err(|e| {
        let msg = panic_message(&*e);
        // keep the interesting part: the error lines
        let short: Vec<&str> = msg
            .lines()
            .filter(|l| l.contains("rror") || l.contains("Invalid") || l.contains("exited"))
            .take(8)
            .collect();
        format!("httpd failed to start: {}", short.join(" | "))
    })
}

/// Markers of wsgiref.validate complaints in an error log.
pub fn validator_complaints(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            l.contains("AssertionError")
                || l.contains("WSGIWarning")
                || l.contains("Iterator garbage collected")
        })
        .map(str::to_string)
        .collect()
}

/// Waits until the error log has a line containing every string in `needles`;
/// returns that line.
pub fn wait_line(apache: &Apache, timeout: Duration, needles: &[&str]) -> Result<String, String> {
    let (ok, log) = apache.wait_log(timeout, |log| log.lines().any(|l| needles.iter().all(|n| l.contains(n))));
    if ok {
        Ok(log.lines().find(|l| needles.iter().all(|n| l.contains(n))).unwrap().to_string())
    } else {
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        Err(format!(
            "no log line with all of {needles:?}; last lines:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }
}

/// Sets a file's mtime to `secs` seconds after its current mtime (via touch(1)).
pub fn bump_mtime(path: &str, secs: i64) {
    let meta = fs::metadata(path).unwrap();
    let m = meta.modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let st = Command::new("/usr/bin/touch")
        .arg("-m")
        .arg("-d")
        .arg(format!("@{}", m + secs))
        .arg(path)
        .status()
        .expect("touch");
    assert!(st.success());
}

/// The first 200 characters of a response text, for assertion messages.
pub fn short(text: &str) -> String {
    let t: String = text.chars().take(200).collect();
    if t.len() < text.len() {
        format!("{t}...")
    } else {
        t
    }
}

impl RawReply {
    /// Parses the final response (after any 1xx) with the harness's parser.
    pub fn response(&self) -> io::Result<Response> {
        let (head, rest) = self.split_final().ok_or_else(|| bad(format!("no response head in {:?}", self.text())))?;
        let mut raw = head.into_bytes();
        raw.extend_from_slice(b"\r\n\r\n");
        raw.extend_from_slice(&rest);
        parse_response(&raw, false)
    }
}

/// Current size of the error log, to look only at what a later request adds.
pub fn log_mark(apache: &Apache) -> usize {
    apache.error_log().len()
}

/// Like [`wait_line`] but only over the log written after `mark` (see [`log_mark`]).
pub fn wait_line_after(apache: &Apache, mark: usize, timeout: Duration, needles: &[&str]) -> Result<String, String> {
    let tail_of = |log: &str| log.get(mark..).unwrap_or("").to_string();
    let (ok, log) =
        apache.wait_log(timeout, |log| tail_of(log).lines().any(|l| needles.iter().all(|n| l.contains(n))));
    let tail = tail_of(&log);
    if ok {
        Ok(tail.lines().find(|l| needles.iter().all(|n| l.contains(n))).unwrap().to_string())
    } else {
        Err(format!("no new log line with all of {needles:?}; new lines:\n{tail}"))
    }
}

/// [`Checks::finish`], printing how many checks ran (visible with `--nocapture`).
pub fn rp_finish(c: Checks) {
    eprintln!(
        "[checks] {}: {} passed, {} failed",
        c.context,
        c.passed.len(),
        c.failures.len()
    );
    c.finish();
}

/// The checks every request-path test group ends with: the validator
/// wrapper complained about nothing, and nothing crashed.
pub fn rp_final_checks(c: &mut Checks, apache: &Apache) {
    c.run("validator raised nothing", || {
        let v = validator_complaints(&apache.error_log());
        assert!(v.is_empty(), "validator complaints:\n{}", v.join("\n"));
    });
    c.run("no crash", || assert_no_crash(&apache.error_log()));
}

/// The text of a caught panic.
pub fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = e.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = e.downcast_ref::<&str>() {
        s.to_string()
    } else {
        "panic".to_string()
    }
}

// ---------------------------------------------------------------------------------------
// real frameworks: a cached virtual environment, and HTTP form/cookie helpers
// (used by tests/frameworks.rs)

/// FNV-1a, 64 bit: a hash that stays the same across Rust releases (for cache keys).
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// How the cached framework venv is made; part of its cache key, so changing the
/// recipe builds a new one.
const VENV_RECIPE: &str = "python3.11 -m venv; pip install -r; compileall -o 0 -o 1 -o 2; v1";

/// A virtual environment made by `/usr/bin/python3.11 -m venv` with the pinned
/// `requirements` installed from PyPI with pip, byte-compiled for optimisation levels
/// 0, 1 and 2 (the Apache user cannot write caches into it). Cached in
/// `target/framework-venvs/<hash of requirements and recipe>/` between runs; built under
/// an exclusive file lock, so concurrent tests and test binaries build it once.
pub fn cached_venv(requirements: &Path) -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut guard = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = guard.as_ref() {
        return p.clone();
    }
    let req = fs::read(requirements)
        .unwrap_or_else(|e| panic!("read {}: {e}", requirements.display()));
    let mut key_material = req.clone();
    key_material.extend_from_slice(VENV_RECIPE.as_bytes());
    let key = format!("{:016x}", fnv1a64(&key_material));
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/framework-venvs");
    fs::create_dir_all(&base).unwrap();
    let lock = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(base.join(".lock"))
        .unwrap();
    lock.lock().expect("lock target/framework-venvs/.lock");
    let venv = base.join(&key);
    let marker = venv.join(".complete");
    if !marker.is_file() {
        let started = Instant::now();
        eprintln!("[harness] building the framework venv {} (pip from PyPI)", venv.display());
        let _ = fs::remove_dir_all(&venv);
        let run = |program: &Path, args: &[&str]| {
            run_clean_ok(program, args, &[("HOME", "/tmp")]);
        };
        let venv_s = venv.to_string_lossy().into_owned();
        run(Path::new("/usr/bin/python3.11"), &["-m", "venv", &venv_s]);
        let py = venv.join("bin/python");
        run(
            &py,
            &[
                "-m",
                "pip",
                "install",
                "--no-input",
                "--disable-pip-version-check",
                "--no-cache-dir",
                "-r",
                &requirements.to_string_lossy(),
            ],
        );
        let site = venv.join("lib/python3.11/site-packages");
        run(&py, &["-m", "compileall", "-q", "-o", "0", "-o", "1", "-o", "2", &site.to_string_lossy()]);
        let secs = started.elapsed().as_secs_f64();
        fs::write(&marker, format!("built in {secs:.1} s\n")).unwrap();
        eprintln!("[harness] framework venv built in {secs:.1} s");
    }
    drop(lock);
    *guard = Some(venv.clone());
    venv
}

/// Runs `program` with a clean environment (PATH, LANG and `env`) and no stdin; fails the
/// test, with its output, unless it succeeds.
pub fn run_clean_ok(program: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let out = clean_env_command(&program.to_string_lossy(), env)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}\n{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Copies a directory tree (files 0644, directories 0755), skipping `__pycache__`.
pub fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    fs::set_permissions(dst, fs::Permissions::from_mode(0o755)).unwrap();
    for entry in fs::read_dir(src).unwrap_or_else(|e| panic!("read_dir {}: {e}", src.display())) {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "__pycache__" {
            continue;
        }
        let to = dst.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            fs::copy(entry.path(), &to).unwrap();
            fs::set_permissions(&to, fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

/// chown -R www-data (when running as root; otherwise makes the tree world-writable).
pub fn chown_www_recursive(path: &Path) {
    if running_as_root() {
        let st = Command::new("/bin/chown")
            .arg("-R")
            .arg(format!("{WWW_UID}:{WWW_GID}"))
            .arg(path)
            .status()
            .expect("run chown");
        assert!(st.success(), "chown -R www-data {}", path.display());
    } else {
        let st = Command::new("/bin/chmod").arg("-R").arg("a+rwX").arg(path).status().unwrap();
        assert!(st.success());
    }
}

/// Runs a program with a clean environment plus `env` in `cwd`; panics with its output
/// unless it succeeds. Returns stdout.
pub fn run_ok(program: &str, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> String {
    let out = clean_env_command(program, env)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// SHA-256 of `data` as lowercase hex, computed by coreutils' sha256sum.
pub fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("/usr/bin/sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_string()
}

/// Deterministic bytes that are not trivially compressible and contain CR, LF and
/// dashes (the characters multipart parsers look for).
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for b in x.to_le_bytes() {
            if v.len() < len {
                v.push(b);
            }
        }
    }
    // Sprinkle in sequences that look like the start of a boundary.
    let mut i = 1000;
    while i + 8 < len {
        v[i..i + 6].copy_from_slice(b"\r\n--\r\n");
        i += 65_537;
    }
    v
}

/// `application/x-www-form-urlencoded` encoding of `pairs`.
pub fn form_urlencode(pairs: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
                b' ' => out.push('+'),
                _ => {
                    let _ = write!(out, "%{b:02X}");
                }
            }
        }
        out
    }
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// A part of a multipart/form-data body.
pub enum Part<'a> {
    Field(&'a str, &'a str),
    /// (field name, file name, content type, data)
    File(&'a str, &'a str, &'a str, &'a [u8]),
}

/// A multipart/form-data body and its Content-Type header value.
pub fn multipart_body(parts: &[Part<'_>]) -> (Vec<u8>, String) {
    let boundary = "----mod-wsgi-rs-test-boundary-7d1f3a";
    let mut body = Vec::new();
    for p in parts {
        let _ = write!(body, "--{boundary}\r\n");
        match p {
            Part::Field(name, value) => {
                let _ = write!(body, "Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n");
            }
            Part::File(name, filename, ctype, data) => {
                let _ = write!(
                    body,
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                     Content-Type: {ctype}\r\n\r\n"
                );
                body.extend_from_slice(data);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    let _ = write!(body, "--{boundary}--\r\n");
    (body, format!("multipart/form-data; boundary={boundary}"))
}

/// The `name=value` pairs a response sets with Set-Cookie.
pub fn set_cookies(r: &Response) -> Vec<(String, String)> {
    r.headers_all("set-cookie")
        .iter()
        .filter_map(|h| {
            let first = h.split(';').next()?;
            let (k, v) = first.split_once('=')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// The value of cookie `name` set by `r`; panics with the headers if absent.
pub fn set_cookie(r: &Response, name: &str) -> String {
    set_cookies(r)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no Set-Cookie for {name:?} in {:?}", r.headers))
}

// ---------------------------------------------------------------------------------------
// interpreter directives

/// The interpreter directives other than WSGIPythonOptimize (which has
/// tests of its own), each with a valid value: main server only.
pub const INTERPRETER_SETTINGS: [(&str, &str); 9] = [
    ("WSGIPythonHome", "/usr"),
    ("WSGIPythonPath", "/tmp"),
    ("WSGIPythonHashSeed", "0"),
    ("WSGIPythonWarnings", "ignore"),
    ("WSGIDontWriteBytecode", "On"),
    ("WSGIRestrictStdout", "On"),
    ("WSGIRestrictStdin", "On"),
    ("WSGIRestrictSignal", "Off"),
    ("WSGIDestroyInterpreter", "Off"),
];

/// Standard base64 (RFC 4648, with padding), for Basic credentials.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let bytes = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (bytes[0] as u32) << 16 | (bytes[1] as u32) << 8 | bytes[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An `Authorization` header value for Basic credentials.
pub fn basic_auth(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}
