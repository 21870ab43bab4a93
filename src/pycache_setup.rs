//! The Apache parent's part of the bytecode cache: after each
//! configuration read, while it is still root, it creates the cache
//! directory of each user that will write one (Apache's `User` for the
//! children, each daemon group's `user=`) and hands it to that user, so
//! the processes find it ready (see pycache.rs).

use crate::directives::server_config;
use crate::httpd::{consts, ffi, log, pool};
use crate::pycache::{self, Owner};
use std::ffi::c_int;

/// The default cache prefix, [`pycache::DEFAULT_PREFIX`] under Apache's
/// DefaultRuntimeDir.
pub fn default_prefix(pool: *mut ffi::apr_pool_t) -> String {
    let name = std::ffi::CString::new(pycache::DEFAULT_PREFIX).unwrap_or_default();
    // SAFETY: pool is live; the result is a string in it, copied at once.
    unsafe { pool::str_from(ffi::ap_runtime_dir_relative(pool, name.as_ptr())) }.unwrap_or_default().into_owned()
}

/// Called from post_config: creates the directories the processes of this
/// configuration will use, or logs a warning for each that cannot be
/// created or is unsafe (its processes then run without a cache). Does
/// nothing on Apache's trial read of the configuration, under
/// `apache2 -t`, or beside mod_python (which starts Python, so no cache
/// of ours applies; its processes say so).
///
/// # Safety
/// `pconf` and `s` must be post_config's configuration pool and main
/// server, in the single-threaded Apache parent.
pub unsafe fn prepare(pconf: *mut ffi::apr_pool_t, s: *mut ffi::server_rec) {
    // SAFETY: ap_state_query only reads Apache's state; the module list
    // walk only reads.
    let (state, mode, mod_python) = unsafe {
        (
            ffi::ap_state_query(ffi::AP_SQ_MAIN_STATE as c_int),
            ffi::ap_state_query(ffi::AP_SQ_RUN_MODE as c_int),
            !ffi::ap_find_linked_module(c"mod_python.c".as_ptr()).is_null(),
        )
    };
    if state == ffi::AP_SQ_MS_CREATE_PRE_CONFIG as c_int || mode != ffi::AP_SQ_RM_NORMAL as c_int || mod_python {
        return;
    }
    // SAFETY: s is the main server; its config was created by us.
    let cfg = unsafe { server_config(s) };
    // SAFETY: geteuid/getegid have no preconditions; ap_unixd_config is
    // Apache's process-wide record of User and Group, read once.
    let (parent_uid, parent_gid, unixd) =
        unsafe { (libc::geteuid(), libc::getegid(), std::ptr::addr_of!(ffi::ap_unixd_config).read()) };
    // Apache's processes change user only when it runs as root.
    let (apache_uid, apache_gid) = if parent_uid == 0 { (unixd.user_id, unixd.group_id) } else { (parent_uid, parent_gid) };
    let env = std::env::var("PYTHONOPTIMIZE").ok();
    let setting = cfg.interpreter.pycache_prefix.as_ref();
    let prefix_at = |level| pycache::prefix_for(setting, pycache::effective_level(level, env.as_deref()), || default_prefix(pconf));

    // (prefix, owner, who uses it), one entry per prefix and user.
    let mut wanted: Vec<(String, Owner, Vec<String>)> = Vec::new();
    let mut want = |prefix: Option<String>, owner: Owner, who: String| {
        let Some(prefix) = prefix else { return };
        match wanted.iter_mut().find(|(p, o, _)| *p == prefix && o.uid == owner.uid) {
            Some((_, _, users)) => users.push(who),
            None => wanted.push((prefix, owner, vec![who])),
        }
    };
    if cfg.restrict_embedded != Some(true) {
        want(prefix_at(cfg.python_optimize), Owner { uid: apache_uid, gid: apache_gid }, "Apache's children".to_owned());
    }
    for group in &cfg.daemon_groups {
        let (uid, gid) =
            if parent_uid == 0 { group.identity(apache_uid, apache_gid) } else { (apache_uid, apache_gid) };
        let level = group.python_optimize.or(cfg.python_optimize);
        want(prefix_at(level), Owner { uid, gid }, format!("daemon process group {}", group.name));
    }
    for (prefix, owner, users) in wanted {
        if let Err(why) = pycache::prepare(&prefix, &owner, parent_uid) {
            log::server(
                s,
                consts::APLOG_WARNING,
                &format!(
                    "bytecode cache for {} (uid {}) not used: {why}; modules they compile from source \
                     are not cached (set WSGIPythonPycachePrefix to a directory root can create, or Off)",
                    users.join(", "),
                    owner.uid
                ),
            );
        }
    }
}
