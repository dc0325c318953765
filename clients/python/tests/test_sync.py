"""Sandbox and Box against the real sandboxd: every command of PROTOCOL.md."""

import hashlib
import os
import pickle
import signal
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from harness import SANDBOXD, recover, sandboxd_args, skip_without_run_group

from sandboxd import FileEntry, RunResult, Sandbox, SandboxError, SandboxTimeout, SandboxUnavailable, Verdict

LIMITS: Dict[str, Any] = dict(cpu_time_limit=5, processes_limit=8, real_time_limit=20)


def test_run_reads_stdin_writes_stdout_and_reports_metrics(sb: Sandbox) -> None:
    assert sb.write_file("in.txt", "3 4\n") == 4
    r = sb.run(["sh", "-c", "read a b; echo $((a+b)); exit 7"], stdin="in.txt", stdout="out.txt", **LIMITS)
    assert isinstance(r, RunResult)
    assert r.limit_verdict == Verdict.OK == "OK"
    assert r.exit_code == 7
    assert sb.read_file("out.txt") == b"7\n"
    assert 0 < r.real_time < 5 and 0 < r.cpu_time < 5 and r.idleness_time >= 0
    # A run this small may show 0 on cgroup v1, whose memory counters move in
    # per-CPU batches; the server's own tests check memory near a limit.
    assert isinstance(r.memory, int) and r.memory >= 0


def test_per_run_limits_reach_the_program(sb: Sandbox) -> None:
    # file_size_limit is the output limit: past it, SIGXFSZ.
    r = sb.run(["yes"], stdout="out.txt", file_size_limit=1 << 20, **LIMITS)
    assert (r.limit_verdict, r.exit_code) == (Verdict.SIGNALED, -25)
    r = sb.run(["sh", "-c", "ulimit -s; ulimit -n"], stdout="limits.txt", stack_limit=16 << 20, open_files_limit=50, **LIMITS)
    assert r.exit_code == 0
    assert sb.read_file("limits.txt") == b"16384\n50\n"


def test_run_env_is_exactly_what_is_given(sb: Sandbox) -> None:
    sb.run(["/usr/bin/env"], env={"A": "1", "B": "two words"}, stdout="env.txt", **LIMITS)
    assert sorted(sb.read_file("env.txt").decode().splitlines()) == ["A=1", "B=two words"]


@pytest.mark.parametrize(
    "argv, limits, verdict, exit_code",
    [
        (["sh", "-c", "kill -SEGV $$"], {}, Verdict.SIGNALED, -11),
        (["sh", "-c", "while :; do :; done"], dict(cpu_time_limit=0.2), Verdict.CPU_TIME_LIMIT_EXCEEDED, None),
        (["sleep", "5"], dict(real_time_limit=0.2), Verdict.REAL_TIME_LIMIT_EXCEEDED, None),
        (["sleep", "5"], dict(idleness_time_limit=0.2), Verdict.IDLENESS_TIME_LIMIT_EXCEEDED, None),
        (
            ["python3", "-c", "b = bytearray(300 * 1024 * 1024)"],
            dict(memory_limit=64 << 20),
            Verdict.MEMORY_LIMIT_EXCEEDED,
            None,
        ),
    ],
    ids=["signaled", "cpu", "real", "idleness", "memory"],
)
def test_run_verdicts(
    sb: Sandbox, argv: List[str], limits: Dict[str, Any], verdict: Verdict, exit_code: Optional[int]
) -> None:
    r = sb.run(argv, **{**LIMITS, **limits})
    assert (r.limit_verdict, r.exit_code) == (verdict, exit_code)
    assert str(r.limit_verdict) == verdict.value


@pytest.mark.parametrize(
    "call, code",
    [
        (lambda sb: sb.run(["true"], box=999, **LIMITS), "no_such_box"),
        (lambda sb: sb.run(["/no/such/program"], **LIMITS), "exec_failed"),
        (lambda sb: sb.read_file("no-such-file"), "no_such_file"),
        (lambda sb: sb.read_file("../../etc/passwd"), "invalid_argument"),
        (lambda sb: sb.run(["true"], runtime="no-such-runtime", **LIMITS), "no_such_runtime"),
        (lambda sb: sb.request("run", argv=["true"], cpu_time_limit=1), "missing_limit"),
        (lambda sb: sb.request("run", argv=["true"], cpu_limit=1, processes_limit=1), "unknown_field"),
        (lambda sb: sb.request("no_such_command"), "unknown_command"),
        (lambda sb: sb.close_box(0), "invalid_argument"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_error_replies_raise_sandbox_error_with_the_protocol_code(sb: Sandbox, call: object, code: str) -> None:
    with pytest.raises(SandboxError) as e:
        call(sb)  # type: ignore[operator]
    assert e.value.code == code and e.value.message
    assert sb.version().protocol == 1  # the session goes on


def test_argv_must_be_a_list(sb: Sandbox) -> None:
    with pytest.raises(TypeError):
        sb.run("./sol", **LIMITS)  # a str is a Sequence[str]: only the client can refuse it


def test_files_bytes_text_modes_listing_and_removal(sb: Sandbox) -> None:
    with sb.open_box() as box:
        assert box.write_file("bin/data", bytes(range(256)), mode=0o700) == 256
        assert box.write_file("text.txt", "héllo\n") == len("héllo\n".encode())
        assert box.read_file("bin/data") == bytes(range(256))
        assert box.read_file("bin/data", offset=250) == bytes(range(250, 256))
        assert box.read_file("bin/data", offset=10, max_bytes=3) == bytes([10, 11, 12])
        chunk = box.read_file_chunk("text.txt", offset=1, max_bytes=2)
        assert (chunk.content, chunk.size, chunk.truncated) == ("é", 7, True)
        chunk = box.read_file_chunk("bin/data", max_bytes=4, encoding="base64")
        assert (chunk.content, chunk.size, chunk.truncated) == (b"\x00\x01\x02\x03", 256, True)
        with pytest.raises(SandboxError) as e:
            box.read_file_chunk("bin/data")  # not UTF-8 text
        assert e.value.code == "invalid_argument"
        [directory, text] = box.list_files()
        assert (directory.name, directory.type, directory.mode) == ("bin", "dir", 0o755)
        assert text == FileEntry("text.txt", "file", 7, 0o644)
        assert box.list_files("bin") == [FileEntry("data", "file", 256, 0o700)]
        box.remove_file("bin")
        assert [e.name for e in box.list_files()] == ["text.txt"]


def test_read_file_reads_a_file_larger_than_one_reply(sb: Sandbox) -> None:
    # 10 MiB: two read_file requests, of at most 8 MiB each.
    r = sb.run(["sh", "-c", "head -c 10485760 /dev/urandom > big"], **LIMITS)
    assert r.exit_code == 0
    data = sb.read_file("big")
    on_host = Path(sb.box_path(), "big").read_bytes()
    assert len(data) == 10 << 20 and hashlib.sha256(data).digest() == hashlib.sha256(on_host).digest()
    assert sb.read_file("big", offset=(10 << 20) - 5) == on_host[-5:]
    assert sb.read_file("big", offset=1, max_bytes=9 << 20) == on_host[1 : 1 + (9 << 20)]
    sb.remove_file("big")


def test_boxes_are_apart_and_reset_and_close(sb: Sandbox) -> None:
    a, b = sb.open_box(quota_space=1 << 20), sb.open_box()
    assert a.id != b.id and 0 not in (a.id, b.id)
    a.write_file("mine", "a")
    assert [e.name for e in b.list_files()] == []
    assert a.path() != b.path() and Path(a.path(), "mine").read_text() == "a"
    assert stat.S_ISDIR(os.stat(a.path()).st_mode)
    with pytest.raises(SandboxError) as e:
        a.write_file("huge", bytes(2 << 20))
    assert e.value.code == "quota_exceeded"
    a.reset()
    assert a.list_files() == []
    r = a.run(["sh", "-c", "echo hi > f"], **LIMITS)
    assert r.exit_code == 0 and a.read_file("f") == b"hi\n"
    a.close()
    b.close()
    with pytest.raises(SandboxError) as e:
        a.list_files()
    assert e.value.code == "no_such_box"


def test_open_box_dirs(sb: Sandbox) -> None:
    with sb.open_box(dirs=["/usr", "/bin", "/lib", "/lib64", "/etc"]) as box:
        r = box.run(["sh", "-c", "test -f /etc/passwd"], **LIMITS)
        assert r.exit_code == 0
    assert sb.run(["sh", "-c", "test -e /etc/passwd"], **LIMITS).exit_code == 1  # box 0: default dirs


LOOPBACK = "import socket; s = socket.create_server(('127.0.0.1', 0)); c = socket.create_connection(s.getsockname()); s.accept()[0].sendall(b'hi'); assert c.recv(2) == b'hi'"


def test_open_box_network_loopback(sb: Sandbox) -> None:
    with sb.open_box(network="loopback") as box:
        assert box.run(["python3", "-c", LOOPBACK], **LIMITS).exit_code == 0
    assert sb.run(["python3", "-c", LOOPBACK], **LIMITS).exit_code == 1  # box 0: no network
    with pytest.raises(SandboxError) as e:
        sb.open_box(network="host")
    assert e.value.code == "invalid_argument"


def test_stats_counts_boxes_and_runs(sb: Sandbox) -> None:
    before = sb.stats()
    with sb.open_box():
        sb.run(["true"], **LIMITS)
        after = sb.stats()
    assert after["boxes_open"] == before["boxes_open"] + 1
    assert after["runs"]["OK"] == before["runs"]["OK"] + 1
    assert after["runs_running"] == 0 and after["parallel"] >= 1


def test_version(sb: Sandbox) -> None:
    v = sb.version()
    assert v.protocol == 1 and v.version and sb.server_version == v


def test_request_sends_any_command(sb: Sandbox) -> None:
    assert sb.request("version")["protocol"] == 1
    with pytest.raises(TypeError):
        sb.request("version", id="mine")


def test_run_group_pipes_two_programs(sb: Sandbox) -> None:
    with sb.open_box() as a, sb.open_box() as b:
        programs = [
            dict(box=a.id, argv=["sh", "-c", "echo 41"], **LIMITS),
            dict(box=b.id, argv=["sh", "-c", "read x; exit $((x + 1))"], **LIMITS),
        ]
        pipes = [{"from": {"program": 0, "fd": 1}, "to": {"program": 1, "fd": 0}}]
        try:
            g = sb.run_group(programs, pipes=pipes, idleness_time_limit=5)
        except SandboxError as e:
            skip_without_run_group(e)
            raise
        assert [r.limit_verdict for r in g.results] == [Verdict.OK, Verdict.OK]
        assert [r.exit_code for r in g.results] == [0, 42]
        assert sorted(g.exit_order) == [0, 1]


def test_run_group_idleness_ends_a_deadlock(sb: Sandbox) -> None:
    with sb.open_box() as a, sb.open_box() as b:
        # Each reads before it writes: neither ever runs.
        programs = [dict(box=box.id, argv=["sh", "-c", "read x; echo $x"], **LIMITS) for box in (a, b)]
        pipes = [
            {"from": {"program": 0, "fd": 1}, "to": {"program": 1, "fd": 0}},
            {"from": {"program": 1, "fd": 1}, "to": {"program": 0, "fd": 0}},
        ]
        start = time.monotonic()
        try:
            g = sb.run_group(programs, pipes=pipes, idleness_time_limit=0.5)
        except SandboxError as e:
            skip_without_run_group(e)
            raise
        assert time.monotonic() - start < 10
        assert Verdict.OK not in [r.limit_verdict for r in g.results]


def test_threads_share_a_sandbox_and_run_boxes_in_parallel(tmp_path: Path) -> None:
    with Sandbox(SANDBOXD, sandboxd_args(tmp_path, "--parallel", "4"), stderr=sys.__stderr__) as sb:
        boxes = [sb.open_box() for _ in range(4)]
        results: Dict[int, RunResult] = {}

        def work(i: int) -> None:
            # Later boxes finish first: replies come out of order.
            results[i] = boxes[i].run(["sh", "-c", f"sleep 0.{8 - 2 * i}; exit {i}"], **LIMITS)

        start = time.monotonic()
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        assert {i: r.exit_code for i, r in results.items()} == {0: 0, 1: 1, 2: 2, 3: 3}
        assert elapsed < 1.6, f"4 runs of 0.2-0.8 s took {elapsed:.2f} s: not in parallel (one after another: 2 s)"


def test_timeout_leaves_the_connection_usable(sb: Sandbox) -> None:
    with sb.open_box() as box:
        start = time.monotonic()
        with pytest.raises(SandboxTimeout) as e:
            box.run(["sleep", "1"], timeout=0.2, **LIMITS)
        assert isinstance(e.value, TimeoutError) and e.value.code == "timeout"
        assert time.monotonic() - start < 0.9
        assert sb.version().protocol == 1
        # The late reply of the sleep is dropped, not taken for this run's.
        r = box.run(["sh", "-c", "exit 3"], **LIMITS)
        assert r.exit_code == 3 and r.real_time < 0.5


def wait_until_running(sb: Sandbox, runs: int = 1) -> None:
    """Until sandboxd runs that many runs (stats is answered at once)."""
    deadline = time.monotonic() + 10
    while sb.stats()["runs_running"] < runs:
        assert time.monotonic() < deadline, "the run did not start within 10 s"
        time.sleep(0.02)


SLEEP = dict(cpu_time_limit=5, processes_limit=8, real_time_limit=120)


def test_cancel_ends_a_sleeping_run_that_another_thread_waits_for(sb: Sandbox) -> None:
    with sb.open_box() as box:
        box.write_file("kept", "before")
        sleeping = box.submit_run(["sh", "-c", "echo ran > ran; sleep 60"], **SLEEP)
        outcome: List[BaseException] = []

        def wait() -> None:
            try:
                sleeping.result()
            except BaseException as e:
                outcome.append(e)

        waiter = threading.Thread(target=wait)
        waiter.start()
        wait_until_running(sb)
        start = time.monotonic()
        sleeping.cancel()
        # The run is answered before the cancel.
        assert sleeping.done()
        waiter.join(10)
        assert time.monotonic() - start < 10
        assert [type(e) for e in outcome] == [SandboxError] and isinstance(outcome[0], SandboxError)
        assert outcome[0].code == "cancelled" and str(sleeping.id) in outcome[0].message
        with pytest.raises(SandboxError) as e:
            sleeping.result()
        assert e.value.code == "cancelled"
        # The box is usable, its files as the run left them.
        r = box.run(["sh", "-c", "cat kept ran; exit 7"], stdout="out", **LIMITS)
        assert (r.limit_verdict, r.exit_code) == (Verdict.OK, 7)
        assert box.read_file("out") == b"beforeran\n"
        assert sb.stats()["run_errors"]["cancelled"] >= 1


def test_cancel_a_queued_run_and_a_run_group(sb: Sandbox) -> None:
    with sb.open_box() as a, sb.open_box() as b:
        sleeping = a.submit_run(["sleep", "60"], **SLEEP)
        queued = a.submit_run(["true"], **LIMITS)
        group = sb.submit_run_group([dict(box=b.id, argv=["sleep", "60"], **SLEEP), dict(box=0, argv=["sleep", "60"], **SLEEP)])
        wait_until_running(sb, 2)
        for p in (queued, sleeping, group):
            p.cancel()
            with pytest.raises(SandboxError) as e:
                p.result()
            assert e.value.code == "cancelled"
        assert a.run(["true"], **LIMITS).exit_code == 0


def test_cancel_of_an_answered_or_unknown_request_is_no_such_request(sb: Sandbox) -> None:
    done = sb.submit_run(["sh", "-c", "exit 3"], **LIMITS)
    assert done.result().exit_code == 3
    with pytest.raises(SandboxError) as e:
        done.cancel()
    assert e.value.code == "no_such_request"
    assert done.result().exit_code == 3  # its own reply stays
    with pytest.raises(SandboxError) as e:
        sb.cancel(1 << 40)
    assert e.value.code == "no_such_request"
    assert sb.run(["true"], **LIMITS).exit_code == 0


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable) as e:
        Sandbox(str(tmp_path / "no-sandboxd"))
    assert e.value.code == "unavailable"
    assert "cannot start sandboxd" in e.value.message and "No such file" in e.value.message


def test_sandboxd_that_cannot_start_says_why(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable) as e:
        Sandbox(SANDBOXD, sandboxd_args(tmp_path, "--no-such-flag"), stderr=open(os.devnull, "w"))
    assert "exited with status 2" in e.value.message
    assert "flag provided but not defined: -no-such-flag" in e.value.message


def test_sandboxd_killed_mid_run_fails_the_run_and_what_follows(tmp_path: Path) -> None:
    sb = Sandbox(SANDBOXD, sandboxd_args(tmp_path), stderr=sys.__stderr__)
    threading.Timer(0.3, os.kill, (sb.pid, signal.SIGKILL)).start()
    start = time.monotonic()
    with pytest.raises(SandboxUnavailable) as e:
        sb.run(["sleep", "10"], **LIMITS)
    assert time.monotonic() - start < 5
    assert "was killed by SIGKILL" in e.value.message
    assert str(e.value) == f"unavailable: {e.value.message}"
    with pytest.raises(SandboxUnavailable) as later:
        sb.version()
    assert (later.value.code, later.value.message, str(later.value)) == (e.value.code, e.value.message, str(e.value))
    copied = pickle.loads(pickle.dumps(later.value))
    assert type(copied) is SandboxUnavailable
    assert (copied.code, copied.message, str(copied)) == ("unavailable", e.value.message, str(e.value))
    assert sb.close() == -signal.SIGKILL
    recover(tmp_path)


def test_close_finishes_what_is_in_flight(tmp_path: Path) -> None:
    sb = Sandbox(SANDBOXD, sandboxd_args(tmp_path), stderr=sys.__stderr__)
    results = []
    t = threading.Thread(target=lambda: results.append(sb.run(["sh", "-c", "sleep 0.3; exit 5"], **LIMITS)))
    t.start()
    time.sleep(0.1)
    assert sb.close() == 0
    t.join()
    assert results[0].exit_code == 5
    with pytest.raises(SandboxUnavailable) as e:
        sb.version()
    assert e.value.message == "the Sandbox is closed"


def test_close_past_its_timeout_stops_sandboxd_with_sigterm(tmp_path: Path) -> None:
    sb = Sandbox(SANDBOXD, sandboxd_args(tmp_path), stderr=sys.__stderr__)
    errors = []

    def sleep() -> None:
        try:
            sb.run(["sleep", "10"], **LIMITS)
        except SandboxError as e:
            errors.append(e.code)

    t = threading.Thread(target=sleep)
    t.start()
    time.sleep(0.2)
    start = time.monotonic()
    assert sb.close(timeout=0.3) == 0  # sandboxd exits 0 on SIGTERM
    t.join()
    assert time.monotonic() - start < 5
    assert errors == ["shutting_down"]  # the run was killed, and answered


def test_line_too_long_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    with Sandbox(SANDBOXD, sandboxd_args(tmp_path, "--max-line", "1000"), stderr=sys.__stderr__) as sb:
        with pytest.raises(SandboxError) as e:
            sb.write_file("f", "x" * 2000)
        assert e.value.code == "line_too_long"
        assert sb.write_file("f", "x" * 500) == 500


def test_line_too_long_of_a_wrapped_sandboxd_is_matched_to_its_request(tmp_path: Path) -> None:
    # A wrapper script hides --max-line from the client: sandboxd itself
    # answers line_too_long, without an id.
    wrapper = tmp_path / "sandboxd.sh"
    args = " ".join(sandboxd_args(tmp_path / "state", "--max-line", "1000"))
    wrapper.write_text(f'#!/bin/sh\nexec {SANDBOXD} {args} "$@"\n')
    wrapper.chmod(0o755)
    with Sandbox(str(wrapper), stderr=sys.__stderr__) as sb:
        with pytest.raises(SandboxError) as e:
            sb.write_file("f", "x" * 2000)
        assert e.value.code == "line_too_long"
        assert sb.write_file("f", "x" * 500) == 500
