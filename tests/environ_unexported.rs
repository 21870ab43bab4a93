//! `WSGIExportCGIVariables Off`: the environ is made from the request itself instead of
//! being read back out of Apache's table of the request's environment, and must be the
//! same environ. Every request here is sent twice to the same server, once as it is and
//! once with `X-Unexported: yes`, which an `<If>` turns into `WSGIExportCGIVariables Off`;
//! the two environs must match key for key (what differs by nature between two requests
//! aside). The requests take each of Apache's rules for these variables: headers it
//! renames, drops or keeps out (Proxy, Authorization without `CGIPassAuth`), repeated
//! headers, variables set before under another case, `PATH` from `SetEnv`, an internal
//! redirect (plain and with `QualifyRedirectURL On`), Basic authentication, `CGIVar
//! REQUEST_URI current-uri` and `WSGIPathTranslated Off`. A log format with `%{VAR}e`
//! shows the directive's effect: with Off, Apache's table has no CGI variables.
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

#[test]
fn the_environ_is_the_same_with_and_without_exporting() {
    let dir = TestDir::new("environ-unexported");
    let app = dir.install_app("environ.wsgi", &[]).to_string_lossy().into_owned();
    dir.write("htpasswd", "alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n");
    dir.mkdir("htdocs");
    let conf = Conf::new(Mpm::Event)
        .module_before("env_module", "mod_env.so")
        .module_before("headers_module", "mod_headers.so")
        .module_before("auth_basic_module", "mod_auth_basic.so")
        .module_before("authn_file_module", "mod_authn_file.so")
        .module_before("authz_user_module", "mod_authz_user.so")
        .extra(&format!(
            "SetEnv RP_SETENV hello-setenv\n\
             LogFormat \"%U|%{{X_MARK}}e|%{{SCRIPT_NAME}}e|%{{HTTP_HOST}}e|%{{GATEWAY_INTERFACE}}e|%{{PATH_INFO}}e\" cgivars\n\
             CustomLog @@DIR@@/cgivars.log cgivars\n\
             WSGIScriptAlias /env {app}\n\
             <If \"%{{HTTP:X-Unexported}} == 'yes'\">\n    WSGIExportCGIVariables Off\n    SetEnv X_MARK unexported\n</If>\n\
             <Location /env/pass-auth>\n    CGIPassAuth On\n</Location>\n\
             <Location /env/spellings>\n    SetEnv server_name lower\n    SetEnv Query_String mixed\n    SetEnv gateway_interface old\n    SetEnv PATH /custom/bin\n</Location>\n\
             <Location /env/repeated>\n    RequestHeader add X-Twice one\n    RequestHeader add X-Twice two\n</Location>\n\
             <Location /env/auth>\n    AuthType Basic\n    AuthName probe\n    AuthUserFile @@DIR@@/htpasswd\n    Require valid-user\n</Location>\n\
             <Location /env/current-uri>\n    CGIVar REQUEST_URI current-uri\n</Location>\n\
             <Location /env/untranslated>\n    WSGIPathTranslated Off\n</Location>\n\
             <Location /missing>\n    ErrorDocument 404 /env/redirected?from=missing\n</Location>\n\
             <Location /qualified>\n    ErrorDocument 404 /env/qualify?from=qualified\n</Location>\n\
             <Location /env/qualify>\n    QualifyRedirectURL On\n</Location>\n"
        ));
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
