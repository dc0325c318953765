#!/usr/bin/env python3
"""A judge worker: takes submissions from a Redis stream, judges each with
the example judge (examples/judge) on its own long-lived sandboxd, and
writes the result back.

    worker.py serve [--redis URL] [--consumer NAME] [--claim-idle S] [--sandboxd PATH] PROBLEMS [-- SANDBOXD_FLAGS...]
    worker.py submit [--redis URL] PROBLEM SOLUTION     adds a submission, prints its id
    worker.py results [--redis URL]                     prints each result: id, verdict, worker

Submissions are entries of the stream ``{judge}:submissions`` (fields id,
problem, language, source), read through the consumer group ``judges``:
each goes to one worker. Results are entries of ``{judge}:results`` (fields
id, verdict, detail, tests, worker).

A worker acknowledges a submission (XACK) in the same atomic step, a Lua
script, that appends its result, and only while the submission is still its
own. A submission whose worker died stays pending; once it has been idle for
``--claim-idle`` seconds another worker takes it over with XAUTOCLAIM and
judges it again. A worker that was merely slow finds its submission taken
and drops its result. So each submission gets exactly one result.
"""

import argparse
import json
import os
import signal
import socket
import sys
import threading
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judge"))  # the example judge, beside this example
import judge  # noqa: E402

from sandboxd import Sandbox, SandboxError  # noqa: E402

SUBMISSIONS = "{judge}:submissions"  # one hash tag: both keys on one Redis Cluster slot, as the script needs
RESULTS = "{judge}:results"
GROUP = "judges"
LANGUAGES = {".cpp": "cpp", ".py": "py"}

# KEYS: submissions, results. ARGV: group, consumer, entry id, then the
# result's fields. Appends the result and acknowledges, if the entry is still
# pending for this consumer.
COMMIT = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then
  return 0
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
return 1
"""

Entry = Tuple[bytes, Dict[bytes, bytes]]


class Worker:
    def __init__(self, r: "redis.Redis[bytes]", sb: Sandbox, problems: Path, consumer: str, claim_idle: float) -> None:
        self.r, self.sb, self.problems, self.consumer = r, sb, problems, consumer
        self.claim_idle_ms = int(claim_idle * 1000)
        self.commit = r.register_script(COMMIT)
        self.stop = threading.Event()
        try:
            r.xgroup_create(SUBMISSIONS, GROUP, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):  # another worker made it first
                raise

    def next_entry(self) -> Optional[Entry]:
        """A submission whose worker died, else a new one (waiting up to 1 s)."""
        claimed: List[Entry] = self.r.xautoclaim(SUBMISSIONS, GROUP, self.consumer, self.claim_idle_ms, count=1)[1]
        if claimed:
            return claimed[0]
        new = self.r.xreadgroup(GROUP, self.consumer, {SUBMISSIONS: ">"}, count=1, block=1000)
        return new[0][1][0] if new else None

    def judge(self, fields: Dict[bytes, bytes]) -> judge.Report:
        name = fields[b"problem"].decode()
        directory = self.problems / name
        if "/" in name or name.startswith(".") or not (directory / "problem.json").is_file():
            return judge.Report("IE", detail=f"no problem {name!r}")
        return judge.judge(self.sb, judge.Problem.load(directory), fields[b"language"].decode(), fields[b"source"])

    def serve(self) -> None:
        while not self.stop.is_set():
            entry = self.next_entry()
            if entry is None:
                continue
            entry_id, fields = entry
            sub = fields[b"id"].decode()
            print(f"judging {sub}", flush=True)
            report = self.judge(fields)
            tests = [{"name": t.name, "verdict": t.verdict} for t in report.tests]
            result = ["id", sub, "verdict", report.verdict, "detail", report.detail]
            result += ["tests", json.dumps(tests), "worker", self.consumer]
            done = self.commit(keys=[SUBMISSIONS, RESULTS], args=[GROUP, self.consumer, entry_id, *result])
            print(f"judged {sub}: {report.verdict}" if done else f"lost {sub}: another worker took it over", flush=True)


def submit(r: "redis.Redis[bytes]", problem: str, language: str, source: bytes) -> str:
    sub = uuid.uuid4().hex
    r.xadd(SUBMISSIONS, {"id": sub, "problem": problem, "language": language, "source": source})
    return sub


def results(r: "redis.Redis[bytes]") -> List[Dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in r.xrange(RESULTS)]


def main(argv: List[str]) -> int:
    flags: List[str] = []
    if "--" in argv:
        argv, flags = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="judge submissions until SIGTERM or SIGINT")
    serve.add_argument("--consumer", default=f"{socket.gethostname()}-{os.getpid()}", help="this worker's name")
    serve.add_argument("--claim-idle", type=float, default=60, help="seconds before another takes a submission over")
    serve.add_argument("--sandboxd", default=os.environ.get("SANDBOXD", "sandboxd"))
    serve.add_argument("problems", type=Path, help="directory of problem directories")
    add = commands.add_parser("submit", help="add a submission")
    add.add_argument("problem")
    add.add_argument("solution", type=Path)
    commands.add_parser("results", help="print the results")
    args = parser.parse_args(argv)
    r = redis.Redis.from_url(args.redis)

    if args.command == "submit":
        print(submit(r, args.problem, LANGUAGES[args.solution.suffix], args.solution.read_bytes()))
    elif args.command == "results":
        for res in results(r):
            print(res["id"], res["verdict"], res["worker"])
    else:
        with Sandbox(binary=args.sandboxd, args=["--log-level", "warn", *flags]) as sb:
            worker = Worker(r, sb, args.problems, args.consumer, args.claim_idle)
            for sig in (signal.SIGTERM, signal.SIGINT):  # finish the submission in hand, then stop
                signal.signal(sig, lambda *_: worker.stop.set())
            print(f"worker {args.consumer}: sandboxd pid {sb.pid}", flush=True)
            try:
                worker.serve()
            except SandboxError as e:  # sandboxd is gone or stopping: no verdict
                # Exit without acknowledging: the submission will be taken
                # over; whoever restarts workers restarts this one.
                print(f"worker {args.consumer}: {e}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
