"""What both transports share: framing, id matching, sandboxd's stderr."""

import codecs
import json
import signal
from typing import IO, Any, Dict, Optional, Sequence, Tuple

from ._types import SandboxError, SandboxUnavailable, VersionInfo

PROTOCOL = 1
DEFAULT_MAX_LINE = 16 << 20  # sandboxd's default --max-line
# Replies are at most an 8 MiB read_file chunk in base64, or an install's
# 2 x 256 KiB of output, escaped: well below this.
MAX_REPLY_LINE = 64 << 20


def max_line(args: Sequence[str]) -> int:
    """The --max-line that args give sandboxd (the last one wins, as in Go's
    flag package). The client refuses longer requests itself: sandboxd
    answers them without an id, which a pipelining client could not match to
    its request."""
    found = DEFAULT_MAX_LINE
    for i, arg in enumerate(args):
        name, eq, value = arg.lstrip("-").partition("=")
        if arg.startswith("-") and name == "max-line":
            try:
                found = int(value if eq else args[i + 1])
            except (IndexError, ValueError):
                pass  # sandboxd refuses these flags itself
    return found


def encode(request: Dict[str, Any], id: int, limit: int) -> bytes:
    """The request line, with its id first as sandboxd echoes it."""
    # allow_nan=False: NaN is not JSON, and sandboxd would answer bad_json
    # without an id.
    line = json.dumps({"id": id, **request}, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    if len(line) > limit:
        raise SandboxError(
            "line_too_long", f"{request['command']} request of {len(line)} bytes is longer than --max-line {limit}"
        )
    return line + b"\n"


def decode(line: bytes) -> Tuple[Optional[int], Dict[str, Any]]:
    try:
        reply = json.loads(line)
    except ValueError as e:
        raise SandboxError("bad_reply", f"sandboxd wrote a line that is not JSON: {line[:200]!r}") from e
    if not isinstance(reply, dict):
        raise SandboxError("bad_reply", f"sandboxd wrote a line that is not a JSON object: {line[:200]!r}")
    id = reply.pop("id", None)
    return (id if isinstance(id, int) else None), reply


def error_of(reply: Dict[str, Any]) -> Optional[SandboxError]:
    err = reply.get("error")
    if err is None:
        return None
    if isinstance(err, dict):
        return SandboxError(str(err.get("code", "internal")), str(err.get("message", "")))
    return SandboxError("bad_reply", f"malformed error reply {reply!r}")


def checked(reply: Dict[str, Any]) -> Dict[str, Any]:
    """The reply, or its error raised."""
    error = error_of(reply)
    if error is not None:
        raise error
    return reply


def check_protocol(info: VersionInfo) -> VersionInfo:
    if info.protocol != PROTOCOL:
        raise SandboxError(
            "bad_reply", f"sandboxd {info.version} speaks protocol {info.protocol}; this client speaks {PROTOCOL}"
        )
    return info


class StderrTail:
    """Forwards sandboxd's stderr to a text sink (or drops it) and keeps its
    last lines, which tell why sandboxd ended."""

    KEEP = 4096

    def __init__(self, sink: Optional[IO[str]]) -> None:
        self._sink = sink
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._tail = b""

    def feed(self, data: bytes) -> None:
        self._tail = (self._tail + data)[-self.KEEP :]
        if self._sink is not None:
            try:
                self._sink.write(self._decoder.decode(data))
                self._sink.flush()
            except (OSError, ValueError):  # a closed sink: keep draining, or sandboxd would block
                self._sink = None

    def text(self) -> str:
        lines = self._tail.decode("utf-8", "replace").strip().splitlines()
        return "\n".join(lines[-10:])


def unavailable(binary: str, returncode: Optional[int], tail: StderrTail) -> SandboxUnavailable:
    if returncode is None:
        how = "closed its output"
    elif returncode < 0:
        try:
            how = f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"was killed by signal {-returncode}"
    else:
        how = f"exited with status {returncode}"
    logged = tail.text()
    return SandboxUnavailable(f"sandboxd ({binary}) {how}" + (f"; its last log lines:\n{logged}" if logged else ""))


def not_started(binary: str, err: OSError) -> SandboxUnavailable:
    return SandboxUnavailable(f"cannot start sandboxd ({binary}): {err.strerror or err}")
