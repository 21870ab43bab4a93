//! Where Apache's configuration reader meets config.rs: per-server config
//! allocation and merging, and the bodies of the directive handlers whose
//! `extern "C"` entry points are in lib.rs.

use crate::application_group::{ApplicationGroupRegistry, Route};
use crate::config::{self, DirConfig, ServerConfig, UrlMatch};
use crate::daemon_config::{self, DaemonGroupId, DaemonRegistry, DaemonUser, Lookups, ProcessGroup, ServerInfo};
use crate::httpd::{consts, ffi, log, pool};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::mem::MaybeUninit;
use std::ptr::null_mut;

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
    // SAFETY: forwarded from the caller.
    unsafe { server_config_mut_of((*cmd).server) }
}

/// # Safety
/// As [`server_config`], and only while the configuration is read or
/// checked in the single-threaded parent, with no other reference to this
/// server's config alive.
unsafe fn server_config_mut_of<'a>(s: *mut ffi::server_rec) -> &'a mut ServerConfig {
    // SAFETY: guaranteed by the caller.
    unsafe { &mut *(*slot((*s).module_config)).cast::<ServerConfig>() }
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
    // These apply to the host they are read in (a virtual host inherits
    // the main server's, but the group must then be visible from the main
    // server too, as with mod_wsgi).
    // SAFETY: cmd is the live cmd_parms of this directive.
    let note_use = |group: &ProcessGroup| unsafe { record_group_use(cmd, &name, group, false) };
    // SAFETY: as above; the configuration is read by one thread, and no
    // other reference to the registry is alive while this one is used.
    let application_groups = || unsafe { &mut registry((*cmd).pool).application_groups };
    // SAFETY: as above.
    let location = unsafe { location(cmd) };
    match name.as_str() {
        "WSGIScriptAlias" | "WSGIScriptAliasMatch" => {
            let mut alias = if name == "WSGIScriptAlias" {
                config::parse_script_alias(&words)?
            } else {
                config::parse_script_alias_match(&words)?
            };
            // A target that is a directory serves the scripts inside it,
            // whether or not it was written with a trailing slash.
            if let UrlMatch::Prefix(_) = alias.url {
                if !alias.script.ends_with('/') && std::path::Path::new(&alias.script).is_dir() {
                    alias.script.push('/');
                }
            }
            if let Some(group) = &alias.process_group {
                note_use(group);
                application_groups().note_delegation(group);
            }
            if let Some(application_group) = &alias.application_group {
                let route = alias.process_group.as_ref().map_or(Route::FromSections, Route::Explicit);
                // One script under one URL: %{RESOURCE} names a group of its own.
                let resource_of = match &alias.url {
                    UrlMatch::Prefix(url) if !alias.script.ends_with('/') => Some(url.as_str()),
                    _ => None,
                };
                application_groups().record(&name, application_group, route, resource_of, location);
            }
            config.script_aliases.push(alias);
        }
        "WSGIImportScript" => {
            let script = config::parse_import_script(&words)?;
            note_use(&script.process_group);
            if let Some(application_group) = &script.application_group {
                let route = Route::Explicit(&script.process_group);
                application_groups().record(&name, application_group, route, None, location);
            }
            config.import_scripts.push(script);
        }
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
        "WSGIApplicationGroup" => {
            let group = config::parse_application_group(arg)?;
            // SAFETY: forwarded from the caller; `dir` lives in the
            // configuration pool, as the registry does.
            let (checks, location) = unsafe { (registry((*cmd).pool), location(cmd)) };
            let section = (dir as *const DirConfig).cast::<c_void>();
            checks.application_groups.record(&name, &group, Route::Section(section), None, location);
            dir.application_group = Some(group);
        }
        "WSGIProcessGroup" => {
            let group = config::parse_process_group(arg)?;
            // SAFETY: as above.
            unsafe { registry((*cmd).pool) }.application_groups.note_delegation(&group);
            // Set outside every <VirtualHost> (at the top or in a section),
            // it also applies to the virtual hosts, so whether a group of
            // one of them is visible can only be told per request.
            // SAFETY: cmd->server is the live server being read.
            let inherited = unsafe { (*(*cmd).server).is_virtual } == 0;
            // SAFETY: forwarded from the caller.
            unsafe { record_group_use(cmd, &name, &group, inherited) };
            dir.process_group = Some(group);
        }
        "WSGIPassAuthorization" => dir.pass_authorization = Some(config::parse_flag(&name, arg)?),
        "WSGIScriptReloading" => dir.script_reloading = Some(config::parse_flag(&name, arg)?),
        "WSGIChunkedRequest" => dir.chunked_request = Some(config::parse_flag(&name, arg)?),
        "WSGIPathTranslated" => dir.path_translated = Some(config::parse_flag(&name, arg)?),
        "WSGIExportCGIVariables" => dir.export_cgi_variables = Some(config::parse_flag(&name, arg)?),
        "WSGIMapHEADToGET" => dir.map_head_to_get = Some(config::parse_map_head_to_get(arg)?),
        "WSGIGroupAuthoritative" => dir.group_authoritative = Some(config::parse_flag(&name, arg)?),
        other => return Err(format!("mod_wsgi_rs: no handler for {other}")),
    }
    Ok(())
}

/// `WSGIAuthUserScript`, `WSGIAuthGroupScript` and `WSGIAccessScript`, in
/// `<Directory>`, `<Location>`, `<Files>` or `.htaccess` (AuthConfig).
///
/// # Safety
/// `cmd` must be the live cmd_parms of this directive, `dir` the DirConfig
/// of the section being read and `args` the raw, NUL-terminated arguments.
pub unsafe fn set_auth_script(cmd: *mut ffi::cmd_parms, dir: *mut c_void, args: *const c_char) -> Result<(), String> {
    // SAFETY (whole function): forwarded from the caller; configuration
    // is read by one thread, so this is the only reference to the
    // section's config.
    let (name, dir) = unsafe { (directive_name(cmd), &mut *dir.cast::<DirConfig>()) };
    let words = unsafe { words(cmd, args) };
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let script = config::parse_auth_script(&name, &words)?;
    // The checks run where `process-group=` says (the Apache children by
    // default), so the application group counts for that process group
    // in the whole-configuration check, and a named group must exist and
    // be visible from this host, as for WSGIScriptAlias. An .htaccess
    // file is read while serving, after that check: its group is checked
    // per request.
    // SAFETY: ap_state_query only reads Apache's state.
    let serving = unsafe { ffi::ap_state_query(ffi::AP_SQ_MAIN_STATE as c_int) } == ffi::AP_SQ_MS_RUN_MPM as c_int;
    if !serving {
        let location = unsafe { location(cmd) };
        let route = Route::Explicit(&script.process_group);
        let application_groups = &mut unsafe { registry((*cmd).pool) }.application_groups;
        application_groups.record(&name, &script.application_group, route, None, location);
        application_groups.note_delegation(&script.process_group);
        // As a WSGIScriptAlias: the group must be visible from the host
        // the line is read in, also when its virtual hosts inherit it.
        unsafe { record_group_use(cmd, &name, &script.process_group, false) };
    }
    match name.as_str() {
        "WSGIAuthUserScript" => dir.auth_user_script = Some(script),
        "WSGIAuthGroupScript" => dir.auth_group_script = Some(script),
        "WSGIAccessScript" => dir.access_script = Some(script),
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

/// `WSGIDaemonProcess NAME option=value ...`.
///
/// # Safety
/// `cmd` must be the live cmd_parms of this directive and `args` its raw,
/// NUL-terminated argument string.
pub unsafe fn add_daemon_process(cmd: *mut ffi::cmd_parms, args: *const c_char) -> Result<(), String> {
    // SAFETY (whole function): forwarded from the caller.
    unsafe { check_context(cmd, consts::NOT_IN_DIR_LOC_FILE)? };
    let args = unsafe { pool::str_from(args) }.unwrap_or_default();
    let group = daemon_config::parse_daemon_process(&args, &SystemLookups)?;
    let (server, location) = unsafe { ((*cmd).server.cast_const(), location(cmd)) };
    unsafe { registry((*cmd).pool) }.daemon.define(group, server, location)
}

/// `WSGISocketPrefix` and `WSGIRestrictEmbedded`, main server only.
///
/// # Safety
/// `cmd` must be the live cmd_parms of the directive being read.
pub unsafe fn set_daemon_option(cmd: *mut ffi::cmd_parms, arg: &str) -> Result<(), String> {
    // SAFETY (whole function): forwarded from the caller.
    unsafe { check_context(cmd, consts::GLOBAL_ONLY)? };
    let name = unsafe { directive_name(cmd) };
    let config = unsafe { server_config_mut(cmd) };
    match name.as_str() {
        "WSGISocketPrefix" => {
            let path = CString::new(arg).ok().filter(|_| !arg.is_empty());
            let path = path.ok_or_else(|| format!("{name}: expected a path"))?;
            // A relative prefix is under ServerRoot, as with mod_wsgi
            // (Red Hat's documentation suggests `run/wsgi`). The result is
            // a NUL-terminated string in the configuration pool, or NULL
            // for a path APR cannot merge.
            let resolved = unsafe { pool::str_from(ffi::ap_server_root_relative((*cmd).pool, path.as_ptr())) };
            let resolved = resolved.ok_or_else(|| format!("{name}: invalid path '{}'", arg.escape_default()))?;
            config.socket_prefix = Some(daemon_config::parse_socket_prefix(&resolved, &SystemLookups)?);
        }
        "WSGIRestrictEmbedded" => config.restrict_embedded = Some(config::parse_flag(&name, arg)?),
        other => return Err(format!("mod_wsgi_rs: no handler for {other}")),
    }
    Ok(())
}

/// Once the whole configuration is read (Apache's check_config, which
/// also runs for `apache2 -t`): checks every group named by a directive
/// against every group defined, and gives the main server's config the
/// full list of groups, main server's and virtual hosts', in
/// configuration order, which is what the daemon runtime starts.
///
/// # Safety
/// `pconf` must be the configuration pool the directives were read into
/// and `s` the main server, in the single-threaded parent.
pub unsafe fn check_config(pconf: *mut ffi::apr_pool_t, s: *mut ffi::server_rec) -> Result<(), Vec<String>> {
    // SAFETY (whole function): forwarded from the caller; the registry's
    // server pointers are server_recs of this configuration, in pconf.
    let (groups, application_groups) = match unsafe { existing_registry(pconf) } {
        None => (Vec::new(), Vec::new()),
        Some(registry) => {
            let groups = registry.daemon.finish(|server| unsafe { server_info(server) });
            // SAFETY: each section is a DirConfig made by
            // create_dir_config in pconf, read-only now.
            let section_process_group = |section: *const c_void| unsafe { (*section.cast::<DirConfig>()).process_group.clone() };
            let application_groups = registry.application_groups.finish(section_process_group);
            match (groups, application_groups) {
                (Ok(groups), Ok(application_groups)) => (groups, application_groups),
                (groups, application_groups) => {
                    return Err(groups.err().into_iter().chain(application_groups.err()).flatten().collect())
                }
            }
        }
    };
    // The daemons log these when they start; `apache2 -t` starts none, so
    // the check says it there.
    // SAFETY: the shim function only queries Apache's state.
    if unsafe { wsgi_rs_config_test_only() } != 0 {
        for note in groups.iter().filter_map(|g| g.home_note.as_deref()) {
            log::server(s, consts::APLOG_WARNING, note);
        }
    }
    let main = unsafe { server_config_mut_of(s) };
    main.daemon_groups = groups;
    main.static_application_groups = application_groups;
    Ok(())
}

unsafe extern "C" {
    /// apxs/shim.c: whether this run only checks the configuration
    /// (`apache2 -t`); the AP_SQ_* codes are macros.
    fn wsgi_rs_config_test_only() -> c_int;
}

/// What the checks of the whole configuration gather while it is read:
/// the daemon groups and their uses, and the application groups set.
/// Sections are identified by their DirConfig.
#[derive(Default)]
struct Registry {
    daemon: DaemonRegistry<*const ffi::server_rec>,
    application_groups: ApplicationGroupRegistry<*const c_void>,
}

/// The registry lives in the configuration pool, so a new configuration
/// read (a restart) starts a new one and nothing survives in statics,
/// which reset when Apache reloads this DSO.
const REGISTRY_KEY: &CStr = c"mod_wsgi_rs configuration registry";

/// # Safety
/// `pconf` must be the live configuration pool, used by one thread.
unsafe fn existing_registry<'a>(pconf: *mut ffi::apr_pool_t) -> Option<&'a mut Registry> {
    let mut data: *mut c_void = null_mut();
    // SAFETY: writes the pointer stored under the key, or leaves null.
    unsafe { ffi::apr_pool_userdata_get(&mut data, REGISTRY_KEY.as_ptr(), pconf) };
    // SAFETY: only `registry` stores under this key, a Registry it
    // allocated in the same pool; one thread reads the configuration.
    (!data.is_null()).then(|| unsafe { &mut *data.cast::<Registry>() })
}

/// # Safety
/// As [`existing_registry`].
unsafe fn registry<'a>(pconf: *mut ffi::apr_pool_t) -> &'a mut Registry {
    // SAFETY: forwarded from the caller.
    if let Some(registry) = unsafe { existing_registry(pconf) } {
        return registry;
    }
    let registry = pool::alloc(pconf, Registry::default());
    // SAFETY: pconf is live; APR copies the key into it. No cleanup here:
    // pool::alloc registered the one that drops the registry.
    unsafe { ffi::apr_pool_userdata_set(registry.cast(), REGISTRY_KEY.as_ptr(), None, pconf) };
    // SAFETY: freshly allocated, freed only when pconf is cleared.
    unsafe { &mut *registry }
}

/// # Safety
/// `cmd` must be the live cmd_parms of the directive naming `group`.
unsafe fn record_group_use(cmd: *mut ffi::cmd_parms, directive: &str, group: &ProcessGroup, inherited: bool) {
    // SAFETY (whole function): forwarded from the caller.
    let (server, location) = unsafe { ((*cmd).server.cast_const(), location(cmd)) };
    unsafe { registry((*cmd).pool) }.daemon.record_use(directive, group, server, inherited, location);
}

/// "line N of FILE" for the directive being read, as Apache words it.
///
/// # Safety
/// `cmd` must be the live cmd_parms of a directive.
unsafe fn location(cmd: *mut ffi::cmd_parms) -> Option<String> {
    // SAFETY: cmd->directive is null or the node of the directive being
    // read, whose filename is a NUL-terminated pool string.
    unsafe {
        let directive = (*cmd).directive;
        if directive.is_null() {
            return None;
        }
        let file = pool::str_from((*directive).filename)?;
        Some(format!("line {} of {file}", (*directive).line_num))
    }
}

/// # Safety
/// `s` must be a live server_rec.
unsafe fn server_info(s: *const ffi::server_rec) -> ServerInfo {
    // SAFETY: guaranteed by the caller; server_hostname is null or a
    // NUL-terminated pool string.
    unsafe {
        ServerInfo {
            virtual_host: (*s).is_virtual != 0,
            hostname: pool::str_from((*s).server_hostname).unwrap_or_default().into_owned(),
        }
    }
}

/// The user and group databases through the C library, and the file
/// system.
pub struct SystemLookups;

impl Lookups for SystemLookups {
    fn user_by_name(&self, name: &str) -> Option<DaemonUser> {
        let name = CString::new(name).ok()?;
        // SAFETY: getpwnam_r fills `entry` with pointers into `buf` and
        // sets `result` to it on success; the name is NUL-terminated.
        passwd_entry(|entry, buf, len, result| unsafe { libc::getpwnam_r(name.as_ptr(), entry, buf, len, result) })
    }

    fn user_by_uid(&self, uid: u32) -> Option<DaemonUser> {
        // SAFETY: as in user_by_name.
        passwd_entry(|entry, buf, len, result| unsafe { libc::getpwuid_r(uid, entry, buf, len, result) })
    }

    fn group_by_name(&self, name: &str) -> Option<DaemonGroupId> {
        let name = CString::new(name).ok()?;
        // SAFETY: as in user_by_name, for getgrnam_r.
        group_entry(|entry, buf, len, result| unsafe { libc::getgrnam_r(name.as_ptr(), entry, buf, len, result) })
    }

    fn group_by_gid(&self, gid: u32) -> Option<DaemonGroupId> {
        // SAFETY: as in user_by_name, for getgrgid_r.
        group_entry(|entry, buf, len, result| unsafe { libc::getgrgid_r(gid, entry, buf, len, result) })
    }

    fn is_dir(&self, path: &str) -> bool {
        std::path::Path::new(path).is_dir()
    }

    fn may_create_in(&self, path: &str) -> Result<(), String> {
        let c_path = CString::new(path).map_err(|_| "NUL in the path".to_owned())?;
        // SAFETY: access reads a NUL-terminated path and changes nothing.
        if unsafe { libc::access(c_path.as_ptr(), libc::W_OK | libc::X_OK) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().to_string())
        }
    }
}

/// Calls a `get*_r` function with a buffer that grows while it answers
/// ERANGE, and returns the entry it found.
fn reentrant_lookup<T, R>(
    call: impl Fn(*mut T, *mut c_char, usize, *mut *mut T) -> c_int,
    read: impl FnOnce(&T) -> R,
) -> Option<R> {
    let mut buf: Vec<c_char> = vec![0; 1024];
    loop {
        let mut entry = MaybeUninit::<T>::uninit();
        let mut result: *mut T = null_mut();
        let status = call(entry.as_mut_ptr(), buf.as_mut_ptr(), buf.len(), &mut result);
        if status == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if status != 0 || result.is_null() {
            return None;
        }
        // SAFETY: on success the function initialised `entry` (result
        // points at it); its strings live in `buf`, alive here.
        return Some(read(unsafe { entry.assume_init_ref() }));
    }
}

/// A user found by a `getpw*_r` call.
fn passwd_entry(call: impl Fn(*mut libc::passwd, *mut c_char, usize, *mut *mut libc::passwd) -> c_int) -> Option<DaemonUser> {
    reentrant_lookup(call, |entry: &libc::passwd| {
        // SAFETY: the entry's strings are NUL-terminated, in the buffer.
        let text = |p: *const c_char| unsafe { pool::str_from(p) }.unwrap_or_default().into_owned();
        DaemonUser { name: text(entry.pw_name), uid: entry.pw_uid, gid: entry.pw_gid, home: text(entry.pw_dir) }
    })
}

/// A group found by a `getgr*_r` call.
fn group_entry(call: impl Fn(*mut libc::group, *mut c_char, usize, *mut *mut libc::group) -> c_int) -> Option<DaemonGroupId> {
    reentrant_lookup(call, |entry: &libc::group| {
        // SAFETY: as in passwd_entry.
        let name = unsafe { pool::str_from(entry.gr_name) }.unwrap_or_default().into_owned();
        DaemonGroupId { name, gid: entry.gr_gid }
    })
}
