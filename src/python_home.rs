//! `WSGIPythonHome`: checking, before Python starts, that the directory
//! holds something this module's Python can run. CPython's own failure
//! here is a fatal error about `encodings` that kills the process, so the
//! problems are found first and reported with the path and what is wrong.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

/// What a checked `WSGIPythonHome` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PythonHome {
    /// A virtual environment (it has `pyvenv.cfg`): Python starts as if
    /// run as `home/bin/python`, so `sys.prefix` is the environment and its
    /// site-packages are importable.
    VirtualEnv(String),
    /// A Python installation prefix holding the standard library.
    Prefix(String),
}

impl PythonHome {
    pub fn describe(&self) -> String {
        match self {
            PythonHome::VirtualEnv(path) => format!("{path} (virtual environment)"),
            PythonHome::Prefix(path) => format!("{path} (Python prefix)"),
        }
    }
}

/// Checks `home` for the Python version `version` (`"3.11"`).
pub fn check(home: &str, version: &str) -> Result<PythonHome, String> {
    let fail = |problem: String| Err(format!("WSGIPythonHome {home}: {problem}"));
    let path = Path::new(home);
    match fs::metadata(path) {
        Ok(meta) if !meta.is_dir() => return fail("is not a directory".to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return fail("does not exist".to_owned()),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => return fail(unreadable()),
        Err(e) => return fail(e.to_string()),
    }
    if let Err(e) = fs::read_dir(path) {
        return fail(if e.kind() == ErrorKind::PermissionDenied { unreadable() } else { e.to_string() });
    }
    let venv_cfg = path.join("pyvenv.cfg");
    if venv_cfg.exists() {
        let text = match fs::read_to_string(&venv_cfg) {
            Ok(text) => text,
            Err(e) => return fail(format!("cannot read {}: {e}", venv_cfg.display())),
        };
        if let Some(made_by) = venv_version(&text) {
            if !same_minor_version(&made_by, version) {
                return fail(format!(
                    "the virtual environment was made by Python {made_by}, but mod_wsgi_rs runs \
                     Python {version}; recreate it with python{version} -m venv"
                ));
            }
        }
        return Ok(PythonHome::VirtualEnv(home.to_owned()));
    }
    let stdlib = path.join("lib").join(format!("python{version}"));
    if stdlib.join("os.py").exists() {
        return Ok(PythonHome::Prefix(home.to_owned()));
    }
    let found = installed_versions(path);
    let found = if found.is_empty() { "none".to_owned() } else { found.join(", ") };
    fail(format!(
        "neither a virtual environment (no pyvenv.cfg) nor a Python {version} prefix (no \
         {}/os.py; Python versions found under lib/: {found})",
        stdlib.display()
    ))
}

fn unreadable() -> String {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc_geteuid() };
    format!("is not readable by the user the Apache child runs as (uid {uid})")
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// The Python version recorded in a pyvenv.cfg (`version = 3.11.2`, or
/// `version_info` in newer releases).
fn venv_version(cfg: &str) -> Option<String> {
    cfg.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        matches!(key.trim(), "version" | "version_info").then(|| value.trim().to_owned())
    })
}

/// `3.11.2` is the same minor version as `3.11`; `3.1` and `3.110` are not.
fn same_minor_version(full: &str, minor: &str) -> bool {
    full == minor || full.strip_prefix(minor).is_some_and(|rest| rest.starts_with('.'))
}

/// `pythonX.Y` directories under `prefix/lib`, for the error message.
fn installed_versions(prefix: &Path) -> Vec<String> {
    let mut found: Vec<String> = fs::read_dir(prefix.join("lib"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n.starts_with("python3"))
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("wsgi-rs-home-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn virtual_environment_of_the_right_version() {
        let dir = scratch("venv");
        fs::write(dir.join("pyvenv.cfg"), "home = /usr/bin\nversion = 3.11.2\n").unwrap();
        let home = dir.to_str().unwrap();
        assert_eq!(check(home, "3.11"), Ok(PythonHome::VirtualEnv(home.to_owned())));
        fs::write(dir.join("pyvenv.cfg"), "home = /usr/bin\nversion_info = 3.9.18\n").unwrap();
        let err = check(home, "3.11").unwrap_err();
        assert!(err.contains("made by Python 3.9.18") && err.contains(home), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn prefix_needs_the_standard_library() {
        let dir = scratch("prefix");
        let home = dir.to_str().unwrap();
        fs::create_dir_all(dir.join("lib/python3.9")).unwrap();
        let err = check(home, "3.11").unwrap_err();
        assert!(err.contains("found under lib/: python3.9"), "{err}");
        fs::create_dir_all(dir.join("lib/python3.11")).unwrap();
        fs::write(dir.join("lib/python3.11/os.py"), "").unwrap();
        assert_eq!(check(home, "3.11"), Ok(PythonHome::Prefix(home.to_owned())));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_or_not_a_directory() {
        let err = check("/nonexistent/wsgi-rs-home", "3.11").unwrap_err();
        assert_eq!(err, "WSGIPythonHome /nonexistent/wsgi-rs-home: does not exist");
        let err = check("/etc/hostname", "3.11").unwrap_err();
        assert!(err.ends_with("is not a directory"), "{err}");
    }

    #[test]
    fn description_for_the_startup_line() {
        assert_eq!(PythonHome::VirtualEnv("/srv/venv".into()).describe(), "/srv/venv (virtual environment)");
        assert_eq!(PythonHome::Prefix("/usr".into()).describe(), "/usr (Python prefix)");
    }

    #[test]
    fn version_comparison() {
        assert!(same_minor_version("3.11.2", "3.11"));
        assert!(same_minor_version("3.11", "3.11"));
        assert!(!same_minor_version("3.110", "3.11"));
        assert!(!same_minor_version("3.1", "3.11"));
    }
}
