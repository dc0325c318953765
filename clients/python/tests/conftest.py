import os
import sys
from typing import Iterator

import pytest
from harness import SANDBOXD, sandboxd_args

from sandboxd import Sandbox


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.geteuid() != 0:
        pytest.exit("sandboxd needs root: run the tests as root", returncode=1)
    if not os.access(SANDBOXD, os.X_OK):
        pytest.exit(f"no sandboxd at {SANDBOXD}: run make build, or set SANDBOXD_BIN", returncode=1)


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One sandboxd for the tests of a module that do not stop it."""
    with Sandbox(binary=SANDBOXD, args=sandboxd_args(tmp_path_factory.mktemp("state"), shared=True), stderr=sys.__stderr__) as s:
        yield s
