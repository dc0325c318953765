"""AsyncSandbox against the real sandboxd: pipelining, errors, timeouts."""

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, TypeVar

import pytest
from harness import SANDBOXD, recover, sandboxd_args, skip_without_run_group

from sandboxd import AsyncSandbox, SandboxError, SandboxTimeout, SandboxUnavailable, Verdict

T = TypeVar("T")
LIMITS: Dict[str, Any] = dict(cpu_time_limit=5, processes_limit=8, real_time_limit=20)


def run_async(tmp_path: Path, test: Callable[[AsyncSandbox], Awaitable[T]], *flags: str) -> T:
    async def main() -> T:
        async with AsyncSandbox(SANDBOXD, sandboxd_args(tmp_path, *flags), stderr=sys.__stderr__) as sb:
            return await test(sb)

    return asyncio.run(main())


def test_one_process_drives_many_boxes_at_once(tmp_path: Path) -> None:
    async def test(sb: AsyncSandbox) -> None:
        boxes = [await sb.open_box() for _ in range(6)]
        # Box i sleeps longest first: replies come back in reverse order.
        script = "sleep 0.{}; echo {} > out; exit {}"
        runs = [b.run(["sh", "-c", script.format(9 - i, i, i)], **LIMITS) for i, b in enumerate(boxes)]
        start = time.monotonic()
        results = await asyncio.gather(*runs)
        elapsed = time.monotonic() - start
        assert [r.exit_code for r in results] == list(range(6))
        assert [await b.read_file("out") for b in boxes] == [f"{i}\n".encode() for i in range(6)]
        assert elapsed < 2.0, f"6 runs of 0.4-0.9 s took {elapsed:.2f} s: not in parallel (one after another: 3.9 s)"
        for b in boxes:
            await b.close()

    run_async(tmp_path, test, "--parallel", "6")


def test_commands_and_files(tmp_path: Path) -> None:
    async def test(sb: AsyncSandbox) -> None:
        assert (await sb.version()).protocol == 1 == sb.server_version.protocol
        async with await sb.open_box(quota_space=1 << 20) as box:
            assert await box.write_file("in.txt", b"2 5\n") == 4
            r = await box.run(["sh", "-c", "read a b; echo $((a*b))"], stdin="in.txt", stdout="out.txt", **LIMITS)
            assert (r.limit_verdict, r.exit_code) == (Verdict.OK, 0)
            assert await box.read_file("out.txt") == b"10\n"
            chunk = await box.read_file_chunk("out.txt", max_bytes=1)
            assert (chunk.content, chunk.size, chunk.truncated) == ("1", 3, True)
            assert [e.name for e in await box.list_files()] == ["in.txt", "out.txt"]
            assert Path(await box.path(), "in.txt").read_bytes() == b"2 5\n"
            await box.remove_file("in.txt")
            await box.reset()
            assert await box.list_files() == []
            opened = box.id
        with pytest.raises(SandboxError) as e:
            await sb.box(opened).list_files()
        assert e.value.code == "no_such_box"
        r = await sb.run(["sh", "-c", "while :; do :; done"], cpu_time_limit=0.2, processes_limit=1)
        assert r.limit_verdict == Verdict.CPU_TIME_LIMIT_EXCEEDED and r.exit_code is None
        assert (await sb.request("version"))["protocol"] == 1

    run_async(tmp_path, test)


def test_errors_of_pipelined_requests_stay_with_their_requests(tmp_path: Path) -> None:
    async def test(sb: AsyncSandbox) -> None:
        results = await asyncio.gather(
            sb.run(["true"], box=999, **LIMITS),
            sb.run(["sh", "-c", "sleep 0.2; exit 4"], **LIMITS),
            sb.read_file("missing"),
            sb.version(),
            return_exceptions=True,
        )
        assert isinstance(results[0], SandboxError) and results[0].code == "no_such_box"
        assert results[1].exit_code == 4  # type: ignore[union-attr]
        assert isinstance(results[2], SandboxError) and results[2].code == "no_such_file"
        assert results[3].protocol == 1  # type: ignore[union-attr]

    run_async(tmp_path, test)


def test_timeout_and_cancellation_leave_the_connection_usable(tmp_path: Path) -> None:
    async def test(sb: AsyncSandbox) -> None:
        box = await sb.open_box()
        with pytest.raises(SandboxTimeout):
            await box.run(["sleep", "1"], timeout=0.2, **LIMITS)
        task = asyncio.ensure_future(sb.run(["sleep", "1"], **LIMITS))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await sb.version()).protocol == 1
        r = await box.run(["sh", "-c", "exit 3"], **LIMITS)
        assert r.exit_code == 3

    run_async(tmp_path, test, "--parallel", "4")


async def wait_until_running(sb: AsyncSandbox) -> None:
    deadline = time.monotonic() + 10
    while (await sb.stats())["runs_running"] < 1:
        assert time.monotonic() < deadline, "the run did not start within 10 s"
        await asyncio.sleep(0.02)


SLEEP: Dict[str, Any] = dict(cpu_time_limit=5, processes_limit=8, real_time_limit=120)


def test_cancel_a_submitted_run(tmp_path: Path) -> None:
    async def test(sb: AsyncSandbox) -> None:
        box = await sb.open_box()
        sleeping = await box.submit_run(["sleep", "60"], **SLEEP)
        waiter = asyncio.ensure_future(sleeping.result())
        await wait_until_running(sb)
        start = time.monotonic()
        await sleeping.cancel()
        assert sleeping.done()
        with pytest.raises(SandboxError) as e:
            await waiter
        assert e.value.code == "cancelled" and time.monotonic() - start < 10
        assert (await box.run(["sh", "-c", "exit 7"], **LIMITS)).exit_code == 7
        for cancel in (sleeping.cancel(), sb.cancel(1 << 40)):
            with pytest.raises(SandboxError) as e:
                await cancel
            assert e.value.code == "no_such_request"
        done = await box.submit_run(["sh", "-c", "exit 3"], **LIMITS)
        assert (await done.result()).exit_code == 3
        with pytest.raises(SandboxError) as e:
            await done.cancel()
        assert e.value.code == "no_such_request"

    run_async(tmp_path, test)


def test_cancelling_the_task_of_a_run_ends_the_run(tmp_path: Path) -> None:
    async def test(sb: AsyncSandbox) -> None:
        box = await sb.open_box()
        task = asyncio.ensure_future(box.run(["sleep", "60"], **SLEEP))
        await wait_until_running(sb)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The box's next run waits for none of the sleep: sandboxd ended it.
        start = time.monotonic()
        assert (await box.run(["sh", "-c", "exit 7"], **LIMITS)).exit_code == 7
        assert time.monotonic() - start < 10
        assert (await sb.stats())["run_errors"].get("cancelled") == 1
        # So does a timeout of asyncio's.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(box.run(["sleep", "60"], **SLEEP), 0.5)
        assert (await box.run(["true"], **LIMITS)).exit_code == 0
        assert (await sb.stats())["run_errors"].get("cancelled") == 2

    run_async(tmp_path, test)


def test_sandboxd_killed_fails_every_request_in_flight(tmp_path: Path) -> None:
    async def test(sb: AsyncSandbox) -> None:
        boxes = [await sb.open_box() for _ in range(3)]
        asyncio.get_running_loop().call_later(0.3, os.kill, sb.pid, signal.SIGKILL)
        results = await asyncio.gather(*(b.run(["sleep", "10"], **LIMITS) for b in boxes), return_exceptions=True)
        for r in results:
            assert isinstance(r, SandboxUnavailable) and "was killed by SIGKILL" in r.message
        with pytest.raises(SandboxUnavailable):
            await sb.version()

    async def main() -> int:
        sb = AsyncSandbox(SANDBOXD, sandboxd_args(tmp_path, "--parallel", "3"), stderr=sys.__stderr__)
        await sb.start()
        await test(sb)
        return await sb.close()

    assert asyncio.run(main()) == -signal.SIGKILL
    recover(tmp_path)


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable) as e:
        asyncio.run(AsyncSandbox(str(tmp_path / "no-sandboxd")).start())
    assert "cannot start sandboxd" in e.value.message and "No such file" in e.value.message


def test_sandboxd_that_cannot_start_says_why(tmp_path: Path) -> None:
    flags = sandboxd_args(tmp_path, "--no-such-flag")
    with pytest.raises(SandboxUnavailable) as e:
        asyncio.run(AsyncSandbox(SANDBOXD, flags, stderr=open(os.devnull, "w")).start())
    assert "exited with status 2" in e.value.message and "-no-such-flag" in e.value.message


def test_unmatchable_reply_fails_what_is_in_flight(tmp_path: Path) -> None:
    # A wrapper script hides --max-line from the client: sandboxd answers the
    # long line without an id, and the client cannot tell which of the two
    # requests in flight it answers.
    wrapper = tmp_path / "sandboxd.sh"
    args = " ".join(sandboxd_args(tmp_path / "state", "--max-line", "1000"))
    wrapper.write_text(f'#!/bin/sh\nexec {SANDBOXD} {args} "$@"\n')
    wrapper.chmod(0o755)

    async def main() -> Any:
        async with AsyncSandbox(str(wrapper), stderr=sys.__stderr__) as sb:
            box = await sb.open_box()
            results = await asyncio.gather(
                box.run(["sleep", "0.5"], **LIMITS), sb.write_file("f", "x" * 2000), return_exceptions=True
            )
            assert (await sb.version()).protocol == 1
            return results

    results = asyncio.run(main())
    assert [getattr(r, "code", None) for r in results] == ["line_too_long", "line_too_long"]


def test_run_group(tmp_path: Path) -> None:
    async def test(sb: AsyncSandbox) -> None:
        a, b = await sb.open_box(), await sb.open_box()
        programs = [
            dict(box=a.id, argv=["sh", "-c", "echo 6"], **LIMITS),
            dict(box=b.id, argv=["sh", "-c", "read x; exit $((x * 7))"], **LIMITS),
        ]
        pipes = [{"from": {"program": 0, "fd": 1}, "to": {"program": 1, "fd": 0}}]
        try:
            g = await sb.run_group(programs, pipes=pipes)
        except SandboxError as e:
            skip_without_run_group(e)
            raise
        assert [r.exit_code for r in g.results] == [0, 42] and sorted(g.exit_order) == [0, 1]

    run_async(tmp_path, test)
