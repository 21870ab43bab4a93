//! The CGI variables with `WSGIExportCGIVariables` On and Off. The module makes them from
//! the request itself, by Apache's rules, and with On also writes them into Apache's table
//! of the request's environment, where log formats and later modules read them.
//!
//! The first test sends every request twice to the same server, once as it is and once with
//! `X-Unexported: yes`, which an `<If>` turns into `WSGIExportCGIVariables Off`; the two
//! environs must match key for key (what differs by nature between two requests aside). The
//! requests take each of Apache's rules for these variables: headers it renames, drops or
//! keeps out (Proxy, Authorization without `CGIPassAuth`), repeated headers, variables set
//! before under another case, `PATH` from `SetEnv`, an internal redirect (plain and with
//! `QualifyRedirectURL On`), Basic authentication, `CGIVar REQUEST_URI current-uri` and
//! `WSGIPathTranslated Off`. A log format with `%{VAR}e` shows the directive's effect: with
//! Off, Apache's table has no CGI variables. The second test logs every variable of the
//! table for the same requests on this module and on mod_wsgi, which has Apache's own
//! functions write them, and compares the logs.
mod common;
use common::*;
use std::collections::BTreeMap;

/// What differs between any two requests, whatever the directive.
const PER_REQUEST: &[&str] = &["REMOTE_PORT", "mod_wsgi.request_id", "HTTP_X_UNEXPORTED", "X_MARK", "REDIRECT_X_MARK"];

fn environ(apache: &Apache, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8], unexported: bool) -> BTreeMap<String, String> {
    let mut headers = headers.to_vec();
    if unexported {
        headers.push(("X-Unexported", "yes"));
    }
    let r = apache.request(method, path, &headers, body);
    let text = r.text();
    assert!(text.starts_with('{'), "{method} {path} (unexported: {unexported}): {} {}", r.status, short(&text));
    match r.json().get("environ") {
        Json::Obj(entries) => entries
            .iter()
            .filter(|(k, _)| !PER_REQUEST.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
        other => panic!("{path}: environ is not an object: {other}"),
    }
}

/// The environ of a request with and without the directive, compared.
fn same_both_ways(apache: &Apache, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> BTreeMap<String, String> {
    let exported = environ(apache, method, path, headers, body, false);
    let unexported = environ(apache, method, path, headers, body, true);
    let mut differences = Vec::new();
    for key in exported.keys().chain(unexported.keys()).collect::<std::collections::BTreeSet<_>>() {
        let (a, b) = (exported.get(key), unexported.get(key));
        if a != b {
            differences.push(format!("{key}: exported {a:?}, unexported {b:?}"));
        }
    }
    assert!(differences.is_empty(), "{method} {path}: the environs differ:\n  {}", differences.join("\n  "));
    exported
}

/// The locations of the requests below, each taking one of Apache's rules.
const LOCATIONS: &str = "SetEnv RP_SETENV hello-setenv\n\
     <Location /env/pass-auth>\n    CGIPassAuth On\n</Location>\n\
     <Location /env/spellings>\n    SetEnv server_name lower\n    SetEnv Query_String mixed\n    SetEnv gateway_interface old\n    SetEnv PATH /custom/bin\n</Location>\n\
     <Location /env/repeated>\n    RequestHeader add X-Twice one\n    RequestHeader add X-Twice two\n</Location>\n\
     <Location /env/auth>\n    AuthType Basic\n    AuthName probe\n    AuthUserFile @@DIR@@/htpasswd\n    Require valid-user\n</Location>\n\
     <Location /env/pass-authorization>\n    WSGIPassAuthorization On\n</Location>\n\
     <Location /env/current-uri>\n    CGIVar REQUEST_URI current-uri\n</Location>\n\
     <Location /missing>\n    ErrorDocument 404 /env/redirected?from=missing\n</Location>\n\
     <Location /qualified>\n    ErrorDocument 404 /env/qualify?from=qualified\n</Location>\n\
     <Location /env/qualify>\n    QualifyRedirectURL On\n</Location>\n";

/// A server with the environ app at /env, the modules LOCATIONS needs and
/// `extra`.
fn configure(dir: &TestDir, extra: &str) -> Conf {
    let app = dir.install_app("environ.wsgi", &[]).to_string_lossy().into_owned();
    dir.write("htpasswd", "alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n");
    dir.mkdir("htdocs");
    Conf::new(Mpm::Event)
        .module_before("env_module", "mod_env.so")
        .module_before("headers_module", "mod_headers.so")
        .module_before("auth_basic_module", "mod_auth_basic.so")
        .module_before("authn_file_module", "mod_authn_file.so")
        .module_before("authz_user_module", "mod_authz_user.so")
        .extra(&format!("WSGIScriptAlias /env {app}\n{LOCATIONS}{extra}"))
}

#[test]
fn the_environ_is_the_same_with_and_without_exporting() {
    let dir = TestDir::new("environ-unexported");
    let conf = configure(
        &dir,
        "LogFormat \"%U|%{X_MARK}e|%{SCRIPT_NAME}e|%{HTTP_HOST}e|%{GATEWAY_INTERFACE}e|%{PATH_INFO}e\" cgivars\n\
         CustomLog @@DIR@@/cgivars.log cgivars\n\
         <If \"%{HTTP:X-Unexported} == 'yes'\">\n    WSGIExportCGIVariables Off\n    SetEnv X_MARK unexported\n</If>\n\
         <Location /env/untranslated>\n    WSGIPathTranslated Off\n</Location>\n",
    );
    let apache = Apache::start(dir, &conf, &[]);
    let mut c = Checks::new("WSGIExportCGIVariables Off");

    c.run("headers: renamed, dropped, kept out", || {
        let e = same_both_ways(
            &apache,
            "POST",
            "/env/a/b%20c?x=1&y=%2F",
            &[
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Accept-Language", "en, fr;q=0.5"),
                ("X_Underscored", "dropped"),
                ("Proxy", "http://evil.example/"),
                ("Authorization", "Basic YWxpY2U6c2VjcmV0"),
                ("Proxy-Authorization", "Basic YWxpY2U6c2VjcmV0"),
                ("X-Empty", ""),
            ],
            b"body",
        );
        assert_eq!(e.get("CONTENT_TYPE").map(String::as_str), Some("\"text/plain; charset=utf-8\""), "{e:?}");
        assert_eq!(e.get("CONTENT_LENGTH").map(String::as_str), Some("\"4\""), "{e:?}");
        assert_eq!(e.get("HTTP_ACCEPT_LANGUAGE").map(String::as_str), Some("\"en, fr;q=0.5\""), "{e:?}");
        assert!(e.contains_key("PATH_TRANSLATED"), "{e:?}");
        for absent in ["HTTP_X_UNDERSCORED", "HTTP_PROXY", "HTTP_AUTHORIZATION", "HTTP_PROXY_AUTHORIZATION"] {
            assert!(!e.contains_key(absent), "{absent} in {e:?}");
        }
    });
    c.run("CGIPassAuth On passes both authorization headers", || {
        let e = same_both_ways(
            &apache,
            "GET",
            "/env/pass-auth",
            &[("Authorization", "Basic YWxpY2U6c2VjcmV0"), ("Proxy-Authorization", "Basic eA==")],
            b"",
        );
        assert!(e.contains_key("HTTP_AUTHORIZATION") && e.contains_key("HTTP_PROXY_AUTHORIZATION"), "{e:?}");
    });
    c.run("variables set before under another case, and PATH from SetEnv", || {
        let e = same_both_ways(&apache, "GET", "/env/spellings/x?q=2", &[], b"");
        // Apache's table matches names in any case: they take its values.
        assert_eq!(e.get("server_name").map(String::as_str), Some("\"127.0.0.1\""), "{e:?}");
        assert_eq!(e.get("Query_String").map(String::as_str), Some("\"q=2\""), "{e:?}");
        assert_eq!(e.get("gateway_interface").map(String::as_str), Some("\"CGI/1.1\""), "{e:?}");
        // PATH is Apache's search path for CGI programs, never in the environ.
        assert!(!e.contains_key("PATH"), "{e:?}");
    });
    c.run("a header sent twice", || {
        let e = same_both_ways(&apache, "GET", "/env/repeated", &[("X-Twice", "zero")], b"");
        assert!(e.get("HTTP_X_TWICE").is_some_and(|v| v.contains("two")), "{e:?}");
    });
    c.run("Basic authentication: REMOTE_USER and AUTH_TYPE", || {
        let e = same_both_ways(&apache, "GET", "/env/auth", &[("Authorization", "Basic YWxpY2U6c2VjcmV0")], b"");
        assert_eq!(e.get("REMOTE_USER").map(String::as_str), Some("\"alice\""), "{e:?}");
        assert_eq!(e.get("AUTH_TYPE").map(String::as_str), Some("\"Basic\""), "{e:?}");
    });
    c.run("CGIVar REQUEST_URI current-uri", || {
        same_both_ways(&apache, "GET", "/env/current-uri/p?z=3", &[], b"");
    });
    c.run("WSGIPathTranslated Off as well", || {
        let e = same_both_ways(&apache, "GET", "/env/untranslated/p", &[], b"");
        assert!(!e.contains_key("PATH_TRANSLATED"), "{e:?}");
    });
    c.run("an internal redirect (ErrorDocument)", || {
        let e = same_both_ways(&apache, "GET", "/missing/page?orig=1", &[], b"");
        assert_eq!(e.get("REDIRECT_URL").map(String::as_str), Some("\"/missing/page\""), "{e:?}");
        assert_eq!(e.get("REDIRECT_QUERY_STRING").map(String::as_str), Some("\"orig=1\""), "{e:?}");
        assert_eq!(e.get("REDIRECT_STATUS").map(String::as_str), Some("\"404\""), "{e:?}");
    });
    c.run("an internal redirect with QualifyRedirectURL On", || {
        let e = same_both_ways(&apache, "GET", "/qualified/page", &[], b"");
        let url = e.get("REDIRECT_URL").cloned().unwrap_or_default();
        assert!(url.starts_with("\"http://") && url.ends_with("/qualified/page\""), "REDIRECT_URL {url}");
    });
    c.run("Off leaves the CGI variables out of Apache's table (log formats)", || {
        // The requests of the checks above, two each (the server's start-up
        // probe of / and the requests to /env/spellings, with variables set
        // by SetEnv in another case, are left out).
        let log = wait_log_lines(&apache, "cgivars.log", 19);
        let to_script = |mark: &str| -> Vec<String> {
            log.iter()
                .filter_map(|l| l.split_once('|'))
                .filter(|(path, rest)| *path != "/" && !path.starts_with("/env/spellings/") && rest.split('|').next() == Some(mark))
                .map(|(_, rest)| rest.to_owned())
                .collect()
        };
        let (exported, unexported) = (to_script("-"), to_script("unexported"));
        assert!(exported.len() == 8 && unexported.len() == 8, "requests logged: {log:#?}");
        for line in &exported {
            assert!(line.starts_with("-|/env|127.0.0.1:") && line.contains("|CGI/1.1|/"), "exported, logged as {line}");
        }
        for line in &unexported {
            assert_eq!(line, "unexported|-|-|-|-", "unexported: no CGI variables in Apache's table");
        }
        // WSGIPathTranslated Off keeps PATH_INFO from the sub-request only:
        // the table still splits the URI as the environ does.
        let untranslated = log.iter().find(|l| l.starts_with("/env/untranslated/p|-|"));
        assert!(
            untranslated.is_some_and(|l| l.starts_with("/env/untranslated/p|-|/env|") && l.ends_with("|/untranslated/p")),
            "WSGIPathTranslated Off, logged as {untranslated:?}"
        );
    });
    c.finish();
}

/// The access log's lines, once it has at least `n`.
fn wait_log_lines(apache: &Apache, name: &str, n: usize) -> Vec<String> {
    let path = apache.dir.path().join(name);
    let mut lines = Vec::new();
    wait_for(&format!("{n} lines in {name}"), std::time::Duration::from_secs(10), || {
        lines = std::fs::read_to_string(&path).unwrap_or_default().lines().map(str::to_owned).collect();
        lines.len() >= n
    });
    lines
}

/// The variables Apache's two functions put into the request's table, and
/// those the configuration above sets (log formats read names in any case).
const TABLE_VARIABLES: &[&str] = &[
    "CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_HOST", "HTTP_ACCEPT_LANGUAGE", "HTTP_X_UNDERSCORED", "HTTP_PROXY",
    "HTTP_AUTHORIZATION", "HTTP_PROXY_AUTHORIZATION", "HTTP_X_EMPTY", "HTTP_X_TWICE", "PATH", "LD_LIBRARY_PATH",
    "SERVER_SIGNATURE", "SERVER_SOFTWARE", "SERVER_NAME", "SERVER_ADDR", "SERVER_PORT", "REMOTE_HOST", "REMOTE_ADDR",
    "DOCUMENT_ROOT", "REQUEST_SCHEME", "CONTEXT_PREFIX", "CONTEXT_DOCUMENT_ROOT", "SERVER_ADMIN", "SCRIPT_FILENAME",
    "REMOTE_USER", "REDIRECT_REMOTE_USER", "AUTH_TYPE", "REMOTE_IDENT", "REDIRECT_URL", "REDIRECT_QUERY_STRING",
    "REDIRECT_STATUS", "GATEWAY_INTERFACE", "SERVER_PROTOCOL", "REQUEST_METHOD", "QUERY_STRING", "REQUEST_URI",
    "SCRIPT_NAME", "PATH_INFO", "PATH_TRANSLATED", "RP_SETENV",
];

#[test]
fn the_table_holds_what_mod_wsgi_leaves_there() {
    // With WSGIExportCGIVariables On the module puts the CGI variables into
    // Apache's table itself (src/embedded/request_vars.rs) where mod_wsgi
    // calls Apache's functions: a log format naming every one must log the
    // same for each request, the server's own paths and ports aside.
    let format: String = TABLE_VARIABLES.iter().map(|v| format!("|{v}=%{{{v}}}e")).collect();
    let logging = format!("LogFormat \"%m %U%q{format}\" table\nCustomLog @@DIR@@/table.log table\n");
    let start = |side: &str| {
        let dir = TestDir::new(&format!("environ-table-{side}"));
        let conf = configure(&dir, &logging);
        let conf = if side == "ours" {
            conf
        } else {
            conf.without_wsgi()
                .extra("LoadModule wsgi_module /usr/lib/apache2/modules/mod_wsgi.so\nWSGIApplicationGroup %{GLOBAL}\n")
        };
        Apache::start(dir, &conf, &[])
    };
    let (ours, theirs) = (start("ours"), start("mod_wsgi"));
    let auth = ("Authorization", "Basic YWxpY2U6c2VjcmV0");
    let requests: &[(&str, &str, &[(&str, &str)])] = &[
        ("POST", "/env/a/b%20c?x=1&y=%2F", &[
            ("Content-Type", "text/plain"), ("Accept-Language", "en"), ("X_Underscored", "dropped"),
            ("Proxy", "http://evil.example/"), auth, ("Proxy-Authorization", "Basic eA=="), ("X-Empty", ""),
        ]),
        ("GET", "/env", &[]),
        ("GET", "/env/", &[]),
        ("GET", "/env//a//b", &[]),
        ("GET", "/env/pass-authorization", &[auth]),
        ("HEAD", "/env/head", &[]),
        ("GET", "/env/pass-auth/p", &[auth, ("Proxy-Authorization", "Basic eA==")]),
        ("GET", "/env/spellings/x?q=2", &[]),
        ("GET", "/env/repeated", &[("X-Twice", "zero")]),
        ("GET", "/env/auth", &[auth]),
        ("GET", "/env/current-uri/p?z=3", &[]),
        ("GET", "/missing/page?orig=1", &[]),
        ("GET", "/qualified/page", &[]),
    ];
    for (method, path, headers) in requests {
        for server in [&ours, &theirs] {
            let r = server.request(method, path, headers, b"body");
            assert_eq!(r.status, 200, "{method} {path} on port {}", server.port);
        }
    }
    // Both servers' start-up probes of / come first.
    let n = requests.len() + 1;
    let normalised = |server: &Apache| -> Vec<String> {
        let root = server.dir.path().to_string_lossy().into_owned();
        wait_log_lines(server, "table.log", n)
            .iter()
            .filter(|line| !line.starts_with("GET /|"))
            .map(|line| {
                let line = line.replace(&root, "@@DIR@@").replace(&server.port.to_string(), "@@PORT@@");
                // The banner names the module that served it.
                line.split('|')
                    .map(|field| match field.strip_prefix("SERVER_SOFTWARE=") {
                        Some(banner) => format!(
                            "SERVER_SOFTWARE={}",
                            banner.split(' ').filter(|w| !w.starts_with("mod_wsgi")).collect::<Vec<_>>().join(" ")
                        ),
                        None => field.to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    };
    let (ours_log, theirs_log) = (normalised(&ours), normalised(&theirs));
    assert_eq!(ours_log.len(), requests.len(), "{ours_log:#?}");
    let mut differences = Vec::new();
    for (a, b) in ours_log.iter().zip(&theirs_log) {
        let fields = |line: &str| line.split('|').map(str::to_owned).collect::<Vec<_>>();
        let (fa, fb) = (fields(a), fields(b));
        let differing: Vec<String> =
            fa.iter().zip(&fb).filter(|(x, y)| x != y).map(|(x, y)| format!("ours {x}, mod_wsgi {y}")).collect();
        if !differing.is_empty() {
            differences.push(format!("{}:\n    {}", fa[0], differing.join("\n    ")));
        }
    }
    assert!(differences.is_empty(), "the tables differ:\n  {}", differences.join("\n  "));
    // The comparison saw the variables at all.
    assert!(ours_log[0].contains("|GATEWAY_INTERFACE=CGI/1.1|") && ours_log[0].contains("|PATH=/"), "{}", ours_log[0]);
}
