"""Writes an htpasswd file with Apache MD5 ("$apr1$") hashes, the format Apache's
mod_authn_file, pypiserver and Radicale all read.

Usage: make_htpasswd.py FILE USER:PASSWORD...
"""
import sys

from passlib.apache import HtpasswdFile

users = HtpasswdFile(sys.argv[1], new=True, default_scheme="apr_md5_crypt")
for pair in sys.argv[2:]:
    user, password = pair.split(":", 1)
    users.set_password(user, password)
users.save()
