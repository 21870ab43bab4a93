"""`mod_wsgi_rs-express precompile` (and `make precompile`): ahead-of-time compilation
into the bytecode cache the Apache processes read (WSGIPythonPycachePrefix), so that no
process compiles the standard library, the virtual environment or the application from
source at optimisation levels 1 and 2. Run as root from a deploy script after each change
of code; Python still recompiles anything whose source changes later."""

import os
import subprocess

from .checks import check_user
from .errors import ExpressError

# Debian's DefaultRuntimeDir (/var/run/apache2) and the module's default prefix under it.
DEFAULT_PREFIX = "/var/run/apache2/wsgi_rs-pycache"


def add_options(command, default_python):
    a = command.add_argument
    a("--levels", type=int, nargs="+", choices=[0, 1, 2], default=[1, 2], metavar="LEVEL",
      help="optimisation levels to compile for (default: 1 2)")
    a("--pycache-prefix", default=DEFAULT_PREFIX, metavar="DIR",
      help="WSGIPythonPycachePrefix as configured, or Off to compile into __pycache__ beside the "
           f"sources (default: {DEFAULT_PREFIX}, the default under Debian's DefaultRuntimeDir)")
    a("--cache-user", action="append", metavar="USER",
      help="whose cache directory to fill: Apache's User and each daemon group's user=; "
           "repeatable (default: www-data)")
    a("--app-dir", action="append", default=[], metavar="DIR",
      help="an application directory, as it appears on sys.path (the cache is keyed by the "
           "source's path); repeatable")
    a("--no-stdlib", action="store_true",
      help="leave out the standard library and the site directories")
    a("--python", default=default_python, metavar="FILE",
      help="the Python that runs the application, a venv's bin/python for WSGIPythonHome or "
           f"python-home= (default: this one, {default_python})")


def run(options):
    python = options.python
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise ExpressError(f"--python {python}: not an executable Python")
    directories = [] if options.no_stdlib else search_directories(python)
    for directory in options.app_dir:
        if not os.path.isdir(directory):
            raise ExpressError(f"--app-dir {directory}: no such directory")
        directories.append(os.path.abspath(directory))
    if not directories:
        raise ExpressError("nothing to compile: --no-stdlib and no --app-dir")
    levels = " ".join(str(level) for level in options.levels)
    prefix = options.pycache_prefix
    if prefix.lower() == "off":
        compile_into(python, options.levels, directories, None)
        print(f"precompile: levels {levels} compiled into __pycache__ beside: {' '.join(directories)}")
        return
    if not os.path.isabs(prefix):
        raise ExpressError(f"--pycache-prefix {prefix}: must be an absolute directory or Off")
    if os.getuid() != 0:
        raise ExpressError("precompile needs root: each user's cache directory is handed to that user")
    accounts = [check_user(user, None, "--cache-user")[:3] for user in options.cache_user or ["www-data"]]
    # As Apache's parent makes them: the prefix root's and closed to others' writes, each
    # user's directory that user's alone, so no user can plant bytecode another runs.
    if not os.path.isdir(prefix):
        os.makedirs(prefix, exist_ok=True)
        os.chmod(prefix, 0o755)
    for uid, gid, user in accounts:
        directory = os.path.join(prefix, user)
        if not os.path.isdir(directory):
            os.mkdir(directory, 0o700)
            os.chown(directory, uid, gid)
        compile_into(python, options.levels, directories, directory)
        # What compileall wrote as root goes to the user, who rewrites stale entries.
        for parent, names, files in os.walk(directory):
            for name in names + files:
                os.lchown(os.path.join(parent, name), uid, gid)
        print(f"precompile: levels {levels} compiled into {directory} for {' '.join(directories)}")


def search_directories(python):
    """The standard library and the site directories of `python`, as it puts them on
    sys.path."""
    listing = subprocess.run(
        [python, "-I", "-c",
         "import os, site, sysconfig\n"
         "for d in [sysconfig.get_paths()['stdlib'], *site.getsitepackages()]:\n"
         "    if os.path.isdir(d): print(d)\n"],
        capture_output=True, text=True)
    if listing.returncode != 0:
        raise ExpressError(f"--python {python} did not list its directories: {listing.stderr.strip()}")
    return listing.stdout.split()


def compile_into(python, levels, directories, cache):
    command = [python, "-I"]
    if cache:
        command += ["-X", f"pycache_prefix={cache}"]
    command += ["-m", "compileall", "-q", "-j", "0"]
    for level in levels:
        command += ["-o", str(level)]
    # Files that are not valid Python for this interpreter (test data, Python 2 leftovers)
    # are listed by compileall and skipped; importing them would fail as well.
    if subprocess.run(command + directories).returncode != 0:
        print("precompile: some files could not be compiled (listed above); the rest were")
