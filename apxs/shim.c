/*
 * The part of mod_wsgi_rs that only C can express: Apache's directive table
 * is built with the AP_INIT_* macros, and APR's bucket ring is manipulated
 * through macros. Everything else, including the module structure itself
 * (a Rust cdylib exports only Rust symbols), lives in src/.
 */
#include "httpd.h"
#include "http_config.h"
#include "apr_buckets.h"

/* Directive handlers, defined in src/directives.rs. */
extern const char *wsgi_rs_set_python_optimize(cmd_parms *cmd, void *dir,
                                               const char *arg);
extern const char *wsgi_rs_add_script_alias(cmd_parms *cmd, void *dir,
                                            const char *args);

const command_rec wsgi_rs_commands[] = {
    /* Interpreter settings apply before Python starts, so only the main
     * server may set them; the handler rejects <VirtualHost> as well. */
    AP_INIT_TAKE1("WSGIPythonOptimize", wsgi_rs_set_python_optimize, NULL,
                  RSRC_CONF,
                  "Python optimisation level: 0, 1 (as python -O) or 2 "
                  "(as python -OO)"),
    /* RAW_ARGS because mod_wsgi allows any number of key=value options
     * after the URL and the script path. */
    AP_INIT_RAW_ARGS("WSGIScriptAlias", wsgi_rs_add_script_alias, NULL,
                     RSRC_CONF,
                     "URL prefix, WSGI script path, then optional "
                     "key=value options"),
    { NULL }
};

/* APR_BRIGADE_INSERT_TAIL is a ring macro with no function form. */
void wsgi_rs_brigade_append(apr_bucket_brigade *bb, apr_bucket *bucket)
{
    APR_BRIGADE_INSERT_TAIL(bb, bucket);
}
