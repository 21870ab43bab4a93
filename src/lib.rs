//! mod_wsgi_rs: an Apache httpd 2.4 module that hosts WSGI applications in
//! an embedded CPython.
//!
//! This file is what Apache sees: the `module` structure, the hook
//! registration, and every `extern "C"` function Apache calls. Each entry
//! point catches panics, so a bug here becomes a log line and an error
//! status rather than unwinding into C.

#![deny(unsafe_op_in_unsafe_fn)]

mod application_group;
mod config;
mod daemon_config;
mod daemon_lifecycle;
mod daemon;
mod wsgi;

#[cfg(not(test))]
mod embedded;
#[cfg(not(test))]
mod directives;
#[cfg(not(test))]
mod httpd;
#[cfg(not(test))]
mod interp;
mod python_home;
// Unit-tested, and used by interp and pycache_setup, which the test build leaves out.
#[cfg_attr(test, allow(dead_code))]
mod pycache;
#[cfg(not(test))]
mod pycache_setup;
#[cfg_attr(test, allow(dead_code))]
mod source_compiles;

#[cfg(not(test))]
pub use entry_points::wsgi_rs_module;

// Unit tests cover the pure parts (config, response rules); the entry
// points reference symbols only the apache2 binary provides, so they are
// left out of the test build.
#[cfg(not(test))]
mod entry_points {
    use crate::httpd::{consts, ffi, log, pool};
    use crate::{daemon, directives, embedded, interp, pycache_setup};
    use std::ffi::{c_char, c_int, c_ulong, c_void, CStr};
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::ptr::{null, null_mut};

    /// The module structure Apache's `LoadModule wsgi_rs_module` looks up.
    /// (STANDARD20_MODULE_STUFF spelled out: the macro is C-only.)
    #[unsafe(no_mangle)]
    pub static mut wsgi_rs_module: ffi::module = ffi::module {
        version: ffi::MODULE_MAGIC_NUMBER_MAJOR as c_int,
        minor_version: ffi::MODULE_MAGIC_NUMBER_MINOR as c_int,
        module_index: -1,
        name: c"mod_wsgi_rs.c".as_ptr(),
        dynamic_load_handle: null_mut(),
        next: null_mut(),
        magic: ffi::MODULE_MAGIC_COOKIE as c_ulong,
        rewrite_args: None,
        create_dir_config: Some(create_dir_config),
        merge_dir_config: Some(merge_dir_config),
        create_server_config: Some(create_server_config),
        merge_server_config: Some(merge_server_config),
        cmds: &raw const ffi::wsgi_rs_commands as *const ffi::command_rec,
        register_hooks: Some(register_hooks),
        flags: 0,
    };

    /// A NULL-terminated list of module names for hook ordering. Apache
    /// keeps the pointer until it sorts hooks, so the lists are statics.
    struct HookOrder<const N: usize>([*const c_char; N]);
    // SAFETY: the arrays hold pointers to immutable static C strings.
    unsafe impl<const N: usize> Sync for HookOrder<N> {}

    /// mod_python's child_init re-initialises Python after fork; ours must
    /// see its result to know Python is already running.
    static AFTER_MOD_PYTHON: HookOrder<2> = HookOrder([c"mod_python.c".as_ptr(), null()]);
    /// As mod_wsgi: after mod_alias, before per-user and mass-vhost maps.
    static AFTER_MOD_ALIAS: HookOrder<2> = HookOrder([c"mod_alias.c".as_ptr(), null()]);
    static BEFORE_USERDIR: HookOrder<3> =
        HookOrder([c"mod_userdir.c".as_ptr(), c"mod_vhost_alias.c".as_ptr(), null()]);

    /// As mod_wsgi: the access script runs after mod_ssl's access check
    /// (so SSL variables are settled) and before mod_authz_host's.
    static AFTER_MOD_SSL: HookOrder<2> = HookOrder([c"mod_ssl.c".as_ptr(), null()]);
    static BEFORE_AUTHZ_HOST: HookOrder<2> = HookOrder([c"mod_authz_host.c".as_ptr(), null()]);

    /// `AuthBasicProvider wsgi` and `AuthDigestProvider wsgi`.
    static AUTHN_PROVIDER: ffi::authn_provider =
        ffi::authn_provider { check_password: Some(authn_check_password), get_realm_hash: Some(authn_get_realm_hash) };
    /// `Require wsgi-group NAME...`.
    static AUTHZ_PROVIDER: ffi::authz_provider = ffi::authz_provider {
        check_authorization: Some(authz_check_group),
        parse_require_line: Some(authz_parse_group_require),
    };

    /// Runs `f`, turning a panic into a log line and `on_panic`.
    fn guarded<R>(what: &str, on_panic: R, f: impl FnOnce() -> R) -> R {
        catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
            let reason = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            log::server(null(), consts::APLOG_CRIT, &format!("internal error in {what}: {reason}"));
            on_panic
        })
    }

    unsafe extern "C" fn register_hooks(pool: *mut ffi::apr_pool_t) {
        guarded("register_hooks", (), || {
            // SAFETY: the hook and provider functions match Apache's
            // prototypes, the ordering arrays are static and
            // NULL-terminated, the provider structures and names are
            // statics Apache only reads, and `pool` is the pool Apache
            // passes to register_hooks.
            unsafe {
                // Adds "mod_wsgi_rs/x.y Python/3.11" to the server banner.
                ffi::ap_hook_post_config(Some(post_config), null(), null(), consts::APR_HOOK_MIDDLE);
                // Checks what needs the whole configuration (which daemon
                // groups exist, and where): it runs for `apache2 -t` too,
                // and an error there stops Apache.
                ffi::ap_hook_check_config(Some(check_config), null(), null(), consts::APR_HOOK_MIDDLE);
                // Starts Python in each child, never in the parent: the
                // parent unloads this DSO on every restart.
                ffi::ap_hook_child_init(
                    Some(child_init),
                    AFTER_MOD_PYTHON.0.as_ptr(),
                    null(),
                    consts::APR_HOOK_MIDDLE,
                );
                // Maps WSGIScriptAlias URLs to scripts.
                ffi::ap_hook_translate_name(
                    Some(translate_name),
                    AFTER_MOD_ALIAS.0.as_ptr(),
                    BEFORE_USERDIR.0.as_ptr(),
                    consts::APR_HOOK_MIDDLE,
                );
                // Runs the application for requests with handler wsgi-script.
                ffi::ap_hook_handler(Some(handler), null(), null(), consts::APR_HOOK_MIDDLE);
                // Serves the daemon groups' status for handler wsgi-rs-status.
                ffi::ap_hook_handler(Some(status_handler), null(), null(), consts::APR_HOOK_MIDDLE);
                // The access and authentication scripts. Their answers
                // depend only on the request's per-directory configuration
                // (and the client), so Apache may skip them for
                // sub-requests with the same configuration.
                let per_conf = ffi::AP_AUTH_INTERNAL_PER_CONF as c_int;
                ffi::ap_register_auth_provider(
                    pool,
                    ffi::AUTHN_PROVIDER_GROUP.as_ptr().cast(),
                    c"wsgi".as_ptr(),
                    ffi::AUTHN_PROVIDER_VERSION.as_ptr().cast(),
                    (&raw const AUTHN_PROVIDER).cast(),
                    per_conf,
                );
                ffi::ap_register_auth_provider(
                    pool,
                    ffi::AUTHZ_PROVIDER_GROUP.as_ptr().cast(),
                    c"wsgi-group".as_ptr(),
                    ffi::AUTHZ_PROVIDER_VERSION.as_ptr().cast(),
                    (&raw const AUTHZ_PROVIDER).cast(),
                    per_conf,
                );
                ffi::ap_hook_check_access(
                    Some(access_checker),
                    AFTER_MOD_SSL.0.as_ptr(),
                    BEFORE_AUTHZ_HOST.0.as_ptr(),
                    consts::APR_HOOK_MIDDLE,
                    per_conf,
                );
                // Beside mod_python, claims each thread's Python thread
                // state before mod_python can (see interp::pin_thread_state).
                ffi::ap_hook_create_request(
                    Some(create_request),
                    null(),
                    null(),
                    consts::APR_HOOK_REALLY_FIRST,
                );
            }
            // The output filter the handler adds to each WSGI request, so
            // that the response is written as soon as it is complete.
            embedded::register_flush_at_end(Some(flush_at_end_filter));
        })
    }

    unsafe extern "C" fn create_server_config(p: *mut ffi::apr_pool_t, _s: *mut ffi::server_rec) -> *mut c_void {
        guarded("create_server_config", null_mut(), || directives::create_server_config(p))
    }

    unsafe extern "C" fn create_dir_config(p: *mut ffi::apr_pool_t, _dir: *mut c_char) -> *mut c_void {
        guarded("create_dir_config", null_mut(), || directives::create_dir_config(p))
    }

    unsafe extern "C" fn merge_dir_config(p: *mut ffi::apr_pool_t, outer: *mut c_void, inner: *mut c_void) -> *mut c_void {
        // SAFETY: Apache passes two configs create_dir_config made.
        guarded("merge_dir_config", null_mut(), || unsafe { directives::merge_dir_config(p, outer, inner) })
    }

    unsafe extern "C" fn merge_server_config(
        p: *mut ffi::apr_pool_t,
        base: *mut c_void,
        vhost: *mut c_void,
    ) -> *mut c_void {
        // SAFETY: Apache passes two configs create_server_config made.
        guarded("merge_server_config", null_mut(), || unsafe {
            directives::merge_server_config(p, base, vhost)
        })
    }

    /// A directive handler's result as Apache wants it: NULL, or an error
    /// message in the command's pool.
    fn directive_result(cmd: *mut ffi::cmd_parms, result: Result<(), String>) -> *const c_char {
        match result {
            Ok(()) => null(),
            // SAFETY: cmd is the live cmd_parms; its pool outlives the
            // message's use by Apache.
            Err(message) => pool::strdup(unsafe { (*cmd).pool }, &message),
        }
    }

    const DIRECTIVE_PANIC: *const c_char = c"mod_wsgi_rs: internal error while reading this directive".as_ptr();

    #[unsafe(no_mangle)]
    unsafe extern "C" fn wsgi_rs_set_python_optimize(
        cmd: *mut ffi::cmd_parms,
        _dir: *mut c_void,
        arg: *const c_char,
    ) -> *const c_char {
        guarded("WSGIPythonOptimize", DIRECTIVE_PANIC, || {
            // SAFETY: Apache passes the directive's argument as a C string
            // and the live cmd_parms.
            let arg = unsafe { pool::str_from(arg) }.unwrap_or_default();
            directive_result(cmd, unsafe { directives::set_python_optimize(cmd, &arg) })
        })
    }

    #[unsafe(no_mangle)]
    unsafe extern "C" fn wsgi_rs_set_interpreter_option(
        cmd: *mut ffi::cmd_parms,
        _dir: *mut c_void,
        arg: *const c_char,
    ) -> *const c_char {
        guarded("an interpreter directive", DIRECTIVE_PANIC, || {
            // SAFETY: Apache passes the directive's argument as a C string
            // and the live cmd_parms.
            let arg = unsafe { pool::str_from(arg) }.unwrap_or_default();
            directive_result(cmd, unsafe { directives::set_interpreter_option(cmd, &arg) })
        })
    }

    #[unsafe(no_mangle)]
    unsafe extern "C" fn wsgi_rs_reject_unsupported(
        cmd: *mut ffi::cmd_parms,
        _dir: *mut c_void,
        _args: *const c_char,
    ) -> *const c_char {
        guarded("an unsupported directive", DIRECTIVE_PANIC, || {
            // SAFETY: Apache passes the live cmd_parms.
            directive_result(cmd, Err(unsafe { directives::reject_unsupported(cmd) }))
        })
    }

    #[unsafe(no_mangle)]
    unsafe extern "C" fn wsgi_rs_add_server_line(
        cmd: *mut ffi::cmd_parms,
        _dir: *mut c_void,
        args: *const c_char,
    ) -> *const c_char {
        guarded("a WSGI directive", DIRECTIVE_PANIC, || {
            // SAFETY: Apache passes the raw argument string and cmd_parms.
            directive_result(cmd, unsafe { directives::add_server_line(cmd, args) })
        })
    }

    #[unsafe(no_mangle)]
    unsafe extern "C" fn wsgi_rs_set_auth_script(
        cmd: *mut ffi::cmd_parms,
        dir: *mut c_void,
        args: *const c_char,
    ) -> *const c_char {
        guarded("a WSGI directive", DIRECTIVE_PANIC, || {
            // SAFETY: Apache passes the raw argument string, the live
            // cmd_parms and the DirConfig of the section being read.
            directive_result(cmd, unsafe { directives::set_auth_script(cmd, dir, args) })
        })
    }

    #[unsafe(no_mangle)]
    unsafe extern "C" fn wsgi_rs_add_daemon_process(
        cmd: *mut ffi::cmd_parms,
        _dir: *mut c_void,
        args: *const c_char,
    ) -> *const c_char {
        guarded("WSGIDaemonProcess", DIRECTIVE_PANIC, || {
            // SAFETY: Apache passes the raw argument string and cmd_parms.
            directive_result(cmd, unsafe { directives::add_daemon_process(cmd, args) })
        })
    }

    #[unsafe(no_mangle)]
    unsafe extern "C" fn wsgi_rs_set_daemon_option(
        cmd: *mut ffi::cmd_parms,
        _dir: *mut c_void,
        arg: *const c_char,
    ) -> *const c_char {
        guarded("a WSGI directive", DIRECTIVE_PANIC, || {
            // SAFETY: Apache passes the directive's argument as a C string
            // and the live cmd_parms.
            let arg = unsafe { pool::str_from(arg) }.unwrap_or_default();
            directive_result(cmd, unsafe { directives::set_daemon_option(cmd, &arg) })
        })
    }

    /// Runs after the whole configuration is read, before post_config and
    /// also for `apache2 -t`. A failure is logged here and stops Apache
    /// ("AH00014: Configuration check failed").
    unsafe extern "C" fn check_config(
        pconf: *mut ffi::apr_pool_t,
        _plog: *mut ffi::apr_pool_t,
        _ptemp: *mut ffi::apr_pool_t,
        s: *mut ffi::server_rec,
    ) -> c_int {
        guarded("check_config", consts::HTTP_INTERNAL_SERVER_ERROR, || {
            // SAFETY: Apache calls check_config in the single-threaded
            // parent with the configuration pool and the main server.
            match unsafe { directives::check_config(pconf, s) } {
                Ok(()) => consts::OK,
                Err(errors) => {
                    for error in errors {
                        log::server(s, consts::APLOG_ERR, &error);
                    }
                    consts::HTTP_INTERNAL_SERVER_ERROR
                }
            }
        })
    }

    #[unsafe(no_mangle)]
    unsafe extern "C" fn wsgi_rs_set_dir_option(
        cmd: *mut ffi::cmd_parms,
        dir: *mut c_void,
        arg: *const c_char,
    ) -> *const c_char {
        guarded("a WSGI directive", DIRECTIVE_PANIC, || {
            // SAFETY: Apache passes the argument, the live cmd_parms and
            // the DirConfig of the section being read.
            let arg = unsafe { pool::str_from(arg) }.unwrap_or_default();
            directive_result(cmd, unsafe { directives::set_dir_option(cmd, dir, &arg) })
        })
    }

    unsafe extern "C" fn post_config(
        pconf: *mut ffi::apr_pool_t,
        _plog: *mut ffi::apr_pool_t,
        _ptemp: *mut ffi::apr_pool_t,
        s: *mut ffi::server_rec,
    ) -> c_int {
        guarded("post_config", consts::OK, || {
            // SAFETY: Py_GetVersion returns a static string and may be
            // called before Python is initialised.
            let version = unsafe { CStr::from_ptr(pyo3::ffi::Py_GetVersion()) }.to_string_lossy();
            let major_minor: String = version
                .split_whitespace()
                .next()
                .unwrap_or("")
                .split('.')
                .take(2)
                .collect::<Vec<_>>()
                .join(".");
            let banner = format!("mod_wsgi_rs/{} Python/{major_minor}", env!("CARGO_PKG_VERSION"));
            // SAFETY: pconf is live; the component is copied into it.
            unsafe { ffi::ap_add_version_component(pconf, pool::strdup(pconf, &banner)) };
            // SAFETY: post_config runs in the single-threaded parent with
            // the configuration pool and the main server. The cache
            // directories exist before any process that uses one starts.
            unsafe { pycache_setup::prepare(pconf, s) };
            // SAFETY: as above.
            match unsafe { daemon::start_groups(pconf, s) } {
                Ok(()) => consts::OK,
                Err(why) => {
                    log::server(s, consts::APLOG_CRIT, &why);
                    consts::HTTP_INTERNAL_SERVER_ERROR
                }
            }
        })
    }

    unsafe extern "C" fn child_init(pchild: *mut ffi::apr_pool_t, s: *mut ffi::server_rec) {
        guarded("child_init", (), || {
            // SAFETY: s is the main server; its config was created by us.
            let config = unsafe { directives::server_config(s) };
            if config.restrict_embedded == Some(true) {
                // Every WSGI request runs in a daemon: the children need no
                // Python, and not starting it saves its memory in each.
                interp::leave_unstarted("WSGIRestrictEmbedded On: WSGI applications run in daemon processes only");
                return;
            }
            interp::start(config, s, pchild, "", "WSGI requests in this process will get 500");
            // SAFETY: s is the main server of this child_init call.
            unsafe { embedded::prepare_child(s) };
        })
    }

    unsafe extern "C" fn create_request(_r: *mut ffi::request_rec) -> c_int {
        guarded("create_request", consts::OK, || {
            if interp::is_borrowed() {
                interp::pin_thread_state();
            }
            consts::OK
        })
    }

    unsafe extern "C" fn translate_name(r: *mut ffi::request_rec) -> c_int {
        // SAFETY: r is the live request of this hook call.
        guarded("translate_name", consts::DECLINED, || unsafe { embedded::translate_name(r) })
    }

    unsafe extern "C" fn handler(r: *mut ffi::request_rec) -> c_int {
        // SAFETY: r is the live request of this hook call.
        guarded("handler", consts::HTTP_INTERNAL_SERVER_ERROR, || unsafe { embedded::handle(r) })
    }

    unsafe extern "C" fn status_handler(r: *mut ffi::request_rec) -> c_int {
        // SAFETY: r is the live request of this hook call.
        guarded("the status handler", consts::HTTP_INTERNAL_SERVER_ERROR, || unsafe { embedded::handle_status_page(r) })
    }

    unsafe extern "C" fn authn_check_password(
        r: *mut ffi::request_rec,
        user: *const c_char,
        password: *const c_char,
    ) -> ffi::authn_status {
        // SAFETY: mod_auth_basic passes the live request and the client's
        // user and password as NUL-terminated strings.
        guarded("the wsgi authentication provider", ffi::authn_status_AUTH_GENERAL_ERROR, || unsafe {
            embedded::check_password(r, user, password)
        })
    }

    unsafe extern "C" fn authn_get_realm_hash(
        r: *mut ffi::request_rec,
        user: *const c_char,
        realm: *const c_char,
        rethash: *mut *mut c_char,
    ) -> ffi::authn_status {
        // SAFETY: mod_auth_digest passes the live request, NUL-terminated
        // user and realm, and where to put the hash.
        guarded("the wsgi authentication provider", ffi::authn_status_AUTH_GENERAL_ERROR, || unsafe {
            embedded::get_realm_hash(r, user, realm, rethash)
        })
    }

    unsafe extern "C" fn authz_check_group(
        r: *mut ffi::request_rec,
        require_args: *const c_char,
        _parsed: *const c_void,
    ) -> ffi::authz_status {
        // SAFETY: mod_authz_core passes the live request and the rest of
        // the Require line, NUL-terminated.
        guarded("Require wsgi-group", ffi::authz_status_AUTHZ_GENERAL_ERROR, || unsafe {
            embedded::check_group(r, require_args)
        })
    }

    unsafe extern "C" fn authz_parse_group_require(
        cmd: *mut ffi::cmd_parms,
        require_line: *const c_char,
        _parsed: *mut *const c_void,
    ) -> *const c_char {
        guarded("Require wsgi-group", DIRECTIVE_PANIC, || {
            // SAFETY: mod_authz_core passes the live cmd_parms of the
            // Require line and its arguments, NUL-terminated.
            directive_result(cmd, unsafe { embedded::parse_group_require(cmd, require_line) })
        })
    }

    unsafe extern "C" fn access_checker(r: *mut ffi::request_rec) -> c_int {
        // SAFETY: r is the live request of this hook call.
        guarded("the WSGI access check", consts::HTTP_INTERNAL_SERVER_ERROR, || unsafe { embedded::check_access(r) })
    }

    unsafe extern "C" fn flush_at_end_filter(
        f: *mut ffi::ap_filter_t,
        bb: *mut ffi::apr_bucket_brigade,
    ) -> ffi::apr_status_t {
        // SAFETY: Apache calls an output filter with itself and the live
        // brigade being passed.
        guarded("the end-of-response filter", (), || unsafe { embedded::flush_at_end(f, bb) });
        // Passed on whatever happened above: the response must go out.
        // SAFETY: f is live and f->next is the rest of the chain, also
        // after the filter has removed itself.
        unsafe { ffi::ap_pass_brigade((*f).next, bb) }
    }
}
