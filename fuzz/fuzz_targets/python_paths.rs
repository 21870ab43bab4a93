//! The path directives: WSGIPythonHome, WSGIPythonPath and
//! WSGIPythonPycachePrefix (the whole input as the value) and WSGIImportScript (the input's lines as its words; a
//! directive's words never hold a newline).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/config.rs"]
mod config;
// config.rs refers to the daemon-mode and application-group types.
#[allow(dead_code)]
#[path = "../../src/daemon_config.rs"]
mod daemon_config;
#[allow(dead_code)]
#[path = "../../src/daemon_lifecycle.rs"]
mod daemon_lifecycle;
#[allow(dead_code)]
#[path = "../../src/application_group.rs"]
mod application_group;

use config::InterpreterConfig;
use daemon_config::ProcessGroup;

#[path = "expected_application_group.rs"]
mod expected;
use expected::expected_application_group;

fn check_home(value: &str) {
    match config::parse_python_home(value) {
        Ok(home) => {
            assert!(value.starts_with('/'), "relative {value:?} accepted");
            // Only trailing slashes are dropped, and never the root.
            assert!(home == "/" || !home.ends_with('/'), "{value:?} -> {home:?}");
            assert!(value.starts_with(&home), "{value:?} -> {home:?}");
            assert!(value[home.len()..].bytes().all(|b| b == b'/'), "{value:?} -> {home:?}");
            // Parsing what was kept changes nothing, so the logged setting
            // reads back as the same home.
            assert_eq!(config::parse_python_home(&home).as_ref(), Ok(&home));
            let mut interpreter = InterpreterConfig::default();
            interpreter.set("WSGIPythonHome", value).unwrap();
            assert_eq!(interpreter.given(), vec![format!("WSGIPythonHome {home}")]);
        }
        Err(message) => {
            assert!(!value.starts_with('/'), "{value:?} rejected: {message}");
            assert!(message.starts_with("WSGIPythonHome: "), "{message}");
            assert!(message.contains(&format!("'{}'", value.escape_default())), "{message}");
        }
    }
}

fn check_path(value: &str) {
    let expected: Vec<&str> = value.split(':').filter(|d| !d.is_empty()).collect();
    let valid = !expected.is_empty() && expected.iter().all(|d| d.starts_with('/'));
    match config::parse_python_path(value) {
        Ok(dirs) => {
            assert!(valid, "{value:?} accepted as {dirs:?}");
            assert_eq!(dirs, expected);
            // The joined list (as logged) parses back to the same list.
            assert_eq!(config::parse_python_path(&dirs.join(":")).as_ref(), Ok(&dirs));
            let mut interpreter = InterpreterConfig::default();
            interpreter.set("WSGIPythonPath", value).unwrap();
            assert_eq!(interpreter.path, dirs);
        }
        Err(message) => {
            assert!(!valid, "{value:?} rejected: {message}");
            assert!(message.starts_with("WSGIPythonPath: "), "{message}");
            if let Some(bad) = expected.iter().find(|d| !d.starts_with('/')) {
                assert!(message.contains(&format!("'{}'", bad.escape_default())), "{message}");
            }
        }
    }
}

fn check_pycache_prefix(value: &str) {
    // Off in any case, or an absolute directory other than / without NUL
    // or newline, kept without its trailing slashes.
    let expected = if value.eq_ignore_ascii_case("off") {
        Some(config::PycachePrefix::Off)
    } else {
        let trimmed = value.trim_end_matches('/');
        (value.starts_with('/') && !trimmed.is_empty() && !value.contains('\0') && !value.contains('\n'))
            .then(|| config::PycachePrefix::Directory(trimmed.to_owned()))
    };
    match config::parse_pycache_prefix(value) {
        Ok(prefix) => {
            assert_eq!(Some(&prefix), expected.as_ref(), "{value:?}");
            // The logged setting reads back as the same prefix.
            assert_eq!(config::parse_pycache_prefix(&prefix.to_string()).as_ref(), Ok(&prefix));
            let mut interpreter = InterpreterConfig::default();
            interpreter.set("WSGIPythonPycachePrefix", value).unwrap();
            assert_eq!(interpreter.given(), vec![format!("WSGIPythonPycachePrefix {prefix}")]);
        }
        Err(message) => {
            assert!(expected.is_none(), "{value:?} rejected: {message}");
            assert!(message.starts_with("WSGIPythonPycachePrefix: "), "{message}");
            assert!(message.contains(&format!("'{}'", value.escape_default())), "{message}");
        }
    }
}

fn check_import_script(words: &[&str]) {
    // The group of the last process-group= option, %{GLOBAL} without one,
    // or None for an invalid line. %{ENV:...} needs a request, which an
    // import has not.
    let options_ok = |options: &[&str]| {
        let mut group = ProcessGroup::Global;
        for option in options {
            match option.split_once('=') {
                // Only names: an import has no request to resolve one for.
                Some(("application-group", value))
                    if expected_application_group(value).is_some_and(|g| g.static_name().is_some()) => {}
                Some(("process-group", value)) => match expected_process_group(value)? {
                    ProcessGroup::Env(_) => return None,
                    named_or_global => group = named_or_global,
                },
                _ => return None,
            }
        }
        Some(group)
    };
    let expected = match words {
        [path, options @ ..] if path.starts_with('/') => options_ok(options),
        _ => None,
    };
    let valid = expected.is_some();
    match config::parse_import_script(words) {
        Ok(script) => {
            assert!(valid, "{words:?} accepted");
            assert_eq!(script.path, words[0]);
            assert_eq!(Some(script.process_group), expected, "{words:?}");
        }
        Err(message) => {
            assert!(!valid, "{words:?} rejected: {message}");
            assert!(message.starts_with("WSGIImportScript: "), "{message}");
        }
    }
}

/// What a process-group value means, written independently of the
/// parser: %{GLOBAL}, %{ENV:VARIABLE}, or a group name (no spaces,
/// controls or '=', not of the form %{...}).
fn expected_process_group(value: &str) -> Option<ProcessGroup> {
    let plain = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if value == "%{GLOBAL}" {
        return Some(ProcessGroup::Global);
    }
    if let Some(variable) = value.strip_prefix("%{ENV:").and_then(|v| v.strip_suffix('}')) {
        return (plain(variable) && !variable.contains(['{', '}'])).then(|| ProcessGroup::Env(variable.to_owned()));
    }
    (plain(value) && !value.starts_with("%{") && !value.contains('=')).then(|| ProcessGroup::Named(value.to_owned()))
}

fuzz_target!(|value: &str| {
    check_home(value);
    check_path(value);
    check_pycache_prefix(value);
    let words: Vec<&str> = if value.is_empty() { Vec::new() } else { value.split('\n').collect() };
    check_import_script(&words);
});
