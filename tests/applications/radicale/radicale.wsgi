# Radicale's own WSGI application. It reads its configuration file from the
# RADICALE_CONFIG variable, which Apache sets for this location with SetEnv, and logs
# to wsgi.errors.
from radicale import application
