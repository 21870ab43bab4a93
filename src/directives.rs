//! Where Apache's configuration reader meets config.rs: per-server config
//! allocation and merging, and the bodies of the directive handlers whose
//! `extern "C"` entry points are in lib.rs.

use crate::config::{self, DirConfig, ServerConfig};
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

/// The per-directory configuration that applies to request `r`.
///
/// # Safety
/// `r` must be a live request; the reference must not outlive it.
pub unsafe fn dir_config<'a>(r: *const ffi::request_rec) -> &'a DirConfig {
    // SAFETY: create_dir_config/merge_dir_config stored a DirConfig in our
    // slot of every per-directory vector Apache merges for a request.
    unsafe { &*(*slot((*r).per_dir_config)).cast::<DirConfig>() }
}

pub fn create_dir_config(p: *mut ffi::apr_pool_t) -> *mut c_void {
    pool::alloc(p, DirConfig::default()).cast()
}

/// # Safety
/// `outer` and `inner` must be configs made by create_dir_config.
pub unsafe fn merge_dir_config(p: *mut ffi::apr_pool_t, outer: *mut c_void, inner: *mut c_void) -> *mut c_void {
    // SAFETY: guaranteed by the caller; both are read-only here.
    let merged = unsafe { DirConfig::merge(&*outer.cast::<DirConfig>(), &*inner.cast::<DirConfig>()) };
    pool::alloc(p, merged).cast()
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

/// The name of the directive being read.
///
/// # Safety
/// `cmd` must be the live cmd_parms of a directive.
unsafe fn directive_name(cmd: *mut ffi::cmd_parms) -> String {
    // SAFETY: cmd->cmd is this directive's command_rec, whose name is a
    // static C string from the table in apxs/shim.c.
    unsafe { pool::str_from((*(*cmd).cmd).name) }.unwrap_or_default().into_owned()
}

/// Splits a RAW_ARGS argument string the way Apache splits TAKE* ones
/// (whitespace-separated, quotes removed).
///
/// # Safety
/// `cmd` must be the live cmd_parms and `args` a NUL-terminated string.
unsafe fn words(cmd: *mut ffi::cmd_parms, args: *const c_char) -> Vec<String> {
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
            _ => return words,
        }
    }
}

/// `WSGIScriptAlias`, `WSGIScriptAliasMatch` and `WSGIImportScript`: lines
/// with options that belong to a server or virtual host.
///
/// # Safety
/// `cmd` must be the live cmd_parms of this directive and `args` its raw,
/// NUL-terminated argument string.
pub unsafe fn add_server_line(cmd: *mut ffi::cmd_parms, args: *const c_char) -> Result<(), String> {
    // SAFETY (whole function): forwarded from the caller.
    unsafe { check_context(cmd, consts::NOT_IN_DIR_LOC_FILE)? };
    let name = unsafe { directive_name(cmd) };
    let words = unsafe { words(cmd, args) };
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let config = unsafe { server_config_mut(cmd) };
    match name.as_str() {
        "WSGIScriptAlias" => {
            let mut alias = config::parse_script_alias(&words)?;
            // A target that is a directory serves the scripts inside it,
            // whether or not it was written with a trailing slash.
            if !alias.script.ends_with('/') && std::path::Path::new(&alias.script).is_dir() {
                alias.script.push('/');
            }
            config.script_aliases.push(alias);
        }
        "WSGIScriptAliasMatch" => config.script_aliases.push(config::parse_script_alias_match(&words)?),
        "WSGIImportScript" => config.import_scripts.push(config::parse_import_script(&words)?),
        other => return Err(format!("mod_wsgi_rs: no handler for {other}")),
    }
    Ok(())
}

/// The per-directory directives (`WSGICallableObject` and friends).
///
/// # Safety
/// `cmd` must be the live cmd_parms of this directive and `dir` the
/// DirConfig Apache passes for the section being read.
pub unsafe fn set_dir_option(cmd: *mut ffi::cmd_parms, dir: *mut c_void, arg: &str) -> Result<(), String> {
    // SAFETY: forwarded from the caller; configuration is read by one
    // thread, so this is the only reference to the section's config.
    let (name, dir) = unsafe { (directive_name(cmd), &mut *dir.cast::<DirConfig>()) };
    match name.as_str() {
        "WSGICallableObject" => {
            dir.callable_object = Some(config::parse_callable_object(arg).map_err(|e| format!("{name}: {e}"))?)
        }
        "WSGIApplicationGroup" => config::parse_application_group(arg)?,
        "WSGIProcessGroup" => config::parse_process_group(arg)?,
        "WSGIPassAuthorization" => dir.pass_authorization = Some(config::parse_flag(&name, arg)?),
        "WSGIScriptReloading" => dir.script_reloading = Some(config::parse_flag(&name, arg)?),
        "WSGIChunkedRequest" => dir.chunked_request = Some(config::parse_flag(&name, arg)?),
        "WSGIMapHEADToGET" => dir.map_head_to_get = Some(config::parse_map_head_to_get(arg)?),
        other => return Err(format!("mod_wsgi_rs: no handler for {other}")),
    }
    Ok(())
}

/// The interpreter directives other than `WSGIPythonOptimize`.
///
/// # Safety
/// `cmd` must be the live cmd_parms of the directive being read.
pub unsafe fn set_interpreter_option(cmd: *mut ffi::cmd_parms, arg: &str) -> Result<(), String> {
    // SAFETY (whole function): forwarded from the caller.
    unsafe { check_context(cmd, consts::GLOBAL_ONLY)? };
    let name = unsafe { directive_name(cmd) };
    unsafe { server_config_mut(cmd) }.interpreter.set(&name, arg)
}

/// mod_wsgi directives this module does not implement yet.
///
/// # Safety
/// `cmd` must be the live cmd_parms of the directive being read.
pub unsafe fn reject_unsupported(cmd: *mut ffi::cmd_parms) -> String {
    // SAFETY: forwarded from the caller.
    let name = unsafe { directive_name(cmd) };
    config::unsupported_directive_message(&name)
}
