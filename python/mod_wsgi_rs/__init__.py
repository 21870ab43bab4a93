"""mod_wsgi_rs: the Apache module built for this Python, and mod_wsgi_rs-express."""

import os
import sys
from pathlib import Path

MODULE_NAME = "wsgi_rs_module"


def module_file_name():
    """The module's file name records the Python it embeds: mod_wsgi_rs-py311.so."""
    return f"mod_wsgi_rs-py{sys.version_info.major}{sys.version_info.minor}.so"


def module_path():
    """The module built for this Python by pip (MOD_WSGI_RS_SO names another, e.g. a
    checkout's target/release build)."""
    override = os.environ.get("MOD_WSGI_RS_SO")
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parent / "server" / module_file_name()
