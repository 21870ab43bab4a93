"""mod_wsgi_rs-express: the module built for this Python, for the system's Apache or a
private one.

  module-config              the LoadModule and WSGIPythonHome lines for this build
  install-module             copy this build into Apache's modules directory
  setup-server SCRIPT        write a private server (configuration + apachectl), start nothing
  start-server SCRIPT        run that private server in the foreground until Ctrl-C
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

from . import MODULE_NAME, module_file_name, module_path, precompile
from .apache import apxs_query
from .checks import check_port_free
from .errors import ExpressError
from .server_config import DAEMON_OPTIONS, clean_environment, option_attr, quoted, write_server

PROGRAM = "mod_wsgi_rs-express"


def config_lines(so):
    return [f"LoadModule {MODULE_NAME} {quoted(so)}", f"WSGIPythonHome {quoted(sys.prefix)}"]


def installed_module():
    so = module_path()
    if not so.is_file():
        raise ExpressError(f"the Apache module for this Python is missing: {so}; reinstall mod_wsgi_rs")
    return so


def module_config(options):
    print("\n".join(config_lines(installed_module())))


def install_module(options):
    so = installed_module()
    directory = options.modules_directory or apxs_query("LIBEXECDIR")
    if not directory:
        raise ExpressError(
            "Apache's modules directory is unknown: apxs was not found (Debian: apt-get install "
            "apache2-dev), or name the directory with --modules-directory DIR"
        )
    if not os.path.isdir(directory):
        raise ExpressError(f"modules directory {directory} does not exist")
    target = os.path.join(directory, module_file_name())
    try:
        shutil.copyfile(so, target + ".new")
        os.chmod(target + ".new", 0o644)
        # A rename, so that an Apache reading the old file never sees half of the new one.
        os.replace(target + ".new", target)
    except OSError as e:
        raise ExpressError(f"cannot install into {directory}: {e.strerror} (as root, or --modules-directory)") from None
    print("\n".join(config_lines(target)))


def setup_server(options):
    server = write_server(options)
    print(f"Server root:   {server.root}")
    print(f"Configuration: {server.config}")
    print(f"Control:       {server.apachectl} start|stop|restart|configtest")
    print(f"URL when started: {server.url}")


def start_server(options):
    check_port_free(options.host, options.port)
    server = write_server(options)
    print(f"{PROGRAM}: serving {options.script} at {server.url}", flush=True)
    print(f"  server root {server.root}; Ctrl-C stops it", flush=True)
    # A session of its own: the terminal's Ctrl-C reaches this process only, which then stops
    # Apache the orderly way (its daemons finish their requests and run their exit functions).
    apache = subprocess.Popen(
        server.foreground_command(), env=clean_environment(), stdin=subprocess.DEVNULL, start_new_session=True
    )
    stopping = []

    def stop(signum, frame):
        if not stopping:
            stopping.append(signum)
            try:
                os.kill(apache.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    status = apache.wait()
    leftovers = reap_session(apache.pid)
    remove_sockets(server.runtime_dir)
    if leftovers:
        print(f"{PROGRAM}: killed {len(leftovers)} process(es) left behind by Apache: {leftovers}", file=sys.stderr)
    if not stopping:
        where = "above" if options.log_to_terminal else f"in {server.error_log}"
        raise ExpressError(f"Apache exited with status {status}; its messages are {where}")
    print(f"{PROGRAM}: stopped", flush=True)


def session_members(session):
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == session:
                    members.append(int(entry))
            except OSError:
                pass
    return members


def reap_session(session, grace_seconds=10.0):
    """Waits for whatever Apache started (daemons, supervisors) to end; kills what does not.

    They end on their own once Apache has stopped them; the kill is the last resort that
    makes Ctrl-C leave nothing behind."""
    deadline = time.monotonic() + grace_seconds
    while session_members(session) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = session_members(session)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def remove_sockets(runtime_dir):
    for name in os.listdir(runtime_dir):
        if name.endswith(".sock"):
            try:
                os.unlink(os.path.join(runtime_dir, name))
            except OSError:
                pass


# --- the command line ----------------------------------------------------------------------


def non_negative(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def positive(text):
    value = non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def port_number(text):
    value = positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port number")
    return value


def add_server_options(parser):
    parser.add_argument("script", metavar="SCRIPT",
                        help="the WSGI script (or, with --application-type module, a module such as mysite.wsgi)")
    a = parser.add_argument
    a("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    a("--port", type=port_number, default=8000, help="port to listen on (default: 8000)")
    a("--processes", type=positive, default=1, help="daemon processes running the application (default: 1)")
    a("--threads", type=positive, default=5, help="threads in each daemon process (default: 5)")
    a("--user", help="user Apache and the application run as; only when started as root (default: www-data)")
    a("--group", help="group to run as; only when started as root (default: the user's primary group)")
    a("--server-root", metavar="DIR",
      help="where configuration, logs and sockets go (default: /tmp/mod_wsgi_rs-HOST:PORT:UID)")
    a("--log-level", default="warn", help="Apache's LogLevel, e.g. 'info' or 'warn wsgi_rs:debug' (default: warn)")
    a("--log-to-terminal", action="store_true",
      help="error log (and access log) to this terminal instead of files in the server root")
    a("--access-log", action="store_true", help="log each request (default: no access log)")
    a("--url-alias", nargs=2, action="append", default=[], metavar=("URL", "PATH"),
      help="serve the static file or directory PATH at URL; repeatable")
    a("--document-root", metavar="DIR",
      help="serve files that exist under DIR at their URL, everything else by the application")
    a("--reload-on-changes", action="store_true",
      help="replace the daemon processes when the script or any module they imported changes "
           "(no request fails; for development)")
    a("--reload-interval", type=float, default=1.0, metavar="SECONDS",
      help="how often --reload-on-changes looks at the files (default: 1.0)")
    a("--python-path", action="append", default=[], metavar="DIR",
      help="directory put on sys.path of the application; repeatable (the working directory is always added)")
    a("--working-directory", metavar="DIR",
      help="current directory of the application (default: the script's directory; with "
           "--application-type module, the current directory)")
    a("--application-type", choices=["script", "module"], default="script",
      help="SCRIPT is a file (default) or a module name such as mysite.wsgi")
    a("--callable-object", default="application", metavar="NAME",
      help="name of the WSGI callable in the script (default: application)")
    a("--mpm", choices=["event", "worker", "prefork"], default="event", help="Apache's MPM (default: event)")
    a("--max-clients", type=positive, metavar="N",
      help="connections Apache serves at once (default: the larger of 20 and 2 x processes x threads)")
    for name, default, text in DAEMON_OPTIONS:
        shown = "mod_wsgi_rs' default" if default is None else default
        a(f"--{name}", type=non_negative, default=default, metavar="N", dest=option_attr(name),
          help=f"{text} (default: {shown})")
    a("--include-file", action="append", default=[], metavar="FILE",
      help="Apache configuration file included at the end; repeatable")
    a("--optimize", type=int, choices=[0, 1, 2], default=0,
      help="Python optimisation level, as python -O (1) and -OO (2) (default: 0)")
    a("--httpd-executable", metavar="FILE", help="Apache's httpd (default: from apxs, else /usr/sbin/apache2)")


def parser():
    top = argparse.ArgumentParser(
        prog=PROGRAM,
        description="The mod_wsgi_rs Apache module built for this Python, and a private Apache to run "
                    "a WSGI application with it. The application runs in a daemon process group.",
    )
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser("module-config", help="print the LoadModule and WSGIPythonHome lines for this build"
                        ).set_defaults(run=module_config)
    install = commands.add_parser("install-module", help="copy this build into Apache's modules directory "
                                  "as mod_wsgi_rs-pyXY.so and print the lines to load it")
    install.add_argument("--modules-directory", metavar="DIR", help="where to copy it (default: apxs -q LIBEXECDIR)")
    install.set_defaults(run=install_module)
    setup = commands.add_parser("setup-server", help="write a private server's configuration and apachectl; start nothing")
    add_server_options(setup)
    setup.set_defaults(run=setup_server)
    start = commands.add_parser("start-server", help="run a private server in the foreground; Ctrl-C stops it")
    add_server_options(start)
    start.set_defaults(run=start_server)
    compile_ahead = commands.add_parser(
        "precompile", help="compile the standard library, the venv and the application into the "
        "bytecode cache the Apache processes read (as root, after each deploy)")
    precompile.add_options(compile_ahead, sys.executable)
    compile_ahead.set_defaults(run=precompile.run)
    return top


def main(argv=None):
    options = parser().parse_args(argv)
    try:
        options.run(options)
    except ExpressError as e:
        print(f"{PROGRAM}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
