/*
 * The part of mod_wsgi_rs that only C can express: Apache's directive table
 * is built with the AP_INIT_* macros, and APR's bucket ring is manipulated
 * through macros. Everything else, including the module structure itself
 * (a Rust cdylib exports only Rust symbols), lives in src/.
 */
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "apr_buckets.h"

/* Directive handlers, defined in src/lib.rs. Handlers shared by several
 * directives tell them apart by cmd->cmd->name. */
extern const char *wsgi_rs_set_python_optimize(cmd_parms *cmd, void *dir,
                                               const char *arg);
extern const char *wsgi_rs_add_server_line(cmd_parms *cmd, void *dir,
                                           const char *args);
extern const char *wsgi_rs_set_dir_option(cmd_parms *cmd, void *dir,
                                          const char *arg);
extern const char *wsgi_rs_set_interpreter_option(cmd_parms *cmd, void *dir,
                                                  const char *arg);
extern const char *wsgi_rs_set_auth_script(cmd_parms *cmd, void *dir,
                                           const char *args);
extern const char *wsgi_rs_reject_unsupported(cmd_parms *cmd, void *dir,
                                              const char *args);
extern const char *wsgi_rs_add_daemon_process(cmd_parms *cmd, void *dir,
                                              const char *args);
extern const char *wsgi_rs_set_daemon_option(cmd_parms *cmd, void *dir,
                                             const char *arg);

/* Interpreter settings apply before Python starts, so only the main server
 * may set them; the handler rejects <VirtualHost> as well. */
#define INTERPRETER_OPTION(name, help) \
    AP_INIT_TAKE1(name, wsgi_rs_set_interpreter_option, NULL, RSRC_CONF, help)

/* mod_wsgi directives not implemented yet: recognised everywhere mod_wsgi
 * accepts them, so the error says so instead of "Invalid command". */
#define UNSUPPORTED(name) \
    AP_INIT_RAW_ARGS(name, wsgi_rs_reject_unsupported, NULL, \
                     RSRC_CONF | ACCESS_CONF | OR_ALL, \
                     "a mod_wsgi directive mod_wsgi_rs does not support yet")

const command_rec wsgi_rs_commands[] = {
    /* Interpreter settings apply before Python starts, so only the main
     * server may set them; the handler rejects <VirtualHost> as well. */
    AP_INIT_TAKE1("WSGIPythonOptimize", wsgi_rs_set_python_optimize, NULL,
                  RSRC_CONF,
                  "Python optimisation level: 0, 1 (as python -O) or 2 "
                  "(as python -OO)"),

    INTERPRETER_OPTION("WSGIPythonHome",
                       "Virtual environment or Python prefix to run"),
    INTERPRETER_OPTION("WSGIPythonPath",
                       "Directories (separated by ':') put first on sys.path"),
    INTERPRETER_OPTION("WSGIPythonHashSeed",
                       "random, or a fixed hash seed from 0 to 4294967295"),
    INTERPRETER_OPTION("WSGIPythonWarnings",
                       "A warnings filter as for python -W (repeatable)"),
    INTERPRETER_OPTION("WSGIDontWriteBytecode",
                       "On or Off: do not write .pyc files (default Off)"),
    INTERPRETER_OPTION("WSGIPythonPycachePrefix",
                       "Off, or the directory compiled modules are cached "
                       "under, one subdirectory per user (default: under "
                       "DefaultRuntimeDir at optimisation levels 1 and 2)"),
    INTERPRETER_OPTION("WSGIRestrictStdout",
                       "On or Off: make sys.stdout unusable (default Off: "
                       "it goes to the error log)"),
    INTERPRETER_OPTION("WSGIRestrictStdin",
                       "On or Off: make sys.stdin unusable (default Off)"),
    INTERPRETER_OPTION("WSGIRestrictSignal",
                       "On or Off: ignore signal.signal() from applications "
                       "(default On)"),
    INTERPRETER_OPTION("WSGIDestroyInterpreter",
                       "On or Off: finalise Python when a child exits "
                       "(default On)"),

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
                     "WSGI script preloaded where its process group runs, "
                     "then process-group=GROUP application-group=GROUP"),

    /* Per-directory settings, with the override classes mod_wsgi uses so
     * the same .htaccess files keep working. */
    AP_INIT_TAKE1("WSGICallableObject", wsgi_rs_set_dir_option, NULL,
                  OR_FILEINFO,
                  "Name of the WSGI application object in the script "
                  "(default: application)"),
    AP_INIT_TAKE1("WSGIApplicationGroup", wsgi_rs_set_dir_option, NULL,
                  ACCESS_CONF | RSRC_CONF,
                  "Application group: a name, %{GLOBAL}, %{RESOURCE}, "
                  "%{SERVER}, %{HOST} or %{ENV:VARIABLE}; one per process"),
    /* OR_AUTHCFG alone means <Directory>/<Location> and .htaccess only;
     * mod_wsgi also allows the server and virtual-host level. */
    AP_INIT_TAKE1("WSGIPassAuthorization", wsgi_rs_set_dir_option, NULL,
                  OR_AUTHCFG | RSRC_CONF,
                  "On or Off: whether applications see the Authorization "
                  "header (default Off)"),
    AP_INIT_TAKE1("WSGIScriptReloading", wsgi_rs_set_dir_option, NULL,
                  OR_FILEINFO,
                  "On or Off: reload a WSGI script when its file changes "
                  "(default On)"),
    AP_INIT_TAKE1("WSGIPathTranslated", wsgi_rs_set_dir_option, NULL,
                  OR_FILEINFO,
                  "On or Off: compute PATH_TRANSLATED with a sub-request "
                  "for PATH_INFO (default On)"),
    AP_INIT_TAKE1("WSGIExportCGIVariables", wsgi_rs_set_dir_option, NULL,
                  OR_FILEINFO,
                  "On or Off: also put the CGI variables in the request's "
                  "Apache environment, for %{VAR}e in logs (default On)"),
    AP_INIT_TAKE1("WSGIChunkedRequest", wsgi_rs_set_dir_option, NULL,
                  OR_FILEINFO,
                  "On or Off: accept chunked request bodies (default Off)"),
    AP_INIT_TAKE1("WSGIMapHEADToGET", wsgi_rs_set_dir_option, NULL,
                  OR_FILEINFO,
                  "On, Off or Auto: run HEAD requests as GET (default "
                  "Auto: when output filters may need the body)"),
    AP_INIT_TAKE1("WSGIProcessGroup", wsgi_rs_set_dir_option, NULL,
                  ACCESS_CONF | RSRC_CONF,
                  "Process group for the application: the name of a "
                  "WSGIDaemonProcess group, %{ENV:VARIABLE}, or %{GLOBAL} "
                  "(the Apache child itself, the default)"),

    /* Scripts Apache's access, authentication and authorisation phases
     * call, where mod_wsgi allows them: <Directory>, <Location>, <Files>
     * and .htaccess with AllowOverride AuthConfig. RAW_ARGS for the
     * options after the path. */
    AP_INIT_RAW_ARGS("WSGIAccessScript", wsgi_rs_set_auth_script, NULL,
                     OR_AUTHCFG,
                     "Script whose allow_access(environ, host) decides "
                     "host access, then application-group=GROUP"),
    AP_INIT_RAW_ARGS("WSGIAuthUserScript", wsgi_rs_set_auth_script, NULL,
                     OR_AUTHCFG,
                     "Script of the 'wsgi' authentication provider "
                     "(check_password, get_realm_hash), then "
                     "application-group=GROUP"),
    AP_INIT_RAW_ARGS("WSGIAuthGroupScript", wsgi_rs_set_auth_script, NULL,
                     OR_AUTHCFG,
                     "Script whose groups_for_user(environ, user) answers "
                     "Require wsgi-group, then application-group=GROUP"),
    AP_INIT_TAKE1("WSGIGroupAuthoritative", wsgi_rs_set_dir_option, NULL,
                  OR_AUTHCFG,
                  "On or Off: accepted as by mod_wsgi; with Apache 2.4's "
                  "Require it has no effect"),

    /* Daemon process groups: in the main server (usable from every host)
     * or in a <VirtualHost> (usable from hosts with its ServerName).
     * RAW_ARGS because option values may be quoted, as mod_wsgi reads
     * them. */
    AP_INIT_RAW_ARGS("WSGIDaemonProcess", wsgi_rs_add_daemon_process, NULL,
                     RSRC_CONF,
                     "Name of a daemon process group, then option=value "
                     "pairs (processes, threads, user, group, home, ...)"),
    /* One socket prefix and one embedded-mode policy for the whole
     * server: the handler rejects <VirtualHost>. */
    AP_INIT_TAKE1("WSGISocketPrefix", wsgi_rs_set_daemon_option, NULL,
                  RSRC_CONF,
                  "Path prefix of the daemon groups' sockets, relative to "
                  "ServerRoot unless absolute (default: under "
                  "DefaultRuntimeDir)"),
    AP_INIT_TAKE1("WSGIRestrictEmbedded", wsgi_rs_set_daemon_option, NULL,
                  RSRC_CONF,
                  "On or Off: refuse to run applications in the Apache "
                  "children, only in daemon groups (default Off)"),

    UNSUPPORTED("WSGIAcceptMutex"),
    UNSUPPORTED("WSGICaseSensitivity"),
    UNSUPPORTED("WSGIDispatchScript"),
    UNSUPPORTED("WSGIEnableSendfile"),
    UNSUPPORTED("WSGIErrorOverride"),
    UNSUPPORTED("WSGIHandlerScript"),
    UNSUPPORTED("WSGIIgnoreActivity"),
    UNSUPPORTED("WSGILazyInitialization"),
    UNSUPPORTED("WSGINewRelicConfigFile"),
    UNSUPPORTED("WSGINewRelicEnvironment"),
    UNSUPPORTED("WSGIPassApacheRequest"),
    UNSUPPORTED("WSGIPythonEggs"),
    UNSUPPORTED("WSGIRestrictProcess"),
    UNSUPPORTED("WSGIServerMetrics"),
    UNSUPPORTED("WSGISocketRotation"),
    UNSUPPORTED("WSGITrustedProxies"),
    UNSUPPORTED("WSGITrustedProxyHeaders"),
    UNSUPPORTED("WSGIVerboseDebugging"),
    { NULL }
};

/* Whether this run only checks the configuration (apache2 -t); the
 * ap_state_query codes are macros. */
int wsgi_rs_config_test_only(void)
{
    return ap_state_query(AP_SQ_RUN_MODE) == AP_SQ_RM_CONFIG_TEST;
}

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

/* The EOS bucket of an output brigade, or NULL if the response goes on;
 * *has_file is set when a file bucket comes before it. */
apr_bucket *wsgi_rs_brigade_find_eos(apr_bucket_brigade *bb, int *has_file)
{
    apr_bucket *e;

    *has_file = 0;
    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb);
         e = APR_BUCKET_NEXT(e)) {
        if (APR_BUCKET_IS_EOS(e)) {
            return e;
        }
        if (APR_BUCKET_IS_FILE(e)) {
            *has_file = 1;
        }
    }
    return NULL;
}

/* Puts a FLUSH bucket just before `eos` (a bucket of `bb`), unless the
 * bucket there is a FLUSH already. */
void wsgi_rs_brigade_flush_before(apr_bucket_brigade *bb, apr_bucket *eos)
{
    apr_bucket *prev = APR_BUCKET_PREV(eos);

    if (prev != APR_BRIGADE_SENTINEL(bb) && APR_BUCKET_IS_FLUSH(prev)) {
        return;
    }
    APR_BUCKET_INSERT_BEFORE(eos, apr_bucket_flush_create(eos->list));
}
