"""Python client of sandboxd: spawn it, run programs in its boxes.

    from sandboxd import Sandbox, SandboxError

    with Sandbox(binary="bin/sandboxd") as sb:
        sb.write_file("in.txt", "3 4\n")
        r = sb.run(["sh", "-c", "read a b; echo $((a+b))"], cpu_time_limit=1, processes_limit=4,
                   stdin="in.txt", stdout="out.txt")
        print(r.limit_verdict, r.exit_code, sb.read_file("out.txt"))

:class:`Sandbox` blocks (and can be shared between threads);
:class:`AsyncSandbox` is the same for asyncio. The protocol they speak is
sandboxd's PROTOCOL.md.
"""

from ._async import AsyncBox, AsyncPending, AsyncSandbox
from ._sync import Box, Pending, Sandbox
from ._types import FileChunk, FileEntry, GroupResult, InstallResult, RunResult, Runtime, SandboxError
from ._types import SandboxTimeout, SandboxUnavailable, Verdict, VersionInfo

__version__ = "0.1.0"

__all__ = [
    "AsyncBox",
    "AsyncPending",
    "AsyncSandbox",
    "Box",
    "FileChunk",
    "FileEntry",
    "GroupResult",
    "InstallResult",
    "Pending",
    "RunResult",
    "Runtime",
    "Sandbox",
    "SandboxError",
    "SandboxTimeout",
    "SandboxUnavailable",
    "Verdict",
    "VersionInfo",
]
