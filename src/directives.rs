//! Where Apache's configuration reader meets config.rs: per-server config
//! allocation and merging, and the bodies of the directive handlers whose
//! `extern "C"` entry points are in lib.rs.

use crate::config::{self, ServerConfig};
use crate::httpd::{consts, ffi, pool};
use std::ffi::{c_char, c_void};

/// The module's config slot in one of Apache's config vectors.
///
/// # Safety
/// `vector` must be a live config vector (a server's `module_config` or a
/// request's `request_config`).
pub unsafe fn slot(vector: *mut ffi::ap_conf_vector_t) -> *mut *mut c_void {
    // SAFETY: ap_get_module_config is the macro `((void **)v)[index]`; the
    // vector has a slot for every loaded module, ours included.
    unsafe { (vector as *mut *mut c_void).add(crate::httpd::module_index()) }
}

/// The configuration of server `s` (the main server or a virtual host).
///
/// # Safety
/// `s` must be a live server_rec whose config this module created; the
/// returned reference must not outlive the configuration pool.
pub unsafe fn server_config<'a>(s: *const ffi::server_rec) -> &'a ServerConfig {
    // SAFETY: create_server_config/merge_server_config stored a
    // ServerConfig pointer in our slot for every server.
    unsafe { &*(*slot((*s).module_config)).cast::<ServerConfig>() }
}

/// Mutable access while directives are read (single-threaded, in the parent).
unsafe fn server_config_mut<'a>(cmd: *mut ffi::cmd_parms) -> &'a mut ServerConfig {
    // SAFETY: as server_config; configuration is read by one thread, and
    // no other reference to this server's config is alive meanwhile.
    unsafe { &mut *(*slot((*(*cmd).server).module_config)).cast::<ServerConfig>() }
}

pub fn create_server_config(p: *mut ffi::apr_pool_t) -> *mut c_void {
    pool::alloc(p, ServerConfig::default()).cast()
}

/// # Safety
/// `base` and `vhost` must be configs made by create_server_config.
pub unsafe fn merge_server_config(
    p: *mut ffi::apr_pool_t,
    base: *mut c_void,
    vhost: *mut c_void,
) -> *mut c_void {
    // SAFETY: guaranteed by the caller; both are read-only here.
    let merged = unsafe {
        ServerConfig::merge(&*base.cast::<ServerConfig>(), &*vhost.cast::<ServerConfig>())
    };
    pool::alloc(p, merged).cast()
}

/// Apache's own check of where a directive appears; its messages
/// ("cannot occur within <VirtualHost> section") are the ones operators
/// know.
unsafe fn check_context(cmd: *mut ffi::cmd_parms, forbidden: u32) -> Result<(), String> {
    // SAFETY: `cmd` is the live cmd_parms of the directive being read.
    let err = unsafe { ffi::ap_check_cmd_context(cmd, forbidden) };
    // SAFETY: a non-null result is a NUL-terminated pool string.
    match unsafe { pool::str_from(err) } {
        None => Ok(()),
        Some(message) => Err(message.into_owned()),
    }
}

/// `WSGIPythonOptimize 0|1|2`.
///
/// # Safety
/// `cmd` must be the live cmd_parms of this directive.
pub unsafe fn set_python_optimize(cmd: *mut ffi::cmd_parms, arg: &str) -> Result<(), String> {
    // SAFETY: forwarded from the caller.
    unsafe { check_context(cmd, consts::GLOBAL_ONLY)? };
    let level = config::parse_python_optimize(arg)?;
    // SAFETY: forwarded from the caller.
    unsafe { server_config_mut(cmd) }.python_optimize = Some(level);
    Ok(())
}

/// `WSGIScriptAlias URL-path script-path [option=value ...]`.
///
/// # Safety
/// `cmd` must be the live cmd_parms of this directive and `args` its raw,
/// NUL-terminated argument string.
pub unsafe fn add_script_alias(
    cmd: *mut ffi::cmd_parms,
    args: *const c_char,
) -> Result<(), String> {
    // SAFETY: forwarded from the caller.
    unsafe { check_context(cmd, consts::NOT_IN_DIR_LOC_FILE)? };
    let mut words = Vec::new();
    let mut rest = args;
    loop {
        // SAFETY: ap_getword_conf reads one (possibly quoted) word from
        // the NUL-terminated `rest`, advancing it, and returns a copy
        // allocated in the command's temporary pool.
        let word = unsafe { ffi::ap_getword_conf((*cmd).temp_pool, &mut rest) };
        // SAFETY: the returned word is a NUL-terminated pool string.
        match unsafe { pool::str_from(word) } {
            Some(w) if !w.is_empty() => words.push(w.into_owned()),
            _ => break,
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let alias = config::parse_script_alias(&words)?;
    // SAFETY: forwarded from the caller.
    unsafe { server_config_mut(cmd) }.script_aliases.push(alias);
    Ok(())
}
