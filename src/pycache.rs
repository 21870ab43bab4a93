//! The bytecode cache (`sys.pycache_prefix`): which directory a process
//! caches its compiled modules in, how the Apache parent creates it for
//! the user that writes it, and the checks that keep one user from
//! planting bytecode another runs.
//!
//! Python caches a module compiled at level N as `NAME.cpython-311.opt-N.pyc`
//! (PEP 488). Distributions ship level-0 files only, and the users Apache's
//! processes run as cannot write beside the standard library or a
//! root-owned virtual environment, so without a cache they can write, every
//! process compiles every module from source at levels 1 and 2. With a
//! prefix, Python reads and writes `PREFIX/<source directory>/NAME...pyc`
//! instead of `__pycache__` beside the source (and no longer reads the
//! latter), checking each entry against its source's mtime and size as
//! usual.
//!
//! Layout: `PREFIX/USER/`, one directory per user, mode 0700 and owned by
//! that user, under a `PREFIX` that only root (or, for a server not started
//! as root, its own user) can write to.

use crate::config::{OptimizeLevel, PycachePrefix};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};

/// The default `PREFIX`, relative to Apache's DefaultRuntimeDir. That
/// directory survives every restart of Apache (Debian's apache2.service
/// has no RuntimeDirectory= that would empty it); a reboot clears it when
/// it is on a tmpfs such as /run, after which the first process of each
/// user compiles once. It is the server's own, so each instance and each
/// private server gets its own cache. A cache that must also survive
/// reboots (ahead-of-time compilation) belongs in a directory given with
/// `WSGIPythonPycachePrefix`, such as /var/cache/apache2/wsgi_rs.
pub const DEFAULT_PREFIX: &str = "wsgi_rs-pycache";

/// The optimisation level Python will run at: the larger of the
/// configured level and `PYTHONOPTIMIZE` from the environment, which
/// Python reads as a number (anything else non-empty counts as 1).
pub fn effective_level(configured: Option<OptimizeLevel>, env: Option<&str>) -> u8 {
    let configured = configured.map_or(0, |l| l.get());
    let from_env = match env.filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => v.trim().parse::<i64>().ok().filter(|n| *n >= 0).map_or(1, |n| n.min(u8::MAX.into()) as u8),
    };
    configured.max(from_env)
}

/// The cache's `PREFIX` for a process running at `level`: the directive's
/// directory, none with `Off`, and by default `default()` at levels 1 and
/// 2 only. At level 0 the default is no cache: the level-0 caches that
/// Debian and pip write beside the sources are then used as they are,
/// whereas a prefix would hide them and make the first process compile
/// the standard library again (the figures are in BENCHMARKS.md).
pub fn prefix_for(setting: Option<&PycachePrefix>, level: u8, default: impl FnOnce() -> String) -> Option<String> {
    match setting {
        Some(PycachePrefix::Off) => None,
        Some(PycachePrefix::Directory(dir)) => Some(dir.clone()),
        None if level > 0 => Some(default()),
        None => None,
    }
}

/// Whom a cache directory belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// The directory of `uid` under `prefix`: named after the user, or after
/// the number when the user database has no name for it.
pub fn user_dir(prefix: &str, uid: u32) -> String {
    format!("{prefix}/{}", user_name(uid).unwrap_or_else(|| uid.to_string()))
}

fn user_name(uid: u32) -> Option<String> {
    let mut record = std::mem::MaybeUninit::<libc::passwd>::uninit();
    let mut buffer = vec![0 as libc::c_char; 4096];
    let mut found = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes the record into `record` and its strings
    // into `buffer`, both ours and large enough or it fails with ERANGE;
    // `found` is null unless the record was filled.
    let status = unsafe { libc::getpwuid_r(uid, record.as_mut_ptr(), buffer.as_mut_ptr(), buffer.len(), &mut found) };
    if status != 0 || found.is_null() {
        return None;
    }
    // SAFETY: the record was filled and pw_name points into `buffer`.
    let name = unsafe { std::ffi::CStr::from_ptr(record.assume_init().pw_name) };
    Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty() && !n.contains('/'))
}

/// What makes a directory unfit to hold bytecode someone runs, if
/// anything: it is not a directory (a symbolic link is not followed),
/// another user than one of `owners` owns it, or its group or others may
/// write to it (and so replace what is in it).
fn unfit(path: &str, owners: &[u32]) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{path}: {e}"))?;
    if !meta.file_type().is_dir() {
        return Err(format!("{path} is not a directory"));
    }
    if !owners.contains(&meta.uid()) {
        let expected: Vec<String> = owners.iter().map(|u| format!("uid {u}")).collect();
        return Err(format!("{path} is owned by uid {}, not {}", meta.uid(), expected.join(" or ")));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("{path} is writable by its group or by others (mode {:04o})", meta.mode() & 0o7777));
    }
    Ok(())
}

/// Checks, in the process that will use it, that `dir` (a [`user_dir`] of
/// `prefix`) is this process's own and safe: the prefix owned by root or
/// by this user and writable by its owner only, the directory owned by
/// this user and writable by it only.
pub fn check(prefix: &str, dir: &str, uid: u32) -> Result<(), String> {
    unfit(prefix, &[0, uid])?;
    unfit(dir, &[uid])
}

/// Creates `prefix` (mode 0755, for root or whoever runs the Apache parent,
/// `parent_uid`) and `prefix/USER` (mode 0700, handed to `owner`) where they
/// are missing, then checks both as [`check`] will. Returns the user's
/// directory.
pub fn prepare(prefix: &str, owner: &Owner, parent_uid: u32) -> Result<String, String> {
    let dir = user_dir(prefix, owner.uid);
    let create = |path: &str, mode: u32| -> Result<bool, String> {
        match std::fs::DirBuilder::new().recursive(path == prefix).mode(mode).create(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(format!("cannot create {path}: {e}")),
        }
    };
    if !std::path::Path::new(prefix).exists() {
        create(prefix, 0o755)?;
    }
    unfit(prefix, &[0, parent_uid])?;
    if create(&dir, 0o700)? && owner.uid != parent_uid {
        std::os::unix::fs::chown(&dir, Some(owner.uid), Some(owner.gid))
            .map_err(|e| format!("cannot hand {dir} to uid {}: {e}", owner.uid))?;
    }
    unfit(&dir, &[owner.uid])?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_python_optimize;

    fn level(l: &str) -> Option<OptimizeLevel> {
        Some(parse_python_optimize(l).unwrap())
    }

    #[test]
    fn effective_level_is_the_larger_of_directive_and_environment() {
        assert_eq!(effective_level(None, None), 0);
        assert_eq!(effective_level(level("2"), None), 2);
        assert_eq!(effective_level(level("1"), Some("2")), 2);
        assert_eq!(effective_level(level("2"), Some("1")), 2);
        assert_eq!(effective_level(None, Some("")), 0);
        assert_eq!(effective_level(None, Some("yes")), 1);
        assert_eq!(effective_level(None, Some("-3")), 1);
        assert_eq!(effective_level(None, Some("0")), 0);
    }

    #[test]
    fn default_prefix_only_above_level_zero() {
        let default = || "/run/apache2/wsgi_rs-pycache".to_owned();
        assert_eq!(prefix_for(None, 0, default), None);
        assert_eq!(prefix_for(None, 1, default).as_deref(), Some("/run/apache2/wsgi_rs-pycache"));
        assert_eq!(prefix_for(None, 2, default).as_deref(), Some("/run/apache2/wsgi_rs-pycache"));
        assert_eq!(prefix_for(Some(&PycachePrefix::Off), 2, default), None);
        let dir = PycachePrefix::Directory("/var/cache/pyc".into());
        assert_eq!(prefix_for(Some(&dir), 0, default).as_deref(), Some("/var/cache/pyc"));
    }

    #[test]
    fn a_user_without_a_name_gets_its_number() {
        assert_eq!(user_dir("/c", 0), "/c/root");
        assert_eq!(user_dir("/c", 4_000_000_123), "/c/4000000123");
    }

    #[test]
    fn prepare_creates_private_directories_and_check_refuses_unsafe_ones() {
        use std::os::unix::fs::PermissionsExt;
        // SAFETY: geteuid/getegid have no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let root = std::env::temp_dir().join(format!("wsgi-rs-pycache-unit-{}", std::process::id()));
        let prefix = root.join("a/b").display().to_string();
        let owner = Owner { uid, gid };
        let dir = prepare(&prefix, &owner, uid).unwrap();
        assert_eq!(dir, user_dir(&prefix, uid));
        let mode = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(prepare(&prefix, &owner, uid).unwrap(), dir, "a second start reuses the directory");
        assert_eq!(check(&prefix, &dir, uid), Ok(()));

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check(&prefix, &dir, uid).unwrap_err();
        assert!(err.contains("writable by its group or by others (mode 0777)"), "{err}");
        assert!(prepare(&prefix, &owner, uid).is_err(), "prepare must not repair a directory it did not make");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = check(&prefix, &dir, uid.wrapping_add(1)).unwrap_err();
        assert!(err.contains(&format!("is owned by uid {uid}, not ")), "{err}");

        let link = root.join("link").display().to_string();
        std::os::unix::fs::symlink(&prefix, &link).unwrap();
        assert!(check(&link, &dir, uid).unwrap_err().ends_with("is not a directory"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
