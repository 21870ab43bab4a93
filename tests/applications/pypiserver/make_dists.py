"""Builds the wheel and the sdist of a tiny pure-Python package for the package-index
test, with only the standard library (the wheel format is a zip file with a METADATA,
WHEEL and RECORD file; the sdist a gzipped tar with PKG-INFO).

Usage: make_dists.py OUTPUT_DIR NAME VERSION GREETING
Prints the paths of the two files, one per line.
"""
import base64
import hashlib
import io
import os
import sys
import tarfile
import zipfile

out_dir, name, version, greeting = sys.argv[1:5]
module = name.replace("-", "_")
# The time stamp every archive member gets, so a rebuild gives the same bytes.
FIXED_TIME = (2025, 1, 1, 0, 0, 0)
FIXED_EPOCH = 1735689600

metadata = (
    "Metadata-Version: 2.1\n"
    f"Name: {name}\n"
    f"Version: {version}\n"
    "Summary: A package built by the mod_wsgi_rs tests\n"
    "License: MIT\n"
    "Requires-Python: >=3.8\n"
    "Description-Content-Type: text/plain\n"
    "\n"
    f"{name} exists only to be uploaded to a test package index and installed back.\n"
)
module_source = (
    f'"""{name}: a test package."""\n'
    f"__version__ = {version!r}\n"
    f"GREETING = {greeting!r}\n"
)


def record_hash(data):
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# The wheel.
dist_info = f"{module}-{version}.dist-info"
files = {
    f"{module}/__init__.py": module_source.encode(),
    f"{dist_info}/METADATA": metadata.encode(),
    f"{dist_info}/WHEEL": (
        "Wheel-Version: 1.0\n"
        "Generator: mod_wsgi_rs-tests\n"
        "Root-Is-Purelib: true\n"
        "Tag: py3-none-any\n"
    ).encode(),
}
record = "".join(f"{path},{record_hash(data)},{len(data)}\n" for path, data in files.items())
record += f"{dist_info}/RECORD,,\n"
files[f"{dist_info}/RECORD"] = record.encode()
wheel_path = os.path.join(out_dir, f"{module}-{version}-py3-none-any.whl")
with zipfile.ZipFile(wheel_path, "w", zipfile.ZIP_DEFLATED) as wheel:
    for path, data in files.items():
        info = zipfile.ZipInfo(path, FIXED_TIME)
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        wheel.writestr(info, data)

# The sdist: PKG-INFO, a pyproject.toml a build front end could use, and the source.
base = f"{module}-{version}"
sdist_files = {
    f"{base}/PKG-INFO": metadata.encode(),
    f"{base}/pyproject.toml": (
        "[build-system]\n"
        'requires = ["setuptools>=61"]\n'
        'build-backend = "setuptools.build_meta"\n'
        "\n"
        "[project]\n"
        f'name = "{name}"\n'
        f'version = "{version}"\n'
        'description = "A package built by the mod_wsgi_rs tests"\n'
    ).encode(),
    f"{base}/{module}/__init__.py": module_source.encode(),
}
sdist_path = os.path.join(out_dir, f"{base}.tar.gz")
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as sdist:
    for path, data in sdist_files.items():
        info = tarfile.TarInfo(path)
        info.size = len(data)
        info.mtime = FIXED_EPOCH
        info.mode = 0o644
        sdist.addfile(info, io.BytesIO(data))
with open(sdist_path, "wb") as f:
    f.write(raw.getvalue())

print(wheel_path)
print(sdist_path)
