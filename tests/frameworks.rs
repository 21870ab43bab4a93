//! Real Flask and Django applications, installed from PyPI into a virtual environment
//! made by /usr/bin/python3.11 (pinned in tests/frameworks/requirements.txt and cached
//! under target/framework-venvs/), served through `WSGIPythonHome <venv>` in one Apache
//! per optimisation level: Flask at /flask, the Django site at / with its collected
//! static files served by Apache through `Alias /static/`.
//!
//! At every level both frameworks work completely. What level 2 changes is only that
//! docstrings are gone: the views that report their own `__doc__` get None (asserted
//! below); level 1 and 2 also make `__debug__` False.
mod common;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ADMIN_USER: &str = "admin";
const ADMIN_PASSWORD: &str = "correct horse battery staple";

fn frameworks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/frameworks")
}

fn venv() -> String {
    cached_venv(&frameworks_dir().join("requirements.txt")).to_string_lossy().into_owned()
}

struct Site {
    apache: Apache,
    venv: String,
    django: String,
    static_root: String,
}

/// Copies both applications into a fresh test directory, prepares the Django site
/// (migrate, superuser, collectstatic) with the venv's python, and starts Apache with the
/// configuration the README documents.
fn start_site(level: u8) -> Site {
    let venv = venv();
    let dir = TestDir::new(&format!("frameworks-O{level}"));
    let django = dir.path().join("sites/django_site");
    let flask = dir.path().join("sites/flask_app");
    copy_tree(&frameworks_dir().join("django_site"), &django);
    copy_tree(&frameworks_dir().join("flask_app"), &flask);
    let django_s = django.to_string_lossy().into_owned();
    let flask_s = flask.to_string_lossy().into_owned();

    // The database and its directory belong to www-data (sqlite writes a journal
    // beside the file); manage.py runs as root before Apache starts.
    fs::create_dir_all(django.join("db")).unwrap();
    let python = format!("{venv}/bin/python");
    run_ok(&python, &["manage.py", "migrate", "--noinput", "-v", "0"], &django, &[]);
    run_ok(
        &python,
        &["manage.py", "createsuperuser", "--noinput", "--username", ADMIN_USER, "--email", "admin@example.com"],
        &django,
        &[("DJANGO_SUPERUSER_PASSWORD", ADMIN_PASSWORD)],
    );
    run_ok(&python, &["manage.py", "collectstatic", "--noinput", "-v", "0"], &django, &[]);
    chown_www_recursive(&django.join("db"));
    let static_root = format!("{django_s}/static_root");
    assert!(Path::new(&format!("{static_root}/admin/css/base.css")).is_file(), "collectstatic copied nothing");

    let extra = format!(
        "<Directory />\n    Require all denied\n</Directory>\n\
         TypesConfig /etc/mime.types\n\
         WSGIPythonOptimize {level}\n\
         WSGIPythonHome {venv}\n\
         WSGIPythonPath {django_s}:{flask_s}\n\
         Alias /static/ {static_root}/\n\
         <Directory {static_root}>\n    Require all granted\n</Directory>\n\
         WSGIScriptAlias /flask {flask_s}/flask.wsgi\n\
         <Directory {flask_s}>\n    Require all granted\n</Directory>\n\
         WSGIScriptAlias / {django_s}/mysite/wsgi.py\n\
         <Directory {django_s}/mysite>\n    <Files wsgi.py>\n        Require all granted\n    </Files>\n</Directory>\n"
    );
    let conf = Conf::new(Mpm::Event)
        .module_before("alias_module", "mod_alias.so")
        .module_before("mime_module", "mod_mime.so")
        .extra(&extra);
    let apache = Apache::start(dir, &conf, &[]);
    let is_init = |l: &str, pid: u32| parse_init_line(l).map(|i| i.pid == pid).unwrap_or(false);
    let (_, log) = apache.wait_children_logged(Duration::from_secs(15), is_init);
    let inits = init_lines(&log);
    assert!(!inits.is_empty(), "no startup line:\n{log}");
    for i in &inits {
        assert_eq!(i.optimize, level as u32, "{}", i.line);
        assert!(i.line.contains(&format!("home {venv} (virtual environment)")), "{}", i.line);
    }
    Site { apache, venv, django: django_s, static_root }
}

fn json_of(r: &Response, what: &str) -> Json {
    assert!(
        r.header("content-type").unwrap_or("").starts_with("application/json"),
        "{what}: Content-Type {:?}, status {}, body {}",
        r.header("content-type"),
        r.status,
        r.text()
    );
    r.json()
}

// ---------------------------------------------------------------------------------------
// Flask

fn flask_checks(site: &Site, level: u8, checks: &mut Checks) {
    let a = &site.apache;
    checks.run("flask: index and a path parameter", || {
        let r = a.get("/flask/");
        assert_eq!((r.status, r.text().as_str()), (200, "Flask says hello\n"));
        let r = a.get("/flask/hello/W%C3%B6rld");
        assert_eq!((r.status, r.text().as_str()), (200, "Hello, Wörld!\n"));
        let r = a.get("/flask/items/21");
        let j = json_of(&r, "items");
        assert_eq!((j.get("id").as_i64(), j.get("double").as_i64()), (21, 42));
        // A converter that does not match is Flask's 404 (through the custom handler).
        let r = a.get("/flask/items/abc");
        assert_eq!(r.status, 404);
    });
    checks.run("flask: query string", || {
        let r = a.get("/flask/search?q=caf%C3%A9+au+lait&n=42&tag=a&tag=b%26c");
        assert_eq!(r.status, 200, "{}", r.text());
        let j = json_of(&r, "search");
        assert_eq!(j.get("q").as_str(), "café au lait");
        assert_eq!(j.get("n").as_i64(), 42);
        assert_eq!(j.get("tags").str_list(), vec!["a".to_string(), "b&c".to_string()]);
        assert_eq!(j.get("script_root").as_str(), "/flask");
        assert_eq!(j.get("path").as_str(), "/search");
    });
    checks.run("flask: JSON in and out", || {
        let body = r#"{"name": "Zoë", "numbers": [1, 2, 3, 4.5], "nested": {"ok": true}}"#;
        let r = a.request("POST", "/flask/api/echo", &[("Content-Type", "application/json")], body.as_bytes());
        assert_eq!(r.status, 201, "{}", r.text());
        let j = json_of(&r, "echo");
        assert_eq!(j.get("received").get("name").as_str(), "Zoë");
        assert!(j.get("received").get("nested").get("ok").as_bool());
        assert_eq!(j.get("total"), &Json::Num(10.5));
        assert_eq!(j.get("method").as_str(), "POST");
        // Malformed JSON: Flask's 400.
        let r = a.request("POST", "/flask/api/echo", &[("Content-Type", "application/json")], b"{not json");
        assert_eq!(r.status, 400, "{}", r.text());
    });
    checks.run("flask: form POST", || {
        let body = form_urlencode(&[("name", "Jürgen"), ("colour", "red"), ("colour", "blue"), ("note", "a b&c=d")]);
        let r = a.request(
            "POST",
            "/flask/form",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let f = json_of(&r, "form");
        let f = f.get("fields");
        assert_eq!(f.get("name").str_list(), vec!["Jürgen"]);
        assert_eq!(f.get("colour").str_list(), vec!["red", "blue"]);
        assert_eq!(f.get("note").str_list(), vec!["a b&c=d"]);
    });
    checks.run("flask: multipart upload of several MiB", || {
        let big = pseudo_random_bytes(6 * 1024 * 1024 + 123, 0x5eed);
        let small = b"small text file\r\nsecond line\n".to_vec();
        let (body, ctype) = multipart_body(&[
            Part::Field("description", "two files"),
            Part::File("data", "big.bin", "application/octet-stream", &big),
            Part::File("data", "notes.txt", "text/plain", &small),
        ]);
        let r = http_request(a.port, "POST", "/flask/upload", &[("Content-Type", &ctype)], &body, Duration::from_secs(60))
            .expect("upload");
        assert_eq!(r.status, 200, "{}", r.text());
        let j = json_of(&r, "upload");
        assert_eq!(j.get("fields").get("description").as_str(), "two files");
        let files = j.get("files").as_arr();
        assert_eq!(files.len(), 2, "{j}");
        for (f, (name, ctype, data)) in files.iter().zip([
            ("big.bin", "application/octet-stream", &big),
            ("notes.txt", "text/plain", &small),
        ]) {
            assert_eq!(f.get("field").as_str(), "data");
            assert_eq!(f.get("filename").as_str(), name);
            assert_eq!(f.get("content_type").as_str(), ctype);
            assert_eq!(f.get("size").as_i64(), data.len() as i64, "{name}");
            assert_eq!(f.get("sha256").as_str(), sha256_hex(data), "{name}: checksum differs");
        }
    });
    checks.run("flask: streamed response", || {
        let n = 3000;
        let r = a.get(&format!("/flask/stream?n={n}"));
        assert_eq!(r.status, 200);
        assert!(r.header("content-length").is_none(), "a generator response has no length: {:?}", r.headers);
        assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{:?}", r.headers);
        let text = r.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), n);
        assert_eq!(lines[0], format!("line 1 of {n}"));
        assert_eq!(lines[n - 1], format!("line {n} of {n}"));
    });
    checks.run("flask: cookies", || {
        let r = a.get("/flask/cookie/set?flavour=ginger");
        assert_eq!(r.status, 200);
        assert_eq!(set_cookie(&r, "flavour"), "ginger");
        let r = a.request("GET", "/flask/cookie/get", &[("Cookie", "flavour=ginger")], b"");
        assert_eq!(json_of(&r, "cookie").get("flavour").as_str(), "ginger");
        let r = a.get("/flask/cookie/get");
        assert_eq!(json_of(&r, "cookie").get("flavour"), &Json::Null);
    });
    checks.run("flask: signed session across requests", || {
        let r = a.get("/flask/session/set?value=s3cret");
        assert_eq!(r.status, 200, "{}", r.text());
        let setc = r.headers_all("set-cookie").join(" | ");
        assert!(setc.contains("HttpOnly"), "{setc}");
        let cookie = format!("session={}", set_cookie(&r, "session"));
        let r = a.request("GET", "/flask/session/get", &[("Cookie", &cookie)], b"");
        let j = json_of(&r, "session");
        assert_eq!((j.get("value").as_str(), j.get("count").as_i64()), ("s3cret", 1));
        let r = a.request("GET", "/flask/session/set?value=again", &[("Cookie", &cookie)], b"");
        let cookie2 = format!("session={}", set_cookie(&r, "session"));
        let r = a.request("GET", "/flask/session/get", &[("Cookie", &cookie2)], b"");
        let j = json_of(&r, "session");
        assert_eq!((j.get("value").as_str(), j.get("count").as_i64()), ("again", 2));
        // A tampered cookie is not trusted.
        let bad = format!("{}x", cookie2);
        let r = a.request("GET", "/flask/session/get", &[("Cookie", &bad)], b"");
        assert_eq!(json_of(&r, "session").get("value"), &Json::Null);
    });
    checks.run("flask: error handlers", || {
        let r = a.get("/flask/teapot");
        assert_eq!(r.status, 418);
        let j = json_of(&r, "teapot");
        assert_eq!((j.get("error").as_str(), j.get("detail").as_str()), ("teapot", "short and stout"));
        let r = a.get("/flask/no/such/page");
        assert_eq!(r.status, 404);
        let j = json_of(&r, "404");
        assert_eq!((j.get("error").as_str(), j.get("path").as_str()), ("not found", "/no/such/page"));
        let r = a.get("/flask/forbidden");
        assert_eq!(r.status, 403);
        let r = a.get("/flask/crash");
        assert_eq!(r.status, 500);
        assert!(r.text().contains("Internal Server Error"), "{}", r.text());
        // Flask logs the exception to wsgi.errors, i.e. Apache's error log.
        let (found, log) = a.wait_log(Duration::from_secs(5), |l| l.contains("RuntimeError: flask view crashed on purpose"));
        assert!(found, "Flask's traceback not in the error log:\n{log}");
    });
    checks.run("flask: runtime at this optimisation level", || {
        let j = json_of(&a.get("/flask/runtime"), "runtime");
        assert_eq!(j.get("optimize").as_i64(), level as i64);
        assert_eq!(j.get("debug").as_bool(), level == 0, "__debug__");
        assert_eq!(j.get("prefix").as_str(), site.venv);
        assert!(j.get("flask_file").as_str().starts_with(&format!("{}/lib/python3.11/site-packages/flask/", site.venv)));
        if level < 2 {
            assert_eq!(j.get("view_doc").as_str(), "Reports the interpreter settings the application runs under.");
            assert!(j.get("module_doc").as_str().starts_with("A small Flask application"));
        } else {
            // -OO: docstrings are removed, as documented; the app keeps working.
            assert_eq!(j.get("view_doc"), &Json::Null, "{j}");
            assert_eq!(j.get("module_doc"), &Json::Null, "{j}");
        }
    });
}

// ---------------------------------------------------------------------------------------
// Django

/// The value of `name="csrfmiddlewaretoken" value="..."` in a form.
fn csrf_token_in(html: &str) -> String {
    let key = "name=\"csrfmiddlewaretoken\" value=\"";
    let i = html.find(key).unwrap_or_else(|| panic!("no csrfmiddlewaretoken in:\n{html}")) + key.len();
    html[i..].split('"').next().unwrap().to_string()
}

fn django_checks(site: &Site, level: u8, checks: &mut Checks) {
    let a = &site.apache;
    checks.run("django: home and runtime (settings module from wsgi.py)", || {
        let r = a.get("/");
        assert_eq!((r.status, r.text().as_str()), (200, "Django says hello\n"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "Django's middleware ran: {:?}", r.headers);
        let j = json_of(&a.get("/runtime/"), "runtime");
        assert_eq!(j.get("settings_module").as_str(), "mysite.settings");
        assert!(!j.get("settings_debug").as_bool());
        assert_eq!(j.get("optimize").as_i64(), level as i64);
        assert_eq!(j.get("debug").as_bool(), level == 0, "__debug__");
        assert_eq!(j.get("prefix").as_str(), site.venv);
        assert_eq!(j.get("script_name").as_str(), "");
        if level < 2 {
            assert_eq!(j.get("view_doc").as_str(), "Reports the interpreter settings the site runs under.");
        } else {
            assert_eq!(j.get("view_doc"), &Json::Null, "docstrings should be gone at level 2: {j}");
        }
    });
    checks.run("django: 404 and 500 pages with DEBUG False", || {
        let r = a.get("/no/such/page/");
        assert_eq!(r.status, 404);
        assert!(r.text().contains("Custom 404: nothing at /no/such/page/"), "{}", r.text());
        assert!(!r.text().contains("Traceback") && !r.text().contains("URLconf"), "debug page leaked:\n{}", r.text());
        let r = a.get("/crash/");
        assert_eq!(r.status, 500);
        assert!(r.text().contains("Custom 500: the site had a problem"), "{}", r.text());
        assert!(!r.text().contains("crashed on purpose"), "the exception leaked to the client");
        let (found, log) = a.wait_log(Duration::from_secs(5), |l| l.contains("RuntimeError: django view crashed on purpose"));
        assert!(found, "Django's error log record not in Apache's error log:\n{log}");
        // A host not in ALLOWED_HOSTS is refused by Django.
        let r = a.request("GET", "/", &[("Host", "evil.example")], b"");
        assert_eq!(r.status, 400);
    });
    checks.run("django: admin login page, CSRF, login, admin pages", || {
        let r = a.get("/admin/");
        assert_eq!(r.status, 302);
        assert_eq!(r.header("location"), Some("/admin/login/?next=/admin/"));
        let r = a.get("/admin/login/?next=/admin/");
        assert_eq!(r.status, 200);
        let html = r.text();
        assert!(html.contains("<title>Log in | Django site admin</title>"), "{html}");
        assert!(html.contains("href=\"/static/admin/css/base.css\""), "{html}");
        let csrf_cookie = set_cookie(&r, "csrftoken");
        let token = csrf_token_in(&html);
        let login = |password: &str, cookie: Option<&str>| {
            let body = form_urlencode(&[
                ("csrfmiddlewaretoken", &token),
                ("username", ADMIN_USER),
                ("password", password),
                ("next", "/admin/"),
            ]);
            let cookie_h = cookie.map(|c| format!("csrftoken={c}"));
            let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
            if let Some(c) = &cookie_h {
                headers.push(("Cookie", c));
            }
            a.request("POST", "/admin/login/?next=/admin/", &headers, body.as_bytes())
        };
        // Without the CSRF cookie: refused.
        let r = login(ADMIN_PASSWORD, None);
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(r.text().contains("CSRF verification failed"), "{}", r.text());
        // Wrong password: the form again, with Django's message.
        let r = login("wrong password", Some(&csrf_cookie));
        assert_eq!(r.status, 200);
        assert!(r.text().contains("Please enter the correct username and password"), "{}", r.text());
        // Right password: redirect and a session.
        let r = login(ADMIN_PASSWORD, Some(&csrf_cookie));
        assert_eq!(r.status, 302, "{}", r.text());
        assert_eq!(r.header("location"), Some("/admin/"));
        let session = set_cookie(&r, "sessionid");
        let csrf_after = set_cookies(&r)
            .into_iter()
            .find(|(k, _)| k == "csrftoken")
            .map(|(_, v)| v)
            .unwrap_or(csrf_cookie.clone());
        let cookies = format!("csrftoken={csrf_after}; sessionid={session}");
        let r = a.request("GET", "/admin/", &[("Cookie", &cookies)], b"");
        assert_eq!(r.status, 200);
        assert!(r.text().contains("Site administration"), "{}", r.text());
        let r = a.request("GET", "/admin/auth/user/", &[("Cookie", &cookies)], b"");
        assert_eq!(r.status, 200);
        assert!(r.text().contains(&format!(">{ADMIN_USER}</a>")), "the user list lacks {ADMIN_USER}");
        // Log out (a POST with the token from a page) ends the session.
        let page = a.request("GET", "/admin/password_change/", &[("Cookie", &cookies)], b"");
        assert_eq!(page.status, 200);
        let token = csrf_token_in(&page.text());
        let body = form_urlencode(&[("csrfmiddlewaretoken", &token)]);
        let r = a.request(
            "POST",
            "/admin/logout/",
            &[("Cookie", &cookies), ("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().contains("Logged out"), "{}", r.text());
        let r = a.request("GET", "/admin/", &[("Cookie", &cookies)], b"");
        assert_eq!(r.status, 302, "the session survived logout");
    });
    checks.run("django: static files served by Apache", || {
        let want = fs::read(format!("{}/admin/css/base.css", site.static_root)).unwrap();
        let r = a.get("/static/admin/css/base.css");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, want, "static file body differs");
        assert_eq!(r.header("content-type"), Some("text/css"));
        assert!(r.header("etag").is_some() && r.header("last-modified").is_some(), "{:?}", r.headers);
        assert!(r.header("x-frame-options").is_none(), "went through Django: {:?}", r.headers);
        let r = a.get("/static/admin/img/icon-yes.svg");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("image/svg+xml"));
        let r = a.get("/static/admin/css/no-such.css");
        assert_eq!(r.status, 404);
        assert!(!r.text().contains("Custom 404"), "a missing static file reached Django");
        // Only the collected files are exposed: the project itself is not.
        let r = a.get("/static/../mysite/settings.py");
        assert_ne!(r.status, 200, "{}", r.text());
    });
    let _ = &site.django;
}

fn run_level(level: u8) {
    let started = Instant::now();
    let mut site = start_site(level);
    let setup = started.elapsed();
    let mut checks = Checks::new(format!("WSGIPythonOptimize {level}"));
    flask_checks(&site, level, &mut checks);
    django_checks(&site, level, &mut checks);
    let log = site.apache.error_log();
    checks.run("no crash, no failed imports", || {
        assert_no_crash(&log);
        assert!(!log.contains("Python failed to initialise"), "{log}");
        assert!(!log.contains("cannot run WSGI script"), "{log}");
    });
    // Stopping: the children (which imported threading on worker threads, through
    // logging) must exit on SIGTERM rather than be killed by Apache.
    let t = Instant::now();
    site.apache.stop();
    let took = t.elapsed();
    let log = site.apache.error_log();
    checks.run("children exit promptly when Apache stops", || {
        let kills: Vec<&str> = log.lines().filter(|l| l.contains("AH00045") || l.contains("AH00046")).collect();
        assert!(
            kills.is_empty(),
            "children did not exit on SIGTERM (stop took {:.1} s):\n{}",
            took.as_secs_f64(),
            kills.join("\n")
        );
        assert!(took < Duration::from_secs(5), "stop took {:.1} s", took.as_secs_f64());
    });
    eprintln!(
        "[frameworks] level {level}: setup {:.1} s, total {:.1} s",
        setup.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    checks.finish();
}

#[test]
fn flask_and_django_optimize_0() {
    run_level(0);
}

#[test]
fn flask_and_django_optimize_1() {
    run_level(1);
}

#[test]
fn flask_and_django_optimize_2() {
    run_level(2);
}

/// The cached venv is what the tests claim: made from /usr/bin/python3.11, with the
/// pinned versions installed, and its byte code compiled for every level.
#[test]
fn venv_matches_the_pinned_requirements() {
    let venv = venv();
    let cfg = fs::read_to_string(format!("{venv}/pyvenv.cfg")).unwrap();
    assert!(cfg.contains("home = /usr/bin"), "{cfg}");
    assert!(cfg.lines().any(|l| l.starts_with("version = 3.11.")), "{cfg}");
    let freeze = run_ok(&format!("{venv}/bin/python"), &["-m", "pip", "freeze", "--disable-pip-version-check"], Path::new("/"), &[]);
    let reqs = fs::read_to_string(frameworks_dir().join("requirements.txt")).unwrap();
    let mut pinned: Vec<String> = reqs
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.to_ascii_lowercase())
        .collect();
    let mut frozen: Vec<String> = freeze.lines().map(|l| l.trim().to_ascii_lowercase()).collect();
    pinned.sort();
    frozen.sort();
    assert_eq!(frozen, pinned, "the venv holds exactly the pinned packages");
    for tag in ["cpython-311.pyc", "cpython-311.opt-1.pyc", "cpython-311.opt-2.pyc"] {
        let p = format!("{venv}/lib/python3.11/site-packages/django/__pycache__/__init__.{tag}");
        assert!(Path::new(&p).is_file(), "{p} missing");
    }
}
