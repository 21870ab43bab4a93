"""Where the system's Apache is: the httpd binary, apxs and the modules directory."""

import os
import shutil
import subprocess

from .errors import ExpressError

# Debian and Ubuntu put these here; apxs (apache2-dev) names them on other systems.
DEFAULT_HTTPD = "/usr/sbin/apache2"
DEFAULT_MODULES_DIR = "/usr/lib/apache2/modules"


def apxs_query(variable):
    """`apxs -q VARIABLE`, or None when apxs is missing or does not know it."""
    apxs = os.environ.get("APXS") or shutil.which("apxs") or shutil.which("apxs2")
    if not apxs:
        return None
    try:
        result = subprocess.run([apxs, "-q", variable], capture_output=True, text=True, check=False)
    except OSError:
        return None
    value = result.stdout.strip()
    return value if result.returncode == 0 and value else None


def find_httpd(requested=None):
    if requested:
        if not (os.path.isfile(requested) and os.access(requested, os.X_OK)):
            raise ExpressError(f"--httpd-executable {requested}: no such executable")
        return requested
    candidates = []
    sbindir, target = apxs_query("SBINDIR"), apxs_query("TARGET")
    if sbindir and target:
        candidates.append(os.path.join(sbindir, target))
    candidates += [DEFAULT_HTTPD, shutil.which("apache2"), shutil.which("httpd")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise ExpressError(
        "Apache httpd was not found (looked for apxs' SBINDIR/TARGET, /usr/sbin/apache2, apache2 "
        "and httpd on PATH); install it (Debian: apt-get install apache2) or pass --httpd-executable"
    )


def modules_dir():
    """Where the MPM and the other standard modules live."""
    found = apxs_query("LIBEXECDIR")
    if found and os.path.isdir(found):
        return found
    if os.path.isdir(DEFAULT_MODULES_DIR):
        return DEFAULT_MODULES_DIR
    raise ExpressError(
        "Apache's modules directory was not found (apxs -q LIBEXECDIR, /usr/lib/apache2/modules); "
        "install apache2-dev for apxs"
    )
