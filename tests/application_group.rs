//! WSGIApplicationGroup and the application-group= options against the real Apache. Each
//! process hosts one application group (its main interpreter is the interpreter mod_wsgi
//! would have given that group): `apache2 -t` refuses a configuration that puts two in one
//! process where the configuration shows it, accepted values are reported in the environ
//! and in `mod_wsgi.application_group` (embedded and in daemon processes, also to import
//! scripts), and a request whose group is only known per request and differs from its
//! process's gets 500 with a log line naming the script and both groups.
//!
//! Run: `cargo test --release --test application_group -- --test-threads=2`.
mod common;
use common::*;
use std::time::Duration;

fn config_test(extra: &str) -> (i32, String, String, String) {
    apache_config_test_conf(&Conf::new(Mpm::Event).extra(extra))
}

fn accepted(c: &mut Checks, name: &str, extra: &str) {
    c.run(&format!("accepted: {name}"), || {
        let (code, out, _, _) = config_test(extra);
        assert_eq!(code, 0, "apache2 -t should accept:\n{extra}\noutput:\n{out}");
        assert!(out.contains("Syntax OK"), "{out}");
    });
}

/// Refused by the check of the whole configuration: one `[wsgi_rs:error]` line with every
/// part (`@@LINE:text@@` in it stands for "line N of FILE" of the line starting with `text`).
fn refused(c: &mut Checks, name: &str, extra: &str, parts: &[&str]) {
    c.run(&format!("refused: {name}"), || {
        let (code, out, text, path) = config_test(extra);
        assert_eq!(code, 1, "apache2 -t should fail for:\n{extra}\noutput:\n{out}");
        assert!(out.contains("AH00014: Configuration check failed"), "{out}");
        let errors: Vec<&str> = out.lines().filter(|l| l.contains("[wsgi_rs:error]")).collect();
        assert_eq!(errors.len(), 1, "{out}");
        for part in parts {
            let part = with_lines(part, &text, &path);
            assert!(errors[0].contains(&part), "{:?} lacks {part:?}", errors[0]);
        }
    });
}

/// `part` with each `@@LINE:text@@` replaced by "line N of FILE".
fn with_lines(part: &str, conf: &str, path: &str) -> String {
    let mut out = String::new();
    let mut rest = part;
    while let Some(start) = rest.find("@@LINE:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "@@LINE:".len()..];
        let end = after.find("@@").expect("an @@LINE: placeholder ends with @@");
        out.push_str(&format!("line {} of {path}", line_of(conf, &after[..end])));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

const SUGGESTION: &str = "so a process can host only one application group: give each application group a \
                          WSGIDaemonProcess of its own and send it there with WSGIProcessGroup or process-group=";

#[test]
fn one_application_group_per_process_at_config_check() {
    let mut c = Checks::new("application groups at apache2 -t");
    accepted(
        &mut c,
        "a named group per daemon group, %{GLOBAL} embedded",
        "WSGIDaemonProcess shop\nWSGIDaemonProcess blog\n\
         WSGIScriptAlias /shop /tmp/shop.wsgi process-group=shop application-group=shop\n\
         WSGIImportScript /tmp/shop.wsgi process-group=shop application-group=shop\n\
         <Location /blog>\n    WSGIProcessGroup blog\n    WSGIApplicationGroup blog\n</Location>\n\
         WSGIScriptAlias /blog /tmp/blog.wsgi\n\
         WSGIScriptAlias /admin /tmp/admin.wsgi application-group=%{GLOBAL}\n\
         WSGIImportScript /tmp/admin.wsgi application-group=%{GLOBAL}",
    );
    accepted(
        &mut c,
        "two scripts, one named group",
        "WSGIScriptAlias /a /tmp/a.wsgi application-group=site\nWSGIScriptAlias /b /tmp/b.wsgi application-group=site",
    );
    accepted(
        &mut c,
        "%{RESOURCE} with one script per daemon group",
        "WSGIDaemonProcess a\nWSGIDaemonProcess b\n\
         WSGIScriptAlias /a /tmp/a.wsgi process-group=a application-group=%{RESOURCE}\n\
         WSGIScriptAlias /b /tmp/b.wsgi process-group=b application-group=%{RESOURCE}",
    );
    accepted(
        &mut c,
        "%{SERVER}, %{HOST} and %{ENV:...}: known per request",
        "<VirtualHost 127.0.0.1:@@PORT@@>\n    ServerName a.test\n    WSGIApplicationGroup %{SERVER}\n</VirtualHost>\n\
         WSGIScriptAlias /h /tmp/h.wsgi application-group=%{HOST}\n\
         <Location /e>\n    WSGIApplicationGroup %{ENV:APP}\n</Location>\n\
         WSGIScriptAlias /e /tmp/e.wsgi application-group=%{ENV:APP}",
    );
    // Which section a request through an alias is in is only known per request once
    // requests are delegated somewhere.
    accepted(
        &mut c,
        "sections without a process group of their own beside delegation",
        "WSGIDaemonProcess a\nWSGIScriptAlias /a /tmp/a.wsgi process-group=a\n\
         <Location /a>\n    WSGIApplicationGroup first\n</Location>\n\
         WSGIScriptAlias /b /tmp/b.wsgi\n<Location /b>\n    WSGIApplicationGroup second\n</Location>",
    );
    refused(
        &mut c,
        "two names in the Apache children",
        "WSGIScriptAlias /a /tmp/a.wsgi application-group=first\n\
         <Location /b>\n    WSGIApplicationGroup second\n</Location>",
        &[
            "WSGIApplicationGroup: application groups 'first' (WSGIScriptAlias, @@LINE:WSGIScriptAlias /a@@) and \
             'second' (WSGIApplicationGroup, @@LINE:    WSGIApplicationGroup second@@) would both run in embedded \
             mode, in every Apache child process",
            SUGGESTION,
        ],
    );
    refused(
        &mut c,
        "%{GLOBAL} and a name in the Apache children",
        "WSGIImportScript /tmp/a.wsgi application-group=%{GLOBAL}\nWSGIApplicationGroup site",
        &["application groups '%{GLOBAL}' (WSGIImportScript, @@LINE:WSGIImportScript@@) and 'site' (WSGIApplicationGroup", "embedded mode"],
    );
    refused(
        &mut c,
        "two names in one daemon group",
        "WSGIDaemonProcess site\n\
         WSGIScriptAlias /a /tmp/a.wsgi process-group=site application-group=first\n\
         <Location /b>\n    WSGIApplicationGroup second\n    WSGIProcessGroup site\n</Location>",
        &["'first' (WSGIScriptAlias, @@LINE:WSGIScriptAlias /a@@) and 'second'", "daemon process group 'site'", SUGGESTION],
    );
    refused(
        &mut c,
        "an import script in another group than its daemon group's requests",
        "WSGIDaemonProcess site\n\
         WSGIImportScript /tmp/a.wsgi process-group=site application-group=%{GLOBAL}\n\
         WSGIScriptAlias /a /tmp/a.wsgi process-group=site application-group=site",
        &["'%{GLOBAL}' (WSGIImportScript, @@LINE:WSGIImportScript@@) and 'site' (WSGIScriptAlias", "daemon process group 'site'"],
    );
    refused(
        &mut c,
        "%{RESOURCE} for two scripts in one daemon group",
        "WSGIDaemonProcess site\n\
         WSGIScriptAlias /a /tmp/a.wsgi process-group=site application-group=%{RESOURCE}\n\
         WSGIScriptAlias /b /tmp/b.wsgi process-group=site application-group=%{RESOURCE}",
        &[
            "WSGIScriptAlias: application groups %{RESOURCE} (the script at /a) (WSGIScriptAlias, @@LINE:WSGIScriptAlias /a@@) \
             and %{RESOURCE} (the script at /b)",
            "daemon process group 'site'",
        ],
    );
    c.finish();
}

fn group_of(apache: &Apache, host: Option<&str>, path: &str) -> Json {
    let host = host.map(|h| format!("{h}:{}", apache.port));
    let headers: Vec<(&str, &str)> = host.iter().map(|h| ("Host", h.as_str())).collect();
    let r = apache.request("GET", path, &headers, b"");
    assert_eq!(r.status, 200, "GET {path}: {}\n{}", short(&r.text()), apache.error_log());
    r.json()
}

/// The group a request reported, everywhere it is visible.
fn assert_reported(j: &Json, group: &str, at_start: Option<&str>) {
    assert_eq!(j.get("environ").as_str(), group, "environ: {j}");
    assert_eq!(j.get("module").as_str(), group, "module: {j}");
    assert_eq!(j.get("at_load").as_str(), group, "when the script was loaded: {j}");
    match at_start {
        Some(name) => assert_eq!(j.get("at_start").as_str(), name, "import script: {j}"),
        None => assert!(matches!(j.get("at_start"), Json::Null), "no import script: {j}"),
    }
}

#[test]
fn accepted_groups_are_reported_in_both_modes() {
    let dir = TestDir::new("appgroup-report");
    let app = dir.install_app("app_group.wsgi", &[]).display().to_string();
    let import = dir.install_app("app_group_import.py", &[]).display().to_string();
    // Group names of this test's own: other tests run daemons side by side.
    let conf = Conf::new(Mpm::Event)
        .module_before("env_module", "mod_env.so")
        .module_before("setenvif_module", "mod_setenvif.so")
        .extra(&format!(
            "WSGIDaemonProcess agr-named threads=2\n\
             WSGIScriptAlias /named {app} process-group=agr-named application-group=shop\n\
             WSGIImportScript {import} process-group=agr-named application-group=shop\n\
             WSGIDaemonProcess agr-global threads=2\n\
             WSGIScriptAlias /global {app} process-group=agr-global application-group=%{{GLOBAL}}\n\
             WSGIDaemonProcess agr-env processes=1 threads=2\n\
             SetEnvIf Request_URI ^/env1 AGR_NAME=first\n\
             SetEnvIf Request_URI ^/env2 AGR_NAME=second\n\
             WSGIScriptAlias /env1 {app} process-group=agr-env application-group=%{{ENV:AGR_NAME}}\n\
             WSGIScriptAlias /env2 {app} process-group=agr-env application-group=%{{ENV:AGR_NAME}}\n\
             WSGIDaemonProcess agr-resource processes=1 threads=2\n\
             WSGIScriptAliasMatch ^/res/(one|two) {app} process-group=agr-resource application-group=%{{RESOURCE}}\n\
             WSGIScriptAlias /embedded {app} process-group=%{{GLOBAL}} application-group=emb\n\
             WSGIImportScript {import} process-group=%{{GLOBAL}} application-group=emb\n\
             WSGIScriptAlias /unset {app}\n\
             <VirtualHost 127.0.0.1:@@PORT@@>\n    ServerName 127.0.0.1\n</VirtualHost>\n\
             <VirtualHost 127.0.0.1:@@PORT@@>\n    ServerName agr.test\n    WSGIDaemonProcess agr-server threads=2\n    \
             WSGIApplicationGroup %{{SERVER}}\n    WSGIScriptAlias /server {app} process-group=agr-server\n</VirtualHost>\n"
        ));
    let apache = Apache::start(dir, &conf, &[]);
    let port = apache.port;
    let mut c = Checks::new("application groups reported");
    let server_group = format!("agr.test:{port}");
    let resource_group = format!("127.0.0.1:{port}|/res/one");
    // (what, Host, path, process group, application group, as the import script saw it)
    let cases = [
        ("a named group in a daemon group, its import script too", None, "/named", "agr-named", "shop", Some("shop")),
        ("%{GLOBAL} in a daemon group", None, "/global", "agr-global", "", None),
        ("%{SERVER} with one virtual host", Some("agr.test"), "/server", "agr-server", server_group.as_str(), None),
        ("%{ENV:...} set by SetEnvIf", None, "/env1", "agr-env", "first", None),
        ("%{RESOURCE}: host:port|SCRIPT_NAME", None, "/res/one", "agr-resource", resource_group.as_str(), None),
        ("a name in embedded mode, its import script too", None, "/embedded", "", "emb", Some("emb")),
    ];
    for (what, host, path, process_group, group, at_start) in cases {
        c.run(what, || {
            let j = group_of(&apache, host, path);
            assert_eq!(j.get("process_group").as_str(), process_group, "{j}");
            assert_reported(&j, group, at_start);
        });
    }
    c.run("no group configured: the process's", || {
        let j = group_of(&apache, None, "/unset");
        assert_reported(&j, "emb", Some("emb"));
    });
    c.run("another %{ENV:...} value in the same daemon -> 500 and the log line", || {
        let r = apache.get("/env2");
        assert_eq!(r.status, 500, "{}", short(&r.text()));
        let want = format!(
            "WSGI script {app} is in application group 'second', but this process already serves application group 'first'"
        );
        wait_line(&apache, Duration::from_secs(5), &[&want, "give each application group a WSGIDaemonProcess of its own"])
            .unwrap();
        // The process keeps serving its own group.
        assert_reported(&group_of(&apache, None, "/env1"), "first", None);
    });
    c.run("another script of a %{RESOURCE} daemon -> 500 naming both resources", || {
        let r = apache.get("/res/two");
        assert_eq!(r.status, 500, "{}", short(&r.text()));
        let want = format!(
            "is in application group '127.0.0.1:{port}|/res/two', but this process already serves application group \
             '127.0.0.1:{port}|/res/one'"
        );
        wait_line(&apache, Duration::from_secs(5), &[&want]).unwrap();
    });
    assert_no_crash(&apache.error_log());
    drop(apache);
    c.finish();
}

#[test]
fn a_second_group_in_an_apache_child_gets_500() {
    let dir = TestDir::new("appgroup-embedded");
    let app = dir.install_app("app_group.wsgi", &[]).display().to_string();
    // One child, so that both requests reach the same process.
    let conf = Conf::new(Mpm::Event)
        .module_before("setenvif_module", "mod_setenvif.so")
        .extra(&format!(
            "StartServers 1\nServerLimit 1\nThreadsPerChild 4\nMaxRequestWorkers 4\nMinSpareThreads 1\nMaxSpareThreads 4\n\
             SetEnvIf Request_URI ^/one AGE_NAME=one\n\
             SetEnvIf Request_URI ^/two AGE_NAME=two\n\
             <Location />\n    WSGIApplicationGroup %{{ENV:AGE_NAME}}\n</Location>\n\
             WSGIScriptAlias /one {app}\nWSGIScriptAlias /two {app}\nWSGIScriptAlias /unset {app}\n"
        ));
    let apache = Apache::start(dir, &conf, &[]);
    let mut c = Checks::new("a second application group in an Apache child");
    c.run("the first group a child serves becomes its group", || {
        assert_reported(&group_of(&apache, None, "/one"), "one", None);
    });
    c.run("a request resolving to another gets 500 and the log line", || {
        let r = apache.get("/two");
        assert_eq!(r.status, 500, "{}", short(&r.text()));
        let want = format!("WSGI script {app} is in application group 'two', but this process already serves application group 'one'");
        wait_line(&apache, Duration::from_secs(5), &[&want]).unwrap();
    });
    c.run("an unset variable names the group as written, as in mod_wsgi", || {
        let r = apache.get("/unset");
        assert_eq!(r.status, 500, "{}", short(&r.text()));
        wait_line(&apache, Duration::from_secs(5), &["is in application group '%{ENV:AGE_NAME}'"]).unwrap();
    });
    assert_no_crash(&apache.error_log());
    drop(apache);
    c.finish();
}
