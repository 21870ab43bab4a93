//! Widely deployed WSGI applications of four kinds, installed from PyPI into the cached
//! test venv (tests/frameworks/requirements.txt), each served through mod_wsgi_rs by the
//! real /usr/sbin/apache2 at WSGIPythonOptimize 0 and 2 and driven by its real client:
//!
//! * Mercurial's hgweb (version control): `hg clone`, `hg commit`, `hg push` over HTTP,
//!   a second clone that must hold the pushed changeset, and the web UI.
//! * Trac (issue tracker): the new-ticket form with its form-token cookie, a comment,
//!   a multipart attachment, login through Apache's Basic authentication (REMOTE_USER)
//!   and the admin pages.
//! * pypiserver (package index): `twine upload` of a wheel and an sdist built here,
//!   then `pip download` and `pip install` back from the index.
//! * Radicale (CalDAV server): the `caldav` client library creates a calendar, stores,
//!   searches, edits and deletes events; a second user is kept out.
//!
//! Each application gets its own Apache (event MPM) per level, mounted below a prefix, so
//! SCRIPT_NAME handling is part of every exchange; one more test serves all four from a
//! single prefork server at level 0, sharing each child's interpreter. The application
//! data (repositories, the Trac environment, the package directory, the calendar
//! storage) belongs to www-data, as it would on a server.
//!
//! What level 2 changes: Mercurial cannot be imported at all under `python -OO` (its
//! `mercurial.utils.compression` formats help text from docstrings at import time and
//! fails on None), so hgweb answers 500 at level 2, exactly like `python -OO hg` on the
//! command line; the test asserts that. Trac works at level 2 except that its plugin
//! admin page loses the component descriptions, which come from docstrings (macro help
//! survives, Trac keeps it in `_description` attributes). pypiserver and Radicale work
//! the same at both levels.
mod common;
use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn applications_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/applications")
}

fn venv() -> String {
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/frameworks/requirements.txt");
    cached_venv(&requirements).to_string_lossy().into_owned()
}

/// Copies `tests/applications/<src>` to `<dir>/<dest>` (mode 0644), replacing each
/// `@@KEY@@`; returns the absolute path of the copy.
fn install(dir: &TestDir, src: &str, dest: &str, subs: &[(&str, &str)]) -> String {
    let from = applications_dir().join(src);
    let mut text = fs::read_to_string(&from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    for (key, value) in subs {
        text = text.replace(&format!("@@{key}@@"), value);
    }
    assert!(!text.contains("@@"), "unreplaced placeholder in {src}:\n{text}");
    dir.write(dest, text).to_string_lossy().into_owned()
}

/// What a client program did.
struct Run {
    success: bool,
    status: String,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Everything it printed, for assertion messages.
    fn output(&self) -> String {
        format!("exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.status, self.stdout, self.stderr)
    }
}

/// Runs a client with a clean environment (PATH, LANG, HOME in the test directory, so no
/// configuration of the machine's users is read) plus `env`, in `cwd`.
fn run_client(home: &str, program: &str, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8")
        .env("HOME", home)
        .envs(env.iter().copied())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null());
    let out = command.output().unwrap_or_else(|e| panic!("run {program}: {e}"));
    Run {
        success: out.status.success(),
        status: out.status.to_string(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Like [`run_client`], failing the check unless the program succeeds.
fn run_client_ok(home: &str, program: &str, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Run {
    let run = run_client(home, program, args, cwd, env);
    assert!(run.success, "{program} {args:?} failed:\n{}", run.output());
    run
}

/// Writes an htpasswd file (Apache MD5 hashes) with the venv's passlib.
fn write_htpasswd(venv: &str, path: &str, users: &[(&str, &str)]) {
    let script = applications_dir().join("make_htpasswd.py");
    let mut args = vec![script.to_string_lossy().into_owned(), path.to_string()];
    args.extend(users.iter().map(|(user, password)| format!("{user}:{password}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&format!("{venv}/bin/python"), &args, Path::new("/"), &[]);
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
}

/// What an application adds to the server: its part of the configuration (alias,
/// directories, locations) and the modules that part needs, as `(name, file)` in
/// Debian's module directory.
struct Mount {
    conf: String,
    modules: Vec<(&'static str, &'static str)>,
}

/// Starts Apache with `mpm`, the venv as WSGIPythonHome at `level`, everything outside
/// the mounted applications denied. Waits until every child has started Python at that
/// level.
fn start_apache(dir: TestDir, mpm: Mpm, level: u8, venv: &str, mounts: &[&Mount]) -> Apache {
    let mut conf = Conf::new(mpm);
    let mut loaded: Vec<&str> = Vec::new();
    for (name, file) in mounts.iter().flat_map(|m| m.modules.iter()) {
        if !loaded.contains(name) {
            conf = conf.module_before(name, file);
            loaded.push(name);
        }
    }
    let sites: String = mounts.iter().map(|m| m.conf.as_str()).collect();
    let conf = conf.extra(&format!(
        "<Directory />\n    Require all denied\n</Directory>\n\
         WSGIPythonOptimize {level}\n\
         WSGIPythonHome {venv}\n\
         {sites}"
    ));
    let apache = Apache::start(dir, &conf, &[]);
    let is_init = |line: &str, pid: u32| parse_init_line(line).map(|i| i.pid == pid).unwrap_or(false);
    let (_, log) = apache.wait_children_logged(Duration::from_secs(15), is_init);
    let inits = init_lines(&log);
    assert!(!inits.is_empty(), "no Python startup line:\n{log}");
    for init in &inits {
        assert_eq!(init.optimize, level as u32, "{}", init.line);
        assert!(init.line.contains(&format!("home {venv} (virtual environment)")), "{}", init.line);
    }
    apache
}

/// Runs one application's checks in its own Apache (event MPM) at `level`.
fn serve_one<App>(
    name: &str,
    level: u8,
    prepare: impl FnOnce(&TestDir, &str) -> (App, Mount),
    run_checks: impl FnOnce(&Apache, &App, &mut Checks),
) {
    let _heavy = heavy();
    let started = Instant::now();
    let venv = venv();
    let dir = TestDir::new(&format!("{name}-O{level}"));
    let (app, mount) = prepare(&dir, &venv);
    let apache = start_apache(dir, Mpm::Event, level, &venv, &[&mount]);
    let mut checks = Checks::new(format!("{name}, WSGIPythonOptimize {level}"));
    run_checks(&apache, &app, &mut checks);
    final_checks(&mut checks, &apache);
    eprintln!("[applications] {name} at level {level}: {:.1} s", started.elapsed().as_secs_f64());
    checks.finish();
}

/// The checks every application test ends with.
fn final_checks(checks: &mut Checks, apache: &Apache) {
    let log = apache.error_log();
    checks.run("no crash, Python started", || {
        assert_no_crash(&log);
        assert!(!log.contains("Python failed to initialise"), "{log}");
    });
}

/// The `value` of the `<input>` named `name` in an HTML page.
fn input_value(html: &str, name: &str) -> String {
    let wanted = format!("name=\"{name}\"");
    html.split("<input")
        .skip(1)
        .map(|rest| &rest[..rest.find('>').unwrap_or(rest.len())])
        .find(|tag| tag.contains(&wanted))
        .and_then(|tag| {
            let start = tag.find("value=\"")? + "value=\"".len();
            Some(tag[start..].split('"').next()?.to_string())
        })
        .unwrap_or_else(|| panic!("no <input {wanted} value=...> in:\n{}", short(html)))
}

// ---------------------------------------------------------------------------------------
// Mercurial's hgweb

const HG_USER: &str = "Apache Tester <tester@example.com>";
/// Non-ASCII on purpose: the message travels UTF-8 through the bundle and the web UI.
const PUSHED_MESSAGE: &str = "Second commit: grüße from Zoë";

/// The venv's `hg`, run as a user would, with no configuration file but the repository's
/// own, plain output and UTF-8.
struct Hg {
    program: String,
    home: String,
}

impl Hg {
    fn run(&self, args: &[&str], cwd: &Path) -> Run {
        run_client(
            &self.home,
            &self.program,
            args,
            cwd,
            &[("HGRCPATH", ""), ("HGPLAIN", "1"), ("HGENCODING", "utf-8"), ("HGUSER", HG_USER)],
        )
    }

    fn ok(&self, args: &[&str], cwd: &Path) -> Run {
        let run = self.run(args, cwd);
        assert!(run.success, "hg {args:?} failed:\n{}", run.output());
        run
    }
}

struct HgApp {
    hg: Hg,
    venv: String,
    script: String,
    /// The repository hgweb serves, on disk.
    server_repo: String,
}

/// A repository with one commit, served by hgweb at /hg (the repository at /hg/project).
fn prepare_hgweb(dir: &TestDir, venv: &str) -> (HgApp, Mount) {
    let hg = Hg { program: format!("{venv}/bin/hg"), home: dir.mkdir("home").to_string_lossy().into_owned() };
    let repos = dir.mkdir("repos").to_string_lossy().into_owned();
    let server_repo = format!("{repos}/project");
    hg.ok(&["init", &server_repo], Path::new("/"));
    fs::write(format!("{server_repo}/README"), "first line\n").unwrap();
    hg.ok(&["commit", "-A", "-m", "Initial commit"], Path::new(&server_repo));
    // hgweb writes pushed changesets as www-data.
    chown_www_recursive(Path::new(&repos));
    let config = install(dir, "hgweb/hgweb.config", "hgweb/hgweb.config", &[("REPOS", &repos)]);
    let script = install(dir, "hgweb/hgweb.wsgi", "hgweb/hgweb.wsgi", &[("CONFIG", &config)]);
    let conf = format!(
        "WSGIScriptAlias /hg {script}\n<Directory {}>\n    Require all granted\n</Directory>\n",
        dir.p("hgweb")
    );
    let app = HgApp { hg, venv: venv.to_string(), script, server_repo };
    (app, Mount { conf, modules: Vec::new() })
}

fn hgweb_checks(a: &Apache, app: &HgApp, checks: &mut Checks) {
    let url = a.url("/hg/project");
    let clients = a.dir.mkdir("clients");
    checks.run("hgweb: the index lists the repository", || {
        let r = a.get("/hg/");
        assert_eq!(r.status, 200, "{}", short(&r.text()));
        let html = r.text();
        assert!(html.contains("<a href=\"/hg/project/\">project</a>"), "{html}");
        assert!(html.contains("Repository served through mod_wsgi_rs"), "{html}");
    });
    checks.run("hgweb: a raw file of the tip", || {
        let r = a.get("/hg/project/raw-file/tip/README");
        assert_eq!((r.status, r.text().as_str()), (200, "first line\n"));
    });

    let first = clients.join("first");
    checks.run("hg clone over HTTP", || {
        let run = app.hg.ok(&["clone", &url, &first.to_string_lossy()], &clients);
        assert!(run.stdout.contains("added 1 changesets with 1 changes to 1 files"), "{}", run.output());
        assert_eq!(fs::read_to_string(first.join("README")).unwrap(), "first line\n");
        let log = app.hg.ok(&["log", "-T", "{desc}\n"], &first);
        assert_eq!(log.stdout, "Initial commit\n");
    });

    // A file large enough that the pushed bundle is read from wsgi.input in many pieces.
    let blob = pseudo_random_bytes(1_500_000, 0x4d65_7263);
    let mut pushed_node = String::new();
    checks.run("hg commit and hg push over HTTP", || {
        fs::write(first.join("README"), "first line\nsecond line\n").unwrap();
        fs::create_dir_all(first.join("data")).unwrap();
        fs::write(first.join("data/blob.bin"), &blob).unwrap();
        app.hg.ok(&["commit", "-A", "-m", PUSHED_MESSAGE], &first);
        pushed_node = app.hg.ok(&["log", "-r", ".", "-T", "{node}"], &first).stdout;
        assert_eq!(pushed_node.len(), 40, "{pushed_node:?}");
        let run = app.hg.ok(&["push", &url], &first);
        assert!(run.stdout.contains("remote: added 1 changesets with 2 changes to 2 files"), "{}", run.output());
        // The server's repository on disk has it too.
        let tip = app.hg.ok(&["log", "-R", &app.server_repo, "-r", "tip", "-T", "{node}"], Path::new("/"));
        assert_eq!(tip.stdout, pushed_node);
    });

    let second = clients.join("second");
    checks.run("a new clone holds the pushed changeset", || {
        assert!(!pushed_node.is_empty(), "nothing was pushed");
        app.hg.ok(&["clone", &url, &second.to_string_lossy()], &clients);
        let tip = app.hg.ok(&["log", "-r", "tip", "-T", "{node}\n{desc}"], &second);
        assert_eq!(tip.stdout, format!("{pushed_node}\n{PUSHED_MESSAGE}"));
        assert_eq!(app.hg.ok(&["log", "-T", "x"], &second).stdout, "xx", "two changesets");
        assert_eq!(fs::read_to_string(second.join("README")).unwrap(), "first line\nsecond line\n");
        assert!(fs::read(second.join("data/blob.bin")).unwrap() == blob, "blob.bin differs after the round trip");
        app.hg.ok(&["verify"], &second);
    });
    checks.run("hgweb: the web UI shows the pushed changeset", || {
        assert!(!pushed_node.is_empty(), "nothing was pushed");
        let r = a.get(&format!("/hg/project/rev/{pushed_node}"));
        assert_eq!(r.status, 200, "{}", short(&r.text()));
        assert!(r.text().contains(PUSHED_MESSAGE), "{}", r.text());
        let r = a.get(&format!("/hg/project/raw-file/{pushed_node}/data/blob.bin"));
        assert_eq!(r.status, 200);
        assert!(r.body == blob, "raw blob.bin differs ({} bytes)", r.body.len());
        let r = a.get("/hg/project/log?style=json");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let log = r.json();
        assert_eq!(log.get("changeset_count").as_i64(), 2);
        let newest = &log.get("changesets").as_arr()[0];
        assert_eq!(newest.get("node").as_str(), pushed_node);
        assert_eq!(newest.get("desc").as_str(), PUSHED_MESSAGE);
        assert_eq!(newest.get("user").as_str(), HG_USER);
    });
}

/// Mercurial formats help text from docstrings while `mercurial.utils.compression` is
/// imported, and fails when they are None; `from mercurial.hgweb import hgweb` imports it.
const MERCURIAL_OO_ERROR: &str =
    "TypeError: %b requires a bytes-like object, or an object that implements __bytes__, not 'NoneType'";

fn hgweb_checks_level_2(a: &Apache, app: &HgApp, checks: &mut Checks) {
    checks.run("hgweb at level 2: the script cannot import Mercurial, every request is 500", || {
        for path in ["/hg/", "/hg/project/raw-file/tip/README"] {
            let r = a.get(path);
            assert_eq!(r.status, 500, "{path}: {}", short(&r.text()));
        }
        let failure = wait_line(a, Duration::from_secs(5), &["WSGI script", &app.script]);
        assert!(failure.is_ok(), "{}", failure.unwrap_err());
        for needle in ["in bundlecompressiontopics", MERCURIAL_OO_ERROR] {
            let line = wait_line(a, Duration::from_secs(5), &[needle]);
            assert!(line.is_ok(), "{}", line.unwrap_err());
        }
    });
    checks.run("hg clone from the level-2 server fails with HTTP 500", || {
        let clients = a.dir.mkdir("clients");
        let run = app.hg.run(&["clone", &a.url("/hg/project"), "clone"], &clients);
        assert!(!run.success, "{}", run.output());
        assert!(run.stderr.contains("HTTP Error 500"), "{}", run.output());
    });
    checks.run("python -OO fails the same way outside Apache", || {
        let run = run_client(
            &app.hg.home,
            &format!("{}/bin/python", app.venv),
            &["-OO", &app.hg.program, "version"],
            Path::new("/"),
            &[("HGRCPATH", "")],
        );
        assert!(!run.success, "{}", run.output());
        assert!(run.stderr.contains(MERCURIAL_OO_ERROR), "{}", run.output());
        assert!(run.stderr.contains("in bundlecompressiontopics"), "{}", run.output());
    });
}

fn hgweb_test(level: u8) {
    serve_one("hgweb", level, prepare_hgweb, |a, app, checks| {
        if level < 2 {
            hgweb_checks(a, app, checks);
        } else {
            hgweb_checks_level_2(a, app, checks);
        }
    });
}

#[test]
fn hgweb_optimize_0() {
    hgweb_test(0);
}

#[test]
fn hgweb_optimize_2() {
    hgweb_test(2);
}

// ---------------------------------------------------------------------------------------
// Trac

const TRAC_PROJECT: &str = "Apache Test Project";
const TRAC_ADMIN: &str = "admin";
const TRAC_ADMIN_PASSWORD: &str = "trac admin password";
const TICKET_SUMMARY: &str = "Printer on fire";
const TICKET_DESCRIPTION: &str = "Zoë's printer in room 4 started smoking – please help.";
const TICKET_COMMENT: &str = "Confirmed by the facilities team, grüße";

/// A new Trac environment (sqlite) where anonymous users may create and comment on
/// tickets and `admin` (authenticated by Apache at /trac/login) administers.
fn prepare_trac(dir: &TestDir, venv: &str) -> ((), Mount) {
    let env = dir.p("trac-env");
    let trac_admin = format!("{venv}/bin/trac-admin");
    run_ok(&trac_admin, &[&env, "initenv", TRAC_PROJECT, "sqlite:db/trac.db"], Path::new("/"), &[]);
    run_ok(
        &trac_admin,
        &[&env, "permission", "add", "anonymous", "TICKET_CREATE", "TICKET_APPEND"],
        Path::new("/"),
        &[],
    );
    run_ok(&trac_admin, &[&env, "permission", "add", TRAC_ADMIN, "TRAC_ADMIN"], Path::new("/"), &[]);
    // Trac writes its database, log and attachments as www-data.
    chown_www_recursive(Path::new(&env));
    let users = dir.p("trac-users");
    write_htpasswd(venv, &users, &[(TRAC_ADMIN, TRAC_ADMIN_PASSWORD)]);
    let script = install(dir, "trac/trac.wsgi", "trac/trac.wsgi", &[("ENV", &env)]);
    let conf = format!(
        "WSGIScriptAlias /trac {script}\n\
         <Directory {}>\n    Require all granted\n</Directory>\n\
         # Trac's login page takes the user Apache authenticated (REMOTE_USER).\n\
         <Location /trac/login>\n    AuthType Basic\n    AuthName \"Trac\"\n    AuthBasicProvider file\n    \
         AuthUserFile {users}\n    Require valid-user\n</Location>\n",
        dir.p("trac")
    );
    let modules = vec![
        ("auth_basic_module", "mod_auth_basic.so"),
        ("authn_file_module", "mod_authn_file.so"),
        ("authz_user_module", "mod_authz_user.so"),
    ];
    ((), Mount { conf, modules })
}

/// The rows of a tab-separated export (Trac starts it with a byte-order mark) as maps
/// from column name to value.
fn tab_rows(text: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let text = text.trim_start_matches('\u{feff}');
    let mut lines = text.lines();
    let columns: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| columns.iter().map(|c| c.to_string()).zip(l.split('\t').map(str::to_string)).collect())
        .collect()
}

fn trac_checks(a: &Apache, level: u8, checks: &mut Checks) {
    let form = |path: &str, cookie: &str, fields: &[(&str, &str)]| {
        let body = form_urlencode(fields);
        a.request(
            "POST",
            path,
            &[("Cookie", cookie), ("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
    };
    checks.run("trac: the front page", || {
        let r = a.get("/trac/");
        assert_eq!(r.status, 200, "{}", short(&r.text()));
        let html = r.text();
        assert!(html.contains(TRAC_PROJECT), "{}", short(&html));
        assert!(html.contains("Welcome to Trac"), "{}", short(&html));
    });
    checks.run("trac: a static resource from Trac's chrome", || {
        let r = a.get("/trac/chrome/common/css/trac.css");
        assert_eq!(r.status, 200);
        assert!(r.header("content-type").unwrap_or("").starts_with("text/css"), "{:?}", r.headers);
        assert!(r.body.len() > 1000, "{} bytes", r.body.len());
    });
    checks.run("trac: a POST without the form token is refused", || {
        let r = form("/trac/newticket", "", &[("field_summary", "no token"), ("submit", "Create ticket")]);
        assert_eq!(r.status, 400, "{}", short(&r.text()));
        assert!(r.text().contains("Missing or invalid form token"), "{}", r.text());
    });

    // The token lives in a cookie and must come back as the __FORM_TOKEN field.
    let mut cookie = String::new();
    checks.run("trac: a new ticket through the form", || {
        let r = a.get("/trac/newticket");
        assert_eq!(r.status, 200, "{}", short(&r.text()));
        let token = set_cookie(&r, "trac_form_token");
        assert_eq!(input_value(&r.text(), "__FORM_TOKEN"), token);
        cookie = format!("trac_form_token={token}");
        let r = form(
            "/trac/newticket",
            &cookie,
            &[
                ("__FORM_TOKEN", &token),
                ("field_summary", TICKET_SUMMARY),
                ("field_description", TICKET_DESCRIPTION),
                ("field_type", "defect"),
                ("field_priority", "critical"),
                ("field_reporter", "zoe"),
                ("submit", "Create ticket"),
            ],
        );
        assert_eq!(r.status, 303, "{}", short(&r.text()));
        assert_eq!(r.header("location"), Some(a.url("/trac/ticket/1").as_str()));
        let r = a.get("/trac/ticket/1?format=tab");
        assert_eq!(r.status, 200);
        let rows = tab_rows(&r.text());
        assert_eq!(rows.len(), 1, "{}", r.text());
        let ticket = &rows[0];
        for (column, want) in [
            ("id", "1"),
            ("summary", TICKET_SUMMARY),
            ("description", TICKET_DESCRIPTION),
            ("type", "defect"),
            ("priority", "critical"),
            ("reporter", "zoe"),
            ("status", "new"),
        ] {
            assert_eq!(ticket.get(column).map(String::as_str), Some(want), "{column} in {ticket:?}");
        }
    });
    checks.run("trac: a comment on the ticket", || {
        assert!(!cookie.is_empty(), "no ticket was created");
        let r = a.request("GET", "/trac/ticket/1", &[("Cookie", &cookie)], b"");
        assert_eq!(r.status, 200);
        let html = r.text();
        let r = form(
            "/trac/ticket/1",
            &cookie,
            &[
                ("__FORM_TOKEN", &input_value(&html, "__FORM_TOKEN")),
                ("comment", TICKET_COMMENT),
                ("action", "leave"),
                ("start_time", &input_value(&html, "start_time")),
                ("view_time", &input_value(&html, "view_time")),
                ("submit", "Submit changes"),
            ],
        );
        assert_eq!(r.status, 303, "{}", short(&r.text()));
        assert_eq!(r.header("location"), Some(a.url("/trac/ticket/1#comment:1").as_str()));
        let r = a.get("/trac/ticket/1");
        assert!(r.text().contains(TICKET_COMMENT), "the comment is not on the ticket page");
    });
    checks.run("trac: a multipart attachment, downloaded back", || {
        assert!(!cookie.is_empty(), "no ticket was created");
        let token = cookie.trim_start_matches("trac_form_token=").to_string();
        // Under Trac's default 256 KiB limit.
        let data = pseudo_random_bytes(200_000, 0x7472_6163);
        let (body, content_type) = multipart_body(&[
            Part::Field("__FORM_TOKEN", &token),
            Part::Field("action", "new"),
            Part::Field("realm", "ticket"),
            Part::Field("id", "1"),
            Part::File("attachment", "smoke log.bin", "application/octet-stream", &data),
            Part::Field("description", "what the printer logged"),
            Part::Field("submit", "Add attachment"),
        ]);
        let r = a.request(
            "POST",
            "/trac/attachment/ticket/1/",
            &[("Cookie", &cookie), ("Content-Type", &content_type)],
            &body,
        );
        assert_eq!(r.status, 303, "{}", short(&r.text()));
        let r = a.get("/trac/raw-attachment/ticket/1/smoke%20log.bin");
        assert_eq!(r.status, 200);
        assert_eq!(sha256_hex(&r.body), sha256_hex(&data), "the attachment came back different");
        let r = a.get("/trac/ticket/1");
        assert!(r.text().contains("what the printer logged"), "no attachment description on the ticket");
    });
    checks.run("trac: the ticket in a CSV report", || {
        let r = a.get("/trac/report/1?format=csv");
        assert_eq!(r.status, 200);
        assert!(r.text().contains(&format!("1,{TICKET_SUMMARY},")), "{}", r.text());
    });

    let mut auth_cookie = String::new();
    checks.run("trac: login through Apache's Basic authentication", || {
        let r = a.get("/trac/login");
        assert_eq!(r.status, 401, "Apache asks for credentials first");
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"Trac\""));
        let wrong = basic_auth(TRAC_ADMIN, "wrong password");
        let r = a.request("GET", "/trac/login", &[("Authorization", &wrong)], b"");
        assert_eq!(r.status, 401);
        let right = basic_auth(TRAC_ADMIN, TRAC_ADMIN_PASSWORD);
        let r = a.request("GET", "/trac/login", &[("Authorization", &right)], b"");
        assert_eq!(r.status, 302, "{}", short(&r.text()));
        auth_cookie = format!("trac_auth={}", set_cookie(&r, "trac_auth"));
        let r = a.request("GET", "/trac/", &[("Cookie", &auth_cookie)], b"");
        assert!(
            r.text().contains("logged in as <span class=\"trac-author-user\">admin</span>"),
            "Trac did not take REMOTE_USER: {}",
            short(&r.text())
        );
    });
    checks.run("trac: the plugin admin page (component descriptions are docstrings)", || {
        assert!(!auth_cookie.is_empty(), "not logged in");
        // Anonymous users have no admin panel at all.
        let r = a.get("/trac/admin/general/plugin");
        assert_eq!(r.status, 404, "{}", short(&r.text()));
        assert!(r.text().contains("No administration panels available"), "{}", short(&r.text()));
        let r = a.request("GET", "/trac/admin/general/plugin", &[("Cookie", &auth_cookie)], b"");
        assert_eq!(r.status, 200, "{}", short(&r.text()));
        let html = r.text();
        assert!(html.contains("value=\"trac.ticket.roadmap.RoadmapModule\""), "{}", short(&html));
        // RoadmapModule's docstring is "Overview of all the milestones."
        let described = html.contains("Overview of all the milestones.");
        if level < 2 {
            assert!(described, "component description missing at level {level}");
        } else {
            assert!(!described, "docstrings should be gone at level 2");
        }
    });
    checks.run("trac: macro help, which Trac keeps outside docstrings", || {
        let r = a.get("/trac/wiki/WikiMacros");
        assert_eq!(r.status, 200);
        assert!(
            r.text().contains("Insert an alphabetic list of all wiki pages into the output."),
            "TitleIndex macro help missing at level {level}"
        );
    });
}

fn trac_test(level: u8) {
    serve_one("Trac", level, prepare_trac, |a, _, checks| trac_checks(a, level, checks));
}

#[test]
fn trac_optimize_0() {
    trac_test(0);
}

#[test]
fn trac_optimize_2() {
    trac_test(2);
}

// ---------------------------------------------------------------------------------------
// pypiserver, with twine and pip

const PACKAGE: &str = "apache-fixture";
const UPLOADER: &str = "uploader";
const UPLOADER_PASSWORD: &str = "index upload password";

/// A distribution file built for the test.
struct Dist {
    path: String,
    file_name: String,
    sha256: String,
}

impl Dist {
    fn new(path: &str) -> Dist {
        let bytes = fs::read(path).unwrap();
        let file_name = Path::new(path).file_name().unwrap().to_string_lossy().into_owned();
        Dist { path: path.to_string(), file_name, sha256: sha256_hex(&bytes) }
    }
}

struct PypiApp {
    venv: String,
    home: String,
    packages: PathBuf,
    /// 1.0.0 wheel, 1.0.0 sdist, 1.1.0 wheel, 1.1.0 sdist.
    dists: Vec<Dist>,
}

impl PypiApp {
    fn twine_upload(&self, a: &Apache, password: &str, files: &[&Dist]) -> Run {
        let url = a.url("/pypi/");
        let mut args = vec![
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            &url,
            "-u",
            UPLOADER,
            "-p",
            password,
        ];
        args.extend(files.iter().map(|d| d.path.as_str()));
        run_client(
            &self.home,
            &format!("{}/bin/twine", self.venv),
            &args,
            Path::new("/"),
            &[("NO_COLOR", "1"), ("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")],
        )
    }

    fn pip(&self, a: &Apache, args: &[&str]) -> Run {
        let index = a.url("/pypi/simple/");
        let mut all = vec!["-m", "pip"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--disable-pip-version-check", "--no-cache-dir", "--index-url", &index]);
        run_client_ok(
            &self.home,
            &format!("{}/bin/python", self.venv),
            &all,
            Path::new("/"),
            &[("PIP_CONFIG_FILE", "/dev/null")],
        )
    }

    fn uploaded(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.packages)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// An empty package directory served by pypiserver at /pypi, and two versions of a
/// package built as wheel and sdist.
fn prepare_pypiserver(dir: &TestDir, venv: &str) -> (PypiApp, Mount) {
    let home = dir.mkdir("home").to_string_lossy().into_owned();
    let packages = dir.mkdir_www("packages");
    let users = dir.p("pypi-users");
    write_htpasswd(venv, &users, &[(UPLOADER, UPLOADER_PASSWORD)]);
    let dists_dir = dir.mkdir("dists").to_string_lossy().into_owned();
    let make_dists = applications_dir().join("pypiserver/make_dists.py").to_string_lossy().into_owned();
    let mut dists = Vec::new();
    for version in ["1.0.0", "1.1.0"] {
        let greeting = format!("Hello from {PACKAGE} {version}");
        let out = run_ok(
            &format!("{venv}/bin/python"),
            &[&make_dists, &dists_dir, PACKAGE, version, &greeting],
            Path::new("/"),
            &[],
        );
        dists.extend(out.lines().map(Dist::new));
    }
    assert_eq!(dists.len(), 4);
    let script = install(
        dir,
        "pypiserver/pypiserver.wsgi",
        "pypiserver/pypiserver.wsgi",
        &[("PACKAGES", &packages.to_string_lossy()), ("HTPASSWD", &users)],
    );
    let conf = format!(
        "WSGIScriptAlias /pypi {script} pass-authorization=On\n\
         <Directory {}>\n    Require all granted\n</Directory>\n",
        dir.p("pypiserver")
    );
    let app = PypiApp { venv: venv.to_string(), home, packages, dists };
    (app, Mount { conf, modules: Vec::new() })
}

fn pypiserver_checks(a: &Apache, app: &PypiApp, checks: &mut Checks) {
    let dists: Vec<&Dist> = app.dists.iter().collect();
    checks.run("pypiserver: the empty index", || {
        let r = a.get("/pypi/simple/");
        assert_eq!(r.status, 200, "{}", short(&r.text()));
        assert!(r.text().contains("Simple Index"), "{}", r.text());
        assert!(!r.text().contains(PACKAGE), "{}", r.text());
    });
    checks.run("pypiserver: an upload without credentials is asked for them", || {
        let (body, content_type) = multipart_body(&[Part::Field(":action", "file_upload")]);
        let r = a.request("POST", "/pypi/", &[("Content-Type", &content_type)], &body);
        assert_eq!(r.status, 401, "{}", short(&r.text()));
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"pypi\""));
    });
    checks.run("twine upload with a wrong password is refused", || {
        let run = app.twine_upload(a, "not the password", &dists[..1]);
        assert!(!run.success, "{}", run.output());
        assert!(run.output().contains("403 Forbidden"), "{}", run.output());
        assert!(app.uploaded().is_empty(), "{:?}", app.uploaded());
    });
    checks.run("twine upload of two wheels and two sdists", || {
        let run = app.twine_upload(a, UPLOADER_PASSWORD, &dists);
        assert!(run.success, "{}", run.output());
        let mut want: Vec<String> = dists.iter().map(|d| d.file_name.clone()).collect();
        want.sort();
        assert_eq!(app.uploaded(), want);
        for d in &dists {
            let stored = fs::read(app.packages.join(&d.file_name)).unwrap();
            assert_eq!(sha256_hex(&stored), d.sha256, "{} stored differently", d.file_name);
        }
    });
    checks.run("twine upload of an existing file is a conflict", || {
        let run = app.twine_upload(a, UPLOADER_PASSWORD, &dists[..1]);
        assert!(!run.success, "{}", run.output());
        assert!(run.output().contains("409 Conflict"), "{}", run.output());
    });
    checks.run("pypiserver: the simple index links each file with its SHA-256", || {
        let r = a.get(&format!("/pypi/simple/{PACKAGE}/"));
        assert_eq!(r.status, 200);
        let html = r.text();
        for d in &dists {
            let link = format!("href=\"/pypi/packages/{}#sha256={}\"", d.file_name, d.sha256);
            assert!(html.contains(&link), "no {link} in\n{html}");
        }
    });
    checks.run("pip download takes the newest wheel, or the pinned one", || {
        for (spec, dist) in [(PACKAGE.to_string(), &app.dists[2]), (format!("{PACKAGE}==1.0.0"), &app.dists[0])] {
            let dest = a.dir.mkdir(&format!("download-{}", dist.sha256));
            let run = app.pip(a, &["download", "--no-deps", "-d", &dest.to_string_lossy(), &spec]);
            let got = dest.join(&dist.file_name);
            assert!(got.is_file(), "{spec}: {} not downloaded:\n{}", dist.file_name, run.output());
            assert_eq!(sha256_hex(&fs::read(&got).unwrap()), dist.sha256, "{spec}: downloaded file differs");
        }
    });
    checks.run("pip install from the index, then import the package", || {
        let target = a.dir.mkdir("installed");
        app.pip(a, &["install", "--target", &target.to_string_lossy(), PACKAGE]);
        let run = run_client_ok(
            &app.home,
            &format!("{}/bin/python", app.venv),
            &["-c", "import apache_fixture as p; print(p.__version__, p.GREETING)"],
            Path::new("/"),
            &[("PYTHONPATH", &target.to_string_lossy())],
        );
        assert_eq!(run.stdout, format!("1.1.0 Hello from {PACKAGE} 1.1.0\n"));
    });
    checks.run("pypiserver: an sdist downloaded by its URL", || {
        let sdist = &app.dists[1];
        let r = a.get(&format!("/pypi/packages/{}", sdist.file_name));
        assert_eq!(r.status, 200);
        assert_eq!(sha256_hex(&r.body), sdist.sha256);
    });
    checks.run("pypiserver: the JSON API", || {
        let r = a.get(&format!("/pypi/{PACKAGE}/json"));
        assert_eq!(r.status, 200, "{}", short(&r.text()));
        let info = r.json();
        assert_eq!(info.get("info").get("version").as_str(), "1.1.0");
        for version in ["1.0.0", "1.1.0"] {
            assert_eq!(info.get("releases").get(version).as_arr().len(), 2, "{info}");
        }
    });
}

fn pypiserver_test(level: u8) {
    serve_one("pypiserver", level, prepare_pypiserver, pypiserver_checks);
}

#[test]
fn pypiserver_optimize_0() {
    pypiserver_test(0);
}

#[test]
fn pypiserver_optimize_2() {
    pypiserver_test(2);
}

// ---------------------------------------------------------------------------------------
// Radicale, with the caldav client library

const CALENDAR_USER: &str = "alice";
const CALENDAR_PASSWORD: &str = "alice calendar password";
const OTHER_USER: &str = "bob";
const OTHER_PASSWORD: &str = "bob calendar password";

struct RadicaleApp {
    venv: String,
    home: String,
    collections: PathBuf,
}

/// Radicale at /dav with two users and an empty storage folder; its configuration file
/// is named by RADICALE_CONFIG, set with SetEnv.
fn prepare_radicale(dir: &TestDir, venv: &str) -> (RadicaleApp, Mount) {
    let home = dir.mkdir("home").to_string_lossy().into_owned();
    let collections = dir.mkdir_www("collections");
    let users = dir.p("radicale-users");
    write_htpasswd(venv, &users, &[(CALENDAR_USER, CALENDAR_PASSWORD), (OTHER_USER, OTHER_PASSWORD)]);
    let config = install(
        dir,
        "radicale/radicale.conf",
        "radicale/radicale.conf",
        &[("USERS", &users), ("COLLECTIONS", &collections.to_string_lossy())],
    );
    let script = install(dir, "radicale/radicale.wsgi", "radicale/radicale.wsgi", &[]);
    let conf = format!(
        "WSGIScriptAlias /dav {script} pass-authorization=On\n\
         <Directory {}>\n    Require all granted\n</Directory>\n\
         <Location /dav>\n    SetEnv RADICALE_CONFIG {config}\n</Location>\n",
        dir.p("radicale")
    );
    let app = RadicaleApp { venv: venv.to_string(), home, collections };
    (app, Mount { conf, modules: vec![("env_module", "mod_env.so")] })
}

fn radicale_checks(a: &Apache, app: &RadicaleApp, checks: &mut Checks) {
    checks.run("radicale: PROPFIND without credentials is 401", || {
        let r = a.request("PROPFIND", "/dav/", &[("Depth", "0")], b"");
        assert_eq!(r.status, 401, "{}", short(&r.text()));
        assert!(r.header("www-authenticate").unwrap_or("").starts_with("Basic"), "{:?}", r.headers);
    });
    checks.run("caldav: calendar, events, search, edit, delete, access rights", || {
        let client = applications_dir().join("radicale/caldav_client.py");
        let run = run_client_ok(
            &app.home,
            &format!("{}/bin/python", app.venv),
            &[&client.to_string_lossy(), &a.url("/dav/"), CALENDAR_USER, CALENDAR_PASSWORD, OTHER_USER, OTHER_PASSWORD],
            Path::new("/"),
            &[],
        );
        let seen = Json::parse(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}:\n{}", run.output()));
        let text = |key: &str| seen.get(key).as_str().to_string();
        assert_eq!(text("principal_url"), a.url("/dav/alice/"), "{seen}");
        assert_eq!(text("calendar_url"), a.url("/dav/alice/team/"), "{seen}");
        assert_eq!(seen.get("calendar_names").str_list(), vec!["Team calendar"]);
        assert_eq!(seen.get("march_summaries").str_list(), vec!["Design review – café room", "Retrospective"]);
        assert_eq!(text("by_uid_summary"), "Design review – café room");
        assert_eq!(text("by_uid_description"), "Bring the printouts");
        assert_eq!(
            seen.get("all_summaries_after_edit").str_list(),
            vec!["Design review (moved)", "Outside the searched range"]
        );
        assert_eq!(text("other_user_read"), "AuthorizationError", "another user read the calendar");
        assert_eq!(text("wrong_password"), "AuthorizationError");
    });
    checks.run("radicale: the events are files of www-data in the storage folder", || {
        let calendar = app.collections.join("collection-root/alice/team");
        let mut events: Vec<String> = Vec::new();
        for entry in fs::read_dir(&calendar).unwrap_or_else(|e| panic!("{}: {e}", calendar.display())) {
            let path = entry.unwrap().path();
            if path.extension().map(|e| e == "ics").unwrap_or(false) {
                if running_as_root() {
                    assert_eq!(fs::metadata(&path).unwrap().uid(), WWW_UID, "{}", path.display());
                }
                events.push(fs::read_to_string(&path).unwrap());
            }
        }
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(events.iter().any(|e| e.contains("SUMMARY:Design review (moved)")), "{events:?}");
        assert!(!events.iter().any(|e| e.contains("retro@example.com")), "the deleted event is still there");
    });
    checks.run("radicale: its log goes through wsgi.errors to Apache's error log", || {
        let line = wait_line(a, Duration::from_secs(5), &["Successful login: 'alice'"]);
        assert!(line.is_ok(), "{}", line.unwrap_err());
    });
    checks.run("radicale: the web interface", || {
        let r = a.get("/dav/.web/");
        assert_eq!(r.status, 200, "{}", short(&r.text()));
        assert!(r.text().contains("<title>Radicale Web Interface</title>"), "{}", short(&r.text()));
        let r = a.get("/dav/.web/css/main.css");
        assert_eq!(r.status, 200);
        assert!(r.header("content-type").unwrap_or("").starts_with("text/css"), "{:?}", r.headers);
    });
}

fn radicale_test(level: u8) {
    serve_one("Radicale", level, prepare_radicale, radicale_checks);
}

#[test]
fn radicale_optimize_0() {
    radicale_test(0);
}

#[test]
fn radicale_optimize_2() {
    radicale_test(2);
}

// ---------------------------------------------------------------------------------------
// All four in one server

/// One prefork server hosting the four applications at once, as a small team's server
/// might. mod_wsgi_rs runs every application in the main interpreter of each child, so
/// they share one Python per process (mod_wsgi would give each script a sub-interpreter
/// of its own); the same checks must pass side by side.
#[test]
fn four_applications_in_one_prefork_server_optimize_0() {
    let _heavy = heavy();
    let started = Instant::now();
    let venv = venv();
    let dir = TestDir::new("applications-together-O0");
    let (hg, hg_mount) = prepare_hgweb(&dir, &venv);
    let ((), trac_mount) = prepare_trac(&dir, &venv);
    let (pypi, pypi_mount) = prepare_pypiserver(&dir, &venv);
    let (dav, dav_mount) = prepare_radicale(&dir, &venv);
    let mounts = [&hg_mount, &trac_mount, &pypi_mount, &dav_mount];
    let apache = start_apache(dir, Mpm::Prefork, 0, &venv, &mounts);
    let mut checks = Checks::new("four applications in one prefork server, WSGIPythonOptimize 0");
    hgweb_checks(&apache, &hg, &mut checks);
    trac_checks(&apache, 0, &mut checks);
    pypiserver_checks(&apache, &pypi, &mut checks);
    radicale_checks(&apache, &dav, &mut checks);
    final_checks(&mut checks, &apache);
    eprintln!("[applications] all four in one prefork server: {:.1} s", started.elapsed().as_secs_f64());
    checks.finish();
}
