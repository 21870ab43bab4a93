//! Python deciding who may see what Apache serves: the `wsgi` authentication provider
//! (`WSGIAuthUserScript` with `AuthBasicProvider wsgi` and `AuthDigestProvider wsgi`),
//! the `wsgi-group` authorisation provider (`WSGIAuthGroupScript` with
//! `Require wsgi-group`), the host access check (`WSGIAccessScript`), and Django's
//! documented configuration with `django.contrib.auth.handlers.modwsgi` against the
//! site's sqlite user table; in sections and `.htaccess`, beside mod_python, and
//! without Python in the children; and each of them run in a daemon process group
//! (`process-group=`), as the group's user, with the children's Python off. Statuses and return conventions are mod_wsgi 4.9's,
//! checked against Debian's mod_wsgi: a failing authentication script is a 500, a
//! failing group script a refusal (401), a failing access script a 403; each failure is
//! logged naming the script, with the traceback of an exception.
mod common;
use common::*;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

const AUTH_SCRIPT: &str = r#"
import hashlib, json

USERS = {"spy": "secret", "m": "moneypenny", "outsider": "x", "lonely": "x", "gboom": "x", "gbad": "x",
         "probe": "x"}
GROUPS = {"spy": [b"agents"], "m": ["secret service"], "outsider": ["staff"], "lonely": []}

def check_password(environ, user, password):
    if user == "whoruns":
        import os
        environ["wsgi.errors"].write("CHECKED BY uid=%d pid=%d process_group=%r\n"
                                     % (os.getuid(), os.getpid(), environ["mod_wsgi.process_group"]))
        return True
    if user == "crash":
        import os
        os._exit(3)
    if user == "probe":
        shown = {k: (v if isinstance(v, str) else repr(v)) for k, v in environ.items()}
        environ["wsgi.errors"].write("PROBE " + json.dumps(shown, sort_keys=True) + "\n")
    if user == "alias":
        return "renamed"
    if user == "typ":
        return 1
    if user not in USERS:
        return None
    return password == USERS[user]

def get_realm_hash(environ, user, realm):
    if user not in USERS:
        return None
    return hashlib.md5(f"{user}:{realm}:{USERS[user]}".encode()).hexdigest()

def groups_for_user(environ, user):
    if user == "gboom":
        raise RuntimeError("group store unavailable")
    if user == "gbad":
        return ["Zo\u00eb", "snow \u2603"]
    return GROUPS.get(user, [])
"#;

const RAISING_SCRIPT: &str = r#"
def check_password(environ, user, password):
    raise RuntimeError("credentials store unavailable")
"#;

const ACCESS_SCRIPT: &str = r#"
def allow_access(environ, host):
    verdict = environ.get("QUERY_STRING", "")
    if verdict == "raise":
        raise ValueError("access store unavailable")
    if verdict == "int":
        return 1
    if verdict == "none":
        return None
    return verdict == "allow" and host == "127.0.0.1"
"#;

const WHOAMI_APP: &str = r#"
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s %s" % (environ.get("REMOTE_USER"), environ.get("AUTH_TYPE"))).encode()]
"#;

fn basic_location(path: &str, script: &str, require: &str) -> String {
    format!(
        "<Location {path}>\n  AuthType Basic\n  AuthName \"Python realm\"\n  AuthBasicProvider wsgi\n  \
         WSGIAuthUserScript {script}\n  {require}\n</Location>\n"
    )
}

fn auth_modules(conf: Conf) -> Conf {
    conf.module_before("auth_basic_module", "mod_auth_basic.so")
        .module_before("auth_digest_module", "mod_auth_digest.so")
        .module_before("authz_user_module", "mod_authz_user.so")
        .module_before("env_module", "mod_env.so")
}

fn get_as(apache: &Apache, path: &str, user: &str, password: &str) -> Response {
    apache.request("GET", path, &[("Authorization", &basic_auth(user, password))], b"")
}

/// The status of a GET answered through curl's Digest handshake.
fn digest_status(apache: &Apache, path: &str, user: &str, password: &str) -> u16 {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30", "--digest", "-u"])
        .arg(format!("{user}:{password}"))
        .arg(apache.url(path))
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("curl said {out:?}"))
}

fn log_has(apache: &Apache, needle: &str) -> String {
    let (found, log) = apache.wait_log(Duration::from_secs(5), |l| l.contains(needle));
    assert!(found, "no {needle:?} in the error log:\n{log}");
    log
}

struct Site {
    apache: Apache,
    auth: String,
    raising: String,
    missing: String,
    access: String,
}

fn start_site(mpm: Mpm) -> Site {
    let dir = TestDir::new(&format!("auth-{}", mpm.name()));
    let auth = dir.write("apps/auth.wsgi", AUTH_SCRIPT).to_string_lossy().into_owned();
    let raising = dir.write("apps/raising.wsgi", RAISING_SCRIPT).to_string_lossy().into_owned();
    let access = dir.write("apps/access.wsgi", ACCESS_SCRIPT).to_string_lossy().into_owned();
    let whoami = dir.write("apps/whoami.wsgi", WHOAMI_APP).to_string_lossy().into_owned();
    let missing = dir.p("apps/no-such-script.wsgi");
    for area in ["basic", "digest", "groups", "raises", "missing", "access", "htaccess"] {
        dir.write(&format!("htdocs/{area}/file.txt"), format!("static {area}\n"));
    }
    dir.write(
        "htdocs/htaccess/.htaccess",
        format!("AuthType Basic\nAuthName \"Python realm\"\nAuthBasicProvider wsgi\nWSGIAuthUserScript {auth}\nRequire valid-user\n"),
    );
    let mut extra = format!("<Directory {}>\n  AllowOverride AuthConfig\n</Directory>\n", dir.p("htdocs/htaccess"));
    extra.push_str(&basic_location("/basic", &auth, "Require valid-user"));
    // What the scripts must not see: SetEnv values and the credentials header.
    extra.push_str("<Location /basic>\n  SetEnv PROBE_SETENV leaked\n</Location>\n");
    extra.push_str(&basic_location("/app", &auth, "Require valid-user"));
    extra.push_str(&format!("WSGIScriptAlias /app/whoami {whoami}\n"));
    extra.push_str(&format!(
        "<Location /digest>\n  AuthType Digest\n  AuthName \"Python realm\"\n  AuthDigestProvider wsgi\n  \
         WSGIAuthUserScript {auth}\n  Require valid-user\n</Location>\n"
    ));
    extra.push_str(&basic_location(
        "/groups",
        &auth,
        &format!("WSGIAuthGroupScript {auth}\n  WSGIGroupAuthoritative On\n  Require wsgi-group agents \"secret service\""),
    ));
    extra.push_str(&basic_location("/raises", &raising, "Require valid-user"));
    extra.push_str(&basic_location("/missing", &missing, "Require valid-user"));
    extra.push_str(&format!("<Location /access>\n  WSGIAccessScript {access}\n</Location>\n"));
    let conf = auth_modules(Conf::new(mpm)).extra(&extra);
    let apache = Apache::start(dir, &conf, &[]);
    Site { apache, auth, raising, missing, access }
}

/// A check_password that raises and a script that is missing: 500, each logged (with
/// the traceback), wherever the script runs.
fn failing_authentication_scripts(c: &mut Checks, site: &Site) {
    let a = &site.apache;
    c.run("a script that raises: 500, the traceback logged", || {
        assert_eq!(get_as(a, "/raises/file.txt", "spy", "secret").status, 500);
        let log = log_has(a, "RuntimeError: credentials store unavailable");
        assert!(
            log.contains(&format!("exception raised by check_password() of WSGI authentication script {}", site.raising)),
            "{log}"
        );
        assert!(log.contains("Traceback (most recent call last):"), "{log}");
    });
    c.run("a missing script: 500, logged with the path", || {
        assert_eq!(get_as(a, "/missing/file.txt", "spy", "secret").status, 500);
        let log = log_has(a, &format!("failed to load WSGI authentication script {}", site.missing));
        assert!(log.contains("FileNotFoundError"), "{log}");
    });
}

/// A groups_for_user that raises: a refusal (401) as with mod_wsgi, the traceback logged.
fn raising_groups_for_user(site: &Site) {
    let a = &site.apache;
    assert_eq!(get_as(a, "/groups/file.txt", "gboom", "x").status, 401);
    let log = log_has(a, "RuntimeError: group store unavailable");
    assert!(
        log.contains(&format!("exception raised by groups_for_user() of WSGI group authorisation script {}", site.auth)),
        "{log}"
    );
}

#[test]
fn basic_authentication_by_check_password() {
    let site = start_site(Mpm::Event);
    let a = &site.apache;
    let mut c = Checks::new("Basic through check_password");
    c.run("no credentials: 401 with Apache's challenge", || {
        let r = a.get("/basic/file.txt");
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"Python realm\""));
    });
    c.run("right password: the static file", || {
        let r = get_as(a, "/basic/file.txt", "spy", "secret");
        assert_eq!((r.status, r.text().as_str()), (200, "static basic\n"));
    });
    c.run("wrong password (False): 401, Apache's password mismatch", || {
        assert_eq!(get_as(a, "/basic/file.txt", "spy", "wrong").status, 401);
        log_has(a, "user spy: authentication failure for \"/basic/file.txt\": Password Mismatch");
    });
    c.run("unknown user (None): 401, Apache's user not found", || {
        assert_eq!(get_as(a, "/basic/file.txt", "nobody", "x").status, 401);
        log_has(a, "user nobody not found: /basic/file.txt");
    });
    c.run("in .htaccess (AllowOverride AuthConfig)", || {
        assert_eq!(a.get("/htaccess/file.txt").status, 401);
        assert_eq!(get_as(a, "/htaccess/file.txt", "spy", "wrong").status, 401);
        let r = get_as(a, "/htaccess/file.txt", "spy", "secret");
        assert_eq!((r.status, r.text().as_str()), (200, "static htaccess\n"));
    });
    c.run("REMOTE_USER and AUTH_TYPE reach the application behind it", || {
        let r = get_as(a, "/app/whoami", "spy", "secret");
        assert_eq!((r.status, r.text().as_str()), (200, "spy Basic"));
        assert_eq!(a.get("/app/whoami").status, 401);
    });
    c.run("a str result authenticates as that user", || {
        let r = get_as(a, "/app/whoami", "alias", "anything");
        assert_eq!((r.status, r.text().as_str()), (200, "renamed Basic"));
    });
    c.run("another result: 500, logged", || {
        assert_eq!(get_as(a, "/basic/file.txt", "typ", "x").status, 500);
        log_has(
            a,
            &format!(
                "check_password() of WSGI authentication script {} must return True, False, None or a user \
                 name (str), not int",
                site.auth
            ),
        );
    });
    c.run("the environ is mod_wsgi's cut-down one", || {
        let r = a.request(
            "GET",
            "/basic/file.txt?q=1",
            &[("Authorization", &basic_auth("probe", "x")), ("X-Probe", "yes")],
            b"",
        );
        assert_eq!(r.status, 200);
        let log = log_has(a, "PROBE {");
        let line = log.lines().rev().find(|l| l.contains("PROBE {")).unwrap();
        let environ = Json::parse(&line[line.find("PROBE ").unwrap() + 6..]).unwrap();
        for (key, value) in [
            ("REQUEST_METHOD", "GET"),
            ("REQUEST_URI", "/basic/file.txt?q=1"),
            ("QUERY_STRING", "q=1"),
            ("HTTP_X_PROBE", "yes"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("mod_wsgi.process_group", ""),
            ("mod_wsgi.application_group", ""),
            ("mod_wsgi.script_reloading", "1"),
        ] {
            assert_eq!(environ.get(key).as_str(), value, "{key} in {environ}");
        }
        for key in ["SERVER_NAME", "SERVER_PORT", "REMOTE_PORT", "DOCUMENT_ROOT", "SCRIPT_NAME", "PATH_INFO", "wsgi.errors", "mod_wsgi_rs.version"] {
            assert!(environ.has(key), "no {key} in {environ}");
        }
        for key in ["HTTP_AUTHORIZATION", "PROBE_SETENV", "wsgi.input", "REMOTE_USER", "mod_wsgi.version"] {
            assert!(!environ.has(key), "{key} in {environ}");
        }
    });
    failing_authentication_scripts(&mut c, &site);
    c.run("still serving", || assert_eq!(get_as(a, "/basic/file.txt", "spy", "secret").status, 200));
    c.finish();
    assert_no_crash(&a.error_log());
}

#[test]
fn digest_authentication_by_get_realm_hash() {
    let site = start_site(Mpm::Worker);
    let a = &site.apache;
    let mut c = Checks::new("Digest through get_realm_hash");
    c.run("no credentials: a Digest challenge", || {
        let r = a.get("/digest/file.txt");
        assert_eq!(r.status, 401);
        assert!(r.header("www-authenticate").unwrap_or("").starts_with("Digest realm=\"Python realm\""), "{r:?}");
    });
    c.run("right password", || assert_eq!(digest_status(a, "/digest/file.txt", "spy", "secret"), 200));
    c.run("wrong password", || {
        assert_eq!(digest_status(a, "/digest/file.txt", "spy", "wrong"), 401);
        log_has(a, "user spy: password mismatch: /digest/file.txt");
    });
    c.run("unknown user", || {
        assert_eq!(digest_status(a, "/digest/file.txt", "nobody", "x"), 401);
        log_has(a, "user `nobody' in realm `Python realm' not found");
    });
    c.finish();
}

#[test]
fn group_authorisation_by_groups_for_user() {
    let site = start_site(Mpm::Prefork);
    let a = &site.apache;
    let mut c = Checks::new("Require wsgi-group through groups_for_user");
    c.run("a member by a bytes name", || assert_eq!(get_as(a, "/groups/file.txt", "spy", "secret").status, 200));
    c.run("a member by a str name with a space", || {
        assert_eq!(get_as(a, "/groups/file.txt", "m", "moneypenny").status, 200)
    });
    c.run("authentication still comes first", || {
        assert_eq!(a.get("/groups/file.txt").status, 401);
        assert_eq!(get_as(a, "/groups/file.txt", "spy", "wrong").status, 401);
    });
    c.run("in other groups: 401", || {
        assert_eq!(get_as(a, "/groups/file.txt", "outsider", "x").status, 401);
        log_has(a, "Require wsgi-group: user 'outsider' is not a member of the required groups");
    });
    c.run("in no group: 401", || {
        assert_eq!(get_as(a, "/groups/file.txt", "lonely", "x").status, 401);
        log_has(a, "Require wsgi-group: user 'lonely' is not a member of any group");
    });
    c.run("a script that raises: 401 as mod_wsgi, the traceback logged", || raising_groups_for_user(&site));
    c.run("a name Latin-1 cannot encode: 401, logged", || {
        assert_eq!(get_as(a, "/groups/file.txt", "gbad", "x").status, 401);
        log_has(a, "not one holding 'snow \\xe2\\x98\\x83' (not Latin-1)");
    });
    c.finish();
    assert_no_crash(&a.error_log());
}

#[test]
fn host_access_by_allow_access() {
    let site = start_site(Mpm::Event);
    let a = &site.apache;
    let mut c = Checks::new("WSGIAccessScript");
    c.run("True for this host", || assert_eq!(a.get("/access/file.txt?allow").status, 200));
    c.run("None leaves it to Apache", || assert_eq!(a.get("/access/file.txt?none").status, 200));
    c.run("False: 403, logged", || {
        assert_eq!(a.get("/access/file.txt?deny").status, 403);
        log_has(a, &format!("client denied by WSGI access script {}", site.access));
    });
    c.run("another result: 403, logged", || {
        assert_eq!(a.get("/access/file.txt?int").status, 403);
        log_has(a, "allow_access() of WSGI access script");
        log_has(a, "must return True, False or None, not int");
    });
    c.run("a script that raises: 403, the traceback logged", || {
        assert_eq!(a.get("/access/file.txt?raise").status, 403);
        log_has(a, "ValueError: access store unavailable");
    });
    c.run("outside the section nothing is asked", || assert_eq!(a.get("/basic/file.txt").status, 401));
    c.run("a changed script is loaded again", || {
        fs::write(&site.access, "def allow_access(environ, host):\n    return True\n").unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        fs::File::options().write(true).open(&site.access).unwrap().set_modified(later).unwrap();
        assert_eq!(a.get("/access/file.txt?deny").status, 200);
    });
    c.finish();
}

#[test]
fn checks_in_the_interpreter_mod_python_owns() {
    let dir = TestDir::new("auth-mod_python");
    let auth = dir.write("apps/auth.wsgi", AUTH_SCRIPT).to_string_lossy().into_owned();
    dir.write("htdocs/basic/file.txt", "static basic\n");
    let extra = format!(
        "PythonOption mod_python.mutex_directory {}\n{}",
        dir.p("run"),
        basic_location("/basic", &auth, &format!("WSGIAuthGroupScript {auth}\n  Require wsgi-group agents"))
    );
    let conf = auth_modules(Conf::new(Mpm::Event)).module_before("python_module", MOD_PYTHON_SO).extra(&extra);
    let apache = Apache::start(dir, &conf, &[]);
    log_has(&apache, "Python is owned by mod_python in this process");
    assert_eq!(get_as(&apache, "/basic/file.txt", "spy", "secret").status, 200);
    assert_eq!(get_as(&apache, "/basic/file.txt", "spy", "wrong").status, 401);
    assert_eq!(get_as(&apache, "/basic/file.txt", "outsider", "x").status, 401);
    assert_no_crash(&apache.error_log());
}

#[test]
fn no_python_in_the_apache_children_is_a_500() {
    let dir = TestDir::new("auth-restrict-embedded");
    let auth = dir.write("apps/auth.wsgi", AUTH_SCRIPT).to_string_lossy().into_owned();
    dir.write("htdocs/basic/file.txt", "static basic\n");
    let extra = format!("WSGIRestrictEmbedded On\n{}", basic_location("/basic", &auth, "Require valid-user"));
    let apache = Apache::start(dir, &auth_modules(Conf::new(Mpm::Event)).extra(&extra), &[]);
    assert_eq!(get_as(&apache, "/basic/file.txt", "spy", "secret").status, 500);
    log_has(&apache, &format!("cannot run WSGI script {auth}: Python is not available in this process"));
}

#[test]
fn bad_configuration_fails_the_config_test() {
    let cases: [(&str, &str); 8] = [
        (
            "<Location /x>\n  WSGIAuthUserScript /srv/auth.wsgi process-group=site\n</Location>",
            "WSGIAuthUserScript: no WSGIDaemonProcess defines a group named 'site'",
        ),
        (
            "<Location /x>\n  WSGIAccessScript /srv/a.wsgi process-group=%{SERVER}\n</Location>",
            "WSGIAccessScript: invalid process group '%{SERVER}'",
        ),
        (
            "<VirtualHost 127.0.0.1:9>\n  ServerName other.test\n  WSGIDaemonProcess hosted\n</VirtualHost>\n\
             <Location /x>\n  WSGIAuthGroupScript /srv/auth.wsgi process-group=hosted\n</Location>",
            "WSGIAuthGroupScript: group 'hosted' is defined in the virtual host other.test",
        ),
        ("<Location /x>\n  WSGIAccessScript access.wsgi\n</Location>", "WSGIAccessScript: script path 'access.wsgi' must be absolute"),
        ("<Location /x>\n  WSGIAuthGroupScript /a.wsgi callable-object=f\n</Location>", "WSGIAuthGroupScript: unknown option 'callable-object=f'"),
        ("WSGIAuthUserScript /srv/auth.wsgi", "WSGIAuthUserScript not allowed here"),
        ("<Location /x>\n  WSGIGroupAuthoritative maybe\n</Location>", "WSGIGroupAuthoritative: invalid value 'maybe'; expected On or Off"),
        (
            "<Location /x>\n  AuthType Basic\n  AuthName x\n  AuthBasicProvider wsgi\n  Require wsgi-group\n</Location>",
            "Require wsgi-group: expected one or more group names",
        ),
    ];
    for (text, expected) in cases {
        let conf = auth_modules(Conf::new(Mpm::Event)).extra(text);
        let (code, out, _, _) = apache_config_test_conf(&conf);
        assert_eq!(code, 1, "{text}: {out}");
        assert!(out.contains(expected), "{text}: expected {expected:?} in {out}");
    }
    // The checks run in the Apache children, whose one interpreter an embedded
    // application of another group would need too.
    let conf = auth_modules(Conf::new(Mpm::Event)).extra(
        "WSGIScriptAlias /app /srv/app.wsgi application-group=site\n\
         <Location /x>\n  WSGIAuthUserScript /srv/auth.wsgi\n</Location>",
    );
    let (code, out, _, _) = apache_config_test_conf(&conf);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("application groups 'site'") && out.contains("'%{GLOBAL}' (WSGIAuthUserScript"), "{out}");
    let conf = auth_modules(Conf::new(Mpm::Event)).extra(
        "WSGIScriptAlias /app /srv/app.wsgi application-group=site\n\
         <Location /x>\n  WSGIAuthUserScript /srv/auth.wsgi application-group=site\n  \
         WSGIGroupAuthoritative Off\n</Location>",
    );
    let (code, out, _, _) = apache_config_test_conf(&conf);
    assert_eq!(code, 0, "{out}");
    // In a daemon process group, the script's application group is that group's.
    let conf = auth_modules(Conf::new(Mpm::Event)).extra(
        "WSGIDaemonProcess checker\n\
         WSGIScriptAlias /app /srv/app.wsgi process-group=checker application-group=site\n\
         <Location /x>\n  WSGIAuthUserScript /srv/auth.wsgi process-group=checker\n</Location>",
    );
    let (code, out, _, _) = apache_config_test_conf(&conf);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("application groups 'site'") && out.contains("'%{GLOBAL}' (WSGIAuthUserScript"), "{out}");
    let conf = auth_modules(Conf::new(Mpm::Event)).extra(
        "WSGIDaemonProcess checker\n\
         WSGIScriptAlias /app /srv/app.wsgi application-group=site\n\
         <Location /x>\n  WSGIAuthUserScript /srv/auth.wsgi process-group=checker\n</Location>",
    );
    let (code, out, _, _) = apache_config_test_conf(&conf);
    assert_eq!(code, 0, "{out}");
}

// ---------------------------------------------------------------------------------------
// process-group=: the checks run in a daemon process group

/// A site whose every check runs in the daemon process group `checker_MPM` (as
/// `nobody` when the tests run as root), with `WSGIRestrictEmbedded On`: the Apache
/// children have no Python, so any answer came from the daemon. `orphaned_MPM` is a
/// group to make unreachable. (Named per MPM: the tests find daemons by title.)
fn start_daemon_site(mpm: Mpm) -> Site {
    let (checker, orphaned) = (format!("checker_{}", mpm.name()), format!("orphaned_{}", mpm.name()));
    let dir = TestDir::new(&format!("auth-daemon-{}", mpm.name()));
    let auth = dir.write("apps/auth.wsgi", AUTH_SCRIPT).to_string_lossy().into_owned();
    let raising = dir.write("apps/raising.wsgi", RAISING_SCRIPT).to_string_lossy().into_owned();
    let access = dir.write("apps/access.wsgi", ACCESS_SCRIPT).to_string_lossy().into_owned();
    let missing = dir.p("apps/no-such-script.wsgi");
    for area in ["basic", "digest", "groups", "raises", "missing", "access", "orphaned"] {
        dir.write(&format!("htdocs/{area}/file.txt"), format!("static {area}\n"));
    }
    let user = if running_as_root() { " user=nobody group=nogroup" } else { "" };
    let pg = format!("process-group={checker}");
    let mut extra = format!(
        "WSGIRestrictEmbedded On\n\
         WSGIDaemonProcess {checker} processes=1 threads=2 display-name=%{{GROUP}}{user}\n\
         WSGIDaemonProcess {orphaned} processes=1 threads=1 connect-timeout=1 display-name=%{{GROUP}}\n"
    );
    extra.push_str(&basic_location("/basic", &format!("{auth} {pg}"), "Require valid-user"));
    extra.push_str(&format!(
        "<Location /digest>\n  AuthType Digest\n  AuthName \"Python realm\"\n  AuthDigestProvider wsgi\n  \
         WSGIAuthUserScript {auth} {pg}\n  Require valid-user\n</Location>\n"
    ));
    extra.push_str(&basic_location(
        "/groups",
        &format!("{auth} {pg}"),
        &format!("WSGIAuthGroupScript {auth} {pg}\n  Require wsgi-group agents \"secret service\""),
    ));
    extra.push_str(&basic_location("/raises", &format!("{raising} {pg}"), "Require valid-user"));
    extra.push_str(&basic_location("/missing", &format!("{missing} {pg}"), "Require valid-user"));
    extra.push_str(&format!("<Location /access>\n  WSGIAccessScript {access} {pg}\n</Location>\n"));
    extra.push_str(&format!("<Location /orphaned>\n  WSGIAccessScript {access} process-group={orphaned}\n</Location>\n"));
    let conf = auth_modules(Conf::new(mpm)).extra(&extra);
    let apache = Apache::start(dir, &conf, &[]);
    Site { apache, auth, raising, missing, access }
}

fn checks_in_a_daemon_process_group(mpm: Mpm) {
    let site = start_daemon_site(mpm);
    let (checker, orphaned) = (format!("checker_{}", mpm.name()), format!("orphaned_{}", mpm.name()));
    let a = &site.apache;
    let mut c = Checks::new(format!("checks in a daemon process group ({})", mpm.name()));
    c.run("Basic: right, wrong and unknown", || {
        assert_eq!(a.get("/basic/file.txt").status, 401);
        let r = get_as(a, "/basic/file.txt", "spy", "secret");
        assert_eq!((r.status, r.text().as_str()), (200, "static basic\n"));
        assert_eq!(get_as(a, "/basic/file.txt", "spy", "wrong").status, 401);
        log_has(a, "user spy: authentication failure for \"/basic/file.txt\": Password Mismatch");
        assert_eq!(get_as(a, "/basic/file.txt", "nobody", "x").status, 401);
        log_has(a, "user nobody not found: /basic/file.txt");
    });
    c.run("run by the daemon, as its user, its group in the environ", || {
        assert_eq!(get_as(a, "/basic/file.txt", "whoruns", "x").status, 200);
        let log = log_has(a, "CHECKED BY uid=");
        let line = log.lines().rev().find(|l| l.contains("CHECKED BY uid=")).unwrap();
        let field = |name: &str| line.split(&format!("{name}=")).nth(1).and_then(|v| v.split(' ').next()).unwrap();
        if running_as_root() {
            assert_eq!(field("uid"), "65534", "{line}");
        }
        let pid: u32 = field("pid").parse().unwrap();
        assert_eq!(daemons_titled(&checker), vec![pid], "{line}");
        assert!(!a.child_pids().contains(&pid), "{line}");
        assert_eq!(field("process_group"), format!("'{checker}'"), "{line}");
        // Relayed to the Apache child, which logs it with the client's address.
        assert!(line.contains("[client 127.0.0.1:"), "{line}");
    });
    c.run("Digest: right and wrong", || {
        assert_eq!(digest_status(a, "/digest/file.txt", "spy", "secret"), 200);
        assert_eq!(digest_status(a, "/digest/file.txt", "spy", "wrong"), 401);
        assert_eq!(digest_status(a, "/digest/file.txt", "nobody", "x"), 401);
    });
    c.run("groups: members, others, a raising groups_for_user", || {
        assert_eq!(get_as(a, "/groups/file.txt", "spy", "secret").status, 200);
        assert_eq!(get_as(a, "/groups/file.txt", "m", "moneypenny").status, 200);
        assert_eq!(get_as(a, "/groups/file.txt", "outsider", "x").status, 401);
        log_has(a, "Require wsgi-group: user 'outsider' is not a member of the required groups");
        raising_groups_for_user(&site);
    });
    failing_authentication_scripts(&mut c, &site);
    c.run("access: True, None, False, raising", || {
        assert_eq!(a.get("/access/file.txt?allow").status, 200);
        assert_eq!(a.get("/access/file.txt?none").status, 200);
        assert_eq!(a.get("/access/file.txt?deny").status, 403);
        log_has(a, &format!("client denied by WSGI access script {}", site.access));
        assert_eq!(a.get("/access/file.txt?raise").status, 403);
        log_has(a, "ValueError: access store unavailable");
    });
    c.run("the daemon gone during the check: 500, logged; then a new daemon answers", || {
        let before = daemons_titled(&checker);
        assert_eq!(get_as(a, "/basic/file.txt", "crash", "x").status, 500);
        log_has(a, "ended the connection during the authentication check (script");
        wait_for("a new checker daemon", Duration::from_secs(30), || {
            let now = daemons_titled(&checker);
            now.len() == 1 && now != before
        });
        assert_eq!(get_as(a, "/basic/file.txt", "spy", "secret").status, 200);
    });
    c.run("an unreachable group: 503 for the access check, logged", || {
        let daemon = daemons_titled(&orphaned);
        assert_eq!(daemon.len(), 1, "{daemon:?}");
        let supervisor = parent_of(daemon[0]).expect("the daemon's parent");
        run_ok("/bin/kill", &["-KILL", &supervisor.to_string()], Path::new("/"), &[]);
        wait_for("the orphaned daemon to exit", Duration::from_secs(10), || daemons_titled(&orphaned).is_empty());
        assert_eq!(a.get("/orphaned/file.txt?allow").status, 503);
        log_has(a, &format!("cannot reach daemon process group '{orphaned}'"));
        log_has(a, &format!("for {}: Connection refused", site.access));
    });
    c.finish();
    assert_no_crash(&a.error_log());
}

#[test]
fn checks_in_a_daemon_process_group_event() {
    checks_in_a_daemon_process_group(Mpm::Event);
}

#[test]
fn checks_in_a_daemon_process_group_prefork() {
    checks_in_a_daemon_process_group(Mpm::Prefork);
}

// ---------------------------------------------------------------------------------------
// Django's "Authenticating against Django's user database from Apache"

const DJANGO_USERS: &str = r#"
from django.contrib.auth.models import Group, User
agents = Group.objects.create(name="secret-agents")
User.objects.create_user("bond", password="shaken not stirred").groups.add(agents)
User.objects.create_user("clerk", password="paperwork")
User.objects.create_user("retired", password="old times", is_active=False).groups.add(agents)
"#;

/// The WSGI script of Django's guide: the application, and the handlers the
/// auth directives call, from one file. The handlers are imported after
/// get_wsgi_application(), which sets Django up: the module reads the user
/// model when it is imported (the guide's order, import first, raises
/// AppRegistryNotReady under any mod_wsgi).
const DJANGO_WSGI: &str = r#"import os

os.environ["DJANGO_SETTINGS_MODULE"] = "mysite.settings"

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

from django.contrib.auth.handlers.modwsgi import check_password, groups_for_user  # noqa: E402,F401
"#;

#[test]
fn django_user_table_through_modwsgi_handlers() {
    let frameworks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/frameworks");
    let venv = cached_venv(&frameworks.join("requirements.txt")).to_string_lossy().into_owned();
    let dir = TestDir::new("auth-django");
    let django = dir.path().join("sites/django_site");
    copy_tree(&frameworks.join("django_site"), &django);
    dir.write("sites/django_site/mysite/wsgi.py", DJANGO_WSGI);
    let django_s = django.to_string_lossy().into_owned();
    fs::create_dir_all(django.join("db")).unwrap();
    let python = format!("{venv}/bin/python");
    run_ok(&python, &["manage.py", "migrate", "--noinput", "-v", "0"], &django, &[]);
    run_ok(&python, &["manage.py", "shell", "-c", DJANGO_USERS], &django, &[]);
    run_ok(&python, &["manage.py", "collectstatic", "--noinput", "-v", "0"], &django, &[]);
    chown_www_recursive(&django.join("db"));
    let wsgi = format!("{django_s}/mysite/wsgi.py");
    let static_root = format!("{django_s}/static_root");
    let extra = format!(
        "WSGIPythonHome {venv}\n\
         WSGIPythonPath {django_s}\n\
         WSGIScriptAlias / {wsgi}\n\
         WSGIProcessGroup %{{GLOBAL}}\n\
         WSGIApplicationGroup %{{GLOBAL}}\n\
         <Directory {django_s}/mysite>\n  <Files wsgi.py>\n    Require all granted\n  </Files>\n</Directory>\n\
         <Location \"/runtime/\">\n  AuthType Basic\n  AuthName \"Top Secret\"\n  Require valid-user\n  \
         AuthBasicProvider wsgi\n  WSGIAuthUserScript {wsgi}\n</Location>\n\
         Alias /static/ {static_root}/\n\
         <Directory {static_root}>\n  Require all granted\n</Directory>\n\
         <Location \"/static/\">\n  AuthType Basic\n  AuthName \"Top Secret\"\n  AuthBasicProvider wsgi\n  \
         WSGIAuthUserScript {wsgi}\n  WSGIAuthGroupScript {wsgi}\n  Require wsgi-group secret-agents\n</Location>\n"
    );
    let conf = auth_modules(Conf::new(Mpm::Event))
        .module_before("alias_module", "mod_alias.so")
        .extra(&extra);
    let apache = Apache::start(dir, &conf, &[]);
    let a = &apache;
    let mut c = Checks::new("Django's modwsgi handlers");
    c.run("an open page needs no credentials", || {
        let r = a.get("/");
        assert_eq!((r.status, r.text().as_str()), (200, "Django says hello\n"));
    });
    c.run("valid-user: a Django user with the right password", || {
        assert_eq!(a.get("/runtime/").status, 401);
        let r = get_as(a, "/runtime/", "bond", "shaken not stirred");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json().get("settings_module").as_str(), "mysite.settings");
        assert_eq!(get_as(a, "/runtime/", "clerk", "paperwork").status, 200);
    });
    c.run("wrong password, unknown user, inactive user: 401", || {
        assert_eq!(get_as(a, "/runtime/", "bond", "stirred").status, 401);
        assert_eq!(get_as(a, "/runtime/", "blofeld", "cat").status, 401);
        assert_eq!(get_as(a, "/runtime/", "retired", "old times").status, 401);
        log_has(a, "user retired not found");
    });
    c.run("static files served by Apache to the secret-agents group only", || {
        let r = get_as(a, "/static/admin/css/base.css", "bond", "shaken not stirred");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, fs::read(format!("{static_root}/admin/css/base.css")).unwrap());
        assert_eq!(get_as(a, "/static/admin/css/base.css", "clerk", "paperwork").status, 401);
        assert_eq!(a.get("/static/admin/css/base.css").status, 401);
    });
    c.finish();
    assert_no_crash(&a.error_log());
}
