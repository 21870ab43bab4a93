"""Checks made before Apache starts, so that a mistake is one clear line instead of a
server that answers 500 or a log to dig through."""

import ast
import errno
import grp
import os
import pwd
import socket

from .errors import ExpressError


def check_script(path, callable_object):
    """The script exists and binds `callable_object` at its top level.

    Read, not run: running it here would import the application in this process. A script
    that binds names indirectly (`from x import *`, `globals()[...]`) is given the benefit of
    the doubt."""
    if not os.path.isfile(path):
        raise ExpressError(f"WSGI script {path} does not exist" if not os.path.exists(path)
                           else f"WSGI script {path} is not a file")
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), filename=path)
    except OSError as e:
        raise ExpressError(f"cannot read WSGI script {path}: {e.strerror}") from None
    except SyntaxError as e:
        raise ExpressError(f"WSGI script {path}, line {e.lineno}: {e.msg}") from None
    names, indirect = _top_level_names(tree.body)
    if callable_object not in names and not indirect:
        raise ExpressError(
            f"WSGI script {path} defines no '{callable_object}', the callable Apache calls "
            "(--callable-object NAME names another)"
        )


def _top_level_names(body):
    names, indirect = set(), False
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    indirect = True
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for block in ("body", "orelse", "finalbody"):
                inner, more = _top_level_names(getattr(node, block, []))
                names |= inner
                indirect |= more
            for handler in getattr(node, "handlers", []):
                inner, more = _top_level_names(handler.body)
                names |= inner
                indirect |= more
        if any(isinstance(n, ast.Call) and getattr(n.func, "id", None) == "globals" for n in ast.walk(node)):
            indirect = True
    return names, indirect


def find_module_file(module, search_path):
    """The file of `package.module` (as Django names `mysite.wsgi`) under `search_path`."""
    parts = module.split(".")
    if not all(part.isidentifier() for part in parts):
        raise ExpressError(f"--application-type module: {module!r} is not a Python module name")
    for directory in search_path:
        base = os.path.join(directory, *parts)
        for candidate in (base + ".py", os.path.join(base, "__init__.py")):
            if os.path.isfile(candidate):
                return candidate
    raise ExpressError(
        f"module {module} was not found in {', '.join(search_path)} "
        "(--python-path DIR adds a directory, --working-directory DIR sets the first one)"
    )


def check_user(user, group, option="--user"):
    """(uid, gid, user name, group name), the group defaulting to the user's primary one;
    `option` names the user's option in the error."""
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise ExpressError(f"{option} {user}: no such user") from None
    if group is None:
        try:
            group = grp.getgrgid(account.pw_gid).gr_name
        except KeyError:
            group = f"#{account.pw_gid}"
        return account.pw_uid, account.pw_gid, user, group
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise ExpressError(f"--group {group}: no such group") from None
    return account.pw_uid, gid, user, group


def unreadable_by(uid, gid, paths):
    """The first of `paths` the user cannot read (directories: list and enter), or None.

    Checked in a forked child that takes on the user's ids, which is what the daemon
    processes will be."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        status = 0
        try:
            os.setgroups([gid])
            os.setgid(gid)
            os.setuid(uid)
            for path in paths:
                mode = os.R_OK | (os.X_OK if os.path.isdir(path) else 0)
                if not os.access(path, mode):
                    os.write(write_end, os.fsencode(path))
                    break
        except BaseException:
            status = 1
        os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as r:
        found = r.read()
    os.waitpid(pid, 0)
    return os.fsdecode(found) if found else None


def check_port_free(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ExpressError(
                    f"port {port} on {host} is already in use (another server is listening there); "
                    "stop it or choose another port with --port"
                ) from None
            if e.errno == errno.EACCES:
                raise ExpressError(f"port {port} on {host}: permission denied (ports below 1024 need root)") from None
            raise ExpressError(f"cannot listen on {host}:{port}: {e.strerror}") from None
