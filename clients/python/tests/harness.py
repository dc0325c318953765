"""What the client's tests share: the real sandboxd binary (make build), run
as root, each test's own state dir.

SANDBOXD_BIN names the binary (default: bin/sandboxd of this repository);
SANDBOXD_TEST_UID_BASE gives the boxes of this test run their own uids.
"""

import itertools
import os
import sys
from pathlib import Path
from typing import List

import pytest

from sandboxd import Sandbox

REPO = Path(__file__).resolve().parents[3]
SANDBOXD = os.environ.get("SANDBOXD_BIN", str(REPO / "bin" / "sandboxd"))
UID_BASE = int(os.environ.get("SANDBOXD_TEST_UID_BASE", "60000"))


_turns = itertools.count()


def _host_ids() -> List[int]:
    """The uids and gids the host's accounts use: sandboxd refuses a range
    holding one (65000-65999 holds nobody)."""
    ids = []
    for db in ("/etc/passwd", "/etc/group"):
        with open(db) as f:
            ids += [int(fields[2]) for fields in (line.split(":") for line in f) if len(fields) > 2 and fields[2].isdigit()]
    return ids


def _free_thousands(count: int) -> List[int]:
    """The first count thousands of uids from UID_BASE that no host account uses."""
    taken = _host_ids()
    free: List[int] = []
    first = UID_BASE
    while len(free) < count:
        if not any(first <= i < first + 1000 for i in taken):
            free.append(first)
        first += 1000
    return free


_THOUSANDS = _free_thousands(10)


def sandboxd_args(state_dir: Path, *more: str, shared: bool = False) -> List[str]:
    """Flags of a test sandboxd: its own state dir, uids of its own among
    this run's, quiet. A sandboxd holds 1000 uids and refuses to start on
    uids another holds: a module's shared sandboxd (conftest's sb) takes the
    first 1000 of the run's, the others take turns on the next 9000 (a test
    has at most a few alive at once)."""
    base = _THOUSANDS[0] if shared else _THOUSANDS[1 + next(_turns) % 9]
    return ["--state-dir", str(state_dir), "--uid-base", str(base), "--log-level", "warn", *more]


def skip_without_run_group(err: Exception) -> None:
    """run_group is another issue's: until sandboxd has it, its tests skip,
    saying so; any other error fails them."""
    if getattr(err, "code", None) == "unknown_command":
        pytest.skip("sandboxd answers unknown_command to run_group: the server has no run_group yet")


def recover(state_dir: Path) -> None:
    """Starts sandboxd again on the state dir of a killed one: it removes the
    mounts and cgroups left (PROTOCOL.md, End of the session)."""
    Sandbox(binary=SANDBOXD, args=sandboxd_args(state_dir), stderr=sys.__stderr__).close()
    with open("/proc/self/mountinfo") as f:
        left = [line.split()[4] for line in f if line.split()[4].startswith(f"{state_dir}/")]
    assert left == [], f"mounts left under {state_dir}"
