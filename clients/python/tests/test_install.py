"""pip installs the client from the repository offline: its build backend
needs nothing but the standard library."""

import os
import subprocess
import sys
from pathlib import Path

from harness import REPO, SANDBOXD, sandboxd_args

CLIENT = REPO / "clients" / "python"

CHECK = """
import pathlib, sys, sandboxd
package = pathlib.Path(sandboxd.__file__).parent
assert package.is_relative_to(sys.prefix), package
assert (package / "py.typed").is_file()
with sandboxd.Sandbox(sys.argv[1], sys.argv[2:]) as sb:
    r = sb.run(["sh", "-c", "exit 9"], cpu_time_limit=1, processes_limit=2)
print(r.limit_verdict, r.exit_code)
"""


def test_pip_installs_the_client_offline_into_a_fresh_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # This pip installs into the new venv (a pip of its own costs seconds).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", str(CLIENT)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    check = subprocess.run(
        [str(venv / "bin" / "python"), "-c", CHECK, SANDBOXD, *sandboxd_args(tmp_path / "state")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout == "OK 9\n"


def test_the_package_and_a_judge_using_it_type_check_strictly(tmp_path: Path) -> None:
    # The sources, then the example judge as a judge author's code sees the
    # installed package: mypy reads its types only through py.typed.
    for target, cwd in [(CLIENT / "src" / "sandboxd", REPO), (REPO / "examples" / "judge" / "judge.py", tmp_path)]:
        mypy = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), str(target)],
            capture_output=True,
            text=True,
            cwd=cwd,
        )
        assert mypy.returncode == 0, mypy.stdout + mypy.stderr
