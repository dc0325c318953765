"""The PEP 517 build backend of the sandboxd client.

It needs nothing but the standard library, so that ``pip install
./clients/python`` works offline, with pip's build isolation, on a machine
that reaches no package index (setuptools would have to be fetched). It
builds a pure-Python wheel of ``src/sandboxd``, an editable wheel (PEP 660)
and an sdist. Metadata come from pyproject.toml's ``[project]`` table and
the version from ``src/sandboxd/__init__.py``.
"""

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile
from typing import Dict, Iterator, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")
PACKAGE = "sandboxd"
EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed file times: the same tree builds the same wheel


def _project() -> Dict[str, str]:
    """The string fields of [project] (a line parser: tomllib is Python >=
    3.11 only), and the version."""
    fields: Dict[str, str] = {}
    table = None
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                table = line
            elif table == "[project]":
                m = re.fullmatch(r'([\w-]+)\s*=\s*"([^"]*)"', line)
                if m:
                    fields[m[1]] = m[2]
    with open(os.path.join(SRC, PACKAGE, "__init__.py"), encoding="utf-8") as f:
        m = re.search(r'^__version__ = "([^"]+)"$', f.read(), re.M)
    if m is None:
        raise RuntimeError(f"no __version__ in src/{PACKAGE}/__init__.py")
    fields["version"] = m[1]
    return fields


def _metadata(project: Dict[str, str]) -> bytes:
    with open(os.path.join(ROOT, project["readme"]), encoding="utf-8") as f:
        readme = f.read()
    return (
        "Metadata-Version: 2.1\n"
        f"Name: {project['name']}\n"
        f"Version: {project['version']}\n"
        f"Summary: {project['description']}\n"
        f"Requires-Python: {project['requires-python']}\n"
        "Description-Content-Type: text/markdown\n"
        f"\n{readme}"
    ).encode()


def _package_files() -> Iterator[Tuple[str, str]]:
    """(name in the archive, path) of the package's files."""
    for dirpath, dirnames, filenames in os.walk(os.path.join(SRC, PACKAGE)):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith((".py", "py.typed")):
                path = os.path.join(dirpath, name)
                yield os.path.relpath(path, SRC).replace(os.sep, "/"), path


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _wheel(directory: str, entries: List[Tuple[str, bytes]]) -> str:
    project = _project()
    dist = f"{project['name']}-{project['version']}"
    info = f"{dist}.dist-info"
    entries = entries + [
        (f"{info}/METADATA", _metadata(project)),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: sandboxd_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
    ]
    record = "".join(
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for name, data in entries
    )
    entries.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode()))
    filename = f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, filename), "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in entries:
            member = zipfile.ZipInfo(name, EPOCH)
            member.external_attr = 0o644 << 16
            member.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(member, data)
    return filename


def build_wheel(
    wheel_directory: str, config_settings: Optional[dict] = None, metadata_directory: Optional[str] = None
) -> str:
    return _wheel(wheel_directory, [(name, _read(path)) for name, path in _package_files()])


def build_editable(
    wheel_directory: str, config_settings: Optional[dict] = None, metadata_directory: Optional[str] = None
) -> str:
    # A .pth file puts src/ on sys.path: edits take effect without a reinstall.
    return _wheel(wheel_directory, [(f"__editable__.{PACKAGE}.pth", (SRC + "\n").encode())])


def build_sdist(sdist_directory: str, config_settings: Optional[dict] = None) -> str:
    project = _project()
    dist = f"{project['name']}-{project['version']}"
    files = [("pyproject.toml", os.path.join(ROOT, "pyproject.toml"))]
    files.append((project["readme"], os.path.join(ROOT, project["readme"])))
    files.append(("build_backend/sandboxd_build.py", os.path.abspath(__file__)))
    files += [(f"src/{name}", path) for name, path in _package_files()]
    filename = f"{dist}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as sdist:
        for name, data in [("PKG-INFO", _metadata(project))] + [(n, _read(p)) for n, p in files]:
            member = tarfile.TarInfo(f"{dist}/{name}")
            member.size, member.mode, member.mtime = len(data), 0o644, 315532800  # EPOCH
            sdist.addfile(member, io.BytesIO(data))
    return filename
