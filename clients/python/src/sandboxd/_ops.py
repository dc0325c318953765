"""Every command of PROTOCOL.md, without I/O.

Each op is a generator: it yields request objects, is sent each one's
successful reply, and returns the result. Sandbox (threads) and AsyncSandbox
(asyncio) drive the same ops, so the protocol's fields and units are written
down once, here. Arguments that are None are left out of the request, which
the protocol takes as absent.
"""

import base64
from typing import Any, Callable, Dict, Generator, List, Mapping, Optional, Sequence, TypeVar, Union

from ._types import FileChunk, FileEntry, GroupResult, InstallResult, RunResult, Runtime, SandboxError, VersionInfo

T = TypeVar("T")
Request = Dict[str, Any]
Reply = Dict[str, Any]
Op = Generator[Request, Reply, T]

# The most one read_file reply carries; larger files take several requests.
READ_CHUNK = 8 << 20


def request(command: str, **fields: Any) -> Request:
    return {"command": command, **{k: v for k, v in fields.items() if v is not None}}


def parsed(parse: Callable[[Reply], T], reply: Reply) -> T:
    try:
        return parse(reply)
    except (KeyError, TypeError, ValueError) as e:
        raise SandboxError("bad_reply", f"cannot read the reply {reply!r}: {e!r}") from e


def argv_list(argv: Sequence[str]) -> List[str]:
    if isinstance(argv, (str, bytes)):
        raise TypeError("argv must be a list of strings, not a single string")
    return list(argv)


def program(fields: Mapping[str, Any]) -> Request:
    """A run_group program: a run request without command and id."""
    out = {k: v for k, v in fields.items() if v is not None}
    if "argv" in out:
        out["argv"] = argv_list(out["argv"])
    return out


def run(argv: Sequence[str], **fields: Any) -> Op[RunResult]:
    if fields.get("env") is not None:
        fields["env"] = dict(fields["env"])
    reply = yield request("run", argv=argv_list(argv), **fields)
    return parsed(RunResult.from_reply, reply)


def run_group(
    programs: Sequence[Mapping[str, Any]],
    pipes: Sequence[Mapping[str, Any]],
    idleness_time_limit: Optional[float],
) -> Op[GroupResult]:
    reply = yield request(
        "run_group",
        programs=[program(p) for p in programs],
        pipes=[dict(p) for p in pipes],
        idleness_time_limit=idleness_time_limit,
    )
    return parsed(GroupResult.from_reply, reply)


def open_box(
    quota_space: Optional[int], quota_inodes: Optional[int], dirs: Optional[Sequence[str]], network: Optional[str]
) -> Op[int]:
    reply = yield request(
        "open_box",
        quota_space=quota_space,
        quota_inodes=quota_inodes,
        dirs=None if dirs is None else list(dirs),
        network=network,
    )
    return parsed(lambda r: int(r["box"]), reply)


def close_box(box: int) -> Op[None]:
    yield request("close_box", box=box)


def reset_box(box: int) -> Op[None]:
    yield request("reset_box", box=box)


def box_path(box: int) -> Op[str]:
    reply = yield request("box_path", box=box)
    return parsed(lambda r: str(r["path"]), reply)


def write_file(path: str, content: Union[bytes, bytearray, memoryview, str], mode: Optional[int], box: int) -> Op[int]:
    if isinstance(content, str):
        req = request("write_file", box=box, path=path, content=content, mode=mode)
    else:
        encoded = base64.b64encode(bytes(content)).decode("ascii")
        req = request("write_file", box=box, path=path, content_base64=encoded, mode=mode)
    reply = yield req
    return parsed(lambda r: int(r["size"]), reply)


def read_file_chunk(path: str, offset: int, max_bytes: Optional[int], encoding: str, box: int) -> Op[FileChunk]:
    reply = yield request("read_file", box=box, path=path, offset=offset, max_bytes=max_bytes, encoding=encoding)

    def chunk(r: Reply) -> FileChunk:
        content: Union[bytes, str] = str(r["content"])
        if encoding == "base64":
            content = base64.b64decode(content, validate=True)
        return FileChunk(content, int(r["size"]), bool(r["truncated"]))

    return parsed(chunk, reply)


def read_file(path: str, offset: int, max_bytes: Optional[int], box: int) -> Op[bytes]:
    """Reads from offset to the end of the file, or max_bytes of it, in as
    many requests as it takes."""
    data = bytearray()
    while True:
        want = READ_CHUNK if max_bytes is None else min(READ_CHUNK, max_bytes - len(data))
        part = yield from read_file_chunk(path, offset + len(data), want, "base64", box)
        assert isinstance(part.content, bytes)
        data += part.content
        if not part.truncated or not part.content or (max_bytes is not None and len(data) >= max_bytes):
            return bytes(data)


def list_files(path: Optional[str], box: int) -> Op[List[FileEntry]]:
    reply = yield request("list_files", box=box, path=path)
    def entries(r: Reply) -> List[FileEntry]:
        return [FileEntry(e["name"], e["type"], int(e["size"]), int(e["mode"])) for e in r["entries"]]

    return parsed(entries, reply)


def remove_file(path: str, box: int) -> Op[None]:
    yield request("remove_file", box=box, path=path)


def stats() -> Op[Reply]:
    reply = yield request("stats")
    return reply


def cancel(target: int) -> Op[None]:
    yield request("cancel", target=target)


def version() -> Op[VersionInfo]:
    reply = yield request("version")
    return parsed(lambda r: VersionInfo(str(r["version"]), int(r["protocol"])), reply)


def install_package(name: str, nix_shell: str, **fields: Any) -> Op[InstallResult]:
    reply = yield request("install_package", name=name, nix_shell=nix_shell, **fields)
    return parsed(InstallResult.from_reply, reply)


def list_runtimes() -> Op[List[Runtime]]:
    reply = yield request("list_runtimes")
    return parsed(lambda r: [Runtime.from_reply(e) for e in r["runtimes"]], reply)


def remove_runtime(name: str) -> Op[None]:
    yield request("remove_runtime", name=name)


def raw(command: str, fields: Mapping[str, Any]) -> Op[Reply]:
    if "id" in fields or "command" in fields:
        raise TypeError("the client sets command and id itself")
    reply = yield request(command, **fields)
    return reply


def finish(op: Op[T], reply: Reply) -> T:
    """The result of an op that was sent its one request elsewhere (a
    submitted run or run_group), now that its reply came."""
    try:
        op.send(reply)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise RuntimeError("an op of several requests cannot be submitted")
