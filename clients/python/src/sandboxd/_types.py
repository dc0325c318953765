"""The results and errors of the protocol (PROTOCOL.md), as Python types."""

import datetime
import enum
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Union


class SandboxError(Exception):
    """An error reply of sandboxd, or a failure to talk to it.

    ``code`` is the protocol's error code (``no_such_box``, ``exec_failed``,
    ...; PROTOCOL.md lists them) or one of the client's own, which sandboxd
    never sends: ``unavailable`` (:class:`SandboxUnavailable`), ``timeout``
    (:class:`SandboxTimeout`) and ``bad_reply`` (a reply the client cannot
    read, or an unsupported protocol version).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __reduce__(self) -> Any:
        # copy and pickle rebuild an exception from its args, which here are
        # not the constructor's (the subclasses take no code).
        return (_rebuild_error, (type(self), self.code, self.message))


def _rebuild_error(cls: "type[SandboxError]", code: str, message: str) -> SandboxError:
    error = cls.__new__(cls)
    SandboxError.__init__(error, code, message)
    return error


class SandboxUnavailable(SandboxError):
    """sandboxd could not be started, or it exited or closed its output.

    The message says how it ended and the last lines it logged. Every request
    in flight, and every later one, fails with this error.
    """

    def __init__(self, message: str) -> None:
        super().__init__("unavailable", message)


class SandboxTimeout(SandboxError, TimeoutError):
    """No reply came within the request's timeout.

    The request goes on in sandboxd (a run is bounded only by its own limits)
    and its late reply is dropped; the connection stays usable.
    """

    def __init__(self, message: str) -> None:
        super().__init__("timeout", message)


class Verdict(str, enum.Enum):
    """A run's ``limit_verdict``; compares equal to the protocol's string."""

    OK = "OK"
    SIGNALED = "Signaled"
    CPU_TIME_LIMIT_EXCEEDED = "CPUTimeLimitExceeded"
    REAL_TIME_LIMIT_EXCEEDED = "RealTimeLimitExceeded"
    IDLENESS_TIME_LIMIT_EXCEEDED = "IdlenessTimeLimitExceeded"
    MEMORY_LIMIT_EXCEEDED = "MemoryLimitExceeded"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RunResult:
    """The reply to ``run``: times in seconds, memory in bytes.

    ``exit_code`` is 0 to 255 for ``OK``, minus the signal number for
    ``Signaled``, and None when a limit was exceeded.
    """

    limit_verdict: Verdict
    exit_code: Optional[int]
    real_time: float
    cpu_time: float
    idleness_time: float
    memory: int

    @classmethod
    def from_reply(cls, reply: Mapping[str, Any]) -> "RunResult":
        return cls(
            limit_verdict=Verdict(reply["limit_verdict"]),
            exit_code=reply.get("exit_code"),
            real_time=float(reply["real_time"]),
            cpu_time=float(reply["cpu_time"]),
            idleness_time=float(reply["idleness_time"]),
            memory=int(reply["memory"]),
        )


@dataclass(frozen=True)
class GroupResult:
    """The reply to ``run_group``: ``results[i]`` is program i's, and
    ``exit_order`` lists the programs' indexes in the order they ended."""

    results: List[RunResult]
    exit_order: List[int]

    @classmethod
    def from_reply(cls, reply: Mapping[str, Any]) -> "GroupResult":
        return cls(
            results=[RunResult.from_reply(r) for r in reply["results"]],
            exit_order=[int(i) for i in reply["exit_order"]],
        )


@dataclass(frozen=True)
class FileEntry:
    """An entry of ``list_files``: ``type`` is file, dir, symlink or other;
    ``mode`` the permission bits."""

    name: str
    type: str
    size: int
    mode: int


@dataclass(frozen=True)
class FileChunk:
    """The reply to one ``read_file``: ``content`` is bytes (base64 on the
    wire) or str (utf8), ``size`` the whole file's, and ``truncated`` tells
    that bytes remain past what was read."""

    content: Union[bytes, str]
    size: int
    truncated: bool


@dataclass(frozen=True)
class InstallResult:
    """The reply to ``install_package``, the seed's nine fields: ``memory``
    in kilobytes, times in seconds; ``exit_status`` is None when the runtime
    was installed, else isolate's ``RE``, ``TO`` or ``SG``."""

    memory: Optional[int]
    exit_code: Optional[int]
    exit_signal: Optional[int]
    exit_message: Optional[str]
    exit_status: Optional[str]
    stdout: str
    stderr: str
    cpu_time: Optional[float]
    wall_time: Optional[float]

    @property
    def installed(self) -> bool:
        return self.exit_status is None

    @classmethod
    def from_reply(cls, reply: Mapping[str, Any]) -> "InstallResult":
        return cls(**{name: reply[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Runtime:
    """An installed runtime, as ``list_runtimes`` gives it."""

    id: int
    name: str
    created_at: datetime.datetime  # UTC

    @classmethod
    def from_reply(cls, entry: Mapping[str, Any]) -> "Runtime":
        return cls(int(entry["id"]), entry["name"], parse_time(entry["created_at"]))


@dataclass(frozen=True)
class VersionInfo:
    """The reply to ``version``."""

    version: str
    protocol: int


def parse_time(text: str) -> datetime.datetime:
    """Parses an RFC 3339 UTC time such as ``2026-11-22T06:37:21.259Z``
    (Python 3.9's fromisoformat takes neither ``Z`` nor any fraction
    length)."""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    date, _, zone = text.partition("+")
    if "." in date:
        whole, fraction = date.split(".")
        date = f"{whole}.{fraction[:6]:0<6}"
    return datetime.datetime.fromisoformat(f"{date}+{zone}" if zone else date)
