//! Output to the error log (contract "Output to the log"): wsgi.errors write/writelines/
//! flush and print() to sys.stdout/sys.stderr during a request become one
//! `[wsgi_rs:error]` line per text line with the client address; partial lines are held
//! until a newline or flush; output outside a request is logged without a client. On
//! all three MPMs, plain and through wsgiref.validate.validator.
mod common;
use common::*;
use std::time::Duration;

fn one_line<'a>(log: &'a str, needle: &str) -> &'a str {
    let hits: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
    assert_eq!(hits.len(), 1, "expected exactly one log line with {needle:?}, got {hits:#?}");
    hits[0]
}

fn in_request(line: &str) {
    assert!(line.contains("[wsgi_rs:error]"), "not at [wsgi_rs:error]: {line}");
    assert!(line.contains("[client 127.0.0.1:"), "no client address: {line}");
}

fn suite(mpm: Mpm) {
    let dir = TestDir::new(&format!("output-{}", mpm.name()));
    let (app, wrapped) = rp_install(&dir, "rp_output.wsgi", &[]);
    let conf = Conf::new(mpm).extra(&format!(
        "WSGIScriptAlias /out {app}\n{}",
        rp_vhosts(&format!("WSGIScriptAlias /out {wrapped}"))
    ));
    let apache = match rp_start(dir, &conf) {
        Ok(a) => a,
        Err(e) => panic!("[output {}] {e}", mpm.name()),
    };
    let mut c = Checks::new(format!("output {}", mpm.name()));
    for via in Via::BOTH {
        let cl = Client::new(&apache, via);
        let v = via.name();
        let tok = |what: &str| format!("{what}{}{}{}", mpm.name(), v, std::process::id());
        c.run(&format!("wsgi.errors write/writelines/flush, one line each, with client [{v}]"), || {
            let t = tok("E");
            let r = cl.get(&format!("/out?mode=errors&tok={t}"));
            assert_eq!(r.status, 200, "{}", short(&r.text()));
            wait_line(&apache, Duration::from_secs(5), &[&format!("errors-two {t} line2")]).unwrap();
            let log = apache.error_log();
            for n in ["errors-write", "errors-wl1", "errors-wl2", "errors-flushed"] {
                let l = one_line(&log, &format!("{n} {t}"));
                in_request(l);
                assert!(l.trim_end().ends_with(&format!("{n} {t}")), "line should end with the text: {l}");
            }
            for n in ["line1", "line2"] {
                in_request(one_line(&log, &format!("errors-two {t} {n}")));
            }
        });
        c.run(&format!("wsgi.errors partial line held until newline [{v}]"), || {
            let t = tok("P");
            cl.get(&format!("/out?mode=errors&tok={t}"));
            let l = wait_line(&apache, Duration::from_secs(5), &[&format!("errors-partA {t}")]).unwrap();
            assert!(l.trim_end().ends_with(&format!("errors-partA {t} partB")), "partial writes must form one line: {l}");
            in_request(&l);
        });
        c.run(&format!("print() to stdout and stderr during a request [{v}]"), || {
            let t = tok("S");
            let r = cl.get(&format!("/out?mode=print&tok={t}"));
            assert_eq!(r.status, 200, "{}", short(&r.text()));
            wait_line(&apache, Duration::from_secs(5), &[&format!("stderr-flushed {t}")]).unwrap();
            let log = apache.error_log();
            for n in ["stdout-print", "stderr-print", "stdout-flushed", "stderr-flushed"] {
                let l = one_line(&log, &format!("{n} {t}"));
                in_request(l);
            }
            let l = one_line(&log, &format!("stdout-partA {t}"));
            assert!(l.trim_end().ends_with("partB"), "partial stdout writes must form one line: {l}");
            in_request(l);
        });
        c.run(&format!("stdout/stderr outside a request: logged without a client [{v}]"), || {
            let t = tok("O");
            let r = cl.get(&format!("/out?mode=outside&tok={t}"));
            assert_eq!(r.status, 200, "{}", short(&r.text()));
            for n in ["outside-stdout", "outside-stderr"] {
                let l = wait_line(&apache, Duration::from_secs(10), &[&format!("{n} {t}")]).unwrap();
                assert!(l.contains("[wsgi_rs:"), "{l}");
                assert!(!l.contains("[client "), "output outside a request must not carry a client: {l}");
            }
        });
    }
    rp_final_checks(&mut c, &apache);
    drop(apache);
    rp_finish(c);
}

#[test]
fn output_event() {
    suite(Mpm::Event);
}

#[test]
fn output_worker() {
    suite(Mpm::Worker);
}

#[test]
fn output_prefork() {
    suite(Mpm::Prefork);
}
