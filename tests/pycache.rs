//! The bytecode cache (WSGIPythonPycachePrefix and its default) and the startup line's
//! count of modules compiled from source: the cache is created by the parent for the
//! user that writes it, written, then used (a second start compiles nothing), stale
//! source is compiled again, the count matches the files written at each level, and a
//! cache that cannot be created or is unsafe leaves a working server with a warning.
mod common;
use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

/// One Apache child (event MPM), so that one process compiles everything it imports.
const ONE_CHILD: &str = "StartServers 1\nServerLimit 1\nThreadsPerChild 4\nMaxRequestWorkers 4\n\
                         MinSpareThreads 1\nMaxSpareThreads 8\n";

/// The application and the state that outlive one server: the probe, its helper module
/// (in a directory only root may write, so it cannot be cached beside its source) and
/// the directory used as DefaultRuntimeDir, where the default cache lives.
struct Site {
    dir: TestDir,
    script: String,
    helper: String,
}

impl Site {
    fn new(tag: &str) -> Site {
        let dir = TestDir::new(tag);
        dir.mkdir("state");
        let lib = dir.p("lib");
        let helper = dir.write("lib/pycache_helper.py", "VALUE = 1\n").display().to_string();
        let script = dir.install_app("pycache_app.wsgi", &[("LIB", &lib)]).display().to_string();
        Site { dir, script, helper }
    }

    /// Makes the helper import `n` more modules from its directory, which the child
    /// cannot write to as root: that many are compiled at every start without a cache,
    /// whatever caches the standard library has beside it.
    fn add_uncacheable_modules(&self, n: usize) {
        let mut helper = String::from("VALUE = 1\n");
        for i in 0..n {
            self.dir.write(&format!("lib/pycache_bulk_{i}.py"), format!("NUMBER = {i}\n"));
            helper.push_str(&format!("import pycache_bulk_{i}\n"));
        }
        fs::write(&self.helper, helper).unwrap();
    }

    fn conf(&self, directives: &str) -> Conf {
        Conf::new(Mpm::Event).extra(ONE_CHILD).extra(&format!(
            "DefaultRuntimeDir {state}\n{directives}\nWSGIImportScript {script} application-group=%{{GLOBAL}}\n\
             WSGIScriptAlias /app {script}\n",
            state = self.dir.p("state"),
            script = self.script
        ))
    }

    fn default_prefix(&self) -> String {
        self.dir.p("state/wsgi_rs-pycache")
    }
}

/// The user Apache's children run as here: www-data as root, else this user.
fn child_user() -> (String, u32) {
    if running_as_root() {
        ("www-data".into(), WWW_UID)
    } else {
        let uid = fs::metadata("/proc/self").unwrap().uid();
        let name = fs::read_to_string("/etc/passwd")
            .unwrap()
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
            .unwrap_or_else(|| uid.to_string());
        (name, uid)
    }
}

/// The startup line of a process that is ready to serve.
#[derive(Debug)]
struct Ready {
    pid: u32,
    cache: String,
    compiled: usize,
    /// (level, written to the cache); None when nothing was compiled.
    detail: Option<(u32, usize)>,
    line: String,
}

fn parse_ready(line: &str) -> Option<Ready> {
    let init = parse_init_line(line)?;
    let cache_at = line.find("; bytecode cache ")? + "; bytecode cache ".len();
    let key = "; compiled from source while starting: ";
    let end = line.find(key)?;
    let cache = line[cache_at..end].to_string();
    let rest = &line[end + key.len()..];
    let number = |s: &str| -> Option<usize> { s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok() };
    let compiled = number(rest)?;
    let detail = match rest.find(" at level ") {
        None => None,
        Some(i) => {
            let level = number(&rest[i + " at level ".len()..])? as u32;
            let written = number(&rest[rest.find(" ms, ")? + " ms, ".len()..])?;
            assert!(rest.ends_with("written to the bytecode cache"), "{line}");
            Some((level, written))
        }
    };
    Some(Ready { pid: init.pid, cache, compiled, detail, line: line.to_string() })
}

/// Waits for the one child's startup line.
fn ready_of(apache: &Apache) -> (Ready, String) {
    let (found, log) = apache.wait_log(Duration::from_secs(30), |log| log.lines().any(|l| parse_ready(l).is_some()));
    assert!(found, "no startup line with the compile count:\n{log}");
    let mut ready: Vec<Ready> = log.lines().filter_map(parse_ready).collect();
    assert_eq!(ready.len(), 1, "one child, one startup line: {ready:#?}");
    assert_no_crash(&log);
    (ready.remove(0), log)
}

/// Every file under `dir` whose name ends with `suffix`, with its owner.
fn cache_files(dir: &Path, suffix: &str) -> Vec<(String, u32)> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else { return found };
    for entry in entries.flatten() {
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        if meta.is_dir() {
            found.extend(cache_files(&entry.path(), suffix));
        } else if entry.file_name().to_string_lossy().ends_with(suffix) {
            found.push((entry.path().display().to_string(), meta.uid()));
        }
    }
    found
}

fn mode_of(path: &str) -> u32 {
    fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}")).mode() & 0o7777
}

fn start(site: &Site, directives: &str, tag: &str) -> Apache {
    Apache::start(TestDir::new(tag), &site.conf(directives), &[])
}

/// Level 2 with the default cache: the first start compiles and writes every module
/// into a directory of the child's user (0700), the second compiles none, and a
/// changed module is compiled again, once.
#[test]
fn default_cache_is_private_written_then_used_and_stale_source_recompiled() {
    let _g = heavy();
    let site = Site::new("pycache-default");
    let (user, uid) = child_user();
    let prefix = site.default_prefix();
    let user_dir = format!("{prefix}/{user}");

    let first = start(&site, "WSGIPythonOptimize 2", "pycache-default-1");
    let (ready, log) = ready_of(&first);
    assert_eq!(ready.cache, user_dir, "{}", ready.line);
    let files = cache_files(Path::new(&user_dir), ".cpython-311.opt-2.pyc");
    assert!(ready.compiled > 50, "the probe imports well over 50 modules: {}", ready.line);
    assert_eq!(ready.detail, Some((2, ready.compiled)), "all written: {}", ready.line);
    assert_eq!(ready.compiled, files.len(), "count against the files written: {}\n{files:#?}", ready.line);
    assert!(files.iter().all(|(_, owner)| *owner == uid), "cache files not owned by {user}: {files:#?}");
    assert!(!log.contains("could not be cached"), "notice on a start that filled the cache:\n{log}");
    assert_eq!(mode_of(&user_dir), 0o700, "{user_dir}");
    assert_eq!(fs::metadata(&user_dir).unwrap().uid(), uid, "{user_dir} owner");
    assert_eq!(mode_of(&prefix) & 0o022, 0, "{prefix} writable by others");
    let r = first.get("/app");
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j.get("pycache_prefix").as_str(), user_dir, "{j}");
    assert_eq!(j.get("helper_cached").as_str(), format!("{user_dir}{}", site.dir.p("lib/pycache_helper.cpython-311.opt-2.pyc")));
    assert!(Path::new(j.get("helper_cached").as_str()).is_file(), "{j}");
    assert!(!site.dir.path().join("lib/__pycache__").exists(), "cached beside the source too");
    drop(first);

    let second = start(&site, "WSGIPythonOptimize 2", "pycache-default-2");
    let (ready, _) = ready_of(&second);
    assert_eq!((ready.compiled, ready.detail), (0, None), "second start: {}", ready.line);
    drop(second);

    // Python checks a cache entry against its source's mtime and size.
    fs::write(&site.helper, "VALUE = 22\n").unwrap();
    let third = start(&site, "WSGIPythonOptimize 2", "pycache-default-3");
    let (ready, _) = ready_of(&third);
    assert_eq!((ready.compiled, ready.detail), (1, Some((2, 1))), "changed helper: {}", ready.line);
    let r = third.get("/app");
    assert_eq!(r.json().get("helper_value").as_i64(), 22, "{}", r.text());
}

/// The count at each level matches what the process wrote: at level 1 with the default
/// cache, and at level 0 with an explicit one (the standard library's level-0 caches
/// beside its sources are then not read, so everything is compiled once); at level 0
/// without a cache only the helper, whose directory the child cannot write, is
/// compiled at every start, and no notice is given for so few.
#[test]
fn count_matches_the_files_written_at_each_level() {
    let _g = heavy();
    let (user, _) = child_user();
    for (level, directives, suffix) in [
        (1, "WSGIPythonOptimize 1".to_string(), ".cpython-311.opt-1.pyc"),
        (0, "WSGIPythonPycachePrefix @@DIR@@/explicit".to_string(), ".cpython-311.pyc"),
    ] {
        let site = Site::new(&format!("pycache-level{level}"));
        let directives = directives.replace("@@DIR@@/explicit", &site.dir.p("explicit"));
        let apache = start(&site, &directives, "pycache-level");
        let (ready, log) = ready_of(&apache);
        let expected_dir = if level == 0 { site.dir.p("explicit") } else { site.default_prefix() } + "/" + &user;
        assert_eq!(ready.cache, expected_dir, "{}", ready.line);
        let files = cache_files(Path::new(&expected_dir), suffix);
        assert!(ready.compiled > 50, "{}", ready.line);
        assert_eq!(ready.detail, Some((level, files.len())), "{}", ready.line);
        assert_eq!(ready.compiled, files.len(), "{}\n{files:#?}", ready.line);
        assert!(!log.contains("could not be cached"), "{log}");
    }

    let site = Site::new("pycache-level0-none");
    let apache = start(&site, "", "pycache-level0-none");
    let (ready, log) = ready_of(&apache);
    assert_eq!(ready.cache, "none", "no cache by default at level 0: {}", ready.line);
    assert!(!Path::new(&site.default_prefix()).exists(), "default cache created at level 0");
    if running_as_root() {
        assert_eq!((ready.compiled, ready.detail), (1, Some((0, 0))), "{}", ready.line);
    } else {
        assert_eq!((ready.compiled, ready.detail), (1, Some((0, 1))), "{}", ready.line);
    }
    assert!(!log.contains("could not be cached"), "{log}");
}

/// A cache directory that cannot be created (its parent is a file, which stops root
/// too): a warning from the parent naming the path and the reason, a startup line that
/// says why there is no cache, the notice naming the remedy, and a server that serves.
#[test]
fn cache_that_cannot_be_created_warns_and_serves() {
    let _g = heavy();
    let site = Site::new("pycache-uncreatable");
    site.add_uncacheable_modules(25);
    site.dir.write("a-file", "not a directory\n");
    let prefix = site.dir.p("a-file/pycache");
    let apache = start(&site, &format!("WSGIPythonOptimize 2\nWSGIPythonPycachePrefix {prefix}"), "pycache-uncreatable");
    let (ready, log) = ready_of(&apache);
    let warnings = lines_with(&log, "[wsgi_rs:warn]");
    assert!(
        warnings.iter().any(|l| l.contains("bytecode cache for Apache's children")
            && l.contains(&format!("cannot create {prefix}"))
            && l.contains("Not a directory")),
        "no warning naming the directory and the reason:\n{log}"
    );
    assert!(ready.cache.starts_with("none: ") && ready.cache.contains(&prefix), "{}", ready.line);
    assert_eq!(ready.detail, Some((2, 0)), "{}", ready.line);
    let notice = lines_with(&log, "could not be cached");
    if !running_as_root() {
        return; // the child may write beside the sources: nothing to give notice of
    }
    assert_eq!(notice.len(), 1, "{log}");
    assert!(notice[0].contains("[wsgi_rs:notice]") && notice[0].contains("WSGIPythonPycachePrefix"), "{}", notice[0]);
    assert!(notice[0].contains("make precompile"), "{}", notice[0]);
    let r = apache.get("/app");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().get("pycache_prefix").as_str(), "", "{}", r.text());
}

/// An existing user directory that others may write to is not used, and nothing is
/// written into it; `Off` turns the default cache off.
#[test]
fn unsafe_or_disabled_cache_is_not_used() {
    let _g = heavy();
    let (user, _) = child_user();
    let site = Site::new("pycache-unsafe");
    site.add_uncacheable_modules(25);
    site.dir.mkdir("state/wsgi_rs-pycache");
    let user_dir = site.dir.mkdir_www(&format!("state/wsgi_rs-pycache/{user}"));
    fs::set_permissions(&user_dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let apache = start(&site, "WSGIPythonOptimize 2", "pycache-unsafe");
    let (ready, log) = ready_of(&apache);
    assert!(
        lines_with(&log, "[wsgi_rs:warn]").iter().any(|l| l.contains("writable by its group or by others (mode 0777)")),
        "no warning about the unsafe directory:\n{log}"
    );
    assert!(ready.cache.contains("writable by its group or by others"), "{}", ready.line);
    assert!(cache_files(&user_dir, ".pyc").is_empty(), "bytecode written into an unsafe directory");
    assert_eq!(lines_with(&log, "could not be cached").len(), usize::from(running_as_root()), "{log}");
    drop(apache);

    let site = Site::new("pycache-off");
    site.add_uncacheable_modules(25);
    let apache = start(&site, "WSGIPythonOptimize 2\nWSGIPythonPycachePrefix Off", "pycache-off");
    let (ready, log) = ready_of(&apache);
    assert_eq!(ready.cache, "none", "{}", ready.line);
    assert!(!Path::new(&site.default_prefix()).exists(), "cache created despite Off");
    assert_eq!(lines_with(&log, "could not be cached").len(), usize::from(running_as_root()), "{log}");
}

/// Daemon groups: each user gets its own directory, owned by it, at the group's
/// python-optimize level, and the Apache children theirs.
#[test]
fn daemon_groups_with_their_own_users_get_their_own_directories() {
    if !running_as_root() {
        eprintln!("skipped: daemon users other than Apache's need root");
        return;
    }
    let _g = heavy();
    let site = Site::new("pycache-daemons");
    let script = site.script.clone();
    let prefix = site.dir.p("cache");
    let directives = format!(
        "WSGIPythonPycachePrefix {prefix}\n\
         WSGIDaemonProcess apache-user processes=1 threads=2 python-optimize=2\n\
         WSGIDaemonProcess nobody-user processes=1 threads=2 user=nobody group=nogroup python-optimize=1\n\
         WSGIImportScript {script} process-group=apache-user application-group=%{{GLOBAL}}\n\
         WSGIImportScript {script} process-group=nobody-user application-group=%{{GLOBAL}}\n\
         WSGIScriptAlias /one {script} process-group=apache-user application-group=%{{GLOBAL}}\n\
         WSGIScriptAlias /two {script} process-group=nobody-user application-group=%{{GLOBAL}}\n"
    );
    let conf = Conf::new(Mpm::Event).extra(&directives);
    let apache = Apache::start(TestDir::new("pycache-daemons"), &conf, &[]);
    let (found, log) = apache.wait_log(Duration::from_secs(30), |log| {
        log.lines().filter(|l| parse_ready(l).is_some()).count() >= 4
    });
    assert!(found, "startup lines of two children and two daemons:\n{log}");
    wait_for("both daemons' startup lines", Duration::from_secs(30), || {
        apache.error_log().lines().filter_map(parse_ready).filter(|r| r.cache.ends_with("/nobody")).count() == 1
            && apache.error_log().lines().filter_map(parse_ready).filter(|r| r.detail.map(|d| d.0) == Some(2)).count() == 1
    });
    let log = apache.error_log();
    for (path, user, uid, level) in [("/one", "www-data", WWW_UID, 2u32), ("/two", "nobody", 65534, 1)] {
        let r = apache.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let j = r.json();
        let dir = format!("{prefix}/{user}");
        assert_eq!(j.get("uid").as_i64(), uid as i64, "{j}");
        assert_eq!(j.get("pycache_prefix").as_str(), dir, "{j}");
        assert_eq!(mode_of(&dir), 0o700, "{dir}");
        assert_eq!(fs::metadata(&dir).unwrap().uid(), uid, "{dir} owner");
        let files = cache_files(Path::new(&dir), &format!(".cpython-311.opt-{level}.pyc"));
        assert!(files.len() > 50 && files.iter().all(|(_, o)| *o == uid), "{dir}: {files:#?}");
        let pid = j.get("pid").as_i64() as u32;
        let ready = log.lines().filter_map(parse_ready).find(|r| r.pid == pid).expect("the daemon's startup line");
        assert_eq!(ready.cache, dir, "{}", ready.line);
        assert_eq!(ready.detail.map(|d| d.0), Some(level), "{}", ready.line);
    }
    // The Apache children run at level 0 with the explicit prefix: www-data's directory.
    let children: Vec<Ready> = log.lines().filter_map(parse_ready).filter(|r| apache.child_pids().contains(&r.pid)).collect();
    assert!(!children.is_empty() && children.iter().all(|r| r.cache == format!("{prefix}/www-data")), "{children:#?}");
    assert_eq!(cache_files(Path::new(&prefix), "").iter().filter(|(p, _)| !p.starts_with(&format!("{prefix}/www-data/")) && !p.starts_with(&format!("{prefix}/nobody/"))).count(), 0);
}

/// `make precompile` (tools/precompile.sh) fills the cache the configuration names for
/// the standard library and the application: the first start then compiles nothing.
#[test]
fn precompiled_cache_leaves_nothing_to_compile() {
    if !running_as_root() {
        eprintln!("skipped: precompiling hands the cache to www-data, which needs root");
        return;
    }
    let _g = heavy();
    let site = Site::new("pycache-precompile");
    let prefix = site.dir.p("aot");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/precompile.sh");
    let out = std::process::Command::new(&script)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LEVELS", "2")
        .env("PYCACHE_PREFIX", &prefix)
        .env("CACHE_USERS", "www-data")
        .env("APP_DIRS", site.dir.p("lib"))
        .output()
        .expect("run tools/precompile.sh");
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "precompile failed: {output}");
    let dir = format!("{prefix}/www-data");
    assert_eq!((mode_of(&dir), fs::metadata(&dir).unwrap().uid()), (0o700, WWW_UID), "{dir}");
    let apache = start(&site, &format!("WSGIPythonOptimize 2\nWSGIPythonPycachePrefix {prefix}"), "pycache-precompile");
    let (ready, _) = ready_of(&apache);
    assert_eq!(ready.cache, dir, "{}", ready.line);
    assert_eq!((ready.compiled, ready.detail), (0, None), "first start after precompiling: {}", ready.line);
}

/// Beside mod_python, which starts Python, the notice says the cache is not applied, and
/// the parent creates no directory.
#[test]
fn mod_python_owner_is_told_the_cache_is_not_applied() {
    let _g = heavy();
    let site = Site::new("pycache-modpython");
    let conf = Conf::new(Mpm::Prefork)
        .module_before("python_module", MOD_PYTHON_SO)
        .extra(&format!("DefaultRuntimeDir {}\nWSGIPythonOptimize 2\n", site.dir.p("state")));
    let apache = Apache::start(TestDir::new("pycache-modpython"), &conf, &[]);
    let (found, log) = apache.wait_log(Duration::from_secs(20), |log| log.contains("not initialising it"));
    assert!(found, "{log}");
    let line = lines_with(&log, "not initialising it")[0];
    assert!(line.contains(&format!("nor the bytecode cache under {}", site.default_prefix())), "{line}");
    assert!(line.contains("sys.pycache_prefix can only be set by whoever starts Python"), "{line}");
    assert!(!Path::new(&site.default_prefix()).exists(), "cache created for an interpreter we do not start");
}

/// Bad values and places fail `apache2 -t` with the directive named.
#[test]
fn bad_values_fail_the_config_test() {
    for (text, expected) in [
        ("WSGIPythonPycachePrefix relative/dir\n", "WSGIPythonPycachePrefix: invalid value 'relative/dir'; expected Off or an absolute directory other than /"),
        ("WSGIPythonPycachePrefix /\n", "WSGIPythonPycachePrefix: invalid value '/'"),
        ("WSGIPythonPycachePrefix\n", "WSGIPythonPycachePrefix takes one argument"),
        ("<VirtualHost 127.0.0.1:80>\nWSGIPythonPycachePrefix /srv/pyc\n</VirtualHost>\n", "WSGIPythonPycachePrefix cannot occur within <VirtualHost> section"),
    ] {
        let (status, output, _, _) = apache_config_test_conf(&Conf::new(Mpm::Event).extra(text));
        assert_ne!(status, 0, "{text}: accepted");
        assert!(output.contains(expected), "{text}: {output}");
    }
    let (status, output, _, _) = apache_config_test_conf(&Conf::new(Mpm::Event).extra("WSGIPythonPycachePrefix off\n"));
    assert_eq!(status, 0, "{output}");
}
