mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn stop_prefork() {
    for mpm in [Mpm::Prefork, Mpm::Event] {
        let dir = TestDir::new("scratch");
        let app = dir.install_app("daemon_faults.wsgi", &[]).to_string_lossy().into_owned();
        let conf = Conf::new(mpm).log_level("info").extra(&format!("WSGIDaemonProcess g processes=2 threads=4 display-name=%{{GROUP}}\nWSGIScriptAlias /r {app} process-group=g\n"));
        let mut a = Apache::start(dir, &conf, &[]);
        for _ in 0..20 { assert_eq!(a.get("/r/where").status, 200); }
        let daemons = daemons_titled("g");
        let t = Instant::now();
        run_ok("/bin/kill", &["-TERM", &a.pid.to_string()], std::path::Path::new("/"), &[]);
        wait_for("daemons gone", Duration::from_secs(20), || daemons.iter().all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()));
        eprintln!("[scratch] {}: daemons gone {:?} after SIGTERM", mpm.name(), t.elapsed());
        a.stop();
        let log = a.error_log();
        for l in log.lines().filter(|l| l.contains("supervisor of")) { eprintln!("{}", &l[..l.len().min(200)]); }
    }
}
