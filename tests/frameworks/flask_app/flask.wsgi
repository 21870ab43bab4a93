# The WSGI script Apache loads: the application object lives in flaskapp.py,
# found through WSGIPythonPath.
from flaskapp import app as application
