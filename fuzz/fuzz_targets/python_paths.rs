//! The path directives: WSGIPythonHome and WSGIPythonPath (the whole input
//! as the value) and WSGIImportScript (the input's lines as its words; a
//! directive's words never hold a newline).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/config.rs"]
mod config;

use config::InterpreterConfig;

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

fn check_import_script(words: &[&str]) {
    let options_ok = |options: &[&str]| {
        options
            .iter()
            .all(|o| matches!(*o, "process-group=%{GLOBAL}" | "application-group=%{GLOBAL}"))
    };
    let valid = matches!(words, [path, options @ ..] if path.starts_with('/') && options_ok(options));
    match config::parse_import_script(words) {
        Ok(path) => {
            assert!(valid, "{words:?} accepted");
            assert_eq!(path, words[0]);
        }
        Err(message) => {
            assert!(!valid, "{words:?} rejected: {message}");
            assert!(message.starts_with("WSGIImportScript: "), "{message}");
        }
    }
}

fuzz_target!(|value: &str| {
    check_home(value);
    check_path(value);
    let words: Vec<&str> = if value.is_empty() { Vec::new() } else { value.split('\n').collect() };
    check_import_script(&words);
});
