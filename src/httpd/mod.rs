//! Apache httpd and APR, as this module sees them: the generated
//! declarations plus a few small wrappers. Nothing here knows about Python.

pub mod log;
pub mod pool;

use std::ffi::c_int;

unsafe extern "C" {
    // Defined in lib.rs; declared here so this layer needs nothing from the
    // crate root. Only `module_index` is read, after Apache has set it.
    static wsgi_rs_module: ffi::module;
}

/// This module's index into Apache's per-module config vectors and log
/// level table.
pub fn module_index() -> usize {
    // SAFETY: Apache assigns module_index when it adds the module, before
    // any directive handler or hook can run, and never changes it after.
    let index: c_int = unsafe { wsgi_rs_module.module_index };
    index as usize
}

#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    unnecessary_transmutes,
    clippy::all
)]
pub mod ffi {
    include!(concat!(env!("OUT_DIR"), "/httpd_bindings.rs"));

    // Declared in apxs/shim.c: the directive table (built with the AP_INIT_*
    // macros) and the bucket-ring macros we need, as functions.
    unsafe extern "C" {
        pub static wsgi_rs_commands: [command_rec; 0];
        pub fn wsgi_rs_brigade_append(bb: *mut apr_bucket_brigade, bucket: *mut apr_bucket);
        pub fn wsgi_rs_brigade_ends_with_eos(bb: *mut apr_bucket_brigade) -> std::ffi::c_int;
        pub fn wsgi_rs_brigade_find_eos(bb: *mut apr_bucket_brigade, has_file: *mut std::ffi::c_int) -> *mut apr_bucket;
        pub fn wsgi_rs_brigade_flush_before(bb: *mut apr_bucket_brigade, eos: *mut apr_bucket);
    }
}

/// bindgen gives macro constants whatever integer type fits their literal;
/// the API takes `int`, so they are normalised once here.
pub mod consts {
    use super::ffi;
    use std::ffi::c_int;

    pub const OK: c_int = ffi::OK as c_int;
    pub const DECLINED: c_int = ffi::DECLINED;
    pub const HTTP_FORBIDDEN: c_int = ffi::HTTP_FORBIDDEN as c_int;
    pub const HTTP_NOT_FOUND: c_int = ffi::HTTP_NOT_FOUND as c_int;
    pub const HTTP_INTERNAL_SERVER_ERROR: c_int = ffi::HTTP_INTERNAL_SERVER_ERROR as c_int;
    pub const HTTP_BAD_GATEWAY: c_int = ffi::HTTP_BAD_GATEWAY as c_int;
    pub const HTTP_SERVICE_UNAVAILABLE: c_int = ffi::HTTP_SERVICE_UNAVAILABLE as c_int;
    pub const HTTP_GATEWAY_TIME_OUT: c_int = ffi::HTTP_GATEWAY_TIME_OUT as c_int;
    pub const APR_HOOK_MIDDLE: c_int = ffi::APR_HOOK_MIDDLE as c_int;
    pub const APR_HOOK_REALLY_FIRST: c_int = ffi::APR_HOOK_REALLY_FIRST;
    pub const APLOG_CRIT: c_int = ffi::APLOG_CRIT as c_int;
    pub const APLOG_ERR: c_int = ffi::APLOG_ERR as c_int;
    pub const APLOG_WARNING: c_int = ffi::APLOG_WARNING as c_int;
    pub const APLOG_NOTICE: c_int = ffi::APLOG_NOTICE as c_int;
    pub const APLOG_INFO: c_int = ffi::APLOG_INFO as c_int;
    pub const GLOBAL_ONLY: u32 = ffi::GLOBAL_ONLY;
    pub const NOT_IN_DIR_LOC_FILE: u32 = ffi::NOT_IN_DIR_LOC_FILE;
    pub const AP_MPMQ_IS_THREADED: c_int = ffi::AP_MPMQ_IS_THREADED as c_int;
    pub const AP_MPMQ_NOT_SUPPORTED: c_int = ffi::AP_MPMQ_NOT_SUPPORTED as c_int;
    pub const AP_MPMQ_MPM_STATE: c_int = ffi::AP_MPMQ_MPM_STATE as c_int;
    pub const AP_MPMQ_STOPPING: c_int = ffi::AP_MPMQ_STOPPING as c_int;
    pub const REQUEST_CHUNKED_ERROR: c_int = ffi::REQUEST_CHUNKED_ERROR as c_int;
    pub const REQUEST_CHUNKED_DECHUNK: c_int = ffi::REQUEST_CHUNKED_DECHUNK as c_int;
    pub const APR_SUCCESS: c_int = ffi::APR_SUCCESS as c_int;
    pub const HTTP_REQUEST_ENTITY_TOO_LARGE: c_int = ffi::HTTP_REQUEST_ENTITY_TOO_LARGE as c_int;
    pub const APR_TIMEUP: c_int = ffi::APR_TIMEUP as c_int;
    pub const APR_INCOMPLETE: c_int = ffi::APR_INCOMPLETE as c_int;
    pub const APR_EOF: c_int = ffi::APR_EOF as c_int;
    pub const HTTP_REQUEST_TIME_OUT: c_int = ffi::HTTP_REQUEST_TIME_OUT as c_int;
    pub const HTTP_BAD_REQUEST: c_int = ffi::HTTP_BAD_REQUEST as c_int;
    pub const HTTP_METHOD_NOT_ALLOWED: c_int = ffi::HTTP_METHOD_NOT_ALLOWED as c_int;
    pub const M_GET: c_int = ffi::M_GET as c_int;
    pub const AP_FILTER_ERROR: c_int = ffi::AP_FILTER_ERROR;
    pub const OPT_EXECCGI: c_int = ffi::OPT_EXECCGI as c_int;
    pub const AP_MODE_READBYTES: ffi::ap_input_mode_t = ffi::ap_input_mode_t_AP_MODE_READBYTES;
    pub const APR_BLOCK_READ: ffi::apr_read_type_e = ffi::apr_read_type_e_APR_BLOCK_READ;
    pub const AP_FTYPE_PROTOCOL: ffi::ap_filter_type = ffi::ap_filter_type_AP_FTYPE_PROTOCOL;
    pub const AP_FTYPE_CONNECTION: ffi::ap_filter_type = ffi::ap_filter_type_AP_FTYPE_CONNECTION;
    pub const APR_NOFILE: ffi::apr_filetype_e = ffi::apr_filetype_e_APR_NOFILE;
    pub const APR_DIR: ffi::apr_filetype_e = ffi::apr_filetype_e_APR_DIR;
    pub const AP_CONN_CLOSE: ffi::ap_conn_keepalive_e = ffi::ap_conn_keepalive_e_AP_CONN_CLOSE;
    // The values of core_dir_config's bit fields, as their accessors read them.
    pub const AP_CGI_PASS_AUTH_ON: std::ffi::c_uint = ffi::AP_CGI_PASS_AUTH_ON;
    pub const AP_CORE_CONFIG_ON: std::ffi::c_uint = ffi::AP_CORE_CONFIG_ON;
}
