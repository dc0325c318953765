"""The blocking client: Sandbox and Box."""

import concurrent.futures
import copy
import itertools
import os
import subprocess
import sys
import threading
from typing import IO, Any, Dict, Generic, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

from . import _ops, _wire
from ._types import FileChunk, FileEntry, GroupResult, InstallResult, RunResult, Runtime, SandboxError
from ._types import SandboxTimeout, SandboxUnavailable, VersionInfo

T = TypeVar("T")
Content = Union[bytes, bytearray, memoryview, str]


class Sandbox:
    """A sandboxd process, spawned as a child and driven over its stdin and
    stdout.

    ``args`` are sandboxd's flags (``--state-dir``, ``--uid-base``,
    ``--parallel``, ...). ``env`` is sandboxd's environment, which runs
    without an ``env`` of their own inherit. sandboxd's log lines go to
    ``stderr`` (default: this process's ``sys.stderr``); the last ones are
    kept for the error that tells how sandboxd ended. ``timeout`` is the
    default time, in seconds, to wait for each reply (None: no limit; a run
    is bounded by its own limits). ``max_line`` is sandboxd's ``--max-line``,
    found in ``args`` when not given (a longer request fails with
    ``line_too_long`` before it is sent).

    A Sandbox can be shared between threads: each request carries an id and
    requests are pipelined, so threads driving different boxes run in
    parallel (up to sandboxd's ``--parallel``). Leaving the ``with`` block,
    or :meth:`close`, closes sandboxd's stdin: it finishes what is in flight,
    closes every box and exits.

    Methods raise :class:`SandboxError` for an error reply, with the
    protocol's ``code``, and its subclasses :class:`SandboxUnavailable` when
    sandboxd is missing or has died, :class:`SandboxTimeout` when no reply
    came in time.
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
        self.timeout = timeout
        self._limit = _wire.max_line(args) if max_line is None else max_line
        self._tail = _wire.StderrTail(sys.stderr if stderr is None else stderr)
        self._ids = itertools.count(1)
        self._state = threading.Lock()  # _pending, _failure, _closed
        self._send = threading.Lock()  # whole lines on sandboxd's stdin
        self._pending: Dict[int, "concurrent.futures.Future[Dict[str, Any]]"] = {}
        self._failure: Optional[SandboxError] = None
        self._closed = False
        try:
            self._proc = subprocess.Popen(
                [binary, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=None if env is None else dict(env),
            )
        except OSError as e:
            raise _wire.not_started(binary, e) from e
        assert self._proc.stdin and self._proc.stdout and self._proc.stderr
        self._stdin, self._stdout, self._stderr = self._proc.stdin, self._proc.stdout, self._proc.stderr
        self._stderr_reader = threading.Thread(target=self._read_stderr, name="sandboxd-stderr", daemon=True)
        self._reply_reader = threading.Thread(target=self._read_replies, name="sandboxd-replies", daemon=True)
        self._stderr_reader.start()
        self._reply_reader.start()
        try:
            self.server_version: VersionInfo = _wire.check_protocol(self.version())
        except BaseException:
            self.close(timeout=5)
            raise

    @property
    def pid(self) -> int:
        """sandboxd's process id."""
        return self._proc.pid

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self, timeout: Optional[float] = 60.0) -> int:
        """Closes sandboxd's stdin and waits for it to exit; returns its exit
        status. Past ``timeout`` seconds it is stopped with SIGTERM (runs in
        flight are killed and answered ``shutting_down``), then SIGKILL."""
        with self._state:
            already = self._closed
            self._closed = True
        if not already:
            with self._send:
                try:
                    self._stdin.close()
                except OSError:
                    pass
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._reply_reader.join()
        self._stderr_reader.join()
        return self._proc.returncode

    # Transport.

    def _read_stderr(self) -> None:
        while True:
            chunk = os.read(self._stderr.fileno(), 65536)
            if not chunk:
                return
            self._tail.feed(chunk)

    def _read_replies(self) -> None:
        try:
            for line in self._stdout:
                id, reply = _wire.decode(line)
                self._deliver(id, reply)
            try:
                returncode: Optional[int] = self._proc.wait(5)
            except subprocess.TimeoutExpired:
                returncode = None
            self._stderr_reader.join(1)
            failure: SandboxError = _wire.unavailable(self.binary, returncode, self._tail)
        except SandboxError as e:
            failure = e
        with self._state:
            self._failure = failure
            waiting = list(self._pending.values())
            self._pending.clear()
        for future in waiting:
            future.set_exception(copy.copy(failure))

    def _deliver(self, id: Optional[int], reply: Dict[str, Any]) -> None:
        with self._state:
            if id is None:
                # Only a request sandboxd could not read gets no id: that
                # cannot be matched, so it fails whatever is in flight.
                waiting = list(self._pending.values())
                self._pending.clear()
            else:
                future = self._pending.pop(id, None)  # None: timed out
                waiting = [future] if future else []
        for future in waiting:
            future.set_result(reply)

    def _post(self, request: Dict[str, Any]) -> Tuple[int, "concurrent.futures.Future[Dict[str, Any]]"]:
        """Sends a request; its reply, or the failure of sandboxd, comes
        through the future."""
        future: "concurrent.futures.Future[Dict[str, Any]]" = concurrent.futures.Future()
        with self._state:
            if self._closed:
                raise SandboxUnavailable("the Sandbox is closed")
            if self._failure is not None:
                raise copy.copy(self._failure)
            id = next(self._ids)
            line = _wire.encode(request, id, self._limit)
            self._pending[id] = future
        try:
            with self._send:
                self._stdin.write(line)
                self._stdin.flush()
        except (OSError, ValueError):  # a broken pipe, or stdin closed meanwhile
            with self._state:
                self._pending.pop(id, None)
            self._reply_reader.join(10)  # it tells how sandboxd ended
            raise copy.copy(self._failure) if self._failure else SandboxUnavailable("sandboxd's stdin is closed")
        return id, future

    def _roundtrip(self, request: Dict[str, Any], timeout: Optional[float]) -> Dict[str, Any]:
        id, future = self._post(request)
        try:
            reply = future.result(timeout)
        except concurrent.futures.TimeoutError:
            with self._state:
                self._pending.pop(id, None)
            raise SandboxTimeout(f"no reply to {request['command']} within {timeout} s") from None
        return _wire.checked(reply)

    def _submit(self, op: "_ops.Op[T]") -> "Pending[T]":
        request = next(op)
        id, future = self._post(request)
        return Pending(self, id, request["command"], future, op)

    def _drive(self, op: "_ops.Op[T]", timeout: Optional[float]) -> T:
        timeout = self.timeout if timeout is None else timeout
        try:
            request = next(op)
            while True:
                request = op.send(self._roundtrip(request, timeout))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    # Commands (PROTOCOL.md). timeout=None means the Sandbox's own.

    def run(
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
        """Runs a program in a box (default box 0). Limits in seconds and
        bytes; stdio are paths in the box (absent: /dev/null); ``env``
        absent: sandboxd's own environment. :meth:`submit_run` is the same,
        without waiting."""
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
        return self._drive(op, timeout)

    def submit_run(
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
    ) -> "Pending[RunResult]":
        """Sends a run and returns at once: :meth:`Pending.result` waits for
        its result, :meth:`Pending.cancel` ends it first (from any thread)."""
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
        return self._submit(op)

    def run_group(
        self,
        programs: Sequence[Mapping[str, Any]],
        pipes: Sequence[Mapping[str, Any]] = (),
        *,
        idleness_time_limit: Optional[float] = None,
        timeout: Optional[float] = None,
    ) -> GroupResult:
        """Runs programs together, each in its own box, joined by pipes.

        Each program is a mapping of run's fields (``box``, ``argv``,
        limits, ...); each pipe is ``{"from": {"program": I, "fd": A},
        "to": {"program": J, "fd": B}}``. ``idleness_time_limit`` bounds the
        whole group's idleness (deadlocks)."""
        return self._drive(_ops.run_group(programs, pipes, idleness_time_limit), timeout)

    def submit_run_group(
        self,
        programs: Sequence[Mapping[str, Any]],
        pipes: Sequence[Mapping[str, Any]] = (),
        *,
        idleness_time_limit: Optional[float] = None,
    ) -> "Pending[GroupResult]":
        """:meth:`run_group` without waiting, as :meth:`submit_run`."""
        return self._submit(_ops.run_group(programs, pipes, idleness_time_limit))

    def cancel(self, target: int, *, timeout: Optional[float] = None) -> None:
        """Ends the run or run_group whose request id is ``target``
        (:attr:`Pending.id`), queued or running: it is answered with the
        error ``cancelled`` before this returns. ``no_such_request``: no such
        request is in flight (it was answered already)."""
        self._drive(_ops.cancel(target), timeout)

    def open_box(
        self,
        *,
        quota_space: Optional[int] = None,
        quota_inodes: Optional[int] = None,
        dirs: Optional[Sequence[str]] = None,
        network: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> "Box":
        """Opens a box; ``with sb.open_box() as box:`` closes it after.
        ``network="loopback"`` brings up the box's own loopback (no other
        network, ever)."""
        return Box(self, self._drive(_ops.open_box(quota_space, quota_inodes, dirs, network), timeout))

    def box(self, id: int) -> "Box":
        """A handle on a box that is already open (box 0 always is)."""
        return Box(self, id)

    def close_box(self, box: int, *, timeout: Optional[float] = None) -> None:
        self._drive(_ops.close_box(box), timeout)

    def reset_box(self, box: int = 0, *, timeout: Optional[float] = None) -> None:
        self._drive(_ops.reset_box(box), timeout)

    def box_path(self, box: int = 0, *, timeout: Optional[float] = None) -> str:
        """The host path of the box's /space."""
        return self._drive(_ops.box_path(box), timeout)

    def write_file(
        self, path: str, content: Content, *, mode: Optional[int] = None, box: int = 0, timeout: Optional[float] = None
    ) -> int:
        """Writes a file in the box's /space (bytes as base64, str as UTF-8
        text); returns its size."""
        return self._drive(_ops.write_file(path, content, mode, box), timeout)

    def read_file(
        self,
        path: str,
        *,
        offset: int = 0,
        max_bytes: Optional[int] = None,
        box: int = 0,
        timeout: Optional[float] = None,
    ) -> bytes:
        """Reads a file from ``offset`` to its end, or ``max_bytes`` of it,
        in as many requests as it takes."""
        return self._drive(_ops.read_file(path, offset, max_bytes, box), timeout)

    def read_file_chunk(
        self,
        path: str,
        *,
        offset: int = 0,
        max_bytes: Optional[int] = None,
        encoding: str = "utf8",
        box: int = 0,
        timeout: Optional[float] = None,
    ) -> FileChunk:
        """One ``read_file`` request: ``encoding`` "utf8" gives str content,
        "base64" bytes; ``max_bytes`` defaults to sandboxd's 1 MiB."""
        return self._drive(_ops.read_file_chunk(path, offset, max_bytes, encoding, box), timeout)

    def list_files(
        self, path: Optional[str] = None, *, box: int = 0, timeout: Optional[float] = None
    ) -> List[FileEntry]:
        return self._drive(_ops.list_files(path, box), timeout)

    def remove_file(self, path: str, *, box: int = 0, timeout: Optional[float] = None) -> None:
        self._drive(_ops.remove_file(path, box), timeout)

    def stats(self, *, timeout: Optional[float] = None) -> Dict[str, Any]:
        """What a metrics exporter reads (PROTOCOL.md, ``stats``), as sent."""
        return self._drive(_ops.stats(), timeout)

    def version(self, *, timeout: Optional[float] = None) -> VersionInfo:
        return self._drive(_ops.version(), timeout)

    def install_package(
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
        """Installs a runtime from the text of a shell.nix. Units are the
        seed's: seconds, and kilobytes for ``memory`` and ``max_file_size``.
        A failed install is a result (``installed`` False), not an error."""
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
        return self._drive(op, timeout)

    def list_runtimes(self, *, timeout: Optional[float] = None) -> List[Runtime]:
        return self._drive(_ops.list_runtimes(), timeout)

    def remove_runtime(self, name: str, *, timeout: Optional[float] = None) -> None:
        self._drive(_ops.remove_runtime(name), timeout)

    def request(self, command: str, *, timeout: Optional[float] = None, **fields: Any) -> Dict[str, Any]:
        """Any request, as the protocol spells it; returns the reply's
        fields (without id)."""
        return self._drive(_ops.raw(command, fields), timeout)


class Pending(Generic[T]):
    """A run or run_group sent and not yet waited for
    (:meth:`Sandbox.submit_run`, :meth:`Sandbox.submit_run_group`).

    Any thread may wait for its result or cancel it. ``id`` is its request
    id, the ``target`` of :meth:`Sandbox.cancel`.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        id: int,
        command: str,
        future: "concurrent.futures.Future[Dict[str, Any]]",
        op: "_ops.Op[T]",
    ) -> None:
        self.sandbox = sandbox
        self.id = id
        self._command = command
        self._future = future
        self._op = op
        self._lock = threading.Lock()  # _outcome
        self._outcome: Optional[Tuple[Optional[T], Optional[SandboxError]]] = None

    def __repr__(self) -> str:
        return f"Pending({self._command} {self.id})"

    def done(self) -> bool:
        """Whether the reply came (or sandboxd ended)."""
        return self._future.done()

    def result(self, timeout: Optional[float] = None) -> T:
        """Waits for the result (``timeout`` None: the Sandbox's own) and
        returns it, or raises its error: ``cancelled`` after a cancel. A
        :class:`SandboxTimeout` leaves the request in flight: wait again, or
        cancel it."""
        timeout = self.sandbox.timeout if timeout is None else timeout
        try:
            reply = self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise SandboxTimeout(f"no reply to {self._command} within {timeout} s") from None
        with self._lock:
            if self._outcome is None:
                try:
                    self._outcome = (_ops.finish(self._op, _wire.checked(reply)), None)
                except SandboxError as e:
                    self._outcome = (None, e)
            value, error = self._outcome
        if error is not None:
            raise copy.copy(error)
        return value  # type: ignore[return-value]

    def cancel(self, *, timeout: Optional[float] = None) -> None:
        """Ends the request (``cancel``): once this returns, :meth:`result`
        raises ``cancelled``. ``no_such_request`` when it was answered
        already: :meth:`result` has its own reply."""
        self.sandbox.cancel(self.id, timeout=timeout)


class Box:
    """A box of a Sandbox: its commands, with ``box`` filled in."""

    def __init__(self, sandbox: Sandbox, id: int) -> None:
        self.sandbox = sandbox
        self.id = id

    def __repr__(self) -> str:
        return f"Box({self.id})"

    def __enter__(self) -> "Box":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def run(
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
        return self.sandbox.run(
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

    def submit_run(
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
    ) -> Pending[RunResult]:
        return self.sandbox.submit_run(
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

    def write_file(
        self, path: str, content: Content, *, mode: Optional[int] = None, timeout: Optional[float] = None
    ) -> int:
        return self.sandbox.write_file(path, content, mode=mode, box=self.id, timeout=timeout)

    def read_file(
        self, path: str, *, offset: int = 0, max_bytes: Optional[int] = None, timeout: Optional[float] = None
    ) -> bytes:
        return self.sandbox.read_file(path, offset=offset, max_bytes=max_bytes, box=self.id, timeout=timeout)

    def read_file_chunk(
        self,
        path: str,
        *,
        offset: int = 0,
        max_bytes: Optional[int] = None,
        encoding: str = "utf8",
        timeout: Optional[float] = None,
    ) -> FileChunk:
        return self.sandbox.read_file_chunk(
            path, offset=offset, max_bytes=max_bytes, encoding=encoding, box=self.id, timeout=timeout
        )

    def list_files(self, path: Optional[str] = None, *, timeout: Optional[float] = None) -> List[FileEntry]:
        return self.sandbox.list_files(path, box=self.id, timeout=timeout)

    def remove_file(self, path: str, *, timeout: Optional[float] = None) -> None:
        self.sandbox.remove_file(path, box=self.id, timeout=timeout)

    def path(self, *, timeout: Optional[float] = None) -> str:
        """The host path of the box's /space (``box_path``)."""
        return self.sandbox.box_path(self.id, timeout=timeout)

    def reset(self, *, timeout: Optional[float] = None) -> None:
        """Empties /space and /tmp (``reset_box``)."""
        self.sandbox.reset_box(self.id, timeout=timeout)

    def close(self, *, timeout: Optional[float] = None) -> None:
        """Kills the box's processes and deletes its files (``close_box``)."""
        self.sandbox.close_box(self.id, timeout=timeout)
