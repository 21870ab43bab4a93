#!/usr/bin/env python3
"""Side-by-side benchmarks of mod_wsgi_rs, mod_wsgi, mod_python, a C handler and a
static file (for hello also mod_wsgi_rs with `WSGIPathTranslated Off`, and with
that and `WSGIExportCGIVariables Off`); in daemon
mode also Apache's mod_proxy_http in front of granian and of gunicorn.

Each server is a private Apache started from one generated configuration that
differs only in the module lines (and, for the proxies, a backend the run starts
on a free port and stops). wrk runs against them in alternation (A B C D,
then D C B A, ...) so that drift on a shared machine hits every server alike.
Results, with the ratios to mod_wsgi and to the static file from the same run,
are written as Markdown (BENCHMARKS.md by default).

    python3 bench/bench.py                 # the full run (about 70 minutes)
    python3 bench/bench.py --quick         # 2 reps of 3 s, for a smoke test
"""

import argparse
import datetime
import fcntl
import hashlib
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import startup_levels

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "bench")
MODULES = "/usr/lib/apache2/modules"
APACHE = "/usr/sbin/apache2"
# MOD_WSGI_RS_SO points at another build (e.g. to compare two versions).
OUR_SO = os.environ.get("MOD_WSGI_RS_SO") or os.path.join(REPO, "target", "release", "libmod_wsgi_rs.so")

# (case, path under the WSGI mount, static path to compare with or None,
#  wrk script or None)
CASES = [
    ("hello", "/hello", "/hello.txt", None),
    ("100 x 100 B yields", "/yields", None, None),
    ("1 MiB body", "/1mib", "/1mib.bin", None),
    ("file_wrapper 1 MiB", "/file", "/1mib.bin", None),
    ("64 KiB POST echo", "/echo", None, "post.lua"),
    ("1,000 print() lines", "/print", None, None),
]
FLASK_CASE = ("Flask hello", "/hello", None, None)

# What each case must answer, checked once per server before it is measured, so
# that a wrong route (a 404 page measured as fast as any) stops the run.
HELLO = b"Hello world\n"
EXPECTED_BODY = {
    "hello": HELLO,
    "100 x 100 B yields": (b"x" * 99 + b"\n") * 100,
    "1 MiB body": b"y" * (1024 * 1024),
    "file_wrapper 1 MiB": b"y" * (1024 * 1024),
    "64 KiB POST echo": b"p" * 65536,  # what post.lua sends
    "1,000 print() lines": HELLO,
    "Flask hello": HELLO,
}
# The C handler is the sample `apxs -g -n hello` generates, unchanged: its page.
C_HANDLER_BODY = b"The sample page from mod_hello.c\n"

# Apache starts with the environment a system service has, so that no
# python3 from a developer's PATH is picked up by mod_python.
APACHE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}

SERVERS = ["mod_wsgi_rs", "mod_wsgi_rs_no_pt", "mod_wsgi_rs_lean", "mod_wsgi", "mod_python", "c_handler", "static"]
# This module with the documented levers that change what it does for mod_wsgi
# compatibility, measured in the hello case only, beside the default:
# `WSGIPathTranslated Off` leaves PATH_TRANSLATED (and the sub-request that
# computes it) out of the environ; `WSGIExportCGIVariables Off` leaves the CGI
# variables out of Apache's table of the request's environment, the environ
# being made from the request itself.
LEVERS = {
    "mod_wsgi_rs_no_pt": ["WSGIPathTranslated Off"],
    "mod_wsgi_rs_lean": ["WSGIPathTranslated Off", "WSGIExportCGIVariables Off"],
}
# Daemon mode: both modules with the same process group, beside the static file
# and the application in separate servers behind a reverse proxy.
DAEMON_SERVERS = ["mod_wsgi_rs", "mod_wsgi", "proxy_granian", "proxy_gunicorn", "static"]
DAEMON_GROUP = "processes=2 threads=8"
PROXIES = ("proxy_granian", "proxy_gunicorn")
# How the report names the servers that are not just a module's name.
SERVER_NAMES = {
    "c_handler": "C handler (apxs -g sample)",
    "mod_wsgi_rs_no_pt": "mod_wsgi_rs, WSGIPathTranslated Off",
    "mod_wsgi_rs_lean": "mod_wsgi_rs, WSGIPathTranslated Off, WSGIExportCGIVariables Off",
    "proxy_granian": "mod_proxy_http -> granian",
    "proxy_gunicorn": "mod_proxy_http -> gunicorn gthread",
}

# granian and gunicorn come from PyPI, pinned in bench/requirements.txt, into a
# venv of Debian's python3.11 (the one both modules embed), cached like the
# tests' framework venv: target/bench-venvs/<hash of the requirements>/.
PEER_REQUIREMENTS = os.path.join(BENCH, "requirements.txt")
PYTHON = "/usr/bin/python3.11"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_name(kind):
    return SERVER_NAMES.get(kind, kind)


def peer_venv():
    """The venv with granian and gunicorn, built once per requirements file
    under a lock (concurrent runs build it once)."""
    with open(PEER_REQUIREMENTS, "rb") as f:
        key = hashlib.sha256(f.read() + PYTHON.encode()).hexdigest()[:16]
    base = os.path.join(REPO, "target", "bench-venvs")
    os.makedirs(base, exist_ok=True)
    venv = os.path.join(base, key)
    marker = os.path.join(venv, ".complete")
    with open(os.path.join(base, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(marker):
            print(f"building the peers' venv {venv} (pip from PyPI)", flush=True)
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([PYTHON, "-m", "venv", venv], check=True)
            subprocess.run([f"{venv}/bin/python", "-m", "pip", "install", "--no-input",
                            "--disable-pip-version-check", "-r", PEER_REQUIREMENTS],
                           check=True, env={**APACHE_ENV, "HOME": "/tmp"}, stdin=subprocess.DEVNULL)
            open(marker, "w").close()
    return venv


def build_c_handler(work):
    """The C handler module: the sample `apxs -g -n hello` writes, compiled
    with `apxs -c` in the run's directory and loaded from there (nothing is
    installed). Returns the path of the .so."""
    where = os.path.join(work, "c_handler")
    os.makedirs(where)
    source = os.path.join(where, "hello")
    for cmd, cwd in ((["apxs", "-g", "-n", "hello"], where), (["apxs", "-c", "mod_hello.c"], source)):
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed (apxs is in apache2-dev):\n{done.stdout}{done.stderr}")
    return os.path.join(source, ".libs", "mod_hello.so")


def children_of(parent):
    """The pids whose parent is `parent`, from /proc (also used by soak.py)."""
    kids = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == parent:
                    kids.add(int(pid))
            except OSError:
                pass
    return kids


def descendants_of(root):
    """Children of `root`, and theirs (daemon processes forked by a supervisor,
    a backend's workers), without `root` itself."""
    found, frontier = set(), {root}
    while frontier:
        kids = set().union(*(children_of(p) for p in frontier)) - found
        found |= kids
        frontier = kids
    return found


class Backend:
    """granian or gunicorn serving bench.wsgi (through apps/peer_app.py) on a
    free port, for Apache's mod_proxy_http in front of it. The run starts it and
    stops it (its own pid only); its output goes to the server's logs/."""

    def __init__(self, kind, venv, apps, logs):
        self.port = free_port()
        self.log = os.path.join(logs, "backend.log")
        if kind == "proxy_granian":
            # The command the daemon-mode target names (WSGI, 2 workers); the rest
            # is granian's defaults: HTTP/1.1 keep-alive, blocking threads per worker
            # sized from its backpressure.
            self.cmd = [f"{venv}/bin/granian", "--interface", "wsgi", "--workers", "2",
                        "--host", "127.0.0.1", "--port", str(self.port),
                        "--working-dir", apps, "--log-level", "warning", "peer_app:application"]
        else:
            # The gthread worker in the daemon group's shape, 2 processes x 8 threads.
            # Its keep-alive (30 s) outlasts the proxy's ttl for idle pooled
            # connections, so that Apache never reuses one gunicorn has closed.
            self.cmd = [f"{venv}/bin/gunicorn", "--worker-class", "gthread",
                        "--workers", "2", "--threads", "8", "--keep-alive", "30",
                        "--bind", f"127.0.0.1:{self.port}", "--chdir", apps,
                        "--graceful-timeout", "5", "--log-level", "warning", "peer_app:application"]
        self.proc = None

    def start(self):
        with open(self.log, "ab") as log:
            # A session of its own: a Ctrl-C meant for bench.py reaches it only
            # through stop(), after Apache has let go of its connections.
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=APACHE_ENV,
                                         start_new_session=True)

    def workers(self):
        return descendants_of(self.proc.pid) if self.proc else set()

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        workers = self.workers()
        self.proc.send_signal(signal.SIGTERM)  # both stop their workers on TERM
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            for pid in [self.proc.pid, *workers]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()


def mpm_lines(mpm):
    lines = [f"LoadModule mpm_{mpm}_module {MODULES}/mod_mpm_{mpm}.so"]
    if mpm == "prefork":
        lines += ["StartServers 4", "MinSpareServers 4", "MaxSpareServers 8",
                  "MaxRequestWorkers 64"]
    else:
        lines += ["StartServers 2", "ThreadsPerChild 32", "MaxRequestWorkers 64",
                  "MinSpareThreads 64", "MaxSpareThreads 128"]
    return lines


class Server:
    """One private Apache serving the benchmark apps with one module."""

    def __init__(self, kind, mpm, work, flask_venv, daemon=False, plan=None,
                 c_handler_so=None, peer_venv=None):
        self.kind, self.mpm, self.daemon = kind, mpm, daemon
        # One directory per server of each plan (the static file is in several).
        tag = re.sub(r"[^a-z0-9]+", "-", plan or mpm)
        self.root = os.path.join(work, f"{kind}-{tag}")
        os.makedirs(os.path.join(self.root, "logs"))
        self.port = free_port()
        self.flask = flask_venv if kind in ("mod_wsgi_rs", "mod_wsgi") else None
        apps = os.path.join(work, "apps")
        self.backend = Backend(kind, peer_venv, apps, os.path.join(self.root, "logs")) \
            if kind in PROXIES else None
        static = os.path.join(work, "static")
        conf = [
            f"ServerRoot {self.root}",
            f"Listen 127.0.0.1:{self.port}",
            f"PidFile {self.root}/logs/httpd.pid",
            f"ErrorLog {self.root}/logs/error.log",
            "LogLevel warn",
            "ServerName localhost",
            "User www-data",
            "Group www-data",
            "KeepAlive On",
            "MaxKeepAliveRequests 0",
            "MaxConnectionsPerChild 0",
            "EnableSendfile On",
            *mpm_lines(mpm),
            f"LoadModule authz_core_module {MODULES}/mod_authz_core.so",
            f"DocumentRoot {static}",
            # As Debian's apache2.conf (and any production configuration):
            # no .htaccess files are looked for, nothing outside is served.
            "<Directory />",
            "    AllowOverride None",
            "    Require all denied",
            "</Directory>",
            f"<Directory {work}>",
            "    Require all granted",
            "</Directory>",
        ]
        script = f"{apps}/bench.wsgi"
        # Daemon mode: the same group for both modules, titled so that its
        # processes can be found for the memory figure.
        group = [f"WSGIDaemonProcess bench {DAEMON_GROUP} display-name=%{{GROUP}}",
                 "WSGIProcessGroup bench"] if daemon else []
        if kind == "mod_wsgi_rs":
            conf += [f"LoadModule wsgi_rs_module {OUR_SO}", *group, f"WSGIScriptAlias /app {script}"]
        elif kind in LEVERS:
            conf += [f"LoadModule wsgi_rs_module {OUR_SO}", f"WSGIScriptAlias /app {script}", *LEVERS[kind]]
        elif kind == "mod_wsgi":
            conf += [f"LoadModule wsgi_module {MODULES}/mod_wsgi.so", *group,
                     "WSGIApplicationGroup %{GLOBAL}", f"WSGIScriptAlias /app {script}"]
        elif kind == "mod_python":
            conf += [f"LoadModule python_module {MODULES}/mod_python.so",
                     "<Location /app>", "    SetHandler mod_python",
                     "    PythonHandler mp_bench", f"    PythonPath \"['{apps}'] + sys.path\"",
                     "</Location>"]
        elif kind == "c_handler":
            conf += [f"LoadModule hello_module {c_handler_so}",
                     "<Location /app>", "    SetHandler hello", "</Location>"]
        elif kind in PROXIES:
            # A reverse proxy as it is run in production: HTTP/1.1 to the backend
            # with its connections pooled per child and reused (mod_proxy_http's
            # default, disablereuse=Off; the pool holds up to ThreadsPerChild);
            # ttl closes a pooled connection idle for 20 s, before the backend
            # would; keepalive=On adds TCP keep-alive probes on them.
            conf += [f"LoadModule proxy_module {MODULES}/mod_proxy.so",
                     f"LoadModule proxy_http_module {MODULES}/mod_proxy_http.so",
                     f"ProxyPass /app/ http://127.0.0.1:{self.backend.port}/ ttl=20 keepalive=On"]
        if self.flask:
            conf += [f"WSGIPythonHome {self.flask}",
                     f"WSGIScriptAlias /flask {apps}/flask_bench.wsgi"]
        self.conf = os.path.join(self.root, "httpd.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        self.startups = []

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def hello_path(self):
        return "/hello.txt" if self.kind == "static" else "/app/hello"

    def start(self):
        began = time.monotonic()
        if self.backend:
            self.backend.start()
        subprocess.run([APACHE, "-f", self.conf, "-k", "start"], check=True, env=APACHE_ENV)
        deadline = began + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url(self.hello_path()), timeout=2) as r:
                    if r.status == 200:
                        self.startups.append(time.monotonic() - began)
                        return
            except OSError:
                # Refused until the parent listens; from then on the
                # request waits in the backlog for a child to accept it.
                time.sleep(0.001)
        raise SystemExit(f"{self.kind}: no 200 within 30 s; see {self.root}/logs/error.log"
                         + (" and backend.log" if self.backend else ""))

    def parent_pid(self):
        with open(f"{self.root}/logs/httpd.pid") as f:
            return int(f.read())

    def children(self):
        return children_of(self.parent_pid())

    def descendants(self):
        """The processes that serve: Apache's children and the daemon processes,
        and a proxy's backend workers. Not the roots (Apache's parent, the
        backend's master), which only supervise."""
        found = descendants_of(self.parent_pid())
        if self.backend:
            found |= self.backend.workers()
        return found

    def daemons(self):
        """The processes running the application away from Apache's children:
        the daemon group's, or a proxy's backend workers."""
        if self.backend:
            return sorted(self.backend.workers())
        pids = []
        for pid in self.descendants():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"(wsgi:bench)" in f.read():
                        pids.append(pid)
            except OSError:
                pass
        return pids

    def cpu_seconds(self):
        """utime + stime of every process of the server but the parent (the
        children, and daemon processes), in seconds."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.descendants():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except OSError:
                pass
        return total / ticks

    def context_switches(self):
        """Voluntary and involuntary context switches of every thread of every
        process of the server but the parent (children and daemons)."""
        total = 0
        for pid in self.descendants():
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    with open(f"/proc/{pid}/task/{tid}/status") as f:
                        for line in f:
                            if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                                total += int(line.split()[1])
                except OSError:
                    pass
        return total

    def child_rss_mib(self):
        """Mean RSS of the processes running the application: the Apache
        children, or in daemon mode the daemon processes."""
        sizes = []
        for pid in (self.daemons() if self.daemon else self.children()):
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            sizes.append(int(line.split()[1]) / 1024)
            except OSError:
                pass
        return statistics.mean(sizes) if sizes else 0.0

    def stop(self):
        subprocess.run([APACHE, "-f", self.conf, "-k", "stop"], check=False, env=APACHE_ENV)
        pid_file = f"{self.root}/logs/httpd.pid"
        deadline = time.monotonic() + 15
        while os.path.exists(pid_file) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.backend:
            self.backend.stop()

    def check_answer(self, case, path, script):
        """Fails the run unless `path` answers 200 with the case's body."""
        expected = C_HANDLER_BODY if self.kind == "c_handler" else EXPECTED_BODY[case]
        post = script == "post.lua"
        request = urllib.request.Request(self.url(path), data=expected if post else None,
                                         headers={"Content-Type": "application/octet-stream"} if post else {})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        if status != 200 or body != expected:
            raise SystemExit(f"{self.kind}: {path} ({case}) answered {status} with {len(body)} bytes "
                             f"{body[:60]!r}, not the expected {len(expected)} bytes; see {self.root}/logs/")


def run_wrk(url, connections, seconds, script):
    threads = min(2, connections)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script:
        cmd += ["-s", os.path.join(BENCH, script)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    lat = {p: to_ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    return {"rps": rps, "requests": requests, "p50": lat.get("50"), "p99": lat.get("99"),
            "bad": int(bad.group(1)) if bad else 0, "errors": errors.group(1) if errors else ""}


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def measure(server, path, connections, seconds, script):
    before, cs_before = server.cpu_seconds(), server.context_switches()
    result = run_wrk(server.url(path), connections, seconds, script)
    after, cs_after = server.cpu_seconds(), server.context_switches()
    result["cpu_ms_per_1k"] = (after - before) * 1000 / max(result["requests"], 1) * 1000
    result["cs_per_req"] = (cs_after - cs_before) / max(result["requests"], 1)
    return result


def summarise(samples):
    rps = [s["rps"] for s in samples]
    return {
        "rps": statistics.median(rps), "min": min(rps), "max": max(rps),
        "p50": statistics.median(s["p50"] for s in samples),
        "p99": statistics.median(s["p99"] for s in samples),
        "cpu": statistics.median(s["cpu_ms_per_1k"] for s in samples),
        "cs": statistics.median(s["cs_per_req"] for s in samples),
        "bad": sum(s["bad"] for s in samples),
        "errors": "; ".join(s["errors"] for s in samples if s["errors"]),
    }


def prepare_work(work):
    shutil.copytree(os.path.join(BENCH, "apps"), os.path.join(work, "apps"))
    static = os.path.join(work, "static")
    shutil.copytree(os.path.join(BENCH, "static"), static)
    with open(os.path.join(static, "1mib.bin"), "wb") as f:
        f.write(b"y" * (1024 * 1024))
    subprocess.run(["chmod", "-R", "a+rX", work], check=True)


def run(args):
    work = tempfile.mkdtemp(prefix="wsgi-rs-bench-")
    os.chmod(work, 0o755)
    prepare_work(work)
    daemon_cases = [c for c in CASES if c[0] != "1,000 print() lines"]
    # (label, MPM, daemon mode, cases, connections, servers)
    plans = [("event", "event", False, CASES + ([FLASK_CASE] if args.flask_venv else []), [1, 32], SERVERS),
             ("prefork", "prefork", False, CASES[:1], [32], SERVERS),
             ("event, daemon mode", "event", True, daemon_cases, [1, 32], DAEMON_SERVERS)]
    if args.only:
        plans = [(label, mpm, daemon, [c for c in cases if args.only in c[0] or args.only in label], conns, kinds)
                 for label, mpm, daemon, cases, conns, kinds in plans]
        plans = [plan for plan in plans if plan[3]]
    # A plan starts only the servers that have one of its cases (not the C
    # handler for --only yields), and only what those need is built: the C
    # handler is compiled, the peers' venv made (or found cached).
    plans = [(label, mpm, daemon, cases, conns,
              [kind for kind in kinds if any(target_path(kind, *case[:3]) for case in cases)])
             for label, mpm, daemon, cases, conns, kinds in plans]
    wanted = {kind for *_, kinds in plans for kind in kinds}
    c_handler_so = build_c_handler(work) if "c_handler" in wanted else None
    venv = peer_venv() if wanted & set(PROXIES) else None
    results = {}
    servers_info = {}
    for mpm_label, mpm, daemon, cases, conns, kinds in plans:
        servers = [Server(kind, mpm, work, args.flask_venv, daemon=daemon and kind != "static", plan=mpm_label,
                          c_handler_so=c_handler_so, peer_venv=venv)
                   for kind in kinds]
        try:
            # Start-up is measured over several starts of each server, in
            # alternating order like the cases, each stopped before the next.
            for rep in range(args.startups - 1):
                for s in (servers if rep % 2 == 0 else list(reversed(servers))):
                    s.start()
                    s.stop()
            for s in servers:
                s.start()
            for case, path, static_path, script in cases:
                for s in servers:
                    target = target_path(s.kind, case, path, static_path)
                    if target is not None:
                        s.check_answer(case, target, script)
            for s in servers:
                for _ in range(3):
                    run_wrk(s.url(s.hello_path()), 8, 1, None)
                servers_info[(mpm_label, s.kind)] = (s.startups, s.child_rss_mib())
            for case, path, static_path, script in cases:
                for c in conns:
                    samples = {s.kind: [] for s in servers}
                    for rep in range(args.reps):
                        order = servers if rep % 2 == 0 else list(reversed(servers))
                        for s in order:
                            target = target_path(s.kind, case, path, static_path)
                            if target is None:
                                continue
                            samples[s.kind].append(measure(s, target, c, args.seconds, script))
                    results[(mpm_label, case, c)] = {k: summarise(v) for k, v in samples.items() if v}
                    print(f"{mpm_label} {case} c{c}: " + ", ".join(
                        f"{k} {v['rps']:.0f}/s {v['cpu']:.1f} CPU ms/1k {v['cs']:.2f} cs/req"
                        for k, v in results[(mpm_label, case, c)].items()), flush=True)
        finally:
            for s in servers:
                s.stop()
    shutil.rmtree(work, ignore_errors=True)
    return results, servers_info


def target_path(kind, case, path, static_path):
    """The path `kind` serves `case` at, or None where it has no such case."""
    if kind == "static":
        return static_path
    if kind in ("mod_python", "c_handler", *LEVERS):
        # Handlers with only the hello case.
        return "/app/hello" if case == "hello" else None
    if case == FLASK_CASE[0]:
        return "/flask/" if kind in ("mod_wsgi_rs", "mod_wsgi") else None
    return "/app" + path


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def report(results, servers_info, args, started, startup=None):
    lines = [
        "# Benchmarks",
        "",
        f"Run on {started:%Y-%m-%d %H:%M} UTC; {os.cpu_count()} CPUs ({platform.machine()}); "
        f"{apache_version()}; Python {python_version()}.",
        "",
        f"Command: `{' '.join(['python3', 'bench/bench.py'] + sys.argv[1:])}`",
        f"({args.reps} alternating reps of {args.seconds} s per server and case; medians, with "
        "the min-max of req/s; wrk with 2 threads, keep-alive.)",
        "",
        "Ratios are against mod_wsgi 4.9.4 (embedded, `WSGIApplicationGroup %{GLOBAL}`; in the "
        f"daemon-mode sections both modules run `WSGIDaemonProcess bench {DAEMON_GROUP}`) and "
        "against Apache serving the same bytes as a static file, from the same run. "
        "The C handler is the sample module `apxs -g -n hello` generates, built with `apxs -c` "
        "(its page is 33 bytes against hello's 12). mod_wsgi_rs, WSGIPathTranslated Off is this "
        "module with that directive, which leaves PATH_TRANSLATED and the sub-request that maps it "
        "out of the environ; with WSGIExportCGIVariables Off as well, the environ (otherwise the "
        "same) is made from the request instead of through Apache's table of the request's "
        "environment, which log formats then do not see the CGI variables in (hello only). In daemon mode, Apache's mod_proxy_http "
        "(`ProxyPass /app/ http://127.0.0.1:PORT/ ttl=20 keepalive=On`, pooled keep-alive "
        f"connections) is in front of granian {peer_version('granian')} (`--interface wsgi "
        f"--workers 2`) and of gunicorn {peer_version('gunicorn')} (`--worker-class gthread "
        "--workers 2 --threads 8`), each serving the same bench.wsgi. "
        "CPU is user+system time of the Apache children, daemon processes and backend workers "
        "per 1,000 requests (not of Apache's parent or the backend's master, which supervise), "
        "cs / req their context switches (voluntary and involuntary, all threads) per request; "
        "memory is per Apache child, or per daemon process or backend worker in daemon mode.",
        "",
    ]
    for (mpm, case, c), by_server in results.items():
        where = mpm.replace(", daemon mode", " MPM, daemon mode") if "daemon" in mpm else f"{mpm} MPM"
        # Ratios of req/s to these servers, where they are in the table.
        refs = [("mod_wsgi", "vs mod_wsgi"), ("static", "vs static")]
        if "proxy_granian" in by_server:
            refs.append(("proxy_granian", "vs proxy -> granian"))
        lines += [f"## {case}, {where}, {c} connection{'s' if c > 1 else ''}", "",
                  "| server | req/s (min-max) | p50 ms | p99 ms | CPU ms / 1k req | cs / req | "
                  + " | ".join(title for _, title in refs) + " |",
                  "|---|---|---|---|---|---|" + "---|" * len(refs)]
        for kind, r in by_server.items():
            flag = f" ({r['bad']} non-2xx)" if r["bad"] else ""
            lines.append(
                f"| {server_name(kind)}{flag} | {r['rps']:.0f} ({r['min']:.0f}-{r['max']:.0f}) | {r['p50']:.2f} | "
                f"{r['p99']:.2f} | {r['cpu']:.1f} | {r['cs']:.2f} | "
                + " | ".join(ratio(r["rps"], by_server.get(ref, {}).get("rps")) for ref, _ in refs) + " |")
        lines.append("")
    lines += ["## Start-up and memory", "",
              "| MPM | server | start to first 200, median (min-max) of the starts (s) | starts | "
              "RSS per child (daemon, backend worker) after warm-up (MiB) |",
              "|---|---|---|---|---|"]
    for (mpm, kind), (starts, rss) in servers_info.items():
        lines.append(f"| {mpm} | {server_name(kind)} | {statistics.median(starts):.4f} "
                     f"({min(starts):.4f}-{max(starts):.4f}) | {len(starts)} | {rss:.1f} |")
    lines += ["", *(startup or [])]
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    lines += targets(results, servers_info)
    # The profile notes are written by hand (bench/analysis.md) and kept
    # with the tables they explain.
    analysis = os.path.join(BENCH, "analysis.md")
    if os.path.exists(analysis):
        with open(analysis) as f:
            lines += ["", f.read().rstrip()]
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


def targets(results, servers_info):
    def get(case, c, kind, key="rps", mpm="event"):
        return results.get((mpm, case, c), {}).get(kind, {}).get(key)

    rows = []

    def row(name, value, goal, higher=True):
        # "-": not measured in this run (--only, or a server missing).
        if value is None:
            rows.append(f"| {name} | - | - |")
            return
        met = value >= goal if higher else value <= goal
        rows.append(f"| {name} | {value:.2f}x | {'yes' if met else 'no'} |")

    def rel(a, b):
        return a / b if a and b else None

    for c in (1, 32):
        row(f"hello c{c} vs mod_wsgi >= 1.4x", rel(get("hello", c, "mod_wsgi_rs"), get("hello", c, "mod_wsgi")), 1.4)
        row(f"hello c{c} vs static >= 0.9x", rel(get("hello", c, "mod_wsgi_rs"), get("hello", c, "static")), 0.9)
    row("hello CPU per request vs mod_wsgi <= 0.7x",
        rel(get("hello", 32, "mod_wsgi_rs", "cpu"), get("hello", 32, "mod_wsgi", "cpu")), 0.7, higher=False)
    row("hello c1 CPU per request vs static <= 1.2x",
        rel(get("hello", 1, "mod_wsgi_rs", "cpu"), get("hello", 1, "static", "cpu")), 1.2, higher=False)
    row("hello c32 vs mod_python >= 1x",
        rel(get("hello", 32, "mod_wsgi_rs"), get("hello", 32, "mod_python")), 1)
    row("hello c32 CPU per request vs mod_python <= 1.15x",
        rel(get("hello", 32, "mod_wsgi_rs", "cpu"), get("hello", 32, "mod_python", "cpu")), 1.15, higher=False)
    for lever, directives in LEVERS.items():
        row(f"hello c32 vs mod_python >= 1x ({', '.join(directives)})",
            rel(get("hello", 32, lever), get("hello", 32, "mod_python")), 1)
        row(f"hello c32 CPU per request vs mod_python <= 1.15x ({', '.join(directives)})",
            rel(get("hello", 32, lever, "cpu"), get("hello", 32, "mod_python", "cpu")), 1.15, higher=False)
    row("100 x 100 B yields c32 vs mod_wsgi >= 4x",
        rel(get("100 x 100 B yields", 32, "mod_wsgi_rs"), get("100 x 100 B yields", 32, "mod_wsgi")), 4)
    row("1 MiB body c32 vs mod_wsgi >= 1.2x",
        rel(get("1 MiB body", 32, "mod_wsgi_rs"), get("1 MiB body", 32, "mod_wsgi")), 1.2)
    row("file_wrapper 1 MiB c32 vs static >= 0.9x",
        rel(get("file_wrapper 1 MiB", 32, "mod_wsgi_rs"), get("file_wrapper 1 MiB", 32, "static")), 0.9)
    row("64 KiB POST echo c32 vs mod_wsgi >= 1.2x",
        rel(get("64 KiB POST echo", 32, "mod_wsgi_rs"), get("64 KiB POST echo", 32, "mod_wsgi")), 1.2)
    daemon = "event, daemon mode"
    for c in (1, 32):
        row(f"daemon mode hello c{c} vs mod_wsgi daemon >= 2x",
            rel(get("hello", c, "mod_wsgi_rs", mpm=daemon), get("hello", c, "mod_wsgi", mpm=daemon)), 2)
    row("daemon mode hello c32 vs mod_proxy_http -> granian >= 1.3x",
        rel(get("hello", 32, "mod_wsgi_rs", mpm=daemon), get("hello", 32, "proxy_granian", mpm=daemon)), 1.3)
    for case in ("1 MiB body", "64 KiB POST echo", "file_wrapper 1 MiB"):
        row(f"daemon mode {case} c32 vs mod_wsgi daemon >= 1.5x",
            rel(get(case, 32, "mod_wsgi_rs", mpm=daemon), get(case, 32, "mod_wsgi", mpm=daemon)), 1.5)
    ours, theirs = servers_info.get((daemon, "mod_wsgi_rs")), servers_info.get((daemon, "mod_wsgi"))
    if ours and theirs:
        row("daemon RSS vs mod_wsgi daemon <= 1.0x", rel(ours[1], theirs[1]), 1.0, higher=False)
    ours, theirs = servers_info.get(("event", "mod_wsgi_rs")), servers_info.get(("event", "mod_wsgi"))
    if ours and theirs:
        row("child RSS vs mod_wsgi <= 1.0x", rel(ours[1], theirs[1]), 1.0, higher=False)
        row("start to first 200 (medians) vs mod_wsgi <= 1.0x",
            rel(statistics.median(ours[0]), statistics.median(theirs[0])), 1.0, higher=False)
    return rows


def apache_version():
    out = subprocess.run([APACHE, "-v"], capture_output=True, text=True).stdout
    return out.splitlines()[0].replace("Server version: ", "") if out else "Apache"


def peer_version(package):
    """The version pinned in bench/requirements.txt."""
    with open(PEER_REQUIREMENTS) as f:
        found = re.search(rf"^{package}==(\S+)", f.read(), re.M)
    return found.group(1) if found else "?"


def python_version():
    return subprocess.run([PYTHON, "-c", "import sys; print(sys.version.split()[0])"],
                          capture_output=True, text=True).stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--startups", type=int, default=9,
                        help="how many times each server is started for the start-up figure")
    parser.add_argument("--quick", action="store_true", help="2 reps of 3 s, 3 starts")
    parser.add_argument("--flask-venv", help="a venv with Flask, for the Flask hello case")
    parser.add_argument("--django-venv", help="a venv with Django 4.2 (tests/frameworks' requirements), "
                                              f"for the {startup_levels.CASE!r} case")
    parser.add_argument("--only", metavar="TEXT",
                        help="run only the cases whose name contains TEXT; prints, and writes a "
                             "report only to an --out given")
    parser.add_argument("--out", help="the report's path (default: BENCHMARKS.md)")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.seconds, args.startups = 2, 3, 3
    if not os.path.exists(OUR_SO):
        subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True)
    started = datetime.datetime.utcnow()
    startup = None
    if not args.only or args.only in startup_levels.CASE:
        work = tempfile.mkdtemp(prefix="wsgi-rs-bench-startup-")
        os.chmod(work, 0o755)
        prepare_work(work)
        try:
            rows, audit = startup_levels.run(work, free_port, OUR_SO, args.django_venv, 3 if args.quick else 5)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        startup = startup_levels.markdown(rows, audit)
        print("\n".join(startup))
    results, servers_info = run(args) if not args.only or args.only not in startup_levels.CASE else ({}, {})
    if args.only and not args.out:
        return
    args.out = args.out or os.path.join(REPO, "BENCHMARKS.md")
    report(results, servers_info, args, started, startup)


if __name__ == "__main__":
    main()
