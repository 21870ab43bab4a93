//! Conformance against mod_wsgi: the catalogue in `tests/conformance/cases.rs` (apps in
//! `tests/conformance/apps/`) is sent, request by request, to two private Apaches that
//! share one generated configuration apart from the module line: one runs mod_wsgi_rs,
//! the other Debian's mod_wsgi 4.9.4 (`/usr/lib/apache2/modules/mod_wsgi.so`, package
//! libapache2-mod-wsgi-py3) with `WSGIApplicationGroup %{GLOBAL}`.
//!
//! Each MPM is tested in both modes: embedded (the applications run in the Apache
//! children) and daemon (both servers get `WSGIDaemonProcess conformance processes=2
//! threads=4` and a global `WSGIProcessGroup conformance`, so every alias and handler runs
//! in that group's daemons; the suite checks that they do, by pid).
//!
//! For every request the suite compares status, headers (names case-insensitively, order
//! only among repeated headers), whether the response was complete or cut, and the body;
//! env.wsgi's JSON report of the environ is compared key by key. What legitimately varies
//! between two servers is normalised first (Date, Server, Keep-Alive, ports, the
//! ServerRoot path, per-request ids and timestamps). Every remaining difference fails the
//! test unless the [`DELIBERATE`] table lists it for that mode; that table is mirrored in
//! docs/COMPATIBILITY.md.
//!
//! Run: `cargo test --release --test conformance -- --test-threads=2`
//! (needs libapache2-mod-wsgi-py3; the test fails if mod_wsgi.so is missing). Each run
//! writes its full report to `target/conformance-<mpm>.txt` (embedded) or
//! `target/conformance-daemon-<mpm>.txt`; `CONFORMANCE_ONLY=name,...` runs only the named
//! cases.
mod common;
#[path = "conformance/cases.rs"]
mod cases;

use cases::{Case, Cmp, Req};
use common::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

const MOD_WSGI_SO: &str = "/usr/lib/apache2/modules/mod_wsgi.so";

// ---------------------------------------------------------------------------------------
// deliberate differences

/// A difference between mod_wsgi_rs and mod_wsgi that is intended.
struct Deliberate {
    /// the cases it applies to; `&["*"]` for every case
    cases: &'static [&'static str],
    /// what differs: `environ:KEY` (both have the key, with different values),
    /// `environ-missing:KEY` (only mod_wsgi has it), `environ-extra:KEY` (only
    /// mod_wsgi_rs has it), `header:NAME`, `reason`, `body`, `interim` (the 1xx
    /// responses before the final one differ), `framing` (one server sent
    /// a Content-Length, the other a chunked or close-delimited body; `framing:list-body`
    /// when the application returned a list or tuple) or `response`
    /// (status or completeness differ, so the whole response is shown); a trailing `*`
    /// matches any suffix
    item: &'static str,
    /// the modes it applies to (a difference that only one mode shows is restricted
    /// to it)
    modes: &'static [Mode],
    reason: &'static str,
}

/// Both modes.
const ANY_MODE: &[Mode] = &[Mode::Embedded, Mode::Daemon];

/// Every entry is mirrored, with the same reason, in docs/COMPATIBILITY.md.
const DELIBERATE: &[Deliberate] = &[
    Deliberate {
        cases: &["*"],
        item: "environ-missing:mod_wsgi.version",
        modes: ANY_MODE,
        reason: "mod_wsgi_rs is not mod_wsgi and does not claim a mod_wsgi version; it \
                 reports its own in mod_wsgi_rs.version",
    },
    Deliberate {
        cases: &["*"],
        item: "environ-extra:mod_wsgi_rs.version",
        modes: ANY_MODE,
        reason: "the version of mod_wsgi_rs itself, under a key of its own",
    },
    Deliberate {
        cases: &["*"],
        item: "environ:SERVER_SOFTWARE",
        modes: ANY_MODE,
        reason: "each module adds its own product token to Apache's server banner \
                 (mod_wsgi/4.9.4 Python/3.11 there, mod_wsgi_rs/VERSION Python/3.11 here)",
    },
    Deliberate {
        cases: &["*"],
        item: "environ-missing:mod_wsgi.listener_host",
        modes: ANY_MODE,
        reason: "mod_wsgi-specific diagnostic key (daemon-mode plumbing); not part of the \
                 WSGI environ mod_wsgi_rs provides",
    },
    Deliberate {
        cases: &["*"],
        item: "environ-missing:mod_wsgi.listener_port",
        modes: ANY_MODE,
        reason: "mod_wsgi-specific diagnostic key (daemon-mode plumbing); not part of the \
                 WSGI environ mod_wsgi_rs provides",
    },
    Deliberate {
        cases: &["*"],
        item: "environ-missing:mod_wsgi.enable_sendfile",
        modes: ANY_MODE,
        reason: "mod_wsgi-specific key for its WSGIEnableSendfile directive; mod_wsgi_rs \
                 always lets Apache send real files",
    },
    Deliberate {
        cases: &["*"],
        item: "environ-missing:mod_wsgi.ignore_activity",
        modes: ANY_MODE,
        reason: "mod_wsgi's flag for its daemons' inactivity-timeout; mod_wsgi_rs has no \
                 inactivity-timeout yet",
    },
    Deliberate {
        cases: &["*"],
        item: "environ-missing:mod_wsgi.request_handler",
        modes: ANY_MODE,
        reason: "mod_wsgi-specific key naming the Apache handler; mod_wsgi_rs has one handler",
    },
    Deliberate {
        cases: &["*"],
        item: "environ-missing:mod_wsgi.handler_script",
        modes: ANY_MODE,
        reason: "mod_wsgi-specific key for its WSGIHandlerScript directive, which mod_wsgi_rs \
                 does not implement",
    },
    Deliberate {
        cases: &["*"],
        item: "environ-missing:mod_wsgi.request_start",
        modes: ANY_MODE,
        reason: "mod_wsgi timing/metrics key (microsecond timestamps); mod_wsgi_rs does not \
                 collect request metrics",
    },
    Deliberate {
        cases: &["*"],
        item: "environ-missing:mod_wsgi.script_start",
        modes: ANY_MODE,
        reason: "mod_wsgi timing/metrics key (microsecond timestamps); mod_wsgi_rs does not \
                 collect request metrics",
    },
    Deliberate {
        cases: &["*"],
        item: "environ-missing:mod_wsgi.thread_id",
        modes: ANY_MODE,
        reason: "mod_wsgi request-thread counter used by its metrics; mod_wsgi_rs does not \
                 collect request metrics",
    },
    Deliberate {
        cases: &["*"],
        item: "environ-missing:mod_wsgi.thread_requests",
        modes: ANY_MODE,
        reason: "mod_wsgi per-thread request counter used by its metrics; mod_wsgi_rs does \
                 not collect request metrics",
    },
    Deliberate {
        cases: &["*"],
        item: "environ-missing:mod_wsgi.total_requests",
        modes: ANY_MODE,
        reason: "mod_wsgi per-process request counter used by its metrics; mod_wsgi_rs does \
                 not collect request metrics",
    },
    Deliberate {
        cases: &["*"],
        item: "framing:list-body",
        modes: ANY_MODE,
        reason: "a list or tuple body is complete when the application returns it, so \
                 mod_wsgi_rs hands it to Apache in one piece and Apache announces its length \
                 (as for a static file); mod_wsgi 4.9 passes each item on as it goes and the \
                 body is sent chunked. The bytes are the same",
    },
    Deliberate {
        cases: &["*"],
        item: "environ-missing:mod_wsgi.script_name",
        modes: ANY_MODE,
        reason: "mod_wsgi's private copy of SCRIPT_NAME; applications read SCRIPT_NAME",
    },
    Deliberate {
        cases: &["*"],
        item: "environ-missing:mod_wsgi.path_info",
        modes: ANY_MODE,
        reason: "mod_wsgi's private copy of PATH_INFO; applications read PATH_INFO",
    },
    Deliberate {
        cases: &["input-read-none"],
        item: "body",
        modes: ANY_MODE,
        reason: "wsgi.input.read(None) reads everything, as read() and read(-1) do and as \
                 io streams do; mod_wsgi 4.9 raises TypeError",
    },
    Deliberate {
        cases: &["out-status-bare"],
        item: "response",
        modes: ANY_MODE,
        reason: "a bare status \"200\" is accepted (Apache adds the reason phrase), as \
                 mod_wsgi 6.x does; mod_wsgi 4.9 raises and answers 500",
    },
    Deliberate {
        cases: &["err-header-name-colon"],
        item: "response",
        modes: &[Mode::Embedded],
        reason: "mod_wsgi 4.9 lets a header name with ':' through and Apache's HTTP filter \
                 then aborts the response (AH02429; the client gets a 500 whose body is cut \
                 short); mod_wsgi_rs rejects the name in start_response (ValueError) and \
                 sends a complete 500",
    },
    Deliberate {
        cases: &["*"],
        item: "environ:apache.version",
        modes: ANY_MODE,
        reason: "mod_wsgi reports the Apache version it was compiled against (2.4.55 for \
                 Debian's 4.9.4 build); mod_wsgi_rs reports the version of the running server",
    },
    Deliberate {
        cases: &["out-exc-info-after-output", "out-start-response-after-output"],
        item: "response",
        modes: &[Mode::Embedded],
        reason: "when the application raises after part of the body was sent, mod_wsgi_rs \
                 cuts the connection, so the client can tell the response is incomplete; \
                 mod_wsgi 4.9 appends Apache's HTML 500 page to the partial body and ends the \
                 response normally, so the client sees a complete 200",
    },
    Deliberate {
        cases: &["input-short-body"],
        item: "response",
        modes: &[Mode::Embedded],
        reason: "when the request body cannot be read (the client stopped sending, a \
                 timeout, a body Apache rejects), that failure decides the response (400, \
                 408 or 413) and whatever the application answers after catching the OSError \
                 is not sent; mod_wsgi 4.9 sends the application's answer",
    },
    Deliberate {
        cases: &["input-over-limit"],
        item: "framing",
        modes: ANY_MODE,
        reason: "the 413 for a body over LimitRequestBody is Apache's own error page in both; \
                 mod_wsgi 4.9 sends it without a Content-Length (the body ends when the \
                 connection closes), mod_wsgi_rs with one. Status and body are the same",
    },
    // Daemon mode: where mod_wsgi's daemon mode behaves otherwise than its embedded
    // mode, mod_wsgi_rs keeps the behaviour of embedded mode.
    Deliberate {
        cases: &[
            "err-raise-after-output",
            "err-str-item-after-output",
            "out-close-on-error",
            "out-exc-info-after-output",
            "out-start-response-after-output",
        ],
        item: "response",
        modes: &[Mode::Daemon],
        reason: "when the application fails after part of a streamed body was sent, \
                 mod_wsgi's daemon just closes its socket, which its Apache child cannot \
                 tell from the end of the body: the client sees a complete 200 with a \
                 partial body. mod_wsgi_rs's daemon tells the Apache child that the \
                 response failed, and the child cuts it, as both modules do in embedded mode",
    },
    Deliberate {
        cases: &["err-header-name-colon"],
        item: "response",
        modes: &[Mode::Daemon],
        reason: "mod_wsgi's daemon passes the header name 'X-Colon:' on and its Apache \
                 child parses it as the header X-Colon with the value ': v', so the client \
                 gets a complete 200 with a header the application did not send; \
                 mod_wsgi_rs rejects the name in start_response (ValueError) and sends a \
                 complete 500, as in embedded mode",
    },
    Deliberate {
        cases: &["input-short-body"],
        item: "response",
        modes: &[Mode::Daemon],
        reason: "mod_wsgi's Apache child sends the whole body to the daemon before the \
                 application runs; when it cannot read it, it answers 500 (\"Request data \
                 read error when proxying data to daemon process\"). mod_wsgi_rs's child \
                 reads the body as the application reads wsgi.input, and the failure decides \
                 the response (400, 408 or 413) as in embedded mode",
    },
    Deliberate {
        cases: &["input-expect-100-unread"],
        item: "interim",
        modes: &[Mode::Daemon],
        reason: "mod_wsgi's Apache child reads the whole request body to send it to the \
                 daemon before the application runs, so a client that sent Expect: \
                 100-continue always gets 100 Continue and uploads the body, even when the \
                 application never reads it; mod_wsgi_rs's child reads the body only as the \
                 application reads wsgi.input, so, as in embedded mode, no 100 Continue is \
                 sent for a body the application does not want",
    },
    Deliberate {
        cases: &["out-empty-list", "out-only-empty-items"],
        item: "framing",
        modes: &[Mode::Daemon],
        reason: "an empty body: mod_wsgi's Apache child passes the response head on before \
                 it knows that no body follows, so Apache sends a chunked body with only its \
                 last chunk; mod_wsgi_rs's daemon sends the end of the response with the \
                 head, and Apache announces Content-Length: 0, as both modules do in \
                 embedded mode. The bytes are the same",
    },
    Deliberate {
        cases: &["err-noapp"],
        item: "response",
        modes: &[Mode::Daemon],
        reason: "a script without the application callable gives 404 in embedded mode under \
                 both modules; under mod_wsgi's daemon mode the daemon logs the same error \
                 but the client gets 500. mod_wsgi_rs's daemon hands the 404 to the Apache child, as in \
                 embedded mode",
    },
];

/// environ keys whose value changes from request to request (or server to server) by
/// nature: only their presence and type are compared.
const VARYING_KEYS: &[&str] = &[
    "REMOTE_PORT",
    "mod_wsgi.request_id",
    "mod_wsgi.request_start",
    "mod_wsgi.script_start",
    "mod_wsgi.queue_start",
    "mod_wsgi.daemon_start",
    "mod_wsgi.thread_id",
    "mod_wsgi.thread_requests",
    "mod_wsgi.total_requests",
    "UNIQUE_ID",
];

/// Response headers that vary between any two servers: not compared.
const VARYING_HEADERS: &[&str] = &["date", "server", "keep-alive"];

fn deliberate_for(case: &str, item: &str, mode: Mode) -> Option<&'static Deliberate> {
    // "#2 status" (second request of a case) matches the entry for "status".
    let item = match item.split_once(' ') {
        Some((n, rest)) if n.starts_with('#') => rest,
        _ => item,
    };
    DELIBERATE.iter().find(|d| {
        d.modes.contains(&mode)
            && d.cases.iter().any(|c| *c == "*" || *c == case)
            && match d.item.strip_suffix('*') {
                Some(prefix) => item.starts_with(prefix),
                None => d.item == item,
            }
    })
}

// ---------------------------------------------------------------------------------------
// the two servers

/// Where both servers run the applications: in the Apache children, or in the daemon
/// processes of one `WSGIDaemonProcess` group that every alias and handler is routed to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Embedded,
    Daemon,
}

/// How mod_wsgi_rs is configured beside mod_wsgi: as it is by default, or
/// with `WSGIExportCGIVariables Off`, where it makes the environ from the
/// request instead of through Apache's table and must give the same one.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Ours {
    Default,
    Unexported,
}

impl Ours {
    fn directives(self) -> &'static str {
        match self {
            Ours::Default => "",
            Ours::Unexported => "WSGIExportCGIVariables Off\n",
        }
    }

    /// For the report's file name.
    fn suffix(self) -> &'static str {
        match self {
            Ours::Default => "",
            Ours::Unexported => "-unexported",
        }
    }

    /// For the server directories, short: daemon sockets are made in them.
    fn tag(self) -> &'static str {
        match self {
            Ours::Default => "",
            Ours::Unexported => "-u",
        }
    }
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Embedded => "embedded",
            Mode::Daemon => "daemon",
        }
    }
}

/// The daemon process group of daemon mode, as both modules see it.
const GROUP: &str = "conformance";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Ours,
    Theirs,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Ours => "mod_wsgi_rs",
            Side::Theirs => "mod_wsgi",
        }
    }
}

/// Installs the catalogue's apps into `dir` and returns the part of the config both
/// servers share.
fn install(dir: &TestDir, mode: Mode) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/apps");
    let data_dir = dir.mkdir("data").to_string_lossy().into_owned();
    let state_dir = dir.mkdir_www("state").to_string_lossy().into_owned();
    dir.write("data/blob.bin", cases::binary_body(300_000));
    dir.mkdir("scripts");
    let mut names: Vec<_> = std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("read {}: {e}", src.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in &names {
        let text = std::fs::read_to_string(src.join(name)).unwrap();
        let text = text.replace("@@DATA_DIR@@", &data_dir).replace("@@STATE_DIR@@", &state_dir);
        assert!(!text.contains("@@"), "unreplaced placeholder in {name}");
        dir.write(&format!("apps/{name}"), &text);
        if name == "env.wsgi" {
            dir.write("scripts/env.wsgi", &text);
        }
    }
    for name in ["handler", "handler-noexec"] {
        dir.write(&format!("{name}/env.wsgi"), std::fs::read(dir.path().join("apps/env.wsgi")).unwrap());
    }
    // In daemon mode one group serves every alias and handler below, the second virtual
    // host's included (WSGIProcessGroup outside any section applies to all of them).
    // Its sockets go to the server's own directory under a short name: a UNIX socket
    // path holds at most 107 bytes.
    let daemon = match mode {
        Mode::Embedded => String::new(),
        Mode::Daemon => format!(
            "WSGISocketPrefix run/wsgi\n\
             WSGIDaemonProcess {GROUP} processes=2 threads=4\n\
             WSGIProcessGroup {GROUP}\n"
        ),
    };
    // @@DIR@@ and @@PORT@@ are filled in by the harness.
    daemon
        + r#"TypesConfig /dev/null
SetEnv CONFORMANCE_VAR "set by SetEnv"
WSGIScriptAlias /env @@DIR@@/apps/env.wsgi
WSGIScriptAlias /input @@DIR@@/apps/input.wsgi
WSGIScriptAlias /limited @@DIR@@/apps/input.wsgi
<Location /limited>
    LimitRequestBody 100
</Location>
WSGIScriptAlias /out @@DIR@@/apps/out.wsgi
WSGIScriptAlias /pyenv @@DIR@@/apps/pyenv.wsgi
WSGIScriptAlias /err @@DIR@@/apps/err.wsgi
WSGIScriptAlias /noapp @@DIR@@/apps/noapp.wsgi
WSGIScriptAlias /broken @@DIR@@/apps/broken.wsgi
WSGIScriptAlias /missing @@DIR@@/apps/does-not-exist.wsgi
WSGIScriptAlias /scripts/ @@DIR@@/scripts/
WSGIScriptAlias /authenv @@DIR@@/apps/env.wsgi pass-authorization=On
WSGIScriptAlias /callable @@DIR@@/apps/noapp.wsgi callable-object=not_the_application
WSGIScriptAliasMatch ^/match/([a-z]+) @@DIR@@/apps/$1.wsgi
# Scripts found through the handler rather than an alias.
Alias /handler/ @@DIR@@/handler/
Alias /handler-noexec/ @@DIR@@/handler-noexec/
<Directory @@DIR@@/handler>
    Options +ExecCGI
    AddHandler wsgi-script .wsgi
</Directory>
<Directory @@DIR@@/handler-noexec>
    AddHandler wsgi-script .wsgi
</Directory>
# Both servers read chunked request bodies (a module that does not know
# WSGIChunkedRequest skips it, and its chunked cases then show the gap).
<IfDirective WSGIChunkedRequest>
    WSGIChunkedRequest On
</IfDirective>
# The first virtual host is the default one and sees the aliases above; the second
# mounts an application at / (its own alias comes before the main server's).
<VirtualHost 127.0.0.1:@@PORT@@>
    ServerName 127.0.0.1
</VirtualHost>
<VirtualHost 127.0.0.1:@@PORT@@>
    ServerName rootmount.test
    WSGIScriptAlias / @@DIR@@/apps/env.wsgi
</VirtualHost>
"#
}

fn modules(conf: Conf) -> Conf {
    conf.module_before("alias_module", "mod_alias.so")
        .module_before("mime_module", "mod_mime.so")
        .module_before("env_module", "mod_env.so")
}

fn start(side: Side, mpm: Mpm, mode: Mode, ours: Ours) -> Apache {
    // Short in daemon mode: the sockets are made inside this directory.
    let tag = match mode {
        Mode::Embedded => format!("conformance-{}-{}{}", mpm.name(), side.label(), ours.tag()),
        Mode::Daemon => format!("conf-d-{}-{}{}", mpm.name(), side.label(), ours.tag()),
    };
    let dir = TestDir::new(&tag);
    let wsgi = install(&dir, mode);
    let conf = match side {
        Side::Ours => modules(Conf::new(mpm)).extra(ours.directives()).extra(&wsgi),
        Side::Theirs => {
            assert!(
                Path::new(MOD_WSGI_SO).exists(),
                "{MOD_WSGI_SO} is missing: apt-get install libapache2-mod-wsgi-py3"
            );
            modules(Conf::new(mpm))
                .without_wsgi()
                .extra(&format!("LoadModule wsgi_module {MOD_WSGI_SO}\nWSGIApplicationGroup %{{GLOBAL}}\n"))
                .extra(&wsgi)
        }
    };
    Apache::start(dir, &conf, &[])
}

/// `cargo test --test conformance` does not rebuild the module (a cdylib that no test
/// links against): when a source file is newer than the built .so, build it first.
fn ensure_module_fresh() {
    static DONE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if *done || std::env::var_os("MOD_WSGI_RS_SO").is_some() {
        return;
    }
    *done = true;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let so = root.join("target/release/libmod_wsgi_rs.so");
    let built = std::fs::metadata(&so).and_then(|m| m.modified()).ok();
    fn newest(dir: &Path) -> Option<std::time::SystemTime> {
        let mut best = None;
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            let p = e.path();
            let t = if p.is_dir() { newest(&p) } else { e.metadata().ok()?.modified().ok() };
            best = best.max(t);
        }
        best
    }
    let sources = [root.join("src"), root.join("apxs")]
        .iter()
        .filter_map(|d| newest(d))
        .chain(["Cargo.toml", "Cargo.lock", "build.rs"].iter().filter_map(|f| {
            std::fs::metadata(root.join(f)).and_then(|m| m.modified()).ok()
        }))
        .max();
    if built.is_some() && built >= sources {
        return;
    }
    eprintln!("[conformance] {} is missing or older than the sources: cargo build --release", so.display());
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let st = std::process::Command::new(cargo)
        .args(["build", "--release"])
        .current_dir(root)
        .status()
        .expect("run cargo build --release");
    assert!(st.success(), "cargo build --release failed");
}

// ---------------------------------------------------------------------------------------
// the Python-side environment (pyenv.wsgi)

/// A fact of pyenv.wsgi's report whose value differs between the two modules on
/// purpose. Mirrored in docs/COMPATIBILITY.md.
struct DeliberateFact {
    fact: &'static str,
    /// the modes in which the fact differs
    modes: &'static [Mode],
    reason: &'static str,
}

const DELIBERATE_FACTS: &[DeliberateFact] = &[
    DeliberateFact {
        fact: "sys.stdout.type",
        modes: ANY_MODE,
        reason: "mod_wsgi_rs's streams are its own text stream type (an io.TextIOBase with the \
                 TextIOWrapper attributes and a .buffer), not an io.TextIOWrapper over a \
                 buffer: print() costs two calls into the module instead of five",
    },
    DeliberateFact { fact: "sys.stderr.type", modes: ANY_MODE, reason: "as sys.stdout.type" },
    DeliberateFact { fact: "wsgi.errors.type", modes: ANY_MODE, reason: "as sys.stdout.type" },
    DeliberateFact {
        fact: "apache.version",
        modes: ANY_MODE,
        reason: "mod_wsgi_rs reports the version of the running Apache; mod_wsgi the version of \
                 the headers it was compiled against",
    },
    DeliberateFact {
        fact: "apache.maximum_processes",
        modes: ANY_MODE,
        reason: "mod_wsgi_rs reports the MPM's configured maximum of child processes; mod_wsgi \
                 the number of child slots used when it happened to ask",
    },
    DeliberateFact {
        fact: "mod_wsgi.maximum_processes",
        // In a daemon both report the group's processes.
        modes: &[Mode::Embedded],
        reason: "as apache.maximum_processes",
    },
    DeliberateFact {
        fact: "mod_wsgi.server_metrics",
        modes: ANY_MODE,
        reason: "mod_wsgi 4.9.4 returns Apache's scoreboard in embedded mode and None in a daemon; \
                 mod_wsgi_rs returns the daemon process groups' figures of its status page (every \
                 group's in an Apache child, its own group's in a daemon) and does not read the \
                 scoreboard",
    },
    DeliberateFact {
        fact: "mod_wsgi.request_started.args",
        modes: ANY_MODE,
        reason: "mod_wsgi_rs also passes callable_object and server_pid, as mod_wsgi 6 does \
                 (checked: every argument mod_wsgi passes is passed)",
    },
];

/// The facts of pyenv.wsgi's `/facts` report from one server.
fn pyenv_facts(apache: &Apache) -> Vec<(String, Json)> {
    let reply = exchange(apache.port, &Req::new("GET", "/pyenv/facts")).remove(0);
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    assert_eq!(reply.status, 200, "GET /pyenv/facts: {text}\n{}", apache.error_log());
    match Json::parse(&text) {
        Ok(Json::Obj(facts)) => facts,
        other => panic!("/pyenv/facts is not a JSON object: {other:?}"),
    }
}

/// Error-log lines written by pyenv.wsgi and the modules' own tags stripped.
fn pyenv_log_lines(log: &str, needle: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.find(needle).map(|i| l[i..].to_string()))
        .collect()
}

/// Compares what an application sees besides the environ under both modules; returns
/// the report lines and the differences no table accepts.
fn python_environment(ours: &Apache, theirs: &Apache, mode: Mode) -> (String, Vec<String>) {
    let mut report = String::from("\nPython-side environment (pyenv.wsgi), mod_wsgi_rs | mod_wsgi:\n");
    let mut unexpected = Vec::new();
    let (mine, reference) = (pyenv_facts(ours), pyenv_facts(theirs));
    let lookup = |facts: &[(String, Json)], key: &str| facts.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let mut keys: Vec<&String> = mine.iter().map(|(k, _)| k).chain(reference.iter().map(|(k, _)| k)).collect();
    keys.sort();
    keys.dedup();
    let deliberate = |key: &str| DELIBERATE_FACTS.iter().find(|d| d.fact == key && d.modes.contains(&mode));
    for key in keys {
        let (a, b) = (lookup(&mine, key), lookup(&reference, key));
        let show = |v: &Option<Json>| v.as_ref().map_or("(absent)".to_string(), |v| short(&v.to_string()));
        let verdict = if a == b {
            "same"
        } else if deliberate(key).is_some() {
            "deliberate"
        } else {
            unexpected.push(format!("{key}: mod_wsgi_rs {} | mod_wsgi {}", show(&a), show(&b)));
            "DIFFERS"
        };
        let reason = deliberate(key).filter(|_| verdict == "deliberate").map(|d| d.reason);
        let _ = writeln!(report, "  {key:<48} {verdict:<10} {} | {}", show(&a), show(&b));
        if let Some(reason) = reason {
            let _ = writeln!(report, "      ({reason})");
        }
    }
    // The group is what both modules report, at import and during a request: equal
    // values could otherwise be two modules that both run embedded.
    let expected_group = Json::Str(if mode == Mode::Daemon { GROUP.into() } else { String::new() });
    for key in ["mod_wsgi.process_group", "mod_wsgi.process_group.at_import"] {
        for (facts, label) in [(&mine, "mod_wsgi_rs"), (&reference, "mod_wsgi")] {
            if lookup(facts, key).as_ref() != Some(&expected_group) {
                unexpected.push(format!("{label}: {key} is {:?}, not {expected_group}", lookup(facts, key)));
            }
        }
    }
    // A superset of mod_wsgi's request_started arguments is what the table allows.
    if let (Some(Json::Arr(a)), Some(Json::Arr(b))) =
        (lookup(&mine, "mod_wsgi.request_started.args"), lookup(&reference, "mod_wsgi.request_started.args"))
    {
        let missing: Vec<&Json> = b.iter().filter(|x| !a.contains(x)).collect();
        if !missing.is_empty() {
            unexpected.push(format!("request_started lacks mod_wsgi's arguments {missing:?}"));
        }
    }

    // Text, bytes, writelines and a partial line through each stream reach the log
    // as whole lines, with the client address, under both modules; and closing the
    // streams does not stop later output (mod_wsgi answers that request with 500).
    for (server, label) in [(ours, "mod_wsgi_rs"), (theirs, "mod_wsgi")] {
        for marker in ["first", "second"] {
            let reply = exchange(server.port, &Req::new("GET", &format!("/pyenv/write?{marker}"))).remove(0);
            assert_eq!(reply.status, 200, "{label}: /pyenv/write?{marker}");
            if marker == "first" {
                let closed = exchange(server.port, &Req::new("GET", "/pyenv/close")).remove(0);
                let _ = writeln!(report, "  after closing sys.stdout and wsgi.errors: {label} answers {}", closed.status);
                if label == "mod_wsgi_rs" && closed.status != 200 {
                    unexpected.push(format!("closing the streams: status {}", closed.status));
                }
            }
        }
        let expected = [
            "pyenv-print",
            "pyenv-stdout-buffer",
            "pyenv-stderr",
            "pyenv-errors",
            "pyenv-errors-buffer",
            "pyenv-errors-lines-1",
            "pyenv-errors-lines-2",
            "pyenv-errors-unterminated",
        ];
        // How the client is named: Apache's "[client ...]" of a request; mod_wsgi's
        // daemons log their requests' lines with Apache's "[remote ...]" of a
        // connection instead (mod_wsgi_rs has the Apache child log them for the
        // request, as in embedded mode).
        let tags: &[&str] = match (mode, label) {
            (Mode::Daemon, "mod_wsgi") => &["[remote 127.0.0.1:"],
            _ => &["[client 127.0.0.1:"],
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = server.error_log();
            let missing: Vec<String> = ["first", "second"]
                .iter()
                .flat_map(|m| expected.iter().map(move |e| format!("{e} {m}")))
                .filter(|line| {
                    !log.lines().any(|l| tags.iter().any(|t| l.contains(t)) && l.contains(line.as_str()))
                })
                .collect();
            if missing.is_empty() {
                let _ = writeln!(report, "  {label}: every stream's lines logged with the client address");
                break;
            }
            if Instant::now() > deadline {
                let complaint = format!("{label}: lines missing from the error log: {missing:?}");
                // mod_wsgi loses nothing here either; a gap on either side is a finding.
                unexpected.push(complaint);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    (report, unexpected)
}

/// The events pyenv.wsgi's callbacks write to the log: request_finished and
/// request_exception under both modules with mod_wsgi's arguments, and
/// process_stopping to the shutdown subscriber once the server stops.
fn python_events(ours: &mut Apache, theirs: &mut Apache) -> (String, Vec<String>) {
    let mut report = String::from("\nevents (pyenv.wsgi's subscribers):\n");
    let mut unexpected = Vec::new();
    let mut seen: Vec<(String, Vec<String>)> = Vec::new();
    for (server, label) in [(&mut *ours, "mod_wsgi_rs"), (&mut *theirs, "mod_wsgi")] {
        let raised = exchange(server.port, &Req::new("GET", "/pyenv/raise")).remove(0);
        assert_eq!(raised.status, 500, "{label}: /pyenv/raise");
        let ok = exchange(server.port, &Req::new("GET", "/pyenv/write?events")).remove(0);
        assert_eq!(ok.status, 200, "{label}: /pyenv/write?events");
        server.stop();
        let log = server.error_log();
        let lines: Vec<String> = pyenv_log_lines(&log, "pyenv-event ")
            .into_iter()
            .chain(pyenv_log_lines(&log, "pyenv-shutdown "))
            .map(|l| l.split_whitespace().filter(|w| !w.starts_with("127.0.0.1")).collect::<Vec<_>>().join(" "))
            .collect();
        for line in &lines {
            let _ = writeln!(report, "  {label}: {}", short(line));
        }
        seen.push((label.to_string(), lines));
    }
    let kinds = |lines: &[String], what: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l.contains(what))
            .map(|l| {
                // "pyenv-event NAME REQUEST_ID args=..." -> "NAME args=... detail"
                let words: Vec<&str> = l.split_whitespace().collect();
                let mut kept = vec![words[0], words[1]];
                kept.extend(words.iter().skip(2).filter(|w| w.contains('=')));
                kept.join(" ")
            })
            .collect()
    };
    let (mine, reference) = (&seen[0].1, &seen[1].1);
    let args_of = |line: &str| -> Vec<String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("args="))
            .map(|a| a.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    for what in ["response_started", "request_exception", "request_finished", "pyenv-shutdown process_stopping"] {
        let (a, b) = (kinds(mine, what), kinds(reference, what));
        if b.is_empty() {
            let _ = writeln!(report, "  {what}: not published by mod_wsgi 4.9.4");
        }
        match a.first() {
            None => unexpected.push(format!("mod_wsgi_rs published no {what}")),
            Some(line) => {
                // Every argument mod_wsgi passes is passed (it passes more for some
                // events, e.g. input/output counters, listed in COMPATIBILITY.md).
                if let Some(theirs) = b.first() {
                    let ours_args = args_of(line);
                    let missing: Vec<String> = args_of(theirs)
                        .into_iter()
                        .filter(|x| !ours_args.contains(x) && !EVENT_ARGS_NOT_PASSED.contains(&x.as_str()))
                        .collect();
                    if !missing.is_empty() {
                        unexpected.push(format!("{what}: arguments mod_wsgi passes and we do not: {missing:?}"));
                    }
                }
            }
        }
    }
    if !mine.iter().any(|l| l.contains("request_exception") && l.contains("exception=LookupError")) {
        unexpected.push("request_exception did not carry the LookupError".into());
    }
    if !mine.iter().any(|l| l.contains("request_finished") && l.contains("application_time=True")) {
        unexpected.push("request_finished without a float application_time".into());
    }
    (report, unexpected)
}

/// Arguments of mod_wsgi's request_finished that mod_wsgi_rs does not compute (the
/// byte and time counters of wsgi.input and the output); listed in COMPATIBILITY.md.
const EVENT_ARGS_NOT_PASSED: &[&str] =
    &["input_reads", "input_length", "input_time", "output_length", "output_writes", "output_time"];

// ---------------------------------------------------------------------------------------
// raw HTTP

#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Complete,
    /// the connection ended before the announced body was complete
    Truncated(String),
    /// no (parsable) response at all
    NoResponse(String),
}

impl Outcome {
    fn kind(&self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::Truncated(_) => "truncated",
            Outcome::NoResponse(_) => "no response",
        }
    }
    fn describe(&self) -> String {
        match self {
            Outcome::Complete => "complete".into(),
            Outcome::Truncated(why) => format!("truncated ({why})"),
            Outcome::NoResponse(why) => format!("no response ({why})"),
        }
    }
}

#[derive(Clone, Debug)]
struct Observed {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    outcome: Outcome,
    /// interim (1xx) responses before the final one
    interim: Vec<u16>,
}

fn request_bytes(req: &Req, port: u16, close: bool) -> Vec<u8> {
    let mut head = format!("{} {} {}\r\n", req.method, req.target, req.version);
    if !req.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        let _ = write!(head, "Host: 127.0.0.1:{port}\r\n");
    }
    for (k, v) in &req.headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    if req.auto_length {
        let _ = write!(head, "Content-Length: {}\r\n", req.body.len());
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&req.body);
    bytes
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn no_response(why: String) -> Observed {
    Observed {
        status: 0,
        reason: String::new(),
        headers: Vec::new(),
        body: Vec::new(),
        outcome: Outcome::NoResponse(why),
        interim: Vec::new(),
    }
}

/// Sends `req` and the requests pipelined after it on one connection (the last one
/// with `Connection: close`), reads until the server closes it, and returns one
/// observation per request.
fn exchange(port: u16, req: &Req) -> Vec<Observed> {
    let all: Vec<&Req> = std::iter::once(req).chain(req.pipeline.iter()).collect();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => return vec![no_response(format!("connect: {e}"))],
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    let mut bytes = Vec::new();
    for (i, r) in all.iter().enumerate() {
        bytes.extend(request_bytes(r, port, i + 1 == all.len()));
    }
    // A server may answer before reading the whole body; keep reading what it sent.
    let write_err = s.write_all(&bytes).and_then(|_| s.flush()).err();
    if req.half_close {
        let _ = s.shutdown(Shutdown::Write);
    }
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut end_note = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                end_note = Some(match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".to_string(),
                    _ => format!("{e}"),
                });
                break;
            }
        }
        if Instant::now() > deadline {
            end_note = Some("response took over 30 s".into());
            break;
        }
    }
    let _ = s.shutdown(Shutdown::Both);
    if raw.is_empty() {
        let why = match (write_err, end_note) {
            (Some(w), _) => format!("write: {w}"),
            (None, Some(n)) => n,
            (None, None) => "closed without a status line".into(),
        };
        return vec![no_response(why)];
    }
    let mut out = Vec::new();
    let mut rest: &[u8] = &raw;
    for r in &all {
        if rest.is_empty() {
            out.push(no_response("connection closed before this response".into()));
            break;
        }
        let (o, used) = parse_one(rest, &r.method, end_note.as_deref());
        let stop = o.outcome != Outcome::Complete;
        out.push(o);
        rest = &rest[used..];
        if stop {
            break;
        }
    }
    if !rest.is_empty() {
        if let Some(last) = out.last_mut() {
            if last.outcome == Outcome::Complete {
                last.outcome = Outcome::Truncated(format!("{} unexpected bytes after the response", rest.len()));
            }
        }
    }
    out
}

/// Parses one response from the start of `data`; returns it and the bytes it used.
fn parse_one(data: &[u8], method: &str, end_note: Option<&str>) -> (Observed, usize) {
    let note = || end_note.map(|n| format!(", {n}")).unwrap_or_default();
    let mut pos = 0;
    let mut interim = Vec::new();
    loop {
        let rest = &data[pos..];
        let Some(end) = find(rest, b"\r\n\r\n") else {
            return (
                no_response(format!("no end of headers in {:?}", String::from_utf8_lossy(rest))),
                data.len(),
            );
        };
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("").to_string();
        let mut parts = status_line.splitn(3, ' ');
        let proto = parts.next().unwrap_or("");
        let status: Option<u16> = parts.next().and_then(|s| s.parse().ok());
        let reason = parts.next().unwrap_or("").to_string();
        let Some(status) = status.filter(|_| proto.starts_with("HTTP/")) else {
            return (no_response(format!("bad status line {status_line:?}")), data.len());
        };
        pos += end + 4;
        if (100..200).contains(&status) && status != 101 {
            interim.push(status);
            continue;
        }
        let body_bytes = &data[pos..];
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let header = |n: &str| {
            headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone())
        };
        let mut o = Observed {
            status,
            reason,
            headers: headers.clone(),
            body: Vec::new(),
            outcome: Outcome::Complete,
            interim,
        };
        if method == "HEAD" || status == 204 || status == 304 {
            return (o, pos);
        }
        let chunked = header("transfer-encoding").map(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked == Some(true) {
            let (body, used) = dechunk(body_bytes);
            o.body = body;
            match used {
                Some(used) => return (o, pos + used),
                None => {
                    o.outcome = Outcome::Truncated(format!("chunked body without its last chunk{}", note()));
                    return (o, data.len());
                }
            }
        }
        if let Some(cl) = header("content-length") {
            let n: usize = cl.parse().unwrap_or(usize::MAX);
            if body_bytes.len() < n {
                o.outcome = Outcome::Truncated(format!("{} of {cl} bytes{}", body_bytes.len(), note()));
                o.body = body_bytes.to_vec();
                return (o, data.len());
            }
            o.body = body_bytes[..n].to_vec();
            return (o, pos + n);
        }
        o.body = body_bytes.to_vec();
        if let Some(n) = end_note {
            o.outcome = Outcome::Truncated(format!("body read until close ended by: {n}"));
        }
        return (o, data.len());
    }
}

/// Decodes a chunked body; returns the data and, if the last chunk (and the blank line
/// after it) was seen, how many bytes the chunked body took.
fn dechunk(all: &[u8]) -> (Vec<u8>, Option<usize>) {
    let mut out = Vec::new();
    let mut data = all;
    loop {
        let Some(eol) = find(data, b"\r\n") else { return (out, None) };
        let line = String::from_utf8_lossy(&data[..eol]).into_owned();
        let Ok(size) = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16) else {
            return (out, None);
        };
        data = &data[eol + 2..];
        if size == 0 {
            // trailers (none expected) end with a blank line
            let Some(end) = find(data, b"\r\n") else { return (out, None) };
            let mut after = &data[end + 2..];
            let mut used = all.len() - after.len();
            if end != 0 {
                let Some(e2) = find(data, b"\r\n\r\n") else { return (out, None) };
                after = &data[e2 + 4..];
                used = all.len() - after.len();
            }
            return (out, Some(used));
        }
        if data.len() < size + 2 {
            out.extend_from_slice(&data[..size.min(data.len())]);
            return (out, None);
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

// ---------------------------------------------------------------------------------------
// normalising and comparing

struct Norm {
    dir: String,
    port: u16,
}

impl Norm {
    fn of(a: &Apache) -> Norm {
        Norm { dir: a.dir.path().display().to_string(), port: a.port }
    }
    fn text(&self, s: &str) -> String {
        let p = self.port.to_string();
        let mut s = s.replace(&self.dir, "@@DIR@@");
        for pre in [":", "Port "] {
            s = s.replace(&format!("{pre}{p}"), &format!("{pre}PORT"));
        }
        if s == p {
            s = "PORT".into();
        }
        s
    }
    fn bytes(&self, b: &[u8]) -> Vec<u8> {
        match std::str::from_utf8(b) {
            Ok(s) => self.text(s).into_bytes(),
            Err(_) => b.to_vec(),
        }
    }
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x100000001b3))
}

fn show_body(b: &[u8]) -> String {
    if b.len() <= 400 {
        format!("{:?}", String::from_utf8_lossy(b))
    } else {
        format!(
            "{} bytes (fnv {:016x}), starts {:?}",
            b.len(),
            fnv(b),
            String::from_utf8_lossy(&b[..120])
        )
    }
}

fn show_headers(h: &BTreeMap<String, Vec<String>>) -> String {
    h.iter().map(|(k, v)| format!("{k}: {}", v.join(" | "))).collect::<Vec<_>>().join("; ")
}

fn header_map(o: &Observed, n: &Norm) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &o.headers {
        let k = k.to_ascii_lowercase();
        if VARYING_HEADERS.contains(&k.as_str()) {
            continue;
        }
        m.entry(k).or_default().push(n.text(v));
    }
    m
}

fn summary(o: &Observed, n: &Norm) -> String {
    format!(
        "{} {} [{}]; headers: {}; {}body: {}",
        o.status,
        o.reason,
        o.outcome.describe(),
        show_headers(&header_map(o, n)),
        if o.outcome == Outcome::Complete { "" } else { "partial " },
        show_body(&n.bytes(&o.body))
    )
}

struct Diff {
    item: String,
    ours: String,
    theirs: String,
}

/// env.wsgi's report, normalised: key -> (type, value).
fn environ_report(o: &Observed, n: &Norm) -> Option<BTreeMap<String, (String, String)>> {
    if o.status != 200 || o.outcome != Outcome::Complete {
        return None;
    }
    let j = Json::parse(std::str::from_utf8(&o.body).ok()?).ok()?;
    let Json::Obj(members) = j else { return None };
    let mut m = BTreeMap::new();
    for (k, v) in members {
        let ty = v.get("type").as_str().to_string();
        let value = match v.get("value") {
            Json::Str(s) => format!("{:?}", n.text(s)),
            other => other.to_string(),
        };
        m.insert(k, (ty, value));
    }
    Some(m)
}

fn compare(cmp: Cmp, req: &Req, ours: &Observed, on: &Norm, theirs: &Observed, tn: &Norm) -> Vec<Diff> {
    let mut diffs = Vec::new();
    if ours.status != theirs.status || ours.outcome.kind() != theirs.outcome.kind() {
        diffs.push(Diff { item: "response".into(), ours: summary(ours, on), theirs: summary(theirs, tn) });
        return diffs;
    }
    if ours.interim != theirs.interim {
        diffs.push(Diff {
            item: "interim".into(),
            ours: format!("{:?}", ours.interim),
            theirs: format!("{:?}", theirs.interim),
        });
    }
    if ours.reason != theirs.reason {
        diffs.push(Diff { item: "reason".into(), ours: ours.reason.clone(), theirs: theirs.reason.clone() });
    }
    let (mut oh, mut th) = (header_map(ours, on), header_map(theirs, tn));
    let reports = match cmp {
        Cmp::Environ if ours.outcome == Outcome::Complete => {
            environ_report(ours, on).zip(environ_report(theirs, tn))
        }
        _ => None,
    };
    if reports.is_some() {
        // The report's length follows its keys, which are compared one by one below.
        oh.remove("content-length");
        th.remove("content-length");
    }
    // How the body is delimited, as one item rather than two header differences.
    let framing = |h: &mut BTreeMap<String, Vec<String>>| {
        let te = h.remove("transfer-encoding");
        let cl = h.remove("content-length");
        match (te, cl) {
            (Some(te), _) => format!("Transfer-Encoding: {}", te.join(", ")),
            (None, Some(cl)) => format!("Content-Length: {}", cl.join(", ")),
            (None, None) => "neither (ends at close)".to_string(),
        }
    };
    let (of, tf) = (framing(&mut oh), framing(&mut th));
    if of != tf {
        let kind = |f: &str| f.split(':').next().unwrap_or("").to_string();
        let item = if kind(&of) == kind(&tf) {
            "header:content-length"
        } else if req.returns_list() {
            "framing:list-body"
        } else {
            "framing"
        };
        diffs.push(Diff { item: item.into(), ours: of, theirs: tf });
    }
    let names: std::collections::BTreeSet<&String> = oh.keys().chain(th.keys()).collect();
    for name in names {
        let (a, b) = (oh.get(name), th.get(name));
        if a != b {
            let show = |v: Option<&Vec<String>>| v.map(|v| v.join(" | ")).unwrap_or_else(|| "(absent)".into());
            diffs.push(Diff { item: format!("header:{name}"), ours: show(a), theirs: show(b) });
        }
    }
    // A cut response's body depends on buffering: only complete bodies are compared.
    if ours.outcome != Outcome::Complete {
        return diffs;
    }
    if let Some((a, b)) = reports {
        {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let (x, y) = (a.get(k), b.get(k));
                let same = match (x, y) {
                    (Some(x), Some(y)) if VARYING_KEYS.contains(&k.as_str()) => x.0 == y.0,
                    (x, y) => x == y,
                };
                if !same {
                    let item = match (x, y) {
                        (Some(_), Some(_)) => format!("environ:{k}"),
                        (None, _) => format!("environ-missing:{k}"),
                        (_, None) => format!("environ-extra:{k}"),
                    };
                    let show = |v: Option<&(String, String)>| {
                        v.map(|(t, v)| format!("{t} {v}")).unwrap_or_else(|| "(absent)".into())
                    };
                    diffs.push(Diff { item, ours: show(x), theirs: show(y) });
                }
            }
            return diffs;
        }
    }
    let (a, b) = (on.bytes(&ours.body), tn.bytes(&theirs.body));
    if a != b {
        diffs.push(Diff { item: "body".into(), ours: show_body(&a), theirs: show_body(&b) });
    }
    diffs
}

// ---------------------------------------------------------------------------------------
// the run

struct CaseResult {
    name: &'static str,
    what: &'static str,
    requests: Vec<String>,
    unexpected: Vec<Diff>,
    accepted: Vec<(Diff, &'static Deliberate)>,
    /// one line per request: what each server answered
    seen: Vec<String>,
    elapsed: Duration,
}

fn run_case(case: &Case, ours: &Apache, theirs: &Apache, mode: Mode) -> CaseResult {
    let (on, tn) = (Norm::of(ours), Norm::of(theirs));
    let mut res = CaseResult {
        name: case.name,
        what: case.what,
        requests: case.reqs.iter().map(|r| r.describe()).collect(),
        unexpected: Vec::new(),
        accepted: Vec::new(),
        seen: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let t0 = Instant::now();
    for (i, req) in case.reqs.iter().enumerate() {
        let (oa, ob) = std::thread::scope(|s| {
            let a = s.spawn(|| exchange(ours.port, req));
            let b = s.spawn(|| exchange(theirs.port, req));
            (a.join().unwrap(), b.join().unwrap())
        });
        let label = |j: usize| {
            if case.reqs.len() > 1 || !req.pipeline.is_empty() {
                format!("#{} ", if req.pipeline.is_empty() { i + 1 } else { j + 1 })
            } else {
                String::new()
            }
        };
        let none = no_response("no response on this connection".into());
        let sent: Vec<&Req> = std::iter::once(req).chain(req.pipeline.iter()).collect();
        for j in 0..oa.len().max(ob.len()) {
            let (a, b) = (oa.get(j).unwrap_or(&none), ob.get(j).unwrap_or(&none));
            res.seen_one(&label(j), a, b);
            for mut d in compare(case.cmp, sent[j.min(sent.len() - 1)], a, &on, b, &tn) {
                d.item = format!("{}{}", label(j), d.item);
                match deliberate_for(case.name, &d.item, mode) {
                    Some(del) => res.accepted.push((d, del)),
                    None => res.unexpected.push(d),
                }
            }
        }
    }
    res.elapsed = t0.elapsed();
    res
}

impl CaseResult {
    fn seen_one(&mut self, label: &str, a: &Observed, b: &Observed) {
        let brief = |o: &Observed| {
            let interim: String = o.interim.iter().map(|s| format!("{s}+")).collect();
            format!("{interim}{} {} {}B", o.status, o.outcome.kind(), o.body.len())
        };
        self.seen.push(format!("{label}{} | {}", brief(a), brief(b)));
    }
}

/// Checks that `server` runs the applications where `mode` says, so that the catalogue
/// does not compare two servers in another mode than intended: the pid pyenv.wsgi
/// reports is, in daemon mode, one of the daemons the module logged as started for the
/// group, and otherwise a child of the Apache parent.
fn assert_served_in(server: &Apache, side: Side, mode: Mode) {
    for _ in 0..6 {
        let reply = exchange(server.port, &Req::new("GET", "/pyenv/pid")).remove(0);
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        assert_eq!(reply.status, 200, "{}: GET /pyenv/pid: {text}\n{}", side.label(), server.error_log());
        let j = Json::parse(&text).unwrap_or_else(|e| panic!("{}: /pyenv/pid: {e}: {text}", side.label()));
        let pid = j.get("pid").as_i64() as u32;
        let group = j.get("process_group").as_str().to_string();
        match mode {
            Mode::Embedded => {
                assert!(
                    server.child_pids().contains(&pid) && group.is_empty(),
                    "{}: pid {pid} (process group {group:?}) is not an Apache child",
                    side.label()
                );
            }
            Mode::Daemon => {
                // Each module's line for a daemon it started.
                let started = match side {
                    Side::Ours => format!("daemon process group {GROUP}: process {pid} ("),
                    Side::Theirs => format!("mod_wsgi (pid={pid}): Starting process '{GROUP}'"),
                };
                let (found, log) = server.wait_log(Duration::from_secs(5), |l| l.contains(&started));
                assert!(
                    found && group == GROUP,
                    "{}: pid {pid} (process group {group:?}) is not a daemon of group {GROUP}:\n{log}",
                    side.label()
                );
            }
        }
    }
}

fn crash_lines(log: &str) -> Vec<String> {
    let markers = ["Fatal Python error", "exit signal", "Segmentation fault", "AH00052", "panicked at"];
    log.lines().filter(|l| markers.iter().any(|m| l.contains(m))).map(str::to_string).collect()
}

fn conformance(mpm: Mpm, mode: Mode, ours_as: Ours) {
    let only: Option<Vec<String>> = std::env::var("CONFORMANCE_ONLY")
        .ok()
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    let catalogue: Vec<Case> = cases::catalogue()
        .into_iter()
        .filter(|c| only.as_ref().map_or(true, |o| o.iter().any(|n| n == c.name)))
        .collect();
    let mut names = std::collections::HashSet::new();
    for c in &catalogue {
        assert!(names.insert(c.name), "duplicate case name {}", c.name);
    }

    ensure_module_fresh();
    let ours = start(Side::Ours, mpm, mode, ours_as);
    let theirs = start(Side::Theirs, mpm, mode, ours_as);
    // The reference must work, or every case would compare two failures.
    let probe = exchange(theirs.port, &Req::new("GET", "/env")).remove(0);
    assert!(
        probe.status == 200 && probe.outcome == Outcome::Complete,
        "mod_wsgi does not serve /env ({} {}): the reference server is broken\n{}",
        probe.status,
        probe.outcome.describe(),
        theirs.error_log()
    );
    for (server, side) in [(&ours, Side::Ours), (&theirs, Side::Theirs)] {
        assert_served_in(server, side, mode);
    }
    let started = Instant::now();
    let results: Vec<CaseResult> = catalogue.iter().map(|c| run_case(c, &ours, &theirs, mode)).collect();
    let elapsed = started.elapsed();

    let mut report = String::new();
    let failing: Vec<&CaseResult> = results.iter().filter(|r| !r.unexpected.is_empty()).collect();
    let deliberate_only = results.iter().filter(|r| r.unexpected.is_empty() && !r.accepted.is_empty()).count();
    let _ = writeln!(
        report,
        "conformance in {} mode on {}{}: {} cases in {:.1} s; {} identical, {} differ only deliberately, {} differ",
        mode.name(),
        mpm.name(),
        if ours_as == Ours::Unexported { ", mod_wsgi_rs with WSGIExportCGIVariables Off" } else { "" },
        results.len(),
        elapsed.as_secs_f64(),
        results.len() - failing.len() - deliberate_only,
        deliberate_only,
        failing.len()
    );
    for r in &failing {
        let _ = writeln!(report, "\n=== {} ({})", r.name, r.what);
        for q in &r.requests {
            let _ = writeln!(report, "    request: {q}");
        }
        for d in &r.unexpected {
            let _ = writeln!(report, "  - {}\n      mod_wsgi_rs: {}\n      mod_wsgi:    {}", d.item, d.ours, d.theirs);
        }
    }
    let mut listing = String::from("\nan example of each deliberate difference:\n");
    let mut cases_listing = String::new();
    let _ = writeln!(cases_listing, "\nevery case (mod_wsgi_rs | mod_wsgi: status, outcome, body bytes):");
    for r in &results {
        let verdict = if !r.unexpected.is_empty() {
            "DIFFERS"
        } else if !r.accepted.is_empty() {
            "deliberate"
        } else {
            "same"
        };
        let _ = writeln!(
            cases_listing,
            "  {:<36} {:<10} {:>5} ms  {}",
            r.name,
            verdict,
            r.elapsed.as_millis(),
            r.seen.join(" ; ")
        );
    }
    let mut used: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    let mut example: BTreeMap<usize, &Diff> = BTreeMap::new();
    for r in &results {
        for (diff, del) in &r.accepted {
            let i = DELIBERATE.iter().position(|d| std::ptr::eq(d, *del)).unwrap();
            let cases = used.entry(i).or_default();
            if cases.last() != Some(&r.name) {
                cases.push(r.name);
            }
            example.entry(i).or_insert(diff);
        }
    }
    let _ = writeln!(report, "\ndeliberate differences seen (DELIBERATE table):");
    for (i, cases) in &used {
        let d = &DELIBERATE[*i];
        let _ = writeln!(report, "  - {} in {} case(s): {}", d.item, cases.len(), d.reason);
        let e = example[i];
        let cut = |s: &str| s.chars().take(160).collect::<String>();
        let _ = writeln!(
            listing,
            "  {} (e.g. {}):\n      mod_wsgi_rs: {}\n      mod_wsgi:    {}",
            d.item,
            cases[0],
            cut(&e.ours),
            cut(&e.theirs)
        );
    }
    let unseen: Vec<String> = (0..DELIBERATE.len())
        .filter(|i| !used.contains_key(i) && DELIBERATE[*i].modes.contains(&mode))
        .map(|i| format!("{} ({})", DELIBERATE[i].item, DELIBERATE[i].cases.join(", ")))
        .collect();
    if !unseen.is_empty() {
        let _ = writeln!(report, "\nDELIBERATE entries that matched nothing in this run: {unseen:?}");
    }
    let (environment_report, environment_differences) = python_environment(&ours, &theirs, mode);
    let mut ours = ours;
    let mut theirs = theirs;
    let (events_report, events_differences) = python_events(&mut ours, &mut theirs);
    let _ = write!(report, "{environment_report}{events_report}");
    for d in environment_differences.iter().chain(&events_differences) {
        let _ = writeln!(report, "  UNEXPECTED: {d}");
    }
    let crashes_ours = crash_lines(&ours.error_log());
    let crashes_theirs = crash_lines(&theirs.error_log());
    if !crashes_ours.is_empty() || !crashes_theirs.is_empty() {
        let _ = writeln!(
            report,
            "\ncrash markers in the error logs:\n  mod_wsgi_rs: {:?}\n  mod_wsgi: {:?}",
            crashes_ours, crashes_theirs
        );
    }
    let file = match mode {
        Mode::Embedded => format!("conformance-{}{}.txt", mpm.name(), ours_as.suffix()),
        Mode::Daemon => format!("conformance-daemon-{}{}.txt", mpm.name(), ours_as.suffix()),
    };
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join(file);
    let _ = std::fs::write(&out, format!("{report}{listing}{cases_listing}"));
    eprintln!("{report}");
    assert!(
        environment_differences.is_empty() && events_differences.is_empty(),
        "the Python-side environment differs from mod_wsgi's in {} mode on {} (see above, or {})",
        mode.name(),
        mpm.name(),
        out.display()
    );
    assert!(
        failing.is_empty() && crashes_ours.is_empty(),
        "{} of {} conformance cases differ from mod_wsgi in {} mode on {} (see above, or {})",
        failing.len(),
        results.len(),
        mode.name(),
        mpm.name(),
        out.display()
    );
}

#[test]
fn catalogue_is_large_enough() {
    let c = cases::catalogue();
    assert!(c.len() >= 40, "the catalogue must hold at least 40 cases, has {}", c.len());
    for d in DELIBERATE {
        assert!(!d.reason.is_empty());
    }
}

/// Every entry of [`DELIBERATE`] is listed in docs/COMPATIBILITY.md by its item (and its
/// cases, when it has a few), an entry of daemon mode alone in the section on daemon mode.
#[test]
fn deliberate_table_is_documented() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/COMPATIBILITY.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let daemon_section = doc
        .split_once("\n### Daemon mode\n")
        .map(|(_, rest)| rest.split("\n## ").next().unwrap_or(""))
        .unwrap_or_else(|| panic!("{} has no section \"### Daemon mode\"", path.display()));
    let mut missing = Vec::new();
    for d in DELIBERATE {
        let mut names = vec![d.item];
        if d.cases.len() <= 4 {
            names.extend(d.cases.iter().filter(|c| **c != "*"));
        }
        let text = if d.modes == [Mode::Daemon] { daemon_section } else { doc.as_str() };
        missing.extend(names.into_iter().filter(|n| !text.contains(&format!("`{n}`"))));
    }
    let facts = DELIBERATE_FACTS.iter().map(|d| d.fact).chain(EVENT_ARGS_NOT_PASSED.iter().copied());
    missing.extend(facts.filter(|n| !doc.contains(&format!("`{n}`"))));
    assert!(
        missing.is_empty(),
        "{} does not name these items or cases of the DELIBERATE table (in backticks): {missing:?}",
        path.display()
    );
}

#[test]
fn conformance_event() {
    conformance(Mpm::Event, Mode::Embedded, Ours::Default);
}

#[test]
fn conformance_worker() {
    conformance(Mpm::Worker, Mode::Embedded, Ours::Default);
}

#[test]
fn conformance_prefork() {
    conformance(Mpm::Prefork, Mode::Embedded, Ours::Default);
}

/// The environ made without Apache's table is the one made through it: the
/// whole catalogue, on one MPM in each mode.
#[test]
fn conformance_event_unexported() {
    conformance(Mpm::Event, Mode::Embedded, Ours::Unexported);
}

#[test]
fn conformance_daemon_event_unexported() {
    conformance(Mpm::Event, Mode::Daemon, Ours::Unexported);
}

#[test]
fn conformance_daemon_event() {
    conformance(Mpm::Event, Mode::Daemon, Ours::Default);
}

#[test]
fn conformance_daemon_worker() {
    conformance(Mpm::Worker, Mode::Daemon, Ours::Default);
}

#[test]
fn conformance_daemon_prefork() {
    conformance(Mpm::Prefork, Mode::Daemon, Ours::Default);
}
