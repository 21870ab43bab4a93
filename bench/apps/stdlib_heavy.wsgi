# The start-up benchmark's standard-library application (bench/startup_levels.py): it
# imports about 250 standard-library modules when loaded (by WSGIImportScript, while
# the process starts) and answers a line.
import argparse
import asyncio
import calendar
import concurrent.futures
import configparser
import csv
import dataclasses
import decimal
import difflib
import email.mime.multipart
import email.mime.text
import email.parser
import fractions
import ftplib
import gettext
import html.parser
import http.cookies
import http.server
import imaplib
import ipaddress
import json
import logging.config
import logging.handlers
import mailbox
import multiprocessing.pool
import pathlib
import pdb
import pickle
import plistlib
import pprint
import shelve
import smtplib
import sqlite3
import statistics
import string
import tarfile
import textwrap
import tomllib
import unittest.mock
import urllib.request
import uuid
import xml.dom.minidom
import xml.etree.ElementTree
import xmlrpc.client
import zipfile
import zoneinfo


def application(environ, start_response):
    body = b"imported\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
