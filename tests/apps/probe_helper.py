"""Imported by probe.wsgi from a www-data-writable directory."""

DEBUG = __debug__


def assert_raises():
    try:
        assert False, 'assert in an imported module'
    except AssertionError:
        return True
    return False


def documented():
    """A docstring in an imported module."""
