"""install_package, list_runtimes, remove_runtime and run with a runtime,
through the host's real nix daemon (make deps sets it up)."""

import datetime
import sys
import time
from pathlib import Path
from typing import Any, Dict

import pytest
from harness import SANDBOXD, sandboxd_args

from sandboxd import Sandbox, SandboxError

# Offline: a derivation of builtins only, which nix-shell need not build.
SHELL_NIX = """derivation {
  name = "client-test-runtime"; system = builtins.currentSystem; builder = "/bin/sh";
  CLIENT_VAR = "from the runtime %s";
}
"""
INSTALL_LIMITS: Dict[str, Any] = dict(wall_time=60, cpu_time=30, memory=512000, max_number_of_processes=64)


def test_runtime_lifecycle(tmp_path: Path) -> None:
    nonce = str(time.time_ns())
    with Sandbox(SANDBOXD, sandboxd_args(tmp_path, "--nix-config", "substituters ="), stderr=sys.__stderr__) as sb:
        try:
            r = sb.install_package("py", SHELL_NIX % nonce, extra_time=0.5, max_open_files=256, **INSTALL_LIMITS)
        except SandboxError as err:
            if err.code == "nix_unavailable":
                pytest.skip(f"nix is not set up on this host (scripts/setup-nix.sh): {err.message}")
            raise
        assert r.installed and r.exit_status is None and r.exit_code == 0, r
        assert isinstance(r.memory, int) and r.wall_time is not None and r.wall_time > 0

        [rt] = sb.list_runtimes()
        assert rt.name == "py" and rt.id >= 1
        assert rt.created_at.tzinfo == datetime.timezone.utc
        assert abs((datetime.datetime.now(datetime.timezone.utc) - rt.created_at).total_seconds()) < 120

        run = sb.run(["sh", "-c", "echo $CLIENT_VAR"], runtime="py", stdout="out", cpu_time_limit=5, processes_limit=4)
        assert run.exit_code == 0 and sb.read_file("out") == f"from the runtime {nonce}\n".encode()

        with pytest.raises(SandboxError) as e:
            sb.install_package("py", SHELL_NIX % nonce, **INSTALL_LIMITS)
        assert e.value.code == "runtime_exists"
        assert sb.install_package("py", SHELL_NIX % nonce, replace=True, **INSTALL_LIMITS).installed
        assert [x.id for x in sb.list_runtimes()] == [rt.id]

        failed = sb.install_package("bad", "this is not nix", **INSTALL_LIMITS)
        assert not failed.installed and failed.exit_status == "RE" and "error" in failed.stderr

        sb.remove_runtime("py")
        assert sb.list_runtimes() == []
        with pytest.raises(SandboxError) as e:
            sb.remove_runtime("py")
        assert e.value.code == "no_such_runtime"
        with pytest.raises(SandboxError) as e:
            sb.install_package("py", SHELL_NIX % nonce, wall_time=60, cpu_time=30, memory=0, max_number_of_processes=64)
        assert e.value.code == "invalid_argument"
