"""Start-up cost by optimisation level, with and without the bytecode cache
(bench.py's "start-up by optimisation level" case).

For each application (about 250 standard-library modules; the Django site of
tests/frameworks when a venv with Django is given) and each level 0, 1, 2, a
private Apache with one child loads the application with WSGIImportScript and
is asked for it until it answers 200. Measured: the CPU time (user + system)
of Apache's processes but the parent from the start to that first 200, the
time it took, and the child's RSS then. "without cache" is
`WSGIPythonPycachePrefix Off` (Python caches beside the sources, where the
child's user cannot write); at levels 1 and 2 Python is then also pointed at an
empty cache it cannot write (PYTHONPYCACHEPREFIX), so that it finds only the
level-0 files Debian and pip install, whatever opt-1 and opt-2 files other
software left beside the standard library or the venv's packages on the
machine. "with cache" is the default cache under DefaultRuntimeDir, or at
level 0 (which has no default cache) an explicit `WSGIPythonPycachePrefix`.
Each configuration is started twice in a row; the first start of "with cache"
begins with an empty cache. Medians of `reps` such pairs.

It also measures what the cache's audit hook costs an application after start:
ns per `sys._getframe()` call (an audited operation) inside mod_wsgi_rs against
the same loop in a plain python3.11, which has no hook.
"""

import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request

CASE = "start-up by optimisation level"
LEVELS = (0, 1, 2)
APACHE = "/usr/sbin/apache2"
MODULES = "/usr/lib/apache2/modules"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# One child, so that one process pays for the imports once.
ONE_CHILD = ["StartServers 1", "ServerLimit 1", "ThreadsPerChild 4", "MaxRequestWorkers 4",
             "MinSpareThreads 1", "MaxSpareThreads 8"]
AUDIT_LOOP = ("import sys, time\n"
              "def per_call(n=200000):\n"
              "    t = time.perf_counter_ns()\n"
              "    for _ in range(n):\n"
              "        sys._getframe()\n"
              "    return (time.perf_counter_ns() - t) / n\n")


def _descendant_cpu(parent):
    ticks = os.sysconf("SC_CLK_TCK")
    total, rss = 0, 0
    for pid in _descendants(parent):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = max(rss, int(line.split()[1]))
        except OSError:
            pass
    return total / ticks, rss / 1024


def _descendants(root):
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = [int(p) for p in f.read().split()]
        except OSError:
            kids = []
        for k in kids:
            if k not in found:
                found.add(k)
                todo.append(k)
    return found


class App:
    def __init__(self, name, script, url, home=None, path=None, extra_check=b""):
        self.name, self.script, self.url, self.home, self.path = name, script, url, home, path
        self.extra_check = extra_check


def _start(root, port, app, level, cache, our_so, env=None):
    os.makedirs(os.path.join(root, "logs"), exist_ok=True)
    conf = [f"ServerRoot {root}", f"Listen 127.0.0.1:{port}", f"PidFile {root}/logs/httpd.pid",
            f"ErrorLog {root}/logs/error.log", "LogLevel warn wsgi_rs:info", "ServerName localhost",
            "User www-data", "Group www-data",
            f"LoadModule mpm_event_module {MODULES}/mod_mpm_event.so", *ONE_CHILD,
            f"LoadModule authz_core_module {MODULES}/mod_authz_core.so",
            f"LoadModule wsgi_rs_module {our_so}",
            f"DefaultRuntimeDir {cache['runtime']}",
            f"WSGIPythonOptimize {level}",
            f"WSGIPythonPycachePrefix {cache['prefix']}" if cache["prefix"] else "",
            f"WSGIPythonHome {app.home}" if app.home else "",
            f"WSGIPythonPath {app.path}" if app.path else "",
            f"WSGIImportScript {app.script} application-group=%{{GLOBAL}}",
            f"WSGIScriptAlias / {app.script}",
            "<Directory />", "    Require all granted", "</Directory>"]
    path = os.path.join(root, "httpd.conf")
    with open(path, "w") as f:
        f.write("\n".join(conf) + "\n")
    began = time.monotonic()
    subprocess.run([APACHE, "-f", path, "-k", "start"], check=True, env={**ENV, **(env or {})})
    with open_when_ready(f"{root}/logs/httpd.pid") as pid_file:
        parent = int(pid_file.read())
    while time.monotonic() < began + 60:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{app.url}", timeout=30) as r:
                if r.status == 200:
                    cpu, rss = _descendant_cpu(parent)
                    return path, cpu, rss, time.monotonic() - began
        except OSError:
            time.sleep(0.005)
    raise SystemExit(f"{app.name}: no 200 within 60 s; see {root}/logs/error.log")


def open_when_ready(path):
    deadline = time.monotonic() + 10
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)
    return open(path)


def _stop(conf, root):
    subprocess.run([APACHE, "-f", conf, "-k", "stop"], check=False, env=ENV)
    deadline = time.monotonic() + 15
    while os.path.exists(f"{root}/logs/httpd.pid") and time.monotonic() < deadline:
        time.sleep(0.05)


def _compiled_counts(root):
    """The compile counts of the startup lines in the log, in order."""
    counts = []
    with open(f"{root}/logs/error.log") as f:
        for line in f:
            key = "compiled from source while starting: "
            if key in line:
                counts.append(int(line.split(key)[1].split()[0]))
    return counts


def _audit_cost(work, free_port, our_so, apps):
    """ns per sys._getframe() in mod_wsgi_rs (audit hook installed) and in a plain python."""
    script = os.path.join(apps, "audit_cost.wsgi")
    with open(script, "w") as f:
        f.write(AUDIT_LOOP + "def application(environ, start_response):\n"
                "    body = ('%.2f' % min(per_call() for _ in range(5))).encode()\n"
                "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                "    return [body]\n")
    os.chmod(script, 0o644)
    root = os.path.join(work, "audit-cost")
    app = App("audit cost", script, "/")
    cache = {"runtime": os.path.join(root, "run"), "prefix": "Off"}
    os.makedirs(cache["runtime"], exist_ok=True)
    port = free_port()
    try:
        conf, *_ = _start(root, port, app, 0, cache, our_so)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60) as r:
            inside = float(r.read())
    finally:
        _stop(os.path.join(root, "httpd.conf"), root)
    out = subprocess.run(["/usr/bin/python3.11", "-I", "-c", AUDIT_LOOP + "print(min(per_call() for _ in range(5)))"],
                         check=True, capture_output=True, text=True, env=ENV)
    return inside, float(out.stdout)


def run(work, free_port, our_so, django_venv, reps):
    """Returns (rows, audit): rows of (app, level, cache, first cpu, second cpu, rss,
    compiled first, compiled second, first time, second time), medians over reps."""
    apps_dir = os.path.join(work, "apps")
    apps = [App("stdlib (~250 modules)", os.path.join(apps_dir, "stdlib_heavy.wsgi"), "/")]
    if django_venv:
        site = os.path.join(work, "django_site")
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        shutil.copytree(os.path.join(repo, "tests", "frameworks", "django_site"), site,
                        ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(["chmod", "-R", "a+rX", site], check=True)
        apps.append(App("Django 4.2 site", os.path.join(site, "mysite", "wsgi.py"), "/",
                        home=django_venv, path=site))
    # Root's, empty: a cache a child can neither read anything from nor write to.
    empty_cache = os.path.join(work, "empty-cache")
    os.makedirs(empty_cache, mode=0o755)
    rows = []
    for app in apps:
        for level in LEVELS:
            for cached in (False, True):
                samples = []
                for rep in range(reps):
                    tag = f"{app.name.split()[0]}-L{level}-{'cache' if cached else 'nocache'}-{rep}"
                    runtime = tempfile.mkdtemp(prefix=f"rt-{tag}-", dir=work)
                    os.chmod(runtime, 0o755)
                    if not cached:
                        prefix = "Off"
                    elif level == 0:
                        prefix = os.path.join(runtime, "explicit-pycache")
                    else:
                        prefix = None  # the default, under DefaultRuntimeDir
                    cache = {"runtime": runtime, "prefix": prefix}
                    env = {"PYTHONPYCACHEPREFIX": empty_cache} if level and not cached else {}
                    figures = []
                    for start in ("first", "second"):
                        root = os.path.join(work, f"{tag}-{start}")
                        try:
                            _, cpu, rss, wall = _start(root, free_port(), app, level, cache, our_so, env)
                        finally:
                            _stop(os.path.join(root, "httpd.conf"), root)
                        figures.append((cpu, rss, (_compiled_counts(root) or [-1])[0], wall))
                    samples.append(figures)
                med = lambda i, j: statistics.median(s[i][j] for s in samples)
                rows.append((app.name, level, cached, med(0, 0), med(1, 0), med(1, 1), med(0, 2), med(1, 2),
                             med(0, 3), med(1, 3)))
                print(f"{CASE}: {app.name} level {level} {'with' if cached else 'without'} cache: "
                      f"first {rows[-1][3]:.3f} s CPU, {rows[-1][8]:.3f} s ({rows[-1][6]:.0f} compiled), "
                      f"second {rows[-1][4]:.3f} s CPU, {rows[-1][9]:.3f} s ({rows[-1][7]:.0f} compiled), "
                      f"RSS {rows[-1][5]:.1f} MiB", flush=True)
    audit = _audit_cost(work, free_port, our_so, apps_dir)
    return rows, audit


def markdown(rows, audit):
    """The report's section: CPU and time as ratios to level 0 without the cache, second start."""
    base = {r[0]: r[4] for r in rows if r[1] == 0 and not r[2]}
    base_time = {r[0]: r[9] for r in rows if r[1] == 0 and not r[2]}
    lines = ["## Start-up CPU by optimisation level (bench/startup_levels.py)", "",
             "CPU (user + system) of Apache's child from `apache2 -k start` to the first 200, one child "
             "loading the application with WSGIImportScript, as a ratio to the same application at level 0 "
             "without the cache on its second start (medians); time: from `apache2 -k start` to that 200, as the "
             "same ratio; compiled: modules the startup line reports compiled from source; RSS of the child "
             "then.", "",
             "| application | level | bytecode cache | first start CPU | second start CPU | first start time | "
             "second start time | compiled (first, second) | RSS (MiB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for app, level, cached, first, second, rss, c1, c2, t1, t2 in rows:
        ratio = lambda v, ref: f"{v / ref:.2f}x" if ref else "-"
        lines.append(f"| {app} | {level} | {'default' if cached and level else 'explicit' if cached else 'Off'} | "
                     f"{ratio(first, base.get(app))} | {ratio(second, base.get(app))} | "
                     f"{ratio(t1, base_time.get(app))} | {ratio(t2, base_time.get(app))} | "
                     f"{c1:.0f}, {c2:.0f} | {rss:.1f} |")
    inside, plain = audit
    lines += ["", f"The compile-counting audit hook after start: `sys._getframe()` (an audited call) takes "
              f"{inside / plain:.2f}x its time in a plain python3.11 ({inside:.0f} against {plain:.0f} ns); "
              "calls that raise no audit event are not affected.", ""]
    return lines
