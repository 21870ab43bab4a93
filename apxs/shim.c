/*
 * The part of mod_wsgi_rs that only C can express: Apache's directive table
 * is built with the AP_INIT_* macros, and APR's bucket ring is manipulated
 * through macros. Everything else, including the module structure itself
 * (a Rust cdylib exports only Rust symbols), lives in src/.
 */
#include "httpd.h"
#include "http_config.h"
#include "apr_buckets.h"

/* Directive handlers, defined in src/lib.rs. Handlers shared by several
 * directives tell them apart by cmd->cmd->name. */
extern const char *wsgi_rs_set_python_optimize(cmd_parms *cmd, void *dir,
                                               const char *arg);
extern const char *wsgi_rs_add_server_line(cmd_parms *cmd, void *dir,
                                           const char *args);
extern const char *wsgi_rs_set_dir_option(cmd_parms *cmd, void *dir,
                                          const char *arg);

const command_rec wsgi_rs_commands[] = {
    /* Interpreter settings apply before Python starts, so only the main
     * server may set them; the handler rejects <VirtualHost> as well. */
    AP_INIT_TAKE1("WSGIPythonOptimize", wsgi_rs_set_python_optimize, NULL,
                  RSRC_CONF,
                  "Python optimisation level: 0, 1 (as python -O) or 2 "
                  "(as python -OO)"),

    /* RAW_ARGS because mod_wsgi allows any number of key=value options
     * after the fixed arguments. Server and virtual-host level only. */
    AP_INIT_RAW_ARGS("WSGIScriptAlias", wsgi_rs_add_server_line, NULL,
                     RSRC_CONF,
                     "URL prefix, WSGI script (or directory of scripts) "
                     "path, then optional key=value options"),
    AP_INIT_RAW_ARGS("WSGIScriptAliasMatch", wsgi_rs_add_server_line, NULL,
                     RSRC_CONF,
                     "URL regular expression, WSGI script path with $N "
                     "references, then optional key=value options"),
    AP_INIT_RAW_ARGS("WSGIImportScript", wsgi_rs_add_server_line, NULL,
                     RSRC_CONF,
                     "WSGI script loaded when each child starts, then "
                     "process-group=%{GLOBAL} application-group=%{GLOBAL}"),

    /* Per-directory settings, with the override classes mod_wsgi uses so
     * the same .htaccess files keep working. */
    AP_INIT_TAKE1("WSGICallableObject", wsgi_rs_set_dir_option, NULL,
                  OR_FILEINFO,
                  "Name of the WSGI application object in the script "
                  "(default: application)"),
    AP_INIT_TAKE1("WSGIApplicationGroup", wsgi_rs_set_dir_option, NULL,
                  ACCESS_CONF | RSRC_CONF,
                  "Interpreter for the application; only %{GLOBAL} (the "
                  "main interpreter) is supported"),
    AP_INIT_TAKE1("WSGIPassAuthorization", wsgi_rs_set_dir_option, NULL,
                  OR_AUTHCFG,
                  "On or Off: whether applications see the Authorization "
                  "header (default Off)"),
    AP_INIT_TAKE1("WSGIScriptReloading", wsgi_rs_set_dir_option, NULL,
                  OR_FILEINFO,
                  "On or Off: reload a WSGI script when its file changes "
                  "(default On)"),
    AP_INIT_TAKE1("WSGIChunkedRequest", wsgi_rs_set_dir_option, NULL,
                  OR_FILEINFO,
                  "On or Off: accept chunked request bodies (default Off)"),
    AP_INIT_TAKE1("WSGIMapHEADToGET", wsgi_rs_set_dir_option, NULL,
                  OR_FILEINFO,
                  "On, Off or Auto: run HEAD requests as GET (default "
                  "Auto: when output filters may need the body)"),
    { NULL }
};

/* APR_BRIGADE_INSERT_TAIL is a ring macro with no function form. */
void wsgi_rs_brigade_append(apr_bucket_brigade *bb, apr_bucket *bucket)
{
    APR_BRIGADE_INSERT_TAIL(bb, bucket);
}

/* Whether the last bucket of a brigade read from the input filters marks
 * the end of the request body (APR_BUCKET_IS_EOS is a macro). */
int wsgi_rs_brigade_ends_with_eos(apr_bucket_brigade *bb)
{
    return !APR_BRIGADE_EMPTY(bb) && APR_BUCKET_IS_EOS(APR_BRIGADE_LAST(bb));
}
