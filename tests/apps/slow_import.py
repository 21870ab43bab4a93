# A WSGIImportScript that takes far longer than any startup-timeout in the tests
# (tests/daemon_lifecycle.rs): the daemon loading it never becomes ready.
import time

time.sleep(3600)
