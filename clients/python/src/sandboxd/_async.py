"""The asyncio client: AsyncSandbox and AsyncBox."""

import asyncio
import copy
import itertools
import sys
from typing import IO, Any, Dict, Generic, List, Mapping, Optional, Sequence, Tuple, TypeVar

from . import _ops, _wire
from ._sync import Content
from ._types import FileChunk, FileEntry, GroupResult, InstallResult, RunResult, Runtime, SandboxError
from ._types import SandboxTimeout, SandboxUnavailable, VersionInfo

T = TypeVar("T")


class AsyncSandbox:
    """A sandboxd process driven from asyncio, with pipelined requests.

    Every request carries an id, and replies are matched to their requests
    as they come: many coroutines can drive many boxes at once through one
    sandboxd (which runs up to ``--parallel`` requests at once, one at a time
    per box)::

        async with AsyncSandbox(binary="bin/sandboxd") as sb:
            boxes = [await sb.open_box() for _ in range(4)]
            results = await asyncio.gather(*(b.run(["./sol"], cpu_time_limit=1, processes_limit=1) for b in boxes))

    Arguments, methods and errors are those of :class:`Sandbox`, as
    coroutines. ``async with`` (or ``await sb.start()``) spawns sandboxd.
    """

    def __init__(
        self,
        binary: str = "sandboxd",
        args: Sequence[str] = (),
        *,
        env: Optional[Mapping[str, str]] = None,
        stderr: Optional[IO[str]] = None,
        timeout: Optional[float] = None,
        max_line: Optional[int] = None,
    ) -> None:
        self.binary = binary
        self.args = list(args)
        self.env = None if env is None else dict(env)
        self.timeout = timeout
        self._limit = _wire.max_line(args) if max_line is None else max_line
        self._tail = _wire.StderrTail(sys.stderr if stderr is None else stderr)
        self._ids = itertools.count(1)
        self._pending: Dict[int, "asyncio.Future[Dict[str, Any]]"] = {}
        self._failure: Optional[SandboxError] = None
        self._closed = False
        self._proc: Optional[asyncio.subprocess.Process] = None

    async def start(self) -> "AsyncSandbox":
        """Spawns sandboxd and checks that it answers; returns self."""
        try:
            self._proc = await asyncio.create_subprocess_exec(
                self.binary,
                *self.args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self.env,
                limit=_wire.MAX_REPLY_LINE,
            )
        except OSError as e:
            raise _wire.not_started(self.binary, e) from e
        self._stderr_reader = asyncio.ensure_future(self._read_stderr(self._proc))
        self._reply_reader = asyncio.ensure_future(self._read_replies(self._proc))
        try:
            self.server_version: VersionInfo = _wire.check_protocol(await self.version())
        except BaseException:
            await self.close(timeout=5)
            raise
        return self

    @property
    def pid(self) -> int:
        return self._started().pid

    async def __aenter__(self) -> "AsyncSandbox":
        return await self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def close(self, timeout: Optional[float] = 60.0) -> int:
        """As :meth:`Sandbox.close`."""
        proc = self._started()
        if not self._closed:
            self._closed = True
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        await asyncio.gather(self._reply_reader, self._stderr_reader)
        assert proc.returncode is not None
        return proc.returncode

    # Transport.

    def _started(self) -> asyncio.subprocess.Process:
        if self._proc is None:
            raise SandboxUnavailable("the AsyncSandbox is not started: use async with, or await start()")
        return self._proc

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while True:
            chunk = await proc.stderr.read(65536)
            if not chunk:
                return
            self._tail.feed(chunk)

    async def _read_replies(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                try:
                    line = await proc.stdout.readline()
                except ValueError as e:  # longer than MAX_REPLY_LINE
                    raise SandboxError("bad_reply", f"sandboxd wrote a reply line too long to read: {e}") from e
                if not line:
                    break
                self._deliver(*_wire.decode(line))
            try:
                returncode: Optional[int] = await asyncio.wait_for(proc.wait(), 5)
            except asyncio.TimeoutError:
                returncode = None
            await asyncio.wait([self._stderr_reader], timeout=1)
            failure: SandboxError = _wire.unavailable(self.binary, returncode, self._tail)
        except SandboxError as e:
            failure = e
        self._failure = failure
        waiting, self._pending = self._pending, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(copy.copy(failure))

    def _deliver(self, id: Optional[int], reply: Dict[str, Any]) -> None:
        if id is None:
            # Only a request sandboxd could not read gets no id: that cannot
            # be matched, so it fails whatever is in flight.
            waiting, self._pending = list(self._pending.values()), {}
        else:
            future = self._pending.pop(id, None)  # None: timed out or cancelled
            waiting = [future] if future else []
        for future in waiting:
            if not future.done():
                future.set_result(reply)

    async def _post(self, request: Dict[str, Any]) -> Tuple[int, "asyncio.Future[Dict[str, Any]]"]:
        """Sends a request; its reply, or the failure of sandboxd, comes
        through the future."""
        proc = self._started()
        if self._closed:
            raise SandboxUnavailable("the AsyncSandbox is closed")
        if self._failure is not None:
            raise copy.copy(self._failure)
        id = next(self._ids)
        line = _wire.encode(request, id, self._limit)
        future: "asyncio.Future[Dict[str, Any]]" = asyncio.get_running_loop().create_future()
        self._pending[id] = future
        assert proc.stdin is not None
        try:
            proc.stdin.write(line)  # one whole line: tasks never interleave within it
            await proc.stdin.drain()
        except (ConnectionError, RuntimeError):  # a broken pipe, or stdin closed
            self._pending.pop(id, None)
            await asyncio.wait([self._reply_reader], timeout=10)  # it tells how sandboxd ended
            raise copy.copy(self._failure) if self._failure else SandboxUnavailable("sandboxd's stdin is closed")
        return id, future

    async def _roundtrip(self, request: Dict[str, Any], timeout: Optional[float]) -> Dict[str, Any]:
        id, future = await self._post(request)
        try:
            reply = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise SandboxTimeout(f"no reply to {request['command']} within {timeout} s") from None
        except asyncio.CancelledError:
            if request["command"] in ("run", "run_group"):
                self._cancel_unheard(id)
            raise
        finally:
            self._pending.pop(id, None)
        return _wire.checked(reply)

    def _cancel_unheard(self, target: int) -> None:
        """Sends a cancel of a run whose task was cancelled, so that the run
        ends in sandboxd too; nobody waits for either reply (dropped as they
        come), and a task being cancelled must not wait."""
        if self._closed or self._failure is not None or self._proc is None or self._proc.stdin is None:
            return
        try:
            self._proc.stdin.write(_wire.encode({"command": "cancel", "target": target}, next(self._ids), self._limit))
        except (ConnectionError, RuntimeError):
            pass  # sandboxd has gone: so has the run

    async def _submit(self, op: "_ops.Op[T]") -> "AsyncPending[T]":
        request = next(op)
        id, future = await self._post(request)
        return AsyncPending(self, id, request["command"], future, op)

    async def _drive(self, op: "_ops.Op[T]", timeout: Optional[float]) -> T:
        timeout = self.timeout if timeout is None else timeout
        try:
            request = next(op)
            while True:
                request = op.send(await self._roundtrip(request, timeout))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    # Commands: as Sandbox's (PROTOCOL.md).

    async def run(
        self,
        argv: Sequence[str],
        *,
        cpu_time_limit: float,
        processes_limit: int,
        real_time_limit: Optional[float] = None,
        idleness_time_limit: Optional[float] = None,
        memory_limit: Optional[int] = None,
        stack_limit: Optional[int] = None,
        file_size_limit: Optional[int] = None,
        open_files_limit: Optional[int] = None,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[str] = None,
        stdout: Optional[str] = None,
        stderr: Optional[str] = None,
        runtime: Optional[str] = None,
        box: int = 0,
        timeout: Optional[float] = None,
    ) -> RunResult:
        op = _ops.run(
            argv,
            box=box,
            cpu_time_limit=cpu_time_limit,
            processes_limit=processes_limit,
            real_time_limit=real_time_limit,
            idleness_time_limit=idleness_time_limit,
            memory_limit=memory_limit,
            stack_limit=stack_limit,
            file_size_limit=file_size_limit,
            open_files_limit=open_files_limit,
            env=env,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            runtime=runtime,
        )
        return await self._drive(op, timeout)

    async def submit_run(
        self,
        argv: Sequence[str],
        *,
        cpu_time_limit: float,
        processes_limit: int,
        real_time_limit: Optional[float] = None,
        idleness_time_limit: Optional[float] = None,
        memory_limit: Optional[int] = None,
        stack_limit: Optional[int] = None,
        file_size_limit: Optional[int] = None,
        open_files_limit: Optional[int] = None,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[str] = None,
        stdout: Optional[str] = None,
        stderr: Optional[str] = None,
        runtime: Optional[str] = None,
        box: int = 0,
    ) -> "AsyncPending[RunResult]":
        """Sends a run; ``await p.result()`` waits for it, ``await
        p.cancel()`` ends it first. (Cancelling the task of a :meth:`run`
        ends its run in sandboxd too.)"""
        op = _ops.run(
            argv,
            box=box,
            cpu_time_limit=cpu_time_limit,
            processes_limit=processes_limit,
            real_time_limit=real_time_limit,
            idleness_time_limit=idleness_time_limit,
            memory_limit=memory_limit,
            stack_limit=stack_limit,
            file_size_limit=file_size_limit,
            open_files_limit=open_files_limit,
            env=env,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            runtime=runtime,
        )
        return await self._submit(op)

    async def run_group(
        self,
        programs: Sequence[Mapping[str, Any]],
        pipes: Sequence[Mapping[str, Any]] = (),
        *,
        idleness_time_limit: Optional[float] = None,
        timeout: Optional[float] = None,
    ) -> GroupResult:
        return await self._drive(_ops.run_group(programs, pipes, idleness_time_limit), timeout)

    async def submit_run_group(
        self,
        programs: Sequence[Mapping[str, Any]],
        pipes: Sequence[Mapping[str, Any]] = (),
        *,
        idleness_time_limit: Optional[float] = None,
    ) -> "AsyncPending[GroupResult]":
        return await self._submit(_ops.run_group(programs, pipes, idleness_time_limit))

    async def cancel(self, target: int, *, timeout: Optional[float] = None) -> None:
        """As :meth:`Sandbox.cancel`."""
        await self._drive(_ops.cancel(target), timeout)

    async def open_box(
        self,
        *,
        quota_space: Optional[int] = None,
        quota_inodes: Optional[int] = None,
        dirs: Optional[Sequence[str]] = None,
        network: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> "AsyncBox":
        """Opens a box; ``async with await sb.open_box() as box:`` closes it
        after. ``network="loopback"`` brings up the box's own loopback."""
        return AsyncBox(self, await self._drive(_ops.open_box(quota_space, quota_inodes, dirs, network), timeout))

    def box(self, id: int) -> "AsyncBox":
        return AsyncBox(self, id)

    async def close_box(self, box: int, *, timeout: Optional[float] = None) -> None:
        await self._drive(_ops.close_box(box), timeout)

    async def reset_box(self, box: int = 0, *, timeout: Optional[float] = None) -> None:
        await self._drive(_ops.reset_box(box), timeout)

    async def box_path(self, box: int = 0, *, timeout: Optional[float] = None) -> str:
        return await self._drive(_ops.box_path(box), timeout)

    async def write_file(
        self, path: str, content: Content, *, mode: Optional[int] = None, box: int = 0, timeout: Optional[float] = None
    ) -> int:
        return await self._drive(_ops.write_file(path, content, mode, box), timeout)

    async def read_file(
        self,
        path: str,
        *,
        offset: int = 0,
        max_bytes: Optional[int] = None,
        box: int = 0,
        timeout: Optional[float] = None,
    ) -> bytes:
        return await self._drive(_ops.read_file(path, offset, max_bytes, box), timeout)

    async def read_file_chunk(
        self,
        path: str,
        *,
        offset: int = 0,
        max_bytes: Optional[int] = None,
        encoding: str = "utf8",
        box: int = 0,
        timeout: Optional[float] = None,
    ) -> FileChunk:
        return await self._drive(_ops.read_file_chunk(path, offset, max_bytes, encoding, box), timeout)

    async def list_files(
        self, path: Optional[str] = None, *, box: int = 0, timeout: Optional[float] = None
    ) -> List[FileEntry]:
        return await self._drive(_ops.list_files(path, box), timeout)

    async def remove_file(self, path: str, *, box: int = 0, timeout: Optional[float] = None) -> None:
        await self._drive(_ops.remove_file(path, box), timeout)

    async def stats(self, *, timeout: Optional[float] = None) -> Dict[str, Any]:
        """What a metrics exporter reads (PROTOCOL.md, ``stats``), as sent."""
        return await self._drive(_ops.stats(), timeout)

    async def version(self, *, timeout: Optional[float] = None) -> VersionInfo:
        return await self._drive(_ops.version(), timeout)

    async def install_package(
        self,
        name: str,
        nix_shell: str,
        *,
        wall_time: float,
        cpu_time: float,
        memory: int,
        max_number_of_processes: int,
        extra_time: Optional[float] = None,
        max_open_files: Optional[int] = None,
        max_file_size: Optional[int] = None,
        replace: Optional[bool] = None,
        timeout: Optional[float] = None,
    ) -> InstallResult:
        op = _ops.install_package(
            name,
            nix_shell,
            wall_time=wall_time,
            cpu_time=cpu_time,
            memory=memory,
            max_number_of_processes=max_number_of_processes,
            extra_time=extra_time,
            max_open_files=max_open_files,
            max_file_size=max_file_size,
            replace=replace,
        )
        return await self._drive(op, timeout)

    async def list_runtimes(self, *, timeout: Optional[float] = None) -> List[Runtime]:
        return await self._drive(_ops.list_runtimes(), timeout)

    async def remove_runtime(self, name: str, *, timeout: Optional[float] = None) -> None:
        await self._drive(_ops.remove_runtime(name), timeout)

    async def request(self, command: str, *, timeout: Optional[float] = None, **fields: Any) -> Dict[str, Any]:
        return await self._drive(_ops.raw(command, fields), timeout)


class AsyncPending(Generic[T]):
    """A run or run_group sent and not yet waited for
    (:meth:`AsyncSandbox.submit_run`, :meth:`AsyncSandbox.submit_run_group`),
    as :class:`Pending`, with coroutines."""

    def __init__(
        self, sandbox: AsyncSandbox, id: int, command: str, future: "asyncio.Future[Dict[str, Any]]", op: "_ops.Op[T]"
    ) -> None:
        self.sandbox = sandbox
        self.id = id
        self._command = command
        self._future = future
        self._op = op
        self._outcome: Optional[Tuple[Optional[T], Optional[SandboxError]]] = None

    def __repr__(self) -> str:
        return f"AsyncPending({self._command} {self.id})"

    def done(self) -> bool:
        return self._future.done()

    async def result(self, timeout: Optional[float] = None) -> T:
        """As :meth:`Pending.result`: a timeout, or the cancellation of the
        task that waits, leaves the request in flight."""
        timeout = self.sandbox.timeout if timeout is None else timeout
        try:
            reply = await asyncio.wait_for(asyncio.shield(self._future), timeout)
        except asyncio.TimeoutError:
            raise SandboxTimeout(f"no reply to {self._command} within {timeout} s") from None
        if self._outcome is None:
            try:
                self._outcome = (_ops.finish(self._op, _wire.checked(reply)), None)
            except SandboxError as e:
                self._outcome = (None, e)
        value, error = self._outcome
        if error is not None:
            raise copy.copy(error)
        return value  # type: ignore[return-value]

    async def cancel(self, *, timeout: Optional[float] = None) -> None:
        """As :meth:`Pending.cancel`."""
        await self.sandbox.cancel(self.id, timeout=timeout)


class AsyncBox:
    """A box of an AsyncSandbox: its commands, with ``box`` filled in."""

    def __init__(self, sandbox: AsyncSandbox, id: int) -> None:
        self.sandbox = sandbox
        self.id = id

    def __repr__(self) -> str:
        return f"AsyncBox({self.id})"

    async def __aenter__(self) -> "AsyncBox":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def run(
        self,
        argv: Sequence[str],
        *,
        cpu_time_limit: float,
        processes_limit: int,
        real_time_limit: Optional[float] = None,
        idleness_time_limit: Optional[float] = None,
        memory_limit: Optional[int] = None,
        stack_limit: Optional[int] = None,
        file_size_limit: Optional[int] = None,
        open_files_limit: Optional[int] = None,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[str] = None,
        stdout: Optional[str] = None,
        stderr: Optional[str] = None,
        runtime: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> RunResult:
        return await self.sandbox.run(
            argv,
            box=self.id,
            cpu_time_limit=cpu_time_limit,
            processes_limit=processes_limit,
            real_time_limit=real_time_limit,
            idleness_time_limit=idleness_time_limit,
            memory_limit=memory_limit,
            stack_limit=stack_limit,
            file_size_limit=file_size_limit,
            open_files_limit=open_files_limit,
            env=env,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            runtime=runtime,
            timeout=timeout,
        )

    async def submit_run(
        self,
        argv: Sequence[str],
        *,
        cpu_time_limit: float,
        processes_limit: int,
        real_time_limit: Optional[float] = None,
        idleness_time_limit: Optional[float] = None,
        memory_limit: Optional[int] = None,
        stack_limit: Optional[int] = None,
        file_size_limit: Optional[int] = None,
        open_files_limit: Optional[int] = None,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[str] = None,
        stdout: Optional[str] = None,
        stderr: Optional[str] = None,
        runtime: Optional[str] = None,
    ) -> AsyncPending[RunResult]:
        return await self.sandbox.submit_run(
            argv,
            box=self.id,
            cpu_time_limit=cpu_time_limit,
            processes_limit=processes_limit,
            real_time_limit=real_time_limit,
            idleness_time_limit=idleness_time_limit,
            memory_limit=memory_limit,
            stack_limit=stack_limit,
            file_size_limit=file_size_limit,
            open_files_limit=open_files_limit,
            env=env,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            runtime=runtime,
        )

    async def write_file(
        self, path: str, content: Content, *, mode: Optional[int] = None, timeout: Optional[float] = None
    ) -> int:
        return await self.sandbox.write_file(path, content, mode=mode, box=self.id, timeout=timeout)

    async def read_file(
        self, path: str, *, offset: int = 0, max_bytes: Optional[int] = None, timeout: Optional[float] = None
    ) -> bytes:
        return await self.sandbox.read_file(path, offset=offset, max_bytes=max_bytes, box=self.id, timeout=timeout)

    async def read_file_chunk(
        self,
        path: str,
        *,
        offset: int = 0,
        max_bytes: Optional[int] = None,
        encoding: str = "utf8",
        timeout: Optional[float] = None,
    ) -> FileChunk:
        return await self.sandbox.read_file_chunk(
            path, offset=offset, max_bytes=max_bytes, encoding=encoding, box=self.id, timeout=timeout
        )

    async def list_files(self, path: Optional[str] = None, *, timeout: Optional[float] = None) -> List[FileEntry]:
        return await self.sandbox.list_files(path, box=self.id, timeout=timeout)

    async def remove_file(self, path: str, *, timeout: Optional[float] = None) -> None:
        await self.sandbox.remove_file(path, box=self.id, timeout=timeout)

    async def path(self, *, timeout: Optional[float] = None) -> str:
        return await self.sandbox.box_path(self.id, timeout=timeout)

    async def reset(self, *, timeout: Optional[float] = None) -> None:
        await self.sandbox.reset_box(self.id, timeout=timeout)

    async def close(self, *, timeout: Optional[float] = None) -> None:
        await self.sandbox.close_box(self.id, timeout=timeout)
