"""PEP 517 build backend for mod_wsgi_rs.

The wheel carries the Apache module, built by cargo against the Python that runs the build,
as ``mod_wsgi_rs/server/mod_wsgi_rs-pyXY.so``, and the ``mod_wsgi_rs`` package with the
``mod_wsgi_rs-express`` command. The module is linked to that Python's libpython (it embeds
the interpreter; it is not an extension module), so the wheel is tagged for that interpreter
and platform only.

Only the standard library is used, so the build needs nothing from PyPI.
"""

import base64
import hashlib
import io
import os
import pwd
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

NAME = "mod_wsgi_rs"
SUMMARY = "Apache httpd 2.4 module hosting WSGI applications in embedded CPython, and mod_wsgi_rs-express"
CONSOLE_SCRIPT = "mod_wsgi_rs-express = mod_wsgi_rs.express:main"

# What an sdist holds: everything cargo and this backend read.
SDIST_FILES = ["pyproject.toml", "Cargo.toml", "Cargo.lock", "build.rs", "README.md", ".cargo/config.toml"]
SDIST_TREES = ["src", "apxs", "python/build_backend", "python/mod_wsgi_rs"]

# Directories the dynamic linker searches anyway: a libpython there needs no rpath.
SYSTEM_LIBRARY_DIRS = {"/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib"}


def fail(message):
    """Stops the build with a message for the person running pip, not a traceback."""
    raise SystemExit(f"mod_wsgi_rs: {message}")


def version(source_dir="."):
    text = (Path(source_dir) / "Cargo.toml").read_text()
    package = text.split("[package]", 1)[1].split("\n[", 1)[0]
    match = re.search(r'^version\s*=\s*"([^"]+)"', package, re.M)
    if not match:
        fail("no version in Cargo.toml's [package] section")
    return match.group(1)


def python_tag():
    return f"py{sys.version_info.major}{sys.version_info.minor}"


def module_file_name():
    """The installed module's name records the Python version it embeds."""
    return f"{NAME}-{python_tag()}.so"


def wheel_tag():
    interpreter = f"cp{sys.version_info.major}{sys.version_info.minor}"
    platform = re.sub(r"[-.]", "_", sysconfig.get_platform())
    return f"{interpreter}-{interpreter}-{platform}"


# --- finding the tools -------------------------------------------------------------------


def find_cargo(env):
    """cargo from PATH, else rustup's default place in this user's home.

    pip may run the build with another HOME (or none), where rustup's proxies would not find
    their toolchains, so CARGO_HOME and RUSTUP_HOME are pinned to the home cargo was found in.
    """
    found = shutil.which("cargo", path=env.get("PATH"))
    if found:
        return found
    homes = [env.get("CARGO_HOME", ""), os.path.join(env.get("HOME", ""), ".cargo")]
    account_home = pwd.getpwuid(os.getuid()).pw_dir
    homes.append(os.path.join(account_home, ".cargo"))
    for cargo_home in homes:
        candidate = os.path.join(cargo_home, "bin", "cargo")
        if cargo_home and os.access(candidate, os.X_OK):
            env.setdefault("CARGO_HOME", cargo_home)
            rustup_home = os.path.join(os.path.dirname(cargo_home), ".rustup")
            if os.path.isdir(rustup_home):
                env.setdefault("RUSTUP_HOME", rustup_home)
            return candidate
    fail(
        "cargo (Rust) is needed to build the Apache module and was not found on PATH or in "
        "~/.cargo/bin; install Rust from https://rustup.rs (or your distribution's cargo "
        "package) and run pip again"
    )


def check_apxs(env):
    apxs = env.get("APXS", "apxs")
    try:
        result = subprocess.run([apxs, "-q", "INCLUDEDIR"], env=env, capture_output=True, text=True)
    except OSError:
        result = None
    if result is None or result.returncode != 0 or not result.stdout.strip():
        fail(
            f"Apache's apxs ({apxs}) was not found or does not work; it provides the headers "
            "the module is built against. On Debian or Ubuntu: apt-get install apache2-dev "
            "(or set APXS to the apxs of your Apache)"
        )


# --- the build ---------------------------------------------------------------------------


def build_module(source_dir):
    """Runs cargo for the running Python; returns the path of the built shared object."""
    env = dict(os.environ)
    cargo = find_cargo(env)
    check_apxs(env)
    # pyo3 reads the interpreter's configuration from this Python (a venv's python gives the
    # base installation's libpython); an environment variable wins over .cargo/config.toml.
    env["PYO3_PYTHON"] = sys.executable
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    if sysconfig.get_config_var("Py_ENABLE_SHARED") != 1:
        fail(
            f"{sys.executable} has no shared libpython (it was built without --enable-shared), "
            "which an Apache module embedding Python needs; use a Python built with it "
            "(Debian's python3, or pyenv with PYTHON_CONFIGURE_OPTS=--enable-shared)"
        )
    if libdir and os.path.realpath(libdir) not in SYSTEM_LIBRARY_DIRS and not libdir.startswith("/usr/lib/"):
        # A private Python (pyenv, /opt): Apache must find its libpython without
        # LD_LIBRARY_PATH; build.rs turns this into an rpath.
        env["WSGI_RS_RPATH"] = libdir
    target_dir = env.get("CARGO_TARGET_DIR") or os.path.join(source_dir, "target", "python", python_tag())
    env["CARGO_TARGET_DIR"] = target_dir
    command = [cargo, "build", "--release", "--lib", "--manifest-path", os.path.join(source_dir, "Cargo.toml")]
    print(f"mod_wsgi_rs: building for {sys.executable} (Python {sys.version.split()[0]}): "
          f"{' '.join(command)}", file=sys.stderr, flush=True)
    # cargo's output goes to stderr, which pip shows with -v and whenever the build fails.
    result = subprocess.run(command, env=env, stdout=sys.stderr, stderr=sys.stderr)
    if result.returncode != 0:
        fail(f"cargo build failed (exit status {result.returncode}); its messages are above")
    built = Path(target_dir) / "release" / f"lib{NAME}.so"
    if not built.is_file():
        fail(f"cargo reported success but {built} does not exist")
    return built


# --- metadata and archives ---------------------------------------------------------------


def metadata_text(source_dir):
    readme = Path(source_dir) / "README.md"
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {NAME}",
        f"Version: {version(source_dir)}",
        f"Summary: {SUMMARY}",
        "License: Apache-2.0",
        "Requires-Python: >=3.9",
        "Description-Content-Type: text/markdown",
    ]
    body = readme.read_text() if readme.is_file() else ""
    return "\n".join(lines) + "\n\n" + body


def dist_info_files(source_dir):
    return {
        "METADATA": metadata_text(source_dir),
        "WHEEL": (
            "Wheel-Version: 1.0\n"
            "Generator: mod_wsgi_rs_build\n"
            "Root-Is-Purelib: false\n"
            f"Tag: {wheel_tag()}\n"
        ),
        "entry_points.txt": f"[console_scripts]\n{CONSOLE_SCRIPT}\n",
    }


def package_files(source_dir):
    """(path in the wheel, path on disk) of the Python package's sources."""
    package = Path(source_dir) / "python" / NAME
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield path.relative_to(package.parent).as_posix(), path


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    dist_info = f"{NAME}-{version()}.dist-info"
    target = Path(metadata_directory) / dist_info
    target.mkdir(parents=True, exist_ok=True)
    for name, text in dist_info_files(".").items():
        (target / name).write_text(text)
    return dist_info


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    source_dir = os.path.abspath(".")
    built = build_module(source_dir)
    release = version(source_dir)
    dist_info = f"{NAME}-{release}.dist-info"
    wheel_name = f"{NAME}-{release}-{wheel_tag()}.whl"
    entries = [(name, path.read_bytes(), 0o644) for name, path in package_files(source_dir)]
    entries.append((f"{NAME}/server/{module_file_name()}", built.read_bytes(), 0o755))
    entries += [(f"{dist_info}/{n}", t.encode(), 0o644) for n, t in dist_info_files(source_dir).items()]
    records = [record_line(name, data) for name, data, _ in entries]
    records.append(f"{dist_info}/RECORD,,")
    entries.append((f"{dist_info}/RECORD", ("\n".join(records) + "\n").encode(), 0o644))
    with zipfile.ZipFile(Path(wheel_directory) / wheel_name, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
    return wheel_name


def build_sdist(sdist_directory, config_settings=None):
    source_dir = Path(".").resolve()
    base = f"{NAME}-{version(source_dir)}"
    files = [source_dir / f for f in SDIST_FILES if (source_dir / f).is_file()]
    for tree in SDIST_TREES:
        files += [
            p for p in sorted((source_dir / tree).rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".so"
        ]
    sdist_name = f"{base}.tar.gz"
    with tarfile.open(Path(sdist_directory) / sdist_name, "w:gz", format=tarfile.PAX_FORMAT) as sdist:
        for path in files:
            sdist.add(path, arcname=f"{base}/{path.relative_to(source_dir).as_posix()}", recursive=False)
        pkg_info = metadata_text(source_dir).encode()
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        info.size = len(pkg_info)
        info.mode = 0o644
        sdist.addfile(info, io.BytesIO(pkg_info))
    return sdist_name
