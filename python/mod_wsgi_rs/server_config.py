"""The private server setup-server writes and start-server runs: a server root holding
httpd.conf, an apachectl script and, when asked for, the reloader and a handler script.

The application runs in one daemon process group, `express`, with Python kept out of
Apache's own children (WSGIRestrictEmbedded On), as mod_wsgi-express runs it."""

import math
import os
import shlex
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from . import module_path
from .apache import find_httpd, modules_dir
from .checks import check_script, check_user, find_module_file, unreadable_by
from .errors import ExpressError

GROUP = "express"

# WSGIDaemonProcess options set from the command line option of the same name
# (--request-timeout -> request-timeout=), with mod_wsgi-express's defaults where it has one.
# None: left to mod_wsgi_rs' own default.
DAEMON_OPTIONS = [
    ("maximum-requests", 0, "replace a process after that many requests (0: never)"),
    ("restart-interval", 0, "replace a process after that many seconds (0: never)"),
    ("inactivity-timeout", 0, "replace a process idle that many seconds (0: never)"),
    ("request-timeout", 60, "a request running longer gets 504 and its process is replaced"),
    ("queue-timeout", 45, "a request waiting longer for a daemon thread gets 503"),
    ("startup-timeout", 15, "a process whose script has not loaded after that long is replaced"),
    ("graceful-timeout", 15, "seconds a replaced process's requests get before shutdown-timeout"),
    ("eviction-timeout", 0, "as graceful-timeout, after SIGUSR1 (0: graceful-timeout)"),
    ("shutdown-timeout", 5, "seconds a stopping process's requests get"),
    ("deadlock-timeout", 60, "the GIL held that long by one thread: the process is restarted"),
    ("connect-timeout", 15, "seconds Apache tries to reach the daemon group"),
    ("socket-timeout", 60, "seconds Apache waits for the daemon's answer"),
    ("cpu-time-limit", None, "RLIMIT_CPU of the daemon processes, seconds"),
    ("memory-limit", None, "RLIMIT_DATA of the daemon processes, bytes"),
    ("virtual-memory-limit", None, "RLIMIT_AS of the daemon processes, bytes"),
]


def option_attr(name):
    return name.replace("-", "_")


@dataclass
class Server:
    """A written server root and how to run it."""

    root: Path
    config: Path
    apachectl: Path
    httpd: str
    url: str
    pid_file: Path
    runtime_dir: Path
    error_log: Path

    def foreground_command(self):
        return [self.httpd, "-f", str(self.config), "-DFOREGROUND"]


def clean_environment():
    """Apache's environment: PYTHON* variables of the shell would reach the application."""
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
    }


def quoted(value):
    """An Apache configuration word: quoted when it holds spaces or quotes."""
    text = str(value)
    if text and not any(c.isspace() or c in "\"'\\" for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def default_server_root(options):
    return f"/tmp/mod_wsgi_rs-{options.host}:{options.port}:{os.getuid()}"


def resolve_application(options):
    """(the WSGI script Apache loads, the file to watch for changes, working directory)."""
    if options.application_type == "script":
        script = os.path.abspath(options.script)
        check_script(script, options.callable_object)
        working_directory = os.path.abspath(options.working_directory or os.path.dirname(script))
        return script, working_directory
    working_directory = os.path.abspath(options.working_directory or os.getcwd())
    search = [working_directory, *map(os.path.abspath, options.python_path)]
    source = find_module_file(options.script, search)
    check_script(source, options.callable_object)
    return source, working_directory


def mpm_lines(mpm, max_clients):
    if mpm == "prefork":
        return [
            "StartServers 1",
            "MinSpareServers 1",
            f"MaxSpareServers {max(2, max_clients // 4)}",
            f"ServerLimit {max_clients}",
            f"MaxRequestWorkers {max_clients}",
        ]
    threads_per_child = min(25, max_clients)
    servers = math.ceil(max_clients / threads_per_child)
    return [
        "StartServers 1",
        f"ServerLimit {servers}",
        f"ThreadLimit {threads_per_child}",
        f"ThreadsPerChild {threads_per_child}",
        f"MaxRequestWorkers {servers * threads_per_child}",
        f"MinSpareThreads {threads_per_child}",
        f"MaxSpareThreads {servers * threads_per_child}",
    ]


def write_server(options):
    """Checks the options, writes the server root; starts nothing."""
    httpd = find_httpd(options.httpd_executable)
    modules = modules_dir()
    so = module_path()
    if not so.is_file():
        raise ExpressError(
            f"the Apache module for this Python ({sys.executable}) is missing: {so}; "
            "reinstall mod_wsgi_rs with this Python's pip"
        )
    source, working_directory = resolve_application(options)
    if not os.path.isdir(working_directory):
        raise ExpressError(f"--working-directory {working_directory}: no such directory")
    python_path = [os.path.abspath(p) for p in options.python_path]
    for directory in python_path:
        if not os.path.isdir(directory):
            raise ExpressError(f"--python-path {directory}: no such directory")
    python_path.append(working_directory)
    aliases = []
    for url, path in options.url_alias:
        if not url.startswith("/"):
            raise ExpressError(f"--url-alias {url} {path}: the URL must start with /")
        path = os.path.abspath(path)
        if not os.path.exists(path):
            raise ExpressError(f"--url-alias {url} {path}: no such file or directory")
        aliases.append((url, path))
    document_root = os.path.abspath(options.document_root) if options.document_root else None
    if document_root and not os.path.isdir(document_root):
        raise ExpressError(f"--document-root {document_root}: no such directory")
    for include in options.include_file:
        if not os.path.isfile(include):
            raise ExpressError(f"--include-file {include}: no such file")

    as_root = os.getuid() == 0
    if (options.user or options.group) and not as_root:
        raise ExpressError("--user and --group need mod_wsgi_rs-express to be started as root")
    account = check_user(options.user or "www-data", options.group) if as_root else None
    if account:
        uid, gid, user, _ = account
        # The daemons start Python after taking on the user's ids, so the standard library
        # too must be readable by it: not so for a Python under root's home (pyenv).
        stdlib = sysconfig.get_path("stdlib")
        readable = [source, working_directory, sys.prefix, stdlib, sysconfig.get_path("platstdlib"),
                    *python_path, *(p for _, p in aliases)]
        if document_root:
            readable.append(document_root)
        blocked = unreadable_by(uid, gid, readable)
        if blocked:
            what = " (the standard library of this Python)" if blocked.startswith(stdlib) else ""
            raise ExpressError(
                f"{blocked}{what} is not readable by {user}, the user Apache and the application "
                "run as when started as root (--user names another); make it readable or move it"
            )

    root = Path(os.path.abspath(options.server_root or default_server_root(options)))
    runtime_dir = root / "run"
    runtime_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    if account:
        os.chown(runtime_dir, account[0], account[1])
    (root / "htdocs").mkdir(exist_ok=True)

    if options.application_type == "module":
        # Apache loads scripts by path; this one imports the module the way Django names it.
        script = root / "handler.wsgi"
        script.write_text(
            "# Written by mod_wsgi_rs-express: --application-type module\n"
            "import importlib\n\n"
            f"application = getattr(importlib.import_module({options.script!r}), "
            f"{options.callable_object!r})\n"
        )
        callable_object = "application"
    else:
        script = Path(source)
        callable_object = options.callable_object

    import_scripts = []
    if options.reload_on_changes:
        reloader = root / "reloader.py"
        watched = sorted({source, str(script)})
        reloader.write_text(
            (Path(__file__).parent / "reloader.py").read_text()
            + f"\n\nwatch({watched!r}, {options.reload_interval!r})\n"
        )
        import_scripts.append(reloader)
    # The daemons read these as Apache's user, whatever this process's umask.
    for path in import_scripts + ([script] if script.parent == root else []):
        os.chmod(path, 0o644)

    max_clients = options.max_clients or max(20, 2 * options.processes * options.threads)
    error_log = Path("/dev/stderr") if options.log_to_terminal else root / "error_log"
    access_log = "/dev/stdout" if options.log_to_terminal else str(root / "access_log")
    daemon = [
        f"WSGIDaemonProcess {GROUP}",
        f"processes={options.processes}",
        f"threads={options.threads}",
        "display-name=%{GROUP}",
        quoted(f"home={working_directory}"),
        quoted("python-path=" + ":".join(python_path)),
        "lang=C.UTF-8",
        "locale=C.UTF-8",
    ]
    if account:
        daemon += [f"user={account[2]}", quoted(f"group={account[3]}")]
    for name, _, _ in DAEMON_OPTIONS:
        value = getattr(options, option_attr(name))
        if value is not None:
            daemon.append(f"{name}={value}")

    modules_used = ["authn_core", "authz_core"]
    if aliases or document_root:
        modules_used += ["alias", "mime"]
    if document_root:
        modules_used.append("rewrite")
    if options.access_log:
        modules_used.append("log_config")

    lines = [
        "# Written by mod_wsgi_rs-express setup-server; start it with ./apachectl start.",
        f"ServerRoot {quoted(root)}",
        f"ServerName {options.host}",
        f"Listen {options.host}:{options.port}" if ":" not in options.host
        else f"Listen [{options.host}]:{options.port}",
        f"PidFile {quoted(runtime_dir / 'httpd.pid')}",
        f"DefaultRuntimeDir {quoted(runtime_dir)}",
        f"Mutex file:{runtime_dir} default",
        f"Timeout {max(60, options.socket_timeout or 0)}",
    ]
    if account:
        lines += [f"User {account[2]}", f"Group {quoted(account[3])}"]
    lines.append(f"LoadModule mpm_{options.mpm}_module {quoted(os.path.join(modules, f'mod_mpm_{options.mpm}.so'))}")
    for name in modules_used:
        # Some builds have these compiled in (Debian: log_config); loading one again is an error.
        lines += [
            f"<IfModule !{name}_module>",
            f"    LoadModule {name}_module {quoted(os.path.join(modules, f'mod_{name}.so'))}",
            "</IfModule>",
        ]
    lines.append(f"LoadModule wsgi_rs_module {quoted(so)}")
    lines += mpm_lines(options.mpm, max_clients)
    lines += [
        f"ErrorLog {quoted(error_log)}",
        f"LogLevel {options.log_level}",
    ]
    if options.access_log:
        lines += [
            'LogFormat "%h %l %u %t \\"%r\\" %>s %b %D" express',
            f"CustomLog {quoted(access_log)} express",
        ]
    if "mime" in modules_used and os.path.isfile("/etc/mime.types"):
        lines.append("TypesConfig /etc/mime.types")
    lines += [
        f"DocumentRoot {quoted(document_root or root / 'htdocs')}",
        "<Directory />",
        "    Require all denied",
        "</Directory>",
        "",
        "WSGIRestrictEmbedded On",
        f"WSGIPythonHome {quoted(sys.prefix)}",
        f"WSGIPythonOptimize {options.optimize}",
        " ".join(daemon),
    ]
    for path in import_scripts:
        lines.append(f"WSGIImportScript {quoted(path)} process-group={GROUP} application-group=%{{GLOBAL}}")
    for url, path in aliases:
        lines.append(f"Alias {quoted(url)} {quoted(path)}")
        # A directory is granted as a whole; a single file through its own directory.
        directory = path if os.path.isdir(path) else os.path.dirname(path)
        lines += [f"<Directory {quoted(directory)}>"]
        if directory != path:
            lines += [f"    <Files {quoted(os.path.basename(path))}>", "        Require all granted", "    </Files>"]
        else:
            lines += ["    Require all granted"]
        lines += ["</Directory>"]
    if document_root:
        # Files that exist under the document root are served as they are; everything else
        # goes to the application (mod_rewrite's translation runs before WSGIScriptAlias').
        lines += [
            f"<Directory {quoted(document_root)}>",
            "    Require all granted",
            "</Directory>",
            "RewriteEngine On",
            f'RewriteCond "{document_root}%{{REQUEST_URI}}" -f',
            f'RewriteRule "^/(.+)$" "{document_root}/$1" [L]',
        ]
    lines += [
        f"WSGIScriptAlias / {quoted(script)} process-group={GROUP} application-group=%{{GLOBAL}} "
        f"callable-object={callable_object}",
        f"<Directory {quoted(script.parent)}>",
        f"    <Files {quoted(script.name)}>",
        "        Require all granted",
        "    </Files>",
        "</Directory>",
    ]
    for include in options.include_file:
        lines.append(f"Include {quoted(os.path.abspath(include))}")
    config = root / "httpd.conf"
    config.write_text("\n".join(lines) + "\n")

    host = f"[{options.host}]" if ":" in options.host else options.host
    server = Server(
        root=root,
        config=config,
        apachectl=root / "apachectl",
        httpd=httpd,
        url=f"http://{host}:{options.port}/",
        pid_file=runtime_dir / "httpd.pid",
        runtime_dir=runtime_dir,
        error_log=error_log,
    )
    write_apachectl(server)
    return server


def write_apachectl(server):
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in clean_environment().items())
    httpd = f"env -i {env} {shlex.quote(server.httpd)} -f {shlex.quote(str(server.config))}"
    server.apachectl.write_text(
        "#!/bin/sh\n"
        "# Written by mod_wsgi_rs-express setup-server: controls the private Apache of this\n"
        "# directory (start stops nothing else; stop reads the pid file under run/).\n"
        "case $1 in\n"
        f"    start|stop|restart|graceful|graceful-stop) exec {httpd} -k \"$1\" ;;\n"
        f"    configtest) exec {httpd} -t ;;\n"
        f"    foreground) exec {httpd} -DFOREGROUND ;;\n"
        "    *) echo \"usage: $0 start|stop|restart|graceful|graceful-stop|configtest|foreground\" >&2; exit 2 ;;\n"
        "esac\n"
    )
    os.chmod(server.apachectl, 0o755)
