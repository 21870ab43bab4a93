# Mercurial's hgweb, serving the repositories listed in hgweb.config (hgwebdir mode:
# the index at the mount point, each repository below it).
from mercurial.hgweb import hgweb

application = hgweb(b"@@CONFIG@@")
