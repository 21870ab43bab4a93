# A WSGI script whose import always fails, as an application whose start-up depends on
# something that is not there (tests/daemon_lifecycle.rs, startup-timeout).
raise RuntimeError("the database this application needs at import is not there")
