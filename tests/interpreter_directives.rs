//! The interpreter directives other than WSGIPythonOptimize: WSGIPythonHome,
//! WSGIPythonPath, WSGIPythonHashSeed, WSGIPythonWarnings, WSGIDontWriteBytecode,
//! WSGIRestrictStdout/Stdin/Signal and WSGIDestroyInterpreter. Value checking and
//! contexts through `apache2 -t`, the effect of each one seen from a WSGI app, bad
//! WSGIPythonHome cases, the child's startup line, and the mod_wsgi directives this
//! module refuses by name. (Daemon mode's directives: tests/daemon_config.rs.)
mod common;
use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};


const FLAG_DIRECTIVES: [&str; 5] = [
    "WSGIDontWriteBytecode",
    "WSGIRestrictStdout",
    "WSGIRestrictStdin",
    "WSGIRestrictSignal",
    "WSGIDestroyInterpreter",
];

const UNSUPPORTED: [(&str, &str); 18] = [
    ("WSGIAcceptMutex", "this daemon-mode directive"),
    ("WSGICaseSensitivity", "this directive"),
    ("WSGIDispatchScript", "this directive"),
    ("WSGIEnableSendfile", "this directive"),
    ("WSGIErrorOverride", "this directive"),
    ("WSGIHandlerScript", "this directive"),
    ("WSGIIgnoreActivity", "this directive"),
    ("WSGILazyInitialization", "this daemon-mode directive"),
    ("WSGINewRelicConfigFile", "this directive"),
    ("WSGINewRelicEnvironment", "this directive"),
    ("WSGIPassApacheRequest", "this directive"),
    ("WSGIPythonEggs", "this directive"),
    ("WSGIRestrictProcess", "this daemon-mode directive"),
    ("WSGIServerMetrics", "this directive"),
    ("WSGISocketRotation", "this daemon-mode directive"),
    ("WSGITrustedProxies", "this directive"),
    ("WSGITrustedProxyHeaders", "this directive"),
    ("WSGIVerboseDebugging", "this directive"),
];

fn config_test(extra: &str) -> (i32, String, String, String) {
    apache_config_test_conf(&Conf::new(Mpm::Event).extra(extra))
}

/// `apache2 -t` fails with exit 1, Apache's syntax-error line pointing at `line_text`,
/// and a line containing every one of `needles`.
fn assert_refused(extra: &str, line_text: &str, needles: &[&str]) {
    let (code, out, text, path) = config_test(extra);
    assert_eq!(code, 1, "apache2 -t should fail for:\n{extra}\noutput:\n{out}");
    assert!(!out.contains("Syntax OK"), "{out}");
    let n = line_of(&text, line_text);
    let syntax = format!("AH00526: Syntax error on line {n} of {path}:");
    assert!(out.contains(&syntax), "expected {syntax:?} for `{line_text}` in:\n{out}");
    assert!(
        out.lines().any(|l| needles.iter().all(|n| l.contains(n))),
        "no line of the output contains all of {needles:?} (for `{line_text}`):\n{out}"
    );
}

fn assert_accepted(extra: &str) {
    let (code, out, _, _) = config_test(extra);
    assert_eq!(code, 0, "apache2 -t should accept:\n{extra}\noutput:\n{out}");
    assert!(out.contains("Syntax OK"), "{out}");
}

// ---------------------------------------------------------------------------------------
// value checking

#[test]
fn bad_values_are_refused_naming_directive_value_and_allowed_values() {
    let seed_allowed = "expected random or an integer from 0 to 4294967295";
    let actions = "the action must be one of default, error, ignore, always, module, once";
    // (config line, value as shown in the message, what the message must also say)
    let mut table: Vec<(String, String, String)> = vec![
        ("WSGIPythonHome venv".into(), "'venv'".into(), "must be an absolute path".into()),
        ("WSGIPythonHome ./srv/venv".into(), "'./srv/venv'".into(), "must be an absolute path".into()),
        ("WSGIPythonPath relative/dir".into(), "'relative/dir'".into(), "must be an absolute path".into()),
        ("WSGIPythonPath /ok:relative".into(), "'relative'".into(), "must be an absolute path".into()),
        ("WSGIPythonPath :".into(), "WSGIPythonPath".into(), "expected one or more directories separated by ':'".into()),
        ("WSGIPythonWarnings bogus::UserWarning".into(), "'bogus::UserWarning'".into(), actions.into()),
        ("WSGIPythonWarnings x".into(), "'x'".into(), actions.into()),
        ("WSGIPythonWarnings :::".into(), "':::'".into(), actions.into()),
        ("WSGIPythonWarnings error:::mod:abc".into(), "'error:::mod:abc'".into(), "line number 'abc' is not a non-negative integer".into()),
        ("WSGIPythonWarnings error:::mod:-1".into(), "'error:::mod:-1'".into(), "line number '-1' is not a non-negative integer".into()),
        ("WSGIPythonWarnings error:a:b:c:1:extra".into(), "'error:a:b:c:1:extra'".into(), "expected at most 5 fields".into()),
    ];
    for v in ["-1", "4294967296", "99999999999999999999", "abc", "Random", "RANDOM", "+5", "0x10", "1.0", "1e3", " 7", "12a"] {
        let shown = format!("'{v}'");
        let conf_value = if v.contains(' ') { format!("\"{v}\"") } else { v.to_string() };
        table.push((format!("WSGIPythonHashSeed {conf_value}"), shown, seed_allowed.into()));
    }
    for d in FLAG_DIRECTIVES {
        for v in ["yes", "no", "1", "0", "true", "Onn", "enabled"] {
            table.push((format!("{d} {v}"), format!("'{v}'"), "expected On or Off".into()));
        }
    }
    let mut failures = Vec::new();
    for (line, shown, allowed) in &table {
        let directive = line.split_whitespace().next().unwrap();
        let result = std::panic::catch_unwind(|| {
            assert_refused(line, line, &[&format!("{directive}:"), shown, allowed]);
        });
        if result.is_err() {
            failures.push(line.clone());
        }
    }
    assert!(failures.is_empty(), "these lines were not refused as expected: {failures:#?}");
}

#[test]
fn good_values_are_accepted() {
    let good = [
        "WSGIPythonHome /usr",
        "WSGIPythonHome /nonexistent/is/checked/when/children/start",
        "WSGIPythonHome /usr/",
        "WSGIPythonPath /tmp",
        "WSGIPythonPath /a:/b:/c",
        "WSGIPythonPath /a::/b:",
        "WSGIPythonHashSeed random",
        "WSGIPythonHashSeed 0",
        "WSGIPythonHashSeed 1",
        "WSGIPythonHashSeed 4294967295",
        "WSGIPythonWarnings ignore",
        "WSGIPythonWarnings error::UserWarning",
        "WSGIPythonWarnings default::DeprecationWarning:mymod:12",
        "WSGIPythonWarnings i::DeprecationWarning",
        "WSGIPythonWarnings always\nWSGIPythonWarnings once\nWSGIPythonWarnings module",
        "WSGIDontWriteBytecode On",
        "WSGIDontWriteBytecode off",
        "WSGIRestrictStdout ON",
        "WSGIRestrictStdin Off",
        "WSGIRestrictSignal Off",
        "WSGIDestroyInterpreter Off",
        "WSGIProcessGroup %{GLOBAL}",
        "<Directory /tmp>\n    WSGIProcessGroup %{GLOBAL}\n</Directory>",
        "WSGIPythonHashSeed 5\nWSGIPythonHashSeed random",
    ];
    for g in good {
        assert_accepted(g);
    }
}

#[test]
fn arity_errors() {
    for (d, _) in INTERPRETER_SETTINGS {
        assert_refused(d, d, &[&format!("{d} takes one argument")]);
        let two = format!("{d} On Off");
        assert_refused(&two, &two, &[&format!("{d} takes one argument")]);
    }
}

// ---------------------------------------------------------------------------------------
// contexts

#[test]
fn interpreter_directives_are_refused_in_virtual_hosts() {
    for (d, v) in INTERPRETER_SETTINGS {
        let line = format!("{d} {v}");
        let extra = format!(
            "<VirtualHost 127.0.0.1:@@PORT@@>\n    ServerName vhost.test\n    {line}\n</VirtualHost>\n"
        );
        assert_refused(&extra, &line, &[&format!("{d} cannot occur within <VirtualHost> section")]);
    }
}

#[test]
fn interpreter_directives_are_refused_in_directory_location_files() {
    for (open, close) in [
        ("<Directory @@DIR@@/htdocs>", "</Directory>"),
        ("<Location /x>", "</Location>"),
        ("<Files x.txt>", "</Files>"),
    ] {
        for (d, v) in INTERPRETER_SETTINGS {
            let line = format!("{d} {v}");
            let extra = format!("{open}\n    {line}\n{close}\n");
            assert_refused(&extra, &line, &[d, "not allowed"]);
        }
    }
}

#[test]
fn accepted_in_the_main_server_all_together() {
    let mut extra = String::new();
    for (d, v) in INTERPRETER_SETTINGS {
        extra.push_str(&format!("{d} {v}\n"));
    }
    assert_accepted(&extra);
}

/// In .htaccess (AllowOverride All) each one is refused when the request reads it.
#[test]
fn htaccess_is_refused_per_request() {
    let dir = TestDir::new("interp-htaccess");
    dir.write("htdocs/static.txt", STATIC_BODY);
    let mut extra = String::new();
    for (i, (d, v)) in INTERPRETER_SETTINGS.iter().enumerate() {
        dir.write(&format!("htdocs/ht{i}/f.txt"), "behind htaccess\n");
        dir.write(&format!("htdocs/ht{i}/.htaccess"), format!("{d} {v}\n"));
        extra.push_str(&format!("<Directory @@DIR@@/htdocs/ht{i}>\n    AllowOverride All\n</Directory>\n"));
    }
    let apache = Apache::start(dir, &Conf::new(Mpm::Event).extra(&extra), &[]);
    for (i, (d, _)) in INTERPRETER_SETTINGS.iter().enumerate() {
        let r = apache.get(&format!("/ht{i}/f.txt"));
        assert_eq!(r.status, 500, "{d} in .htaccess: {}", r.text());
        let want = format!("{d} not allowed here");
        let (found, log) = apache.wait_log(Duration::from_secs(5), |l| l.contains(&want));
        assert!(found, "no {want:?} in the error log:\n{log}");
    }
    let ok = apache.get("/static.txt");
    assert_eq!((ok.status, ok.text().as_str()), (200, STATIC_BODY));
}

// ---------------------------------------------------------------------------------------
// unsupported directives

#[test]
fn unsupported_mod_wsgi_directives_are_refused_by_name() {
    for (d, area) in UNSUPPORTED {
        let line = format!("{d} some-argument key=value");
        let (code, out, text, path) = config_test(&line);
        assert_eq!(code, 1, "{line}: {out}");
        let n = line_of(&text, &line);
        assert!(out.contains(&format!("AH00526: Syntax error on line {n} of {path}:")), "{line}: {out}");
        let msg = format!("{d}: mod_wsgi_rs does not support {area} yet");
        assert!(out.contains(&msg), "expected {msg:?} for {line}:\n{out}");
        assert!(!out.contains("Invalid command"), "{line}: {out}");
    }
}

#[test]
fn unsupported_directives_are_refused_in_sections_and_without_arguments() {
    for (extra, line, d) in [
        ("<Directory /tmp>\n    WSGIDispatchScript /tmp/a.py\n</Directory>", "WSGIDispatchScript /tmp/a.py", "WSGIDispatchScript"),
        ("<Location /x>\n    WSGIErrorOverride On\n</Location>", "WSGIErrorOverride On", "WSGIErrorOverride"),
        ("<VirtualHost 127.0.0.1:@@PORT@@>\n    WSGIRestrictProcess site\n</VirtualHost>", "WSGIRestrictProcess site", "WSGIRestrictProcess"),
        ("WSGISocketRotation", "WSGISocketRotation", "WSGISocketRotation"),
        ("WSGIAcceptMutex default", "WSGIAcceptMutex default", "WSGIAcceptMutex"),
        ("WSGIPythonEggs /tmp/eggs", "WSGIPythonEggs /tmp/eggs", "WSGIPythonEggs"),
    ] {
        assert_refused(extra, line, &[&format!("{d}: mod_wsgi_rs does not support"), "yet"]);
    }
}

/// A literal process group needs its WSGIDaemonProcess (checked once the whole
/// configuration is read); `%{ENV:...}` is resolved per request.
#[test]
fn process_group_names_need_their_daemon_group() {
    for extra in ["WSGIProcessGroup mysite", "<Directory /tmp>\n    WSGIProcessGroup mysite\n</Directory>"] {
        let (code, out, _, _) = config_test(extra);
        assert_eq!(code, 1, "apache2 -t should fail for:\n{extra}\noutput:\n{out}");
        assert!(out.contains("WSGIProcessGroup: no WSGIDaemonProcess defines a group named 'mysite'"), "{out}");
        assert_accepted(&format!("WSGIDaemonProcess mysite\n{extra}"));
    }
    assert_accepted("WSGIProcessGroup %{ENV:GROUP}");
}

// ---------------------------------------------------------------------------------------
// the effect of each directive, seen from an app

struct Probe {
    apache: Apache,
    probe_path: String,
}

impl Probe {
    fn info(&self) -> Json {
        let r = self.apache.get("/probe/info");
        assert_eq!(r.status, 200, "/probe/info: {}", r.text());
        r.json()
    }
    fn json(&self, path: &str) -> Json {
        let r = self.apache.get(&format!("/probe{path}"));
        assert_eq!(r.status, 200, "/probe{path}: {}", r.text());
        r.json()
    }
}

/// Starts an Apache serving tests/apps/interp_probe.wsgi at /probe with `extra`
/// (where `@@PROBE_DIR@@` is the test directory) and waits for every child's startup line.
fn start_probe(tag: &str, mpm: Mpm, dir: TestDir, extra: &str) -> Probe {
    let probe = dir.install_app("interp_probe.wsgi", &[]);
    let probe_path = probe.to_string_lossy().into_owned();
    let conf = Conf::new(mpm).extra(&format!("WSGIScriptAlias /probe {probe_path}\n{extra}"));
    let apache = Apache::start(dir, &conf, &[]);
    let is_init = |l: &str, pid: u32| parse_init_line(l).map(|i| i.pid == pid).unwrap_or(false);
    let (pids, log) = apache.wait_children_logged(Duration::from_secs(15), is_init);
    assert!(
        !pids.is_empty() && pids.iter().all(|p| log.lines().any(|l| is_init(l, *p))),
        "[{tag}] not every child logged its startup line:\n{log}"
    );
    Probe { apache, probe_path }
}

/// The `; `-separated settings of a startup line after the optimisation level, as
/// (name, value) pairs: `home default`, `python path none`, ...
fn startup_settings(line: &str) -> Vec<(String, String)> {
    let names = [
        "home",
        "python path",
        "hash seed",
        "warnings",
        "dont write bytecode",
        "restrict stdout",
        "restrict stdin",
        "restrict signal",
        "destroy interpreter",
        "bytecode cache",
        "compiled from source while starting:",
    ];
    let i = line.find("; optimisation level ").expect("optimisation level in startup line");
    let rest = &line[i + 2..];
    let parts: Vec<&str> = rest.split("; ").collect();
    assert_eq!(parts.len(), 1 + names.len(), "startup line has {} parts: {line}", parts.len());
    names
        .iter()
        .zip(&parts[1..])
        .map(|(n, p)| {
            let v = p
                .strip_prefix(n)
                .and_then(|v| v.strip_prefix(' '))
                .unwrap_or_else(|| panic!("expected {n:?} in {p:?} of {line}"));
            (n.to_string(), v.trim_end().to_string())
        })
        .collect()
}

fn assert_startup_settings(log: &str, expected: &[(&str, &str)]) {
    let inits = init_lines(log);
    assert!(!inits.is_empty(), "no startup line:\n{log}");
    for init in &inits {
        assert_eq!(init.level_tag, "info", "{}", init.line);
        let got = startup_settings(&init.line);
        for (k, v) in expected {
            let actual = got.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            assert_eq!(actual, Some(*v), "startup setting {k:?} in {}", init.line);
        }
    }
}

fn python_hash_with_seed(seed: &str) -> i64 {
    let out = Command::new("/usr/bin/python3.11")
        .env_clear()
        .env("PYTHONHASHSEED", seed)
        .args(["-c", "print(hash('abc'))"])
        .output()
        .expect("run python3.11");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn defaults_seen_from_the_app() {
    let dir = TestDir::new("interp-defaults");
    let p = start_probe("defaults", Mpm::Event, dir, "");
    let log = p.apache.error_log();
    assert_startup_settings(
        &log,
        &[
            ("home", "default"),
            ("python path", "none"),
            ("hash seed", "random"),
            ("warnings", "none"),
            ("dont write bytecode", "Off"),
            ("restrict stdout", "Off"),
            ("restrict stdin", "Off"),
            ("restrict signal", "On"),
            ("destroy interpreter", "On"),
        ],
    );
    for i in init_lines(&log) {
        assert!(i.line.contains("; optimisation level 0 (default); home default;"), "{}", i.line);
    }
    let info = p.info();
    assert_eq!(info.get("prefix").as_str(), "/usr");
    assert_eq!(info.get("hash_randomization").as_i64(), 1, "{info}");
    assert!(info.get("warnoptions").as_arr().is_empty(), "{info}");
    assert!(!info.get("dont_write_bytecode").as_bool(), "{info}");
    let w = p.json("/warn");
    assert!(!w.get("raised").as_bool(), "a UserWarning raised with no filter: {w}");

    // print() goes to the error log, with the client's address.
    let r = p.json("/print?default-stdout");
    assert!(r.get("ok").as_bool(), "{r}");
    let (found, log) = p.apache.wait_log(Duration::from_secs(5), |l| l.contains("PRINTED-BY-APP default-stdout"));
    assert!(found, "print() output not in the error log:\n{log}");
    let line = lines_with(&log, "PRINTED-BY-APP default-stdout")[0];
    assert!(line.contains("[wsgi_rs:error]"), "{line}");
    assert!(line.contains("[client 127.0.0.1:"), "{line}");

    // stdin is readable (empty) by default.
    let s = p.json("/stdin");
    assert!(s.get("ok").as_bool(), "{s}");
    assert_eq!(s.get("data").as_str(), "");

    // signal.signal() is ignored, returns the current handler, and a warning is logged.
    let sig = p.json("/signal");
    assert!(!sig.has("error"), "{sig}");
    assert!(sig.get("returned_is_before").as_bool(), "{sig}");
    assert!(!sig.get("after_is_handler").as_bool(), "the handler was installed: {sig}");
    let want = "signal.signal(12, ...) ignored: Apache owns signal handlers (WSGIRestrictSignal On)";
    let (found, log) = p.apache.wait_log(Duration::from_secs(5), |l| l.contains(want));
    assert!(found, "expected {want:?} in:\n{log}");
    let line = lines_with(&log, want)[0];
    assert!(line.contains("[wsgi_rs:warn]"), "{line}");
    assert_no_crash(&log);
    let _ = &p.probe_path;
}

/// WSGIPythonPath, warnings, hash seed 0, no bytecode and restricted stdout/stdin in one
/// server.
#[test]
fn path_warnings_seed0_bytecode_and_restricted_streams() {
    let dir = TestDir::new("interp-many");
    let pa = dir.mkdir_www("pa");
    let pa = pa.to_string_lossy().into_owned();
    let pb = dir.mkdir("pb").to_string_lossy().into_owned();
    dir.mkdir("pa/extra");
    dir.write("pa/extra.pth", "extra\n");
    dir.write("pa/extra/pth_marker.py", "VALUE = 'from pth dir'\n");
    dir.write("pa/pa_marker.py", "VALUE = 'from pa'\n");
    dir.write("pb/pb_marker.py", "VALUE = 'from pb'\n");
    // A module named like a standard one: the directories come first, so it wins.
    dir.write("pb/colorsys.py", "VALUE = 'shadowed stdlib'\n");
    let extra = format!(
        "WSGIPythonPath {pa}:{pb}\n\
         WSGIPythonWarnings error::UserWarning\n\
         WSGIPythonWarnings ignore::DeprecationWarning\n\
         WSGIPythonHashSeed 0\n\
         WSGIDontWriteBytecode On\n\
         WSGIRestrictStdout On\n\
         WSGIRestrictStdin On\n"
    );
    let p = start_probe("many", Mpm::Event, dir, &extra);
    let log = p.apache.error_log();
    assert_startup_settings(
        &log,
        &[
            ("home", "default"),
            ("python path", &format!("{pa}:{pb}")),
            ("hash seed", "0"),
            ("warnings", "error::UserWarning, ignore::DeprecationWarning"),
            ("dont write bytecode", "On"),
            ("restrict stdout", "On"),
            ("restrict stdin", "On"),
            ("restrict signal", "On"),
            ("destroy interpreter", "On"),
        ],
    );
    let info = p.info();
    let path = info.get("path").str_list();
    let expected_front = vec![pa.clone(), format!("{pa}/extra"), pb.clone()];
    assert_eq!(path[..3].to_vec(), expected_front, "sys.path: {path:?}");
    for (name, value) in [("pa_marker", "from pa"), ("pb_marker", "from pb"), ("pth_marker", "from pth dir"), ("colorsys", "shadowed stdlib")] {
        let r = p.json(&format!("/import?{name}"));
        assert!(r.get("ok").as_bool(), "import {name}: {r}");
        assert_eq!(r.get("value").as_str(), value, "{r}");
    }
    // No bytecode cache was written, although www-data may write to pa.
    assert!(info.get("dont_write_bytecode").as_bool(), "{info}");
    assert!(!p.apache.dir.path().join("pa/__pycache__").exists(), "__pycache__ written despite WSGIDontWriteBytecode On");

    assert_eq!(info.get("hash_randomization").as_i64(), 0, "{info}");
    assert_eq!(info.get("hash_abc").as_str().parse::<i64>().unwrap(), python_hash_with_seed("0"), "{info}");
    assert_eq!(
        info.get("warnoptions").str_list(),
        vec!["error::UserWarning".to_string(), "ignore::DeprecationWarning".to_string()]
    );
    let w = p.json("/warn");
    assert!(w.get("raised").as_bool(), "warnings.warn(UserWarning) did not raise under error::UserWarning: {w}");
    assert_eq!(w.get("type").as_str(), "UserWarning");

    let out = p.json("/print?restricted");
    assert!(!out.get("ok").as_bool(), "print() worked under WSGIRestrictStdout On: {out}");
    assert_eq!(out.get("error").as_str(), "OSError", "{out}");
    assert_eq!(out.get("message").as_str(), "sys.stdout access restricted by WSGIRestrictStdout On");
    let inp = p.json("/stdin");
    assert!(!inp.get("ok").as_bool(), "{inp}");
    assert_eq!(inp.get("error").as_str(), "OSError", "{inp}");
    assert_eq!(inp.get("message").as_str(), "sys.stdin access restricted by WSGIRestrictStdin On");
    let log = p.apache.error_log();
    assert!(!log.contains("PRINTED-BY-APP restricted"), "restricted output reached the log");
    assert_no_crash(&log);
}

/// The control for WSGIDontWriteBytecode: with Off (explicit), importing a module from
/// a www-data-writable directory writes its cache.
#[test]
fn bytecode_is_written_with_dont_write_bytecode_off() {
    let dir = TestDir::new("interp-bytecode");
    let lib = dir.mkdir_www("lib").to_string_lossy().into_owned();
    dir.write("lib/cached_mod.py", "VALUE = 'cached'\n");
    let p = start_probe("bytecode", Mpm::Event, dir, &format!("WSGIPythonPath {lib}\nWSGIDontWriteBytecode Off\n"));
    assert_startup_settings(&p.apache.error_log(), &[("dont write bytecode", "Off"), ("python path", &lib)]);
    let info = p.info();
    assert!(!info.get("dont_write_bytecode").as_bool(), "{info}");
    let r = p.json("/import?cached_mod");
    assert!(r.get("ok").as_bool(), "{r}");
    let pyc = p.apache.dir.path().join("lib/__pycache__/cached_mod.cpython-311.pyc");
    assert!(pyc.is_file(), "{} not written", pyc.display());
}

fn read_pairs(path: &std::path::Path) -> Vec<(u32, i64)> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect()
}

fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal_parent(apache: &Apache, sig: &str) {
    let st = Command::new("/bin/kill").args([sig, &apache.pid.to_string()]).status().unwrap();
    assert!(st.success(), "kill {sig} {}", apache.pid);
}

/// A fixed seed: every child (and the children after a graceful restart) hashes 'abc'
/// the same, as python3.11 does with PYTHONHASHSEED set to the same number. Also the
/// default WSGIDestroyInterpreter On: atexit handlers run when Apache stops.
#[test]
fn fixed_hash_seed_across_children_and_restarts_and_atexit_on_stop() {
    let _g = heavy();
    let dir = TestDir::new("interp-seed");
    let state = dir.mkdir_www("state").to_string_lossy().into_owned();
    let startup = dir.install_app("interp_startup.py", &[("STATE_DIR", &state)]);
    let extra = format!("StartServers 3\nWSGIPythonHashSeed 12345\nWSGIImportScript {}\n", startup.display());
    let mut p = start_probe("seed", Mpm::Prefork, dir, &extra);
    let hashes = p.apache.dir.path().join("state/hashes.txt");
    let first = wait_for(Duration::from_secs(10), || {
        let v = read_pairs(&hashes);
        (v.len() >= 3).then_some(v)
    })
    .unwrap_or_else(|| panic!("three children did not record their hash: {:?}", read_pairs(&hashes)));
    let expected = python_hash_with_seed("12345");
    let info = p.info();
    assert_eq!(info.get("hash_abc").as_str().parse::<i64>().unwrap(), expected, "{info}");
    assert_eq!(info.get("hash_randomization").as_i64(), 1, "a non-zero seed keeps the flag: {info}");
    assert_startup_settings(&p.apache.error_log(), &[("hash seed", "12345"), ("destroy interpreter", "On")]);

    // Graceful restart: new children, same seed.
    let before: Vec<u32> = first.iter().map(|(p, _)| *p).collect();
    signal_parent(&p.apache, "-USR1");
    let all = wait_for(Duration::from_secs(20), || {
        let v = read_pairs(&hashes);
        let new = v.iter().filter(|(pid, _)| !before.contains(pid)).count();
        (new >= 2).then_some(v)
    })
    .unwrap_or_else(|| panic!("no new children after a graceful restart: {:?}\n{}", read_pairs(&hashes), p.apache.error_log()));
    for (pid, h) in &all {
        assert_eq!(*h, expected, "child {pid} hashed 'abc' differently: {all:?}");
    }
    let info = p.info();
    assert_eq!(info.get("hash_abc").as_str().parse::<i64>().unwrap(), expected);

    // The children of the first generation left at the graceful restart, finalising
    // Python on the way: their atexit handlers ran.
    let atexit = p.apache.dir.path().join("state/atexit.txt");
    let read_atexit = || -> Vec<u32> {
        fs::read_to_string(&atexit).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
    };
    let gone = wait_for(Duration::from_secs(10), || {
        let live = p.apache.child_pids();
        let exited: Vec<u32> = before.iter().copied().filter(|b| !live.contains(b)).collect();
        (exited.len() == before.len()).then_some(exited)
    })
    .unwrap_or_else(|| panic!("first-generation children {before:?} still alive: {:?}", p.apache.child_pids()));
    let ran = read_atexit();
    for pid in &gone {
        assert!(ran.contains(pid), "child {pid} left at the graceful restart without its atexit handler: {ran:?}");
    }

    // Stop: each child that ran the startup script runs its atexit handler.
    let live_before_stop = p.apache.child_pids();
    assert!(!live_before_stop.is_empty());
    p.apache.stop();
    let pids = read_atexit();
    let recorded: Vec<u32> = read_pairs(&hashes).iter().map(|(p, _)| *p).collect();
    for live in &live_before_stop {
        if recorded.contains(live) {
            assert!(pids.contains(live), "child {live} did not run its atexit handler at stop (atexit.txt: {pids:?})");
        }
    }
    assert!(!pids.is_empty(), "no atexit handler ran at stop");
    assert_no_crash(&p.apache.error_log());
}

/// `random`: each child gets its own seed. WSGIDestroyInterpreter Off: atexit handlers
/// do not run at stop. WSGIRestrictSignal Off (prefork, where requests run on the main
/// thread): signal.signal() installs the handler and nothing is logged.
#[test]
fn random_seed_no_destroy_and_signal_off() {
    let _g = heavy();
    let dir = TestDir::new("interp-random");
    let state = dir.mkdir_www("state").to_string_lossy().into_owned();
    let startup = dir.install_app("interp_startup.py", &[("STATE_DIR", &state)]);
    let extra = format!(
        "StartServers 3\nWSGIPythonHashSeed random\nWSGIDestroyInterpreter Off\nWSGIRestrictSignal Off\n\
         WSGIImportScript {}\n",
        startup.display()
    );
    let mut p = start_probe("random", Mpm::Prefork, dir, &extra);
    assert_startup_settings(
        &p.apache.error_log(),
        &[("hash seed", "random"), ("destroy interpreter", "Off"), ("restrict signal", "Off")],
    );
    let hashes = p.apache.dir.path().join("state/hashes.txt");
    let v = wait_for(Duration::from_secs(10), || {
        let v = read_pairs(&hashes);
        (v.len() >= 3).then_some(v)
    })
    .unwrap_or_else(|| panic!("three children did not record their hash: {:?}", read_pairs(&hashes)));
    let distinct: std::collections::BTreeSet<i64> = v.iter().map(|(_, h)| *h).collect();
    assert_eq!(distinct.len(), v.len(), "children share a hash seed under `random`: {v:?}");
    let info = p.info();
    assert_eq!(info.get("hash_randomization").as_i64(), 1);

    let sig = p.json("/signal");
    assert!(!sig.has("error"), "{sig}");
    assert!(sig.get("after_is_handler").as_bool(), "signal.signal() was not performed with WSGIRestrictSignal Off: {sig}");
    assert!(!p.apache.error_log().contains("ignored: Apache owns signal handlers"));

    p.apache.stop();
    let atexit = p.apache.dir.path().join("state/atexit.txt");
    let text = fs::read_to_string(&atexit).unwrap_or_default();
    assert!(text.trim().is_empty(), "atexit handlers ran with WSGIDestroyInterpreter Off: {text:?}");
    assert_no_crash(&p.apache.error_log());
}

/// Under a threaded MPM a request does not run on Python's main thread, so with
/// WSGIRestrictSignal Off the call is passed to Python, which refuses it there.
#[test]
fn signal_off_on_a_threaded_mpm_reaches_python() {
    let dir = TestDir::new("interp-signal-event");
    let p = start_probe("signal-event", Mpm::Event, dir, "WSGIRestrictSignal Off\n");
    let sig = p.json("/signal");
    assert_eq!(sig.get("error").as_str(), "ValueError", "{sig}");
    assert!(sig.get("message").as_str().contains("main thread"), "{sig}");
    assert!(!p.apache.error_log().contains("ignored: Apache owns signal handlers"));
}

fn make_venv(dir: &TestDir, rel: &str) -> String {
    let venv = dir.path().join(rel);
    let out = Command::new("/usr/bin/python3.11")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .output()
        .expect("python3.11 -m venv");
    assert!(out.status.success(), "venv: {}", String::from_utf8_lossy(&out.stderr));
    venv.to_string_lossy().into_owned()
}

#[test]
fn python_home_virtual_environment() {
    let dir = TestDir::new("interp-home-venv");
    let venv = make_venv(&dir, "venv");
    fs::write(format!("{venv}/lib/python3.11/site-packages/venv_marker.py"), "VALUE = 'in the venv'\n").unwrap();
    let p = start_probe("home-venv", Mpm::Event, dir, &format!("WSGIPythonHome {venv}\n"));
    assert_startup_settings(&p.apache.error_log(), &[("home", &format!("{venv} (virtual environment)"))]);
    let info = p.info();
    assert_eq!(info.get("prefix").as_str(), venv, "{info}");
    assert_eq!(info.get("exec_prefix").as_str(), venv, "{info}");
    assert_eq!(info.get("base_prefix").as_str(), "/usr", "{info}");
    let site = format!("{venv}/lib/python3.11/site-packages");
    assert!(info.get("path").str_list().contains(&site), "{info}");
    let r = p.json("/import?venv_marker");
    assert!(r.get("ok").as_bool(), "{r}");
    assert_eq!(r.get("value").as_str(), "in the venv");
    assert_eq!(r.get("file").as_str(), format!("{site}/venv_marker.py"));
    // The system's dist-packages are not visible in a venv without system site packages.
    assert!(
        !info.get("path").str_list().iter().any(|p| p.contains("dist-packages")),
        "{info}"
    );
}

/// A trailing slash is accepted and the home is shown without it.
#[test]
fn python_home_prefix() {
    let dir = TestDir::new("interp-home-prefix");
    let p = start_probe("home-prefix", Mpm::Event, dir, "WSGIPythonHome /usr/\n");
    assert_startup_settings(&p.apache.error_log(), &[("home", "/usr (Python prefix)")]);
    let info = p.info();
    assert_eq!(info.get("prefix").as_str(), "/usr");
    assert_eq!(info.get("base_prefix").as_str(), "/usr");
    assert!(info.get("path").str_list().contains(&"/usr/lib/python3.11".to_string()), "{info}");
}

/// A WSGIPythonHome each child finds unusable: Apache starts, every child logs the
/// problem at crit, WSGI requests get 500 with a log line, static files are served, and
/// the children stay (no crash loop).
fn bad_home(tag: &str, mpm: Mpm, prepare: impl FnOnce(&TestDir) -> String, problem: impl Fn(&str) -> String) {
    let dir = TestDir::new(&format!("interp-badhome-{tag}"));
    dir.write("htdocs/static.txt", STATIC_BODY);
    let home = prepare(&dir);
    let probe = dir.install_app("interp_probe.wsgi", &[]).to_string_lossy().into_owned();
    let conf = Conf::new(mpm).extra(&format!("WSGIPythonHome {home}\nWSGIScriptAlias /probe {probe}\n"));
    let apache = Apache::start(dir, &conf, &[]);
    let expected_problem = problem(&home);
    let failed = |l: &str, pid: u32| {
        l.contains(&format!("Python failed to initialise in process {pid}: "))
    };
    let (pids, log) = apache.wait_children_logged(Duration::from_secs(10), failed);
    assert!(!pids.is_empty(), "[{tag}] no children");
    for &pid in &pids {
        let mine: Vec<&str> = log.lines().filter(|l| failed(l, pid)).collect();
        assert_eq!(mine.len(), 1, "[{tag}] child {pid}: expected one failure line:\n{log}");
        let want = format!("Python failed to initialise in process {pid}: WSGIPythonHome {home}: {expected_problem}");
        assert!(mine[0].contains(&want), "[{tag}] expected\n  {want}\nin\n  {}", mine[0]);
        assert!(
            mine[0].trim_end().ends_with("; WSGI requests in this process will get 500"),
            "[{tag}] {}",
            mine[0]
        );
        assert!(mine[0].contains("[wsgi_rs:crit]"), "[{tag}] {}", mine[0]);
    }
    assert!(init_lines(&log).is_empty(), "[{tag}] a startup line despite the failure:\n{log}");
    for i in 0..6 {
        let r = apache.get("/probe/info");
        assert_eq!(r.status, 500, "[{tag}] request {i}: {}", r.text());
        let s = apache.get("/static.txt");
        assert_eq!((s.status, s.text().as_str()), (200, STATIC_BODY), "[{tag}] static file");
    }
    let want = format!("cannot run WSGI script {probe}: Python is not available in this process (");
    let (found, log) = apache.wait_log(Duration::from_secs(5), |l| lines_with(l, &want).len() >= 6);
    assert!(found, "[{tag}] expected six {want:?} lines in:\n{log}");
    assert!(
        lines_with(&log, &want).iter().all(|l| l.contains(&format!("WSGIPythonHome {home}: {expected_problem}"))),
        "[{tag}] the per-request line should carry the reason:\n{}",
        lines_with(&log, &want).join("\n")
    );
    // Stable: the same children a few seconds later, none died.
    std::thread::sleep(Duration::from_secs(3));
    let after = apache.child_pids();
    for p in &pids {
        assert!(after.contains(p), "[{tag}] child {p} disappeared (before {pids:?}, after {after:?})");
    }
    let log = apache.error_log();
    let failures = log.lines().filter(|l| l.contains("Python failed to initialise in process")).count();
    assert!(failures <= after.len().max(pids.len()) + 1, "[{tag}] children keep being replaced:\n{log}");
    assert_no_crash(&log);
}

#[test]
fn bad_home_does_not_exist() {
    bad_home("missing", Mpm::Event, |d| d.p("no-such-venv"), |_| "does not exist".into());
}

#[test]
fn bad_home_is_a_file() {
    bad_home(
        "file",
        Mpm::Prefork,
        |d| d.write("not-a-dir", "x").to_string_lossy().into_owned(),
        |_| "is not a directory".into(),
    );
}

#[test]
fn bad_home_unreadable_by_the_child() {
    assert!(running_as_root(), "this test needs root so that the children run as www-data");
    bad_home(
        "unreadable",
        Mpm::Event,
        |d| {
            let venv = make_venv(d, "private-venv");
            fs::set_permissions(&venv, fs::Permissions::from_mode(0o700)).unwrap();
            venv
        },
        |_| format!("is not readable by the user the Apache child runs as (uid {WWW_UID})"),
    );
}

#[test]
fn bad_home_venv_of_another_python() {
    bad_home(
        "version",
        Mpm::Event,
        |d| {
            let venv = make_venv(d, "old-venv");
            let cfg = format!("{venv}/pyvenv.cfg");
            let text = fs::read_to_string(&cfg).unwrap();
            let text: String = text
                .lines()
                .map(|l| if l.starts_with("version") { "version = 3.9.18".to_string() } else { l.to_string() })
                .collect::<Vec<_>>()
                .join("\n");
            fs::write(&cfg, text + "\n").unwrap();
            venv
        },
        |_| {
            "the virtual environment was made by Python 3.9.18, but mod_wsgi_rs runs Python 3.11; ".into()
        },
    );
}

#[test]
fn bad_home_neither_venv_nor_prefix() {
    bad_home(
        "neither",
        Mpm::Prefork,
        |d| {
            d.mkdir("empty-home/lib/python3.9");
            d.p("empty-home")
        },
        |_| "neither a virtual environment (no pyvenv.cfg) nor a Python 3.11 prefix (".into(),
    );
}

/// mod_python owns the interpreter: the notice lists every interpreter directive given.
#[test]
fn mod_python_notice_lists_every_directive_given() {
    let _g = heavy();
    let dir = TestDir::new("interp-mod-python");
    let run_dir = dir.p("run");
    let directives = [
        "WSGIPythonOptimize 1",
        "WSGIPythonHome /usr",
        "WSGIPythonPath /tmp:/var/tmp",
        "WSGIPythonHashSeed 42",
        "WSGIPythonWarnings error::UserWarning",
        "WSGIPythonWarnings ignore::DeprecationWarning",
        "WSGIDontWriteBytecode On",
        "WSGIRestrictStdout On",
        "WSGIRestrictStdin On",
        "WSGIRestrictSignal Off",
        "WSGIDestroyInterpreter Off",
    ];
    let mut extra = format!("PythonOption mod_python.mutex_directory {run_dir}\n");
    for d in directives {
        extra.push_str(d);
        extra.push('\n');
    }
    let conf = Conf::new(Mpm::Event).module_before("python_module", MOD_PYTHON_SO).extra(&extra);
    let apache = Apache::start(dir, &conf, &[]);
    let owner = "Python is owned by mod_python in this process; not initialising it. Interpreter directives not applied: ";
    let (pids, log) = apache.wait_children_logged(Duration::from_secs(10), |l, pid| {
        l.contains(owner) && log_pid(l) == Some(pid)
    });
    assert!(!pids.is_empty());
    let line = lines_with(&log, owner)[0];
    assert!(line.contains("[wsgi_rs:notice]"), "{line}");
    let listed = &line[line.find(owner).unwrap() + owner.len()..];
    // At level 1 the default bytecode cache would apply too (tests/pycache.rs).
    let cache = format!("; nor the bytecode cache under {}: sys.pycache_prefix can only be set by whoever starts Python", apache.dir.p("run/wsgi_rs-pycache"));
    assert_eq!(listed.trim_end(), format!("{}{cache}", directives.join(", ")), "{line}");
    assert_no_crash(&log);
}

/// Only the action is checked when Apache reads the configuration; an unknown category
/// is Python's to judge when it starts: it reports the filter as ignored (in the error
/// log, which is the child's stderr) and the other filters still apply.
#[test]
fn unknown_warning_category_is_reported_by_python_and_ignored() {
    let dir = TestDir::new("interp-warn-category");
    let p = start_probe(
        "warn-category",
        Mpm::Event,
        dir,
        "WSGIPythonWarnings error::NoSuchWarning\nWSGIPythonWarnings error::UserWarning\n",
    );
    let want = "Invalid -W option ignored: unknown warning category: 'NoSuchWarning'";
    let (found, log) = p.apache.wait_log(Duration::from_secs(5), |l| l.contains(want));
    assert!(found, "expected {want:?} in:\n{log}");
    assert_startup_settings(&log, &[("warnings", "error::NoSuchWarning, error::UserWarning")]);
    let info = p.info();
    assert_eq!(
        info.get("warnoptions").str_list(),
        vec!["error::NoSuchWarning".to_string(), "error::UserWarning".to_string()]
    );
    let w = p.json("/warn");
    assert!(w.get("raised").as_bool(), "{w}");
    assert_no_crash(&p.apache.error_log());
}

/// WSGIDestroyInterpreter On (the default) under the threaded MPMs: Python is finalised
/// after the worker threads are gone, and atexit handlers run in every child.
fn atexit_runs_at_stop(mpm: Mpm) {
    let dir = TestDir::new(&format!("interp-atexit-{}", mpm.name()));
    let state = dir.mkdir_www("state").to_string_lossy().into_owned();
    let startup = dir.install_app("interp_startup.py", &[("STATE_DIR", &state)]);
    let mut p = start_probe("atexit", mpm, dir, &format!("WSGIImportScript {}\n", startup.display()));
    // Some requests first, so worker threads have attached to Python.
    for _ in 0..10 {
        let _ = p.info();
    }
    let hashes = p.apache.dir.path().join("state/hashes.txt");
    let started: Vec<u32> = read_pairs(&hashes).iter().map(|(pid, _)| *pid).collect();
    assert!(!started.is_empty());
    p.apache.stop();
    let ran: Vec<u32> = fs::read_to_string(p.apache.dir.path().join("state/atexit.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for pid in &started {
        assert!(ran.contains(pid), "[{}] child {pid} did not run its atexit handler at stop: {ran:?}", mpm.name());
    }
    assert_no_crash(&p.apache.error_log());
}

#[test]
fn atexit_runs_at_stop_event() {
    atexit_runs_at_stop(Mpm::Event);
}

#[test]
fn atexit_runs_at_stop_worker() {
    atexit_runs_at_stop(Mpm::Worker);
}

/// Stops Apache and returns how long it took and the error log.
fn timed_stop(apache: &mut Apache) -> (Duration, String) {
    let t = Instant::now();
    apache.stop();
    (t.elapsed(), apache.error_log())
}

/// A threaded MPM where an application imports `threading` (as `logging`, Flask and
/// Django do) on a worker thread during a request: the children must still exit
/// promptly when Apache stops, running their atexit handlers (WSGIDestroyInterpreter
/// On), rather than hanging until Apache kills them (AH00045/AH00046).
fn children_exit_after_threading_import(mpm: Mpm, module: &str) {
    let dir = TestDir::new(&format!("interp-exit-{}-{module}", mpm.name()));
    let state = dir.mkdir_www("state").to_string_lossy().into_owned();
    let startup = dir.install_app("interp_startup.py", &[("STATE_DIR", &state)]);
    let mut p = start_probe("exit", mpm, dir, &format!("WSGIImportScript {}\n", startup.display()));
    for _ in 0..4 {
        let r = p.json(&format!("/import?{module}"));
        assert!(r.get("ok").as_bool(), "{r}");
    }
    let started: Vec<u32> =
        read_pairs(&p.apache.dir.path().join("state/hashes.txt")).iter().map(|(pid, _)| *pid).collect();
    let (took, log) = timed_stop(&mut p.apache);
    let kills: Vec<&str> = log.lines().filter(|l| l.contains("AH00045") || l.contains("AH00046")).collect();
    assert!(
        kills.is_empty(),
        "[{} import {module}] children did not exit on SIGTERM (stop took {:.1} s):\n{}",
        mpm.name(),
        took.as_secs_f64(),
        kills.join("\n")
    );
    assert!(took < Duration::from_secs(5), "[{} import {module}] stop took {:.1} s", mpm.name(), took.as_secs_f64());
    let ran: Vec<u32> = fs::read_to_string(p.apache.dir.path().join("state/atexit.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for pid in &started {
        assert!(ran.contains(pid), "[{} import {module}] child {pid} did not run its atexit handler: {ran:?}", mpm.name());
    }
}

#[test]
fn children_exit_promptly_after_a_request_imported_threading_event() {
    children_exit_after_threading_import(Mpm::Event, "threading");
}

#[test]
fn children_exit_promptly_after_a_request_imported_logging_worker() {
    children_exit_after_threading_import(Mpm::Worker, "logging");
}

#[test]
fn children_exit_promptly_after_a_request_imported_logging_prefork() {
    children_exit_after_threading_import(Mpm::Prefork, "logging");
}
