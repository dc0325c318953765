"""Judge workers on a real redis-server (on the loopback, a free port) and
real sandboxd processes: a worker killed mid-job leaves its submission to
another, and every submission gets exactly one result."""

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Dict, Iterator, List, Tuple

import pytest
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
import worker  # noqa: E402

HERE = Path(__file__).resolve().parent
PROBLEMS = HERE.parent / "judge" / "problems"
SOLUTIONS = PROBLEMS / "aplusb" / "solutions"
SANDBOXD = os.environ.get("SANDBOXD_BIN", str(HERE.parents[1] / "bin" / "sandboxd"))
UID_BASE = int(os.environ.get("SANDBOXD_TEST_UID_BASE", "60000"))
# The first two take a second of CPU time each (and are the first that
# workers take): a worker killed on its first submission is killed mid-job.
PLAN = ["tle.py", "tle.py", "ac.py", "re.py", "ac.cpp", "ac.py", "wa.cpp", "re.py", "ac.py", "mle.cpp"]
PLAN += ["ac.py", "re.py", "tle.py", "ac.py", "re.py", "ac.py", "ac.py", "re.py", "ac.py", "ac.py"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Tuple["redis.Redis[bytes]", str]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    r = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            r.ping()
            break
        except redis.ConnectionError:
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield r, f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


class Worker:
    """worker.py serve, its output lines read as they come."""

    def __init__(self, url: str, name: str, state_dir: Path, uid_offset: int, claim_idle: float) -> None:
        self.name = name
        flags = ["--state-dir", str(state_dir), "--uid-base", str(UID_BASE + uid_offset)]
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "worker.py"), "--redis", url, "serve", "--consumer", name]
            + ["--claim-idle", str(claim_idle), "--sandboxd", SANDBOXD, str(PROBLEMS), "--", *flags],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.seen: List[str] = []
        self.reader = threading.Thread(target=self.read, args=(self.proc.stdout,))
        self.reader.start()
        self.sandboxd_pid = int(self.expect(f"worker {name}: sandboxd pid ").rsplit(" ", 1)[1])

    def read(self, out: IO[str]) -> None:
        for line in out:
            self.lines.put(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float = 60) -> str:
        """The next line that starts with prefix."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def stop(self) -> None:
        """Stops the worker with SIGTERM; its lines are all in seen then."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(30) == 0
        self.reader.join()
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        wait_gone(self.sandboxd_pid)


def wait_gone(pid: int) -> None:
    """Waits for a sandboxd to exit (one whose worker died ends when its
    stdin closes and its run in flight is over)."""
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{pid}") and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]:
        assert time.monotonic() < deadline, f"sandboxd {pid} is still running"
        time.sleep(0.1)


def submit_plan(r: "redis.Redis[bytes]", plan: List[str]) -> Dict[str, str]:
    """Adds the submissions; returns their expected verdicts by id."""
    return {
        worker.submit(r, "aplusb", worker.LANGUAGES[Path(s).suffix], (SOLUTIONS / s).read_bytes()): Path(s).stem.upper()
        for s in plan
    }


def wait_results(r: "redis.Redis[bytes]", count: int, timeout: float = 240) -> List[Dict[str, str]]:
    deadline = time.monotonic() + timeout
    while len(worker.results(r)) < count:
        assert time.monotonic() < deadline, f"{len(worker.results(r))} results of {count} after {timeout} s"
        time.sleep(0.2)
    return worker.results(r)


def test_a_worker_killed_mid_job_leaves_its_submission_to_another(
    server: Tuple["redis.Redis[bytes]", str], tmp_path: Path
) -> None:
    r, url = server
    expected = submit_plan(r, PLAN)
    a = Worker(url, "a", tmp_path / "a", 0, claim_idle=2)
    b = Worker(url, "b", tmp_path / "b", 1000, claim_idle=2)
    victim = a.expect("judging ").split()[1]
    a.proc.kill()
    a.proc.wait()
    a.reader.join()
    [pending] = [p for p in r.xpending_range(worker.SUBMISSIONS, worker.GROUP, "-", "+", 100) if p["consumer"] == b"a"]
    assert pending["times_delivered"] == 1  # a's submission waits, unacknowledged

    results = wait_results(r, len(PLAN))
    assert sorted(x["id"] for x in results) == sorted(expected), "not exactly one result per submission"
    assert {x["id"]: x["verdict"] for x in results} == expected
    assert [x["worker"] for x in results if x["id"] == victim] == ["b"]
    assert r.xpending(worker.SUBMISSIONS, worker.GROUP)["pending"] == 0
    b.stop()
    assert f"judging {victim}" in b.seen and not [x for x in b.seen if x.startswith("lost ")]
    wait_gone(a.sandboxd_pid)


def test_a_worker_too_slow_to_keep_its_submission_drops_its_result(
    server: Tuple["redis.Redis[bytes]", str], tmp_path: Path
) -> None:
    r, url = server
    [sub] = submit_plan(r, ["tle.py"])
    slow = Worker(url, "slow", tmp_path / "slow", 0, claim_idle=1)
    slow.expect(f"judging {sub}")
    slow.proc.send_signal(signal.SIGSTOP)  # as a worker that stalls: a pause, a partition
    fast = Worker(url, "fast", tmp_path / "fast", 1000, claim_idle=1)
    assert fast.expect(f"judged {sub}") == f"judged {sub}: TLE"
    slow.proc.send_signal(signal.SIGCONT)
    assert slow.expect(f"lost {sub}") == f"lost {sub}: another worker took it over"
    assert [(x["id"], x["verdict"], x["worker"]) for x in worker.results(r)] == [(sub, "TLE", "fast")]
    slow.stop()
    fast.stop()
