//! WSGIPythonOptimize configuration checking: `apache2 -t` on bad and good values and
//! contexts, and the .htaccess case through a real request.
mod common;
use common::*;

/// Runs `apache2 -t` on the standard config plus `extra`; returns
/// (exit code, output, config text, config path).
fn config_test(extra: &str) -> (i32, String, String, String) {
    apache_config_test_conf(&Conf::new(Mpm::Event).extra(extra))
}

/// A value the module itself must reject: exit 1, Apache's syntax-error line pointing at
/// the directive, and our message naming the directive, the value and the allowed values.
fn assert_invalid_value(value_in_conf: &str, value_shown: &str) {
    let line = format!("WSGIPythonOptimize {value_in_conf}");
    let (code, out, text, path) = config_test(&line);
    let n = line_of(&text, &line);
    assert_eq!(code, 1, "apache2 -t should fail for `{line}`; output:\n{out}");
    let syntax = format!("AH00526: Syntax error on line {n} of {path}:");
    assert!(out.contains(&syntax), "expected {syntax:?} in:\n{out}");
    let msg = format!(
        "WSGIPythonOptimize: invalid value '{value_shown}'; expected 0, 1 or 2"
    );
    assert!(out.contains(&msg), "expected {msg:?} in:\n{out}");
    assert!(!out.contains("Syntax OK"), "{out}");
}

#[test]
fn rejects_3() {
    assert_invalid_value("3", "3");
}

#[test]
fn rejects_99() {
    assert_invalid_value("99", "99");
}

#[test]
fn rejects_minus_1() {
    assert_invalid_value("-1", "-1");
}

#[test]
fn rejects_abc() {
    assert_invalid_value("abc", "abc");
}

#[test]
fn rejects_on() {
    assert_invalid_value("On", "On");
}

#[test]
fn rejects_1_5() {
    assert_invalid_value("1.5", "1.5");
}

#[test]
fn rejects_2abc() {
    assert_invalid_value("2abc", "2abc");
}

#[test]
fn rejects_0x2() {
    assert_invalid_value("0x2", "0x2");
}

#[test]
fn rejects_plus_1() {
    assert_invalid_value("+1", "+1");
}

#[test]
fn rejects_quoted_value_with_space() {
    assert_invalid_value("\"1 \"", "1 ");
}

/// `WSGIPythonOptimize ""`: Apache's TAKE1 parser already refuses an empty word with its
/// arity error (measured with mod_wsgi 4.9 on this httpd), so either that or our own
/// invalid-value message is right; a pass is not.
#[test]
fn rejects_empty_string() {
    let line = "WSGIPythonOptimize \"\"";
    let (code, out, text, path) = config_test(line);
    let n = line_of(&text, line);
    assert_eq!(code, 1, "apache2 -t should fail for `{line}`; output:\n{out}");
    assert!(
        out.contains(&format!("AH00526: Syntax error on line {n} of {path}:")),
        "syntax error line {n} expected:\n{out}"
    );
    assert!(
        out.contains("WSGIPythonOptimize takes one argument")
            || out.contains("WSGIPythonOptimize: invalid value ''; expected 0, 1 or 2"),
        "expected the arity error or the invalid-value message:\n{out}"
    );
}

fn assert_arity_error(line: &str) {
    let (code, out, text, path) = config_test(line);
    let n = line_of(&text, line);
    assert_eq!(code, 1, "apache2 -t should fail for `{line}`; output:\n{out}");
    assert!(
        out.contains(&format!("AH00526: Syntax error on line {n} of {path}:")),
        "syntax error line {n} expected:\n{out}"
    );
    assert!(out.contains("WSGIPythonOptimize takes one argument, "), "arity error expected:\n{out}");
}

#[test]
fn rejects_no_argument() {
    assert_arity_error("WSGIPythonOptimize");
}

#[test]
fn rejects_two_arguments() {
    assert_arity_error("WSGIPythonOptimize 1 2");
}

#[test]
fn rejects_virtualhost_context() {
    let extra = "<VirtualHost 127.0.0.1:@@PORT@@>\n    ServerName vhost.test\n    WSGIPythonOptimize 1\n</VirtualHost>\n";
    let (code, out, text, path) = config_test(extra);
    let n = line_of(&text, "WSGIPythonOptimize 1");
    assert_eq!(code, 1, "output:\n{out}");
    assert!(out.contains(&format!("AH00526: Syntax error on line {n} of {path}:")), "{out}");
    assert!(
        out.contains("WSGIPythonOptimize cannot occur within <VirtualHost> section"),
        "{out}"
    );
}

fn assert_not_allowed_in(open: &str, close: &str) {
    let extra = format!("{open}\n    WSGIPythonOptimize 1\n{close}\n");
    let (code, out, text, path) = config_test(&extra);
    let n = line_of(&text, "WSGIPythonOptimize 1");
    assert_eq!(code, 1, "output:\n{out}");
    assert!(out.contains(&format!("AH00526: Syntax error on line {n} of {path}:")), "{out}");
    let msg_line = out
        .lines()
        .find(|l| l.contains("WSGIPythonOptimize") && l.contains("not allowed"))
        .unwrap_or_else(|| panic!("no 'WSGIPythonOptimize ... not allowed' line in:\n{out}"));
    assert!(!msg_line.contains("invalid value"), "{msg_line}");
}

#[test]
fn rejects_directory_context() {
    assert_not_allowed_in("<Directory @@DIR@@/htdocs>", "</Directory>");
}

#[test]
fn rejects_location_context() {
    assert_not_allowed_in("<Location /x>", "</Location>");
}

#[test]
fn rejects_files_context() {
    assert_not_allowed_in("<Files x.txt>", "</Files>");
}

#[test]
fn accepts_0_1_2() {
    for v in ["0", "1", "2", "\"2\""] {
        let line = format!("WSGIPythonOptimize {v}");
        let (code, out, _, _) = config_test(&line);
        assert_eq!(code, 0, "apache2 -t should accept `{line}`; output:\n{out}");
        assert!(out.contains("Syntax OK"), "`{line}`: {out}");
        assert!(!out.contains("WSGIPythonOptimize"), "`{line}` produced a message:\n{out}");
    }
}

#[test]
fn accepts_repeated_directive() {
    let (code, out, _, _) = config_test("WSGIPythonOptimize 2\nWSGIPythonOptimize 1\n");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Syntax OK"), "{out}");
}

#[test]
fn an_invalid_value_also_stops_a_real_start() {
    // Not only `-t`: starting httpd with the bad value must fail the same way.
    let dir = TestDir::new("optimize-start-fail");
    let text = Conf::new(Mpm::Event).extra("WSGIPythonOptimize 7").render(&dir, free_port());
    let (code, err) = apache_start_expect_exit(&dir, &text, std::time::Duration::from_secs(15));
    assert_eq!(code, Some(1), "httpd should exit 1 at once (None = it kept running); stderr:\n{err}");
    assert!(
        err.contains("WSGIPythonOptimize: invalid value '7'; expected 0, 1 or 2"),
        "{err}"
    );
}

/// In .htaccess (AllowOverride All) the directive is refused at request time: 500 and
/// Apache's "not allowed here" in the error log; other directories are unaffected.
#[test]
fn htaccess_is_refused_per_request() {
    let dir = TestDir::new("optimize-htaccess");
    dir.write("htdocs/static.txt", STATIC_BODY);
    dir.write("htdocs/ht/static.txt", "behind htaccess\n");
    dir.write("htdocs/ht/.htaccess", "WSGIPythonOptimize 1\n");
    let conf = Conf::new(Mpm::Event).extra(
        "<Directory @@DIR@@/htdocs/ht>\n    AllowOverride All\n</Directory>\n",
    );
    let apache = Apache::start(dir, &conf, &[]);
    let r = apache.get("/ht/static.txt");
    assert_eq!(r.status, 500, "body: {}", r.text());
    let (found, log) = apache.wait_log(std::time::Duration::from_secs(5), |l| {
        l.contains("WSGIPythonOptimize not allowed here")
    });
    assert!(found, "no 'WSGIPythonOptimize not allowed here' in error log:\n{log}");
    let line = lines_with(&log, "WSGIPythonOptimize not allowed here")[0].to_string();
    assert!(line.contains(".htaccess"), "the message should name the .htaccess file: {line}");
    let ok = apache.get("/static.txt");
    assert_eq!(ok.status, 200);
    assert_eq!(ok.text(), STATIC_BODY);
}
