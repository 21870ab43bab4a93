//! `SetHandler wsgi-rs-status`, against the real Apache: the daemon groups' processes,
//! busy threads, requests served, replacements and request times, as a page (loaded in
//! Debian's chromium, headless), as JSON, and in Prometheus' text format (read back with
//! the prometheus_client package's own parser); behind Apache's access control.
mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GROUPS: &str = "WSGIDaemonProcess alpha processes=2 threads=3 maximum-requests=5\n\
    WSGIScriptAlias /alpha @@APP@@ process-group=alpha\n\
    WSGIDaemonProcess beta threads=2\n\
    WSGIScriptAlias /beta @@APP@@ process-group=beta\n\
    WSGIScriptAlias /embedded @@APP@@\n\
    <Location /wsgi-status>\n    SetHandler wsgi-rs-status\n    Require ip 127.0.0.1\n</Location>\n\
    <Location /hidden-status>\n    SetHandler wsgi-rs-status\n    Require all denied\n</Location>\n";

fn start(mpm: Mpm) -> Apache {
    let dir = TestDir::new(&format!("status-{}", mpm.name()));
    let app = dir.install_app("daemon_lifecycle.wsgi", &[]).to_string_lossy().into_owned();
    let conf = Conf::new(mpm)
        .log_level("info")
        .module_before("authz_host_module", "mod_authz_host.so")
        .extra(&GROUPS.replace("@@APP@@", &app));
    Apache::start(dir, &conf, &[])
}

fn pid_of(a: &Apache, prefix: &str) -> u32 {
    let r = a.get(&format!("{prefix}/where"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().get("pid").as_i64() as u32
}

fn status_json(a: &Apache) -> Json {
    let r = a.get("/wsgi-status?format=json");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    r.json()
}

fn group<'a>(status: &'a Json, name: &str) -> &'a Json {
    status.get("groups").as_arr().iter().find(|g| g.get("name").as_str() == name).unwrap_or_else(|| panic!("no group {name} in {status}"))
}

/// The samples prometheus_client's parser reads from `text`, one JSON object each.
fn parse_prometheus(text: &str) -> Vec<Json> {
    let venv = cached_venv(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/status/requirements.txt"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/status/parse_prometheus.py");
    let mut child = Command::new(venv.join("bin/python"))
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the Prometheus parser");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "prometheus_client refused the exposition:\n{}\n{text}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| Json::parse(l).unwrap()).collect()
}

fn sample<'a>(samples: &'a [Json], name: &str, labels: &[(&str, &str)]) -> Option<&'a Json> {
    samples.iter().find(|s| {
        s.get("name").as_str() == name && labels.iter().all(|(k, v)| s.get("labels").has(k) && s.get("labels").get(k).as_str() == *v)
    })
}

/// The page as Debian's chromium renders it (its DOM after loading).
fn browser_dom(url: &str, profile: &Path) -> String {
    let mut child = Command::new("chromium")
        // Without the networking flags chromium keeps reaching out to Google's hosts,
        // which a closed network refuses.
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"])
        .args(["--disable-quic", "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .env("HOME", profile)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chromium (Debian package chromium; make deps installs it)");
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status_page(mpm: Mpm) {
    let mut a = start(mpm);
    let beta = pid_of(&a, "/beta");
    // alpha: 2 processes of at most 5 requests each; requests until two were replaced.
    let replacements = |a: &Apache| group(&status_json(a), "alpha").get("replacements").get("maximum-requests").as_i64();
    // A time limit, not a number of requests: a successor takes longer to
    // start than requests take to serve, the more so on a busy machine.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    while replacements(&a) < 2 {
        assert!(Instant::now() < deadline, "{sent} requests in 60 s and not two replacements:\n{}", a.error_log());
        for _ in 0..5 {
            pid_of(&a, "/alpha");
        }
        sent += 5;
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for("alpha's successors to take over", Duration::from_secs(20), || {
        let status = status_json(&a);
        let processes = group(&status, "alpha").get("processes").as_arr().to_vec();
        processes.len() == 2 && processes.iter().all(|p| matches!(p.get("replacing"), Json::Null))
    });
    // A request holding one of beta's threads while the status is read.
    let port = a.port;
    let slow = std::thread::spawn(move || http_request(port, "GET", "/beta/sleep?6", &[], b"", Duration::from_secs(20)));
    wait_for("a busy beta thread", Duration::from_secs(10), || {
        let status = status_json(&a);
        group(&status, "beta").get("processes").as_arr().iter().any(|p| p.get("busy_threads").as_i64() == 1)
    });

    let status = status_json(&a);
    let alpha = group(&status, "alpha");
    let last = alpha.get("last_replacement");
    assert_eq!(last.get("reason").as_str(), "maximum-requests", "{alpha}");
    assert!(alpha.get("request_seconds").get("count").as_i64() >= sent, "{alpha}");
    assert!(!matches!(alpha.get("request_seconds").get("p99"), Json::Null), "{alpha}");
    let beta_group = group(&status, "beta");
    let processes = beta_group.get("processes").as_arr();
    assert_eq!(processes.len(), 1, "{beta_group}");
    let p = &processes[0];
    assert_eq!(p.get("pid").as_i64() as u32, beta);
    assert_eq!((p.get("busy_threads").as_i64(), p.get("idle_threads").as_i64()), (1, 1), "{p}");
    assert!(p.get("requests").as_i64() >= 1, "{p}");
    assert!(p.get("rss_bytes").as_i64() > 4 << 20, "{p}");
    assert_eq!(beta_group.get("replacements").get("exited").as_i64(), 0);

    // mod_wsgi.server_metrics(): the same figures. A daemon sees its own group, this
    // request among its busy threads; an Apache child every group, as the page does.
    let r = a.get("/beta/server-metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.json().get("server_metrics").get("groups").as_arr().to_vec();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].get("name").as_str(), "beta");
    let own = seen[0].get("processes").as_arr().to_vec();
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(own[0].get("pid").as_i64() as u32, beta);
    assert_eq!((own[0].get("busy_threads").as_i64(), own[0].get("idle_threads").as_i64()), (2, 0), "{own:?}");
    assert!(own[0].get("requests").as_i64() >= p.get("requests").as_i64(), "{own:?} after {p}");
    let r = a.get("/embedded/server-metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    let reply = r.json();
    let seen = reply.get("server_metrics");
    let names: Vec<_> = seen.get("groups").as_arr().iter().map(|g| g.get("name").as_str().to_owned()).collect();
    assert_eq!(names, ["alpha", "beta"], "{seen}");
    assert_eq!(group(seen, "alpha").get("replacements").get("maximum-requests").as_i64(), alpha.get("replacements").get("maximum-requests").as_i64());

    // Prometheus, read by prometheus_client.
    let r = a.get("/wsgi-status?format=prometheus");
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Type").unwrap_or_default().starts_with("text/plain; version=0.0.4"), "{:?}", r.header("Content-Type"));
    let samples = parse_prometheus(&r.text());
    let beta_pid = beta.to_string();
    let busy = sample(&samples, "wsgi_rs_threads", &[("group", "beta"), ("pid", &beta_pid), ("state", "busy")]).expect("busy threads");
    assert_eq!(busy.get("value").as_i64(), 1);
    let replaced = sample(&samples, "wsgi_rs_replacements_total", &[("group", "alpha"), ("reason", "maximum-requests")]).unwrap();
    assert!(replaced.get("value").as_i64() >= 2);
    assert_eq!(replaced.get("type").as_str(), "counter");
    let count = sample(&samples, "wsgi_rs_request_duration_seconds_count", &[("group", "alpha")]).unwrap();
    let inf = sample(&samples, "wsgi_rs_request_duration_seconds_bucket", &[("group", "alpha"), ("le", "+Inf")]).unwrap();
    assert_eq!(count.get("value").as_i64(), inf.get("value").as_i64());
    assert_eq!(inf.get("type").as_str(), "histogram");
    assert!(sample(&samples, "wsgi_rs_process_resident_memory_bytes", &[("group", "beta"), ("pid", &beta_pid)]).is_some());

    // The page, in a real browser.
    let profile = a.dir.mkdir("chromium-profile");
    let dom = browser_dom(&a.url("/wsgi-status"), &profile);
    assert!(dom.contains("<title>mod_wsgi_rs status</title>"), "{dom}");
    assert!(dom.contains("Daemon process group alpha") && dom.contains("Daemon process group beta"), "{dom}");
    assert!(dom.contains(&format!("data-pid=\"{beta}\"")), "beta's process is not listed:\n{dom}");
    assert!(dom.contains("maximum-requests"), "{dom}");
    assert!(dom.contains("<td class=\"state\">serving</td>"), "{dom}");

    // Apache's access control, as for mod_status; other methods and formats refused.
    assert_eq!(a.get("/hidden-status").status, 403);
    assert_eq!(a.request("POST", "/wsgi-status", &[], b"x").status, 405);
    let mark = log_mark(&a);
    assert_eq!(a.get("/wsgi-status?format=xml").status, 400);
    wait_line_after(&a, mark, Duration::from_secs(5), &["wsgi-rs-status: unknown format 'xml'; expected html, json or prometheus"])
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(slow.join().unwrap().unwrap().status, 200);
    assert_no_crash(&a.error_log());
    a.stop();
}

#[test]
fn status_page_event() {
    let _g = heavy();
    status_page(Mpm::Event);
}

#[test]
fn status_page_prefork() {
    let _g = heavy();
    status_page(Mpm::Prefork);
}
