#!/usr/bin/env python3
"""An example judge built on the sandboxd Python client.

    judge.py [--sandboxd PATH] PROBLEM_DIR SOLUTION [-- SANDBOXD_FLAGS...]

judges SOLUTION (``.cpp``: compiled with g++; ``.py``: run with python3) on
the tests of PROBLEM_DIR, one after another until one fails, and prints a
line per test and the final verdict: AC, WA, PE, TLE, MLE, RE, CE
(compilation error) or IE (internal error: the judge or the problem failed).

A problem directory holds ``problem.json`` and ``tests/NAME.in`` with
``tests/NAME.ans``::

    {"time_limit": 1,            CPU seconds per test
     "memory_limit_mib": 64,
     "compare": "tokens",        "exact" (byte for byte; PE when only the
                                 spacing differs), "tokens" or "checker"
     "checker": "check.py",      with "checker": run as CHECKER INPUT OUTPUT
                                 ANSWER; exit 0 AC, 1 WA, 2 PE
     "interactor": "inter.py"}   instead of compare: run beside the solution,
                                 its stdout to the solution's stdin and back,
                                 with INPUT as argument; exits 0 AC, 1 WA, 2 PE

Checkers and interactors are programs too (``.py`` or ``.cpp``), run in a
box of their own.
"""

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from sandboxd import Box, RunResult, Sandbox, SandboxError, Verdict

ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
COMPILE_LIMITS: Dict[str, Any] = dict(cpu_time_limit=30, real_time_limit=60, memory_limit=1 << 30, processes_limit=16)
# Checkers and interactors are the problem's own: roomy limits.
HELPER_LIMITS: Dict[str, Any] = dict(cpu_time_limit=10, real_time_limit=30, memory_limit=512 << 20, processes_limit=4)
EXIT_VERDICTS = {0: "AC", 1: "WA", 2: "PE"}  # checkers' and interactors' exit codes
TIME_VERDICTS = {
    Verdict.CPU_TIME_LIMIT_EXCEEDED,
    Verdict.REAL_TIME_LIMIT_EXCEEDED,
    Verdict.IDLENESS_TIME_LIMIT_EXCEEDED,
}


class CompileError(Exception):
    pass


@dataclass
class Problem:
    time_limit: float
    memory_limit: int
    compare: str
    checker: Optional[Path]
    interactor: Optional[Path]
    tests: List[Tuple[str, bytes, bytes]]  # name, input, answer (none for an interactor)

    @classmethod
    def load(cls, directory: Path) -> "Problem":
        conf = json.loads((directory / "problem.json").read_text())
        if conf.get("compare") == "checker" and "checker" not in conf:
            raise ValueError(f"{directory}: compare is checker, but no checker is named")
        tests = []
        for path in sorted((directory / "tests").glob("*.in")):
            answer = path.with_suffix(".ans")
            tests.append((path.stem, path.read_bytes(), answer.read_bytes() if answer.exists() else b""))
        return cls(
            time_limit=float(conf["time_limit"]),
            memory_limit=int(conf["memory_limit_mib"]) << 20,
            compare=conf.get("compare", "tokens"),
            checker=directory / conf["checker"] if "checker" in conf else None,
            interactor=directory / conf["interactor"] if "interactor" in conf else None,
            tests=tests,
        )


@dataclass
class Program:
    """What to put in a box to run a program, and how to run it."""

    argv: List[str]
    files: Dict[str, bytes]

    def install(self, box: Box) -> None:
        for name, data in self.files.items():
            box.write_file(name, data, mode=0o755)


def build(box: Box, language: str, source: bytes) -> Program:
    """Compiles a C++ source in the box (raising CompileError), or takes a
    Python one as it is."""
    if language == "py":
        return Program(["python3", "main.py"], {"main.py": source})
    if language != "cpp":
        raise CompileError(f"unknown language {language!r}: .cpp or .py")
    box.reset()
    box.write_file("main.cpp", source)
    r = box.run(["g++", "-O2", "-std=c++17", "-o", "main", "main.cpp"], stderr="log", env=ENV, **COMPILE_LIMITS)
    if r.limit_verdict != Verdict.OK or r.exit_code != 0:
        raise CompileError(box.read_file("log").decode(errors="replace")[-2000:] or str(r.limit_verdict))
    return Program(["./main"], {"main": box.read_file("main")})


def run_verdict(r: RunResult) -> Optional[str]:
    """TLE, MLE or RE, or None when the program exited 0 within its limits."""
    if r.limit_verdict in TIME_VERDICTS:
        return "TLE"
    if r.limit_verdict == Verdict.MEMORY_LIMIT_EXCEEDED:
        return "MLE"
    return None if r.limit_verdict == Verdict.OK and r.exit_code == 0 else "RE"


def helper_verdict(r: RunResult) -> str:
    """A checker's or an interactor's verdict, from its exit code."""
    if r.limit_verdict != Verdict.OK or r.exit_code is None:
        return "IE"
    return EXIT_VERDICTS.get(r.exit_code, "IE")


def compare(output: bytes, answer: bytes, exact: bool) -> str:
    if exact and output == answer:
        return "AC"
    if output.split() == answer.split():
        return "PE" if exact else "AC"
    return "WA"


@dataclass
class TestResult:
    name: str
    verdict: str
    result: RunResult  # the solution's run


@dataclass
class Report:
    verdict: str
    tests: List[TestResult] = field(default_factory=list)
    detail: str = ""


class Judge:
    """Judges one submission, in a box for the solution and one for the
    checker or interactor."""

    def __init__(self, sb: Sandbox, problem: Problem, solution: Box, helper_box: Box) -> None:
        self.sb, self.problem, self.box, self.helper_box = sb, problem, solution, helper_box
        self.limits: Dict[str, Any] = dict(
            cpu_time_limit=problem.time_limit,
            real_time_limit=2 * problem.time_limit + 1,
            memory_limit=problem.memory_limit,
            processes_limit=1,
            env=ENV,
        )
        source = problem.checker or problem.interactor
        self.helper = build(helper_box, source.suffix[1:], source.read_bytes()) if source else None

    def test(self, program: Program, name: str, input: bytes, answer: bytes) -> TestResult:
        self.box.reset()  # nothing of an earlier test is left to read
        program.install(self.box)
        if self.problem.interactor:
            return self.interact(program, name, input)
        self.box.write_file("input.txt", input)
        r = self.box.run(program.argv, stdin="input.txt", stdout="output.txt", **self.limits)
        verdict = run_verdict(r)
        if verdict:
            return TestResult(name, verdict, r)
        output = self.box.read_file("output.txt")
        if self.problem.compare != "checker":
            return TestResult(name, compare(output, answer, self.problem.compare == "exact"), r)
        return TestResult(name, self.check(input, output, answer), r)

    def check(self, input: bytes, output: bytes, answer: bytes) -> str:
        assert self.helper
        box = self.helper_box
        box.reset()
        self.helper.install(box)
        for path, data in (("input.txt", input), ("output.txt", output), ("answer.txt", answer)):
            box.write_file(path, data)
        argv = [*self.helper.argv, "input.txt", "output.txt", "answer.txt"]
        return helper_verdict(box.run(argv, env=ENV, **HELPER_LIMITS))

    def interact(self, program: Program, name: str, input: bytes) -> TestResult:
        assert self.helper
        box = self.helper_box
        box.reset()
        self.helper.install(box)
        box.write_file("input.txt", input)
        solution = dict(box=self.box.id, argv=program.argv, **self.limits)
        interactor = dict(box=box.id, argv=[*self.helper.argv, "input.txt"], env=ENV, **HELPER_LIMITS)
        g = self.sb.run_group(
            [solution, interactor],
            pipes=[
                {"from": {"program": 0, "fd": 1}, "to": {"program": 1, "fd": 0}},
                {"from": {"program": 1, "fd": 1}, "to": {"program": 0, "fd": 0}},
            ],
            idleness_time_limit=2 * self.problem.time_limit + 1,  # both waiting on each other
        )
        r, verdict = g.results[0], helper_verdict(g.results[1])
        # An interactor that gave up first is the verdict (the solution then
        # fails on its closed pipe); else the solution's own failure is.
        if verdict in ("WA", "PE") and g.exit_order[0] == 1:
            return TestResult(name, verdict, r)
        return TestResult(name, run_verdict(r) or verdict, r)


def judge(
    sb: Sandbox,
    problem: Problem,
    language: str,
    source: bytes,
    on_test: Callable[[TestResult], None] = lambda t: None,
) -> Report:
    """Judges a submission with a Sandbox (one sandboxd serves any number of
    submissions, one after another or from several threads). Raises
    SandboxError when sandboxd is gone or stopping: that is no verdict."""
    try:
        with sb.open_box() as solution, sb.open_box() as helper:
            return judge_in(sb, problem, solution, helper, language, source, on_test)
    except SandboxError as e:
        if e.code in ("unavailable", "shutting_down"):
            raise
        return Report("IE", detail=f"sandboxd: {e}")


def judge_in(
    sb: Sandbox,
    problem: Problem,
    solution: Box,
    helper: Box,
    language: str,
    source: bytes,
    on_test: Callable[[TestResult], None],
) -> Report:
    try:
        j = Judge(sb, problem, solution, helper)
    except CompileError as e:
        return Report("IE", detail=f"the problem's checker or interactor: {e}")
    try:
        program = build(solution, language, source)
    except CompileError as e:
        return Report("CE", detail=str(e))
    report = Report("AC")
    for name, input, answer in problem.tests:
        t = j.test(program, name, input, answer)
        report.tests.append(t)
        on_test(t)
        if t.verdict != "AC":
            report.verdict, report.detail = t.verdict, f"test {name}"
            break
    return report


def line(t: TestResult) -> str:
    return f"test {t.name}: {t.verdict}  {t.result.cpu_time:.3f} s  {t.result.memory / (1 << 20):.1f} MiB"


def main(argv: List[str]) -> int:
    flags: List[str] = []
    if "--" in argv:
        argv, flags = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sandboxd", default=os.environ.get("SANDBOXD", "sandboxd"), help="the sandboxd binary")
    parser.add_argument("problem", type=Path)
    parser.add_argument("solution", type=Path)
    args = parser.parse_args(argv)
    problem = Problem.load(args.problem)
    try:
        with Sandbox(binary=args.sandboxd, args=["--log-level", "warn", *flags]) as sb:
            report = judge(sb, problem, args.solution.suffix[1:], args.solution.read_bytes(), lambda t: print(line(t)))
    except SandboxError as e:  # sandboxd is gone or stopping
        report = Report("IE", detail=str(e))
    detail = report.detail
    if "\n" in detail:  # a compiler's log: whole, on stderr
        print(detail, file=sys.stderr)
        detail = ""
    print(f"verdict: {report.verdict}" + (f" ({detail})" if detail else ""))
    return 1 if report.verdict == "IE" else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
