//! Daemon mode's configuration through the real `apache2 -t`: WSGIDaemonProcess and its
//! options, WSGIProcessGroup and the `process-group=` options, WSGISocketPrefix and
//! WSGIRestrictEmbedded. Each bad configuration must fail the check with a message naming
//! the directive, the option and the value; the checks that need the whole configuration
//! (a group that no WSGIDaemonProcess defines, a group of one virtual host named from
//! another) fail it too, from the module's check_config hook. No daemon is started.
//!
//! Run: `cargo test --release --test daemon_config -- --test-threads=2`.
mod common;
use common::*;

const VHOST_A: &str = "a.test";
const VHOST_B: &str = "b.test";

fn config_test(extra: &str) -> (i32, String, String, String) {
    apache_config_test_conf(&Conf::new(Mpm::Event).extra(extra))
}

fn vhost(server_name: &str, body: &str) -> String {
    format!("<VirtualHost 127.0.0.1:@@PORT@@>\n    ServerName {server_name}\n{body}\n</VirtualHost>\n")
}

fn accepted(c: &mut Checks, name: &str, extra: &str) -> String {
    let mut output = String::new();
    c.run(&format!("accepted: {name}"), || {
        let (code, out, _, _) = config_test(extra);
        assert_eq!(code, 0, "apache2 -t should accept:\n{extra}\noutput:\n{out}");
        assert!(out.contains("Syntax OK"), "{out}");
        output = out;
    });
    output
}

/// Refused while the line is read: Apache's syntax-error report pointing at `line` (or
/// the line starting with its text up to a `@@` placeholder), then the message (exactly
/// `message` when it starts with '=', else containing every part).
fn refused_at_line(c: &mut Checks, extra: &str, line: &str, message: &[&str]) {
    c.run(&format!("refused: {}", line.replace('\n', " ")), || {
        let (code, out, text, path) = config_test(extra);
        assert_eq!(code, 1, "apache2 -t should fail for:\n{extra}\noutput:\n{out}");
        assert!(!out.contains("Syntax OK"), "{out}");
        let n = line_of(&text, line.split("@@").next().unwrap());
        let syntax = format!("AH00526: Syntax error on line {n} of {path}:");
        assert!(out.contains(&syntax), "expected {syntax:?} in:\n{out}");
        let reported = out.lines().skip_while(|l| !l.contains(&syntax)).nth(1).unwrap_or_default();
        match message {
            [exact] if exact.starts_with('=') => assert_eq!(reported, &exact[1..], "for:\n{extra}"),
            parts => assert!(parts.iter().all(|p| reported.contains(p)), "{reported:?} lacks one of {parts:?}"),
        }
    });
}

/// Refused once the whole configuration is read: one `[wsgi_rs:error]` line per error,
/// each with every part of `messages` (where `@@LINE:text@@` is the location of the line
/// `text`), and Apache's "Configuration check failed".
fn refused_by_check(c: &mut Checks, name: &str, extra: &str, messages: &[&[&str]]) {
    c.run(&format!("refused by the check: {name}"), || {
        let (code, out, text, path) = config_test(extra);
        assert_eq!(code, 1, "apache2 -t should fail for:\n{extra}\noutput:\n{out}");
        assert!(out.contains("AH00014: Configuration check failed"), "{out}");
        assert!(!out.contains("AH00526"), "a directive was refused, not the check:\n{out}");
        let errors: Vec<&str> = out.lines().filter(|l| l.contains("[wsgi_rs:error]")).collect();
        assert_eq!(errors.len(), messages.len(), "{out}");
        for (line, parts) in errors.iter().zip(messages) {
            for part in *parts {
                let part = match part.strip_prefix("@@LINE:").and_then(|p| p.strip_suffix("@@")) {
                    Some(at) => format!("(line {} of {path})", line_of(&text, at)),
                    None => part.to_string(),
                };
                assert!(line.contains(&part), "{line:?} lacks {part:?}\n{out}");
            }
        }
    });
}

#[test]
fn good_configurations_pass() {
    let mut c = Checks::new("good daemon configurations");
    accepted(&mut c, "a group and WSGIProcessGroup", "WSGIDaemonProcess site\nWSGIProcessGroup site");
    accepted(
        &mut c,
        "every supported option",
        "WSGIDaemonProcess full processes=2 threads=4 user=www-data group=www-data \
         supplementary-groups=www-data,#4242 home=@@DIR@@/htdocs python-home=/usr \
         python-path=@@DIR@@/apps:/tmp display-name=%{GROUP} umask=0007 lang=C.UTF-8 \
         locale=C.UTF-8 listen-backlog=50 socket-user=www-data connect-timeout=5 \
         socket-timeout=30 header-buffer-size=65536 response-buffer-size=131072 \
         send-buffer-size=1024 receive-buffer-size=0 python-optimize=2\n\
         WSGIProcessGroup full",
    );
    accepted(&mut c, "numeric ids and bounds", "WSGIDaemonProcess n user=#33 group=#33 processes=128 threads=1000");
    accepted(&mut c, "quoted values", "WSGIDaemonProcess \"bob:1\" display-name=\"my site %{GROUP}\" python-path='@@DIR@@/apps'");
    accepted(&mut c, "%{GLOBAL} and %{ENV:...}", "WSGIProcessGroup %{GLOBAL}\n<Location /env>\n    WSGIProcessGroup %{ENV:GROUP}\n</Location>");
    accepted(
        &mut c,
        "process-group= options, the group defined after them",
        "WSGIScriptAlias /a /tmp/a.wsgi process-group=later\n\
         WSGIScriptAliasMatch ^/b(.*) /tmp/b.wsgi process-group=later application-group=%{GLOBAL}\n\
         WSGIImportScript /tmp/a.wsgi process-group=later application-group=%{GLOBAL}\n\
         WSGIScriptAlias /c /tmp/c.wsgi process-group=%{ENV:G}\n\
         WSGIDaemonProcess later",
    );
    let same_host = vhost(
        VHOST_A,
        "    WSGIDaemonProcess site-a threads=2\n    WSGIScriptAlias /a /tmp/a.wsgi process-group=site-a\n    \
         WSGIImportScript /tmp/a.wsgi process-group=site-a\n    <Directory /tmp>\n        \
         WSGIProcessGroup site-a\n    </Directory>\n    WSGIProcessGroup shared",
    );
    // The same ServerName on another port (the usual http and https pair).
    let same_name = vhost(VHOST_A, "    WSGIProcessGroup site-a");
    let other = vhost(VHOST_B, "    WSGIScriptAlias /s /tmp/s.wsgi process-group=shared");
    accepted(
        &mut c,
        "virtual-host groups where they are visible",
        &format!("WSGIDaemonProcess shared\n{same_host}{same_name}{other}"),
    );
    // Set outside every <VirtualHost>, it applies in the virtual hosts too, so which
    // host uses it is only known per request.
    accepted(
        &mut c,
        "WSGIProcessGroup of the main server naming a virtual host's group",
        &format!("{}<Directory /tmp>\n    WSGIProcessGroup site-a\n</Directory>", vhost(VHOST_A, "    WSGIDaemonProcess site-a")),
    );
    accepted(&mut c, "WSGISocketPrefix absolute", "WSGISocketPrefix @@DIR@@/run/wsgi");
    accepted(&mut c, "WSGISocketPrefix under ServerRoot", "WSGISocketPrefix run/wsgi");
    accepted(&mut c, "WSGIRestrictEmbedded", "WSGIRestrictEmbedded On\nWSGIRestrictEmbedded off");
    rp_finish(c);
}

#[test]
fn a_user_without_a_home_directory_gets_a_warning_not_a_failure() {
    let mut c = Checks::new("home fallback");
    let out = accepted(&mut c, "user=nobody", "WSGIDaemonProcess n user=nobody");
    c.run("the fallback is explained", || {
        let line = out.lines().find(|l| l.contains("[wsgi_rs:warn]")).unwrap_or_else(|| panic!("no warning:\n{out}"));
        assert!(
            line.ends_with(
                "WSGIDaemonProcess n: the home directory '/nonexistent' of user nobody does not exist or is \
                 not a directory, so the daemon processes start in '/'; set home= to choose their working directory"
            ),
            "{line}"
        );
    });
    let out = accepted(&mut c, "user=nobody home=...", "WSGIDaemonProcess n user=nobody home=@@DIR@@");
    c.run("no warning with home=", || assert!(!out.contains("[wsgi_rs:warn]"), "{out}"));
    rp_finish(c);
}

#[test]
fn bad_option_values_are_refused_naming_option_and_value() {
    let mut c = Checks::new("bad WSGIDaemonProcess values");
    let d = "WSGIDaemonProcess site";
    for (options, message) in [
        ("processes=abc", "=WSGIDaemonProcess site: invalid value 'abc' for processes; expected a whole number from 1 to 128"),
        ("processes=0", "=WSGIDaemonProcess site: invalid value '0' for processes; expected a whole number from 1 to 128"),
        ("processes=129", "invalid value '129' for processes"),
        ("threads=-1", "=WSGIDaemonProcess site: invalid value '-1' for threads; expected a whole number from 1 to 1000"),
        ("threads=0", "invalid value '0' for threads"),
        ("threads=1001", "invalid value '1001' for threads"),
        ("threads=2.5", "invalid value '2.5' for threads"),
        ("listen-backlog=0", "invalid value '0' for listen-backlog; expected a whole number from 1 to 65535"),
        ("connect-timeout=abc", "invalid value 'abc' for connect-timeout; expected a whole number of seconds from 1 to 86400"),
        ("socket-timeout=0", "invalid value '0' for socket-timeout; expected a whole number of seconds"),
        ("header-buffer-size=100", "invalid value '100' for header-buffer-size; expected 0 (the default, 32768) or a whole number of bytes from 8192"),
        ("response-buffer-size=1000", "invalid value '1000' for response-buffer-size; expected 0 (the default, 65536)"),
        ("send-buffer-size=10", "invalid value '10' for send-buffer-size; expected 0 (the system's default) or a whole number of bytes from 512"),
        ("receive-buffer-size=x", "invalid value 'x' for receive-buffer-size"),
        ("umask=0999", "=WSGIDaemonProcess site: invalid value '0999' for umask; expected an octal number from 0000 to 0777, such as 0007"),
        ("python-optimize=3", "=WSGIDaemonProcess site: invalid value '3' for python-optimize; expected 0, 1 or 2"),
        ("python-home=venv", "invalid value 'venv' for python-home; expected an absolute path"),
        ("python-path=/a:lib", "invalid value '/a:lib' for python-path; expected absolute directories separated by ':'"),
        ("display-name=", "invalid value '' for display-name"),
        ("user=no-such-user-here", "=WSGIDaemonProcess site: invalid value 'no-such-user-here' for user; there is no such user"),
        ("user=#4000000000", "invalid value '#4000000000' for user; no user has uid 4000000000"),
        ("user=root", "=WSGIDaemonProcess site: invalid value 'root' for user; daemon processes never run as root (uid 0)"),
        ("group=no-such-group-here", "=WSGIDaemonProcess site: invalid value 'no-such-group-here' for group; there is no group named 'no-such-group-here'"),
        ("supplementary-groups=www-data,no-such-group-here", "invalid value 'www-data,no-such-group-here' for supplementary-groups; there is no group named 'no-such-group-here'"),
        ("socket-user=no-such-user-here", "invalid value 'no-such-user-here' for socket-user; there is no such user"),
        ("home=htdocs", "=WSGIDaemonProcess site: invalid value 'htdocs' for home; expected an absolute path"),
        ("home=@@DIR@@/missing", "for home; it is not an existing directory"),
        ("bogus=1", "WSGIDaemonProcess site: unknown option 'bogus'; expected one of processes, threads, user, group"),
        ("threads", "=WSGIDaemonProcess site: 'threads' is not of the form option=value"),
        ("threads=2 threads=3", "=WSGIDaemonProcess site: option threads is given twice"),
    ] {
        let line = format!("{d} {options}");
        refused_at_line(&mut c, &line, &line, &[message]);
    }
    rp_finish(c);
}

#[test]
fn lifecycle_options_are_checked_and_unimplemented_ones_refused_by_name() {
    let mut c = Checks::new("lifecycle and unimplemented options");
    // Every lifecycle option with a good value passes, in one line.
    let good = "WSGIDaemonProcess site maximum-requests=1000 restart-interval=3600 inactivity-timeout=300 \
                rss-limit=536870912 request-timeout=60 deadlock-timeout=60 startup-timeout=15 queue-timeout=45 \
                graceful-timeout=15 eviction-timeout=0 shutdown-timeout=5 memory-limit=1073741824 \
                virtual-memory-limit=4294967296 cpu-time-limit=3600 cpu-priority=5 stack-size=524288 \
                interrupt-timeout=0 blocked-timeout=0 response-socket-timeout=0 response-flush-delay=0";
    accepted(&mut c, "every lifecycle option", good);
    for (option, expected) in [
        ("maximum-requests=-1", "expected a whole number of requests from 0 (off) to"),
        ("request-timeout=1.5", "expected a whole number of seconds from 0 (off) to"),
        ("shutdown-timeout=0", "expected a whole number of seconds from 1 to"),
        ("cpu-priority=30", "expected a whole number from -20 to 20"),
        ("stack-size=4096", "expected 0 (off) or a whole number of bytes from 131072 to"),
        ("memory-limit=1G", "expected 0 (off) or a whole number of bytes from 16777216 to"),
        ("interrupt-timeout=5", "mod_wsgi_rs supports only 0 (off) for interrupt-timeout; remove it or set it to 0"),
        ("response-flush-delay=5", "mod_wsgi_rs supports only 0 (off) for response-flush-delay"),
    ] {
        let (name, value) = option.split_once('=').unwrap();
        let line = format!("WSGIDaemonProcess site {option}");
        let message = format!("WSGIDaemonProcess site: invalid value '{value}' for {name}; {expected}");
        refused_at_line(&mut c, &line, &line, &[&message]);
    }
    for option in [
        "chroot=/srv/jail",
        "script-user=www-data",
        "script-group=www-data",
        "python-eggs=/tmp/eggs",
        "switch-interval=0.005",
        "server-metrics=On",
        "newrelic-config-file=/etc/newrelic.ini",
        "newrelic-environment=production",
    ] {
        let name = option.split('=').next().unwrap();
        let line = format!("WSGIDaemonProcess site {option}");
        let message = format!("=WSGIDaemonProcess site: option {name} is not supported yet by mod_wsgi_rs; remove it");
        refused_at_line(&mut c, &line, &line, &[&message]);
    }
    rp_finish(c);
}

#[test]
fn bad_names_places_and_duplicates_are_refused() {
    let mut c = Checks::new("names, contexts, duplicates");
    refused_at_line(
        &mut c,
        "WSGIDaemonProcess",
        "WSGIDaemonProcess",
        &["=WSGIDaemonProcess: expected the name of the process group, then option=value pairs"],
    );
    refused_at_line(
        &mut c,
        "WSGIDaemonProcess processes=2 threads=15",
        "WSGIDaemonProcess processes=2",
        &["=WSGIDaemonProcess: invalid group name 'processes=2': the first argument is the group's name, and this looks like an option"],
    );
    refused_at_line(&mut c, "WSGIDaemonProcess %{GLOBAL}", "WSGIDaemonProcess %{GLOBAL}", &["reserved"]);
    c.run("a duplicate names the first definition", || {
        let extra = format!("WSGIDaemonProcess site threads=2\n{}", vhost(VHOST_A, "    WSGIDaemonProcess site"));
        let (code, out, text, path) = config_test(&extra);
        assert_eq!(code, 1, "{out}");
        let (first, second) = (line_of(&text, "WSGIDaemonProcess site threads=2"), line_of(&text, "WSGIDaemonProcess site"));
        assert!(out.contains(&format!("AH00526: Syntax error on line {second} of {path}:")), "{out}");
        let message = format!("WSGIDaemonProcess: a group named 'site' is already defined (line {first} of {path})");
        assert!(out.lines().any(|l| l == message), "expected {message:?} in:\n{out}");
    });
    refused_at_line(
        &mut c,
        "<Directory /tmp>\n    WSGIDaemonProcess site\n</Directory>",
        "WSGIDaemonProcess site",
        &["WSGIDaemonProcess", "not allowed"],
    );
    refused_at_line(
        &mut c,
        "WSGIProcessGroup %{RESOURCE}",
        "WSGIProcessGroup %{RESOURCE}",
        &["=WSGIProcessGroup: invalid process group '%{RESOURCE}'; expected %{GLOBAL}, %{ENV:VARIABLE} or the name of a WSGIDaemonProcess group"],
    );
    refused_at_line(
        &mut c,
        "WSGIScriptAlias /x /tmp/x.wsgi process-group=",
        "WSGIScriptAlias /x",
        &["=WSGIScriptAlias: invalid process group ''; expected %{GLOBAL}, %{ENV:VARIABLE} or the name of a WSGIDaemonProcess group"],
    );
    refused_at_line(
        &mut c,
        "WSGIImportScript /tmp/x.wsgi process-group=%{ENV:G}",
        "WSGIImportScript /tmp/x.wsgi",
        &["WSGIImportScript: process-group '%{ENV:G}' cannot be used here", "name the group"],
    );
    refused_at_line(
        &mut c,
        &vhost(VHOST_A, "    WSGISocketPrefix /tmp/wsgi"),
        "WSGISocketPrefix /tmp/wsgi",
        &["WSGISocketPrefix cannot occur within <VirtualHost> section"],
    );
    refused_at_line(
        &mut c,
        "WSGISocketPrefix @@DIR@@/no-such-dir/wsgi",
        "WSGISocketPrefix",
        &["WSGISocketPrefix: the directory '", "/no-such-dir' of '", "' does not exist"],
    );
    refused_at_line(
        &mut c,
        &format!("WSGISocketPrefix /run/{}", "x".repeat(80)),
        "WSGISocketPrefix",
        &["bytes long; at most 80 fit in a UNIX socket path"],
    );
    refused_at_line(
        &mut c,
        "WSGIRestrictEmbedded maybe",
        "WSGIRestrictEmbedded maybe",
        &["=WSGIRestrictEmbedded: invalid value 'maybe'; expected On or Off"],
    );
    refused_at_line(
        &mut c,
        &vhost(VHOST_A, "    WSGIRestrictEmbedded On"),
        "WSGIRestrictEmbedded On",
        &["WSGIRestrictEmbedded cannot occur within <VirtualHost> section"],
    );
    rp_finish(c);
}

#[test]
fn named_groups_must_exist_and_be_visible() {
    let mut c = Checks::new("group names checked against the whole configuration");
    refused_by_check(
        &mut c,
        "WSGIProcessGroup naming no group",
        "WSGIProcessGroup nope",
        &[&["WSGIProcessGroup: no WSGIDaemonProcess defines a group named 'nope'", "@@LINE:WSGIProcessGroup nope@@", "; no group is defined"]],
    );
    refused_by_check(
        &mut c,
        "every unknown name at once",
        "WSGIDaemonProcess one\nWSGIDaemonProcess two\n<Location /x>\n    WSGIProcessGroup nope\n</Location>\n\
         WSGIScriptAlias /d /tmp/d.wsgi process-group=daemon1\nWSGIImportScript /tmp/i.wsgi process-group=imp",
        &[
            &["WSGIProcessGroup: no WSGIDaemonProcess defines a group named 'nope'", "@@LINE:WSGIProcessGroup nope@@", "defined: one, two"],
            &["WSGIScriptAlias: no WSGIDaemonProcess defines a group named 'daemon1'", "@@LINE:WSGIScriptAlias /d@@"],
            &["WSGIImportScript: no WSGIDaemonProcess defines a group named 'imp'", "@@LINE:WSGIImportScript /tmp/i.wsgi@@"],
        ],
    );
    let site_a = vhost(VHOST_A, "    WSGIDaemonProcess site-a");
    refused_by_check(
        &mut c,
        "a virtual host's group named from another virtual host",
        &format!("{site_a}{}", vhost(VHOST_B, "    <Directory /tmp>\n        WSGIProcessGroup site-a\n    </Directory>")),
        &[&[
            "WSGIProcessGroup: group 'site-a' is defined in the virtual host a.test",
            "@@LINE:WSGIDaemonProcess site-a@@",
            "and can be used only from hosts with that ServerName, not from the virtual host b.test",
            "@@LINE:WSGIProcessGroup site-a@@",
            "; define it outside <VirtualHost> to share it",
        ]],
    );
    refused_by_check(
        &mut c,
        "a virtual host's group named by an alias of the main server",
        &format!("{site_a}WSGIScriptAlias /a /tmp/a.wsgi process-group=site-a"),
        &[&[
            "WSGIScriptAlias: group 'site-a' is defined in the virtual host a.test",
            "not from the main server (ServerName 127.0.0.1)",
            "@@LINE:WSGIScriptAlias /a@@",
        ]],
    );
    refused_by_check(
        &mut c,
        "a virtual host's group named by an import script of another host",
        &format!("{site_a}{}", vhost(VHOST_B, "    WSGIImportScript /tmp/a.wsgi process-group=site-a")),
        &[&["WSGIImportScript: group 'site-a' is defined in the virtual host a.test", "not from the virtual host b.test"]],
    );
    rp_finish(c);
}
