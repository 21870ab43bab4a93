//! Generates Rust declarations for the Apache/APR API this module calls and
//! compiles the C shim (apxs/shim.c). Include paths come from `apxs -q`, so
//! the build follows whichever Apache the `APXS` variable (or PATH) names.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn apxs_query(apxs: &str, var: &str) -> String {
    let out = Command::new(apxs)
        .args(["-q", var])
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{apxs} -q {var}` (install apache2-dev): {e}"));
    assert!(out.status.success(), "`{apxs} -q {var}` failed");
    String::from_utf8(out.stdout).expect("apxs output is UTF-8").trim().to_owned()
}

fn main() {
    let apxs = env::var("APXS").unwrap_or_else(|_| "apxs".to_owned());
    println!("cargo:rerun-if-env-changed=APXS");
    println!("cargo:rerun-if-changed=apxs/shim.c");
    println!("cargo:rerun-if-changed=apxs/bindings.h");

    // The pip build (python/build_backend) sets this for a Python whose libpython is not in
    // a system library directory (pyenv, /opt), so Apache finds it without LD_LIBRARY_PATH.
    println!("cargo:rerun-if-env-changed=WSGI_RS_RPATH");
    if let Ok(dir) = env::var("WSGI_RS_RPATH") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,{dir}");
    }

    let include_dirs = [apxs_query(&apxs, "INCLUDEDIR"), apxs_query(&apxs, "APR_INCLUDEDIR")];
    // EXTRA_CPPFLAGS carries the -D flags Apache itself was built with
    // (-DLINUX -D_REENTRANT -D_GNU_SOURCE); struct layouts depend on them.
    let defines: Vec<String> = apxs_query(&apxs, "EXTRA_CPPFLAGS")
        .split_whitespace()
        .map(str::to_owned)
        .collect();

    let mut shim = cc::Build::new();
    shim.file("apxs/shim.c").warnings(true);
    for dir in &include_dirs {
        shim.include(dir);
    }
    for flag in &defines {
        shim.flag(flag);
    }
    shim.compile("wsgi_rs_shim");

    let bindings = bindgen::Builder::default()
        .header("apxs/bindings.h")
        .clang_args(include_dirs.iter().map(|d| format!("-I{d}")))
        .clang_args(&defines)
        .allowlist_function("ap_.*|apr_.*")
        .allowlist_type(
            "module|command_rec|cmd_parms|request_rec|server_rec|conn_rec|apr_table_entry_t\
             |authn_provider|authz_provider|authn_status|authz_status|core_dir_config",
        )
        .allowlist_var(
            "OK|DECLINED|DONE|HTTP_.*|APR_HOOK_.*|APLOG_.*|AP_MPMQ_.*|REQUEST_CHUNKED_.*\
             |MODULE_MAGIC_.*|RSRC_CONF|ACCESS_CONF|OR_.*|GLOBAL_ONLY|NOT_IN_.*|APR_SUCCESS\
             |APR_EOF|AP_CONN_.*|AP_FILTER_ERROR|OPT_.*|APR_FOPEN_.*|APR_TIMEUP|APR_INCOMPLETE\
             |AP_SQ_.*|APR_OC_REASON_.*|ap_unixd_config|AUTHN_PROVIDER_.*|AUTHZ_PROVIDER_.*\
             |AP_AUTH_INTERNAL_PER_CONF|REMOTE_HOST|M_GET|AP_CGI_PASS_AUTH_ON|AP_CORE_CONFIG_ON|DEFAULT_PATH",
        )
        .default_enum_style(bindgen::EnumVariation::Consts)
        .derive_debug(false)
        .derive_default(false)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen failed on apxs/bindings.h (is libclang-dev installed?)");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("httpd_bindings.rs");
    bindings.write_to_file(out).expect("write bindings");
}
