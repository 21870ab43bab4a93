# A WSGIImportScript: notes the application group its process was given
# when it started, for app_group.wsgi to report.
import os

import mod_wsgi

os.environ['APP_GROUP_AT_START'] = mod_wsgi.application_group
