"""The example judge, run as a judge author would run it, on the real
sandboxd: every sample solution gets the verdict its name says."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

HERE = Path(__file__).resolve().parent
SANDBOXD = os.environ.get("SANDBOXD_BIN", str(HERE.parents[1] / "bin" / "sandboxd"))
UID_BASE = os.environ.get("SANDBOXD_TEST_UID_BASE", "60000")
SOLUTIONS = sorted(HERE.glob("problems/*/solutions/*"))
NO_RUN_GROUP = 'unknown_command: unknown command "run_group"'


def judge(problem: Path, solution: Path, state_dir: Path) -> Tuple[List[str], str]:
    """Runs judge.py; returns its test lines and its verdict line."""
    return judge_output(problem, solution, state_dir)[:2]


def judge_output(problem: Path, solution: Path, state_dir: Path) -> Tuple[List[str], str, str]:
    """Runs judge.py; returns its test lines, its verdict line and its stderr."""
    p = subprocess.run(
        [sys.executable, str(HERE / "judge.py"), "--sandboxd", SANDBOXD, str(problem), str(solution), "--"]
        + ["--state-dir", str(state_dir), "--uid-base", UID_BASE],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = p.stdout.splitlines()
    assert lines and lines[-1].startswith("verdict: "), f"judge.py printed {p.stdout!r}, stderr {p.stderr!r}"
    if NO_RUN_GROUP in p.stdout:
        pytest.skip("sandboxd answers unknown_command to run_group: the server has no run_group yet")
    assert p.returncode == (1 if lines[-1].startswith("verdict: IE") else 0), p.stderr
    return lines[:-1], lines[-1], p.stderr


def expect(tests: List[str], verdict_line: str, verdict: str) -> None:
    """Every test line but a failing last one is AC, and the last line says
    the verdict (and, for a failure, which test)."""
    verdicts = [re.fullmatch(r"test (\w+): (\w+).*", t).group(2) for t in tests]  # type: ignore[union-attr]
    assert verdicts, "no test line"
    if verdict == "AC":
        assert verdicts == ["AC"] * len(verdicts) and verdict_line == "verdict: AC"
    else:
        assert verdicts == ["AC"] * (len(verdicts) - 1) + [verdict], tests
        failed = tests[-1].split(":")[0][len("test ") :]
        assert verdict_line == f"verdict: {verdict} (test {failed})"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: f"{p.parents[1].name}/{p.name}")
def test_sample_solution_gets_the_verdict_its_name_says(solution: Path, tmp_path: Path) -> None:
    tests, verdict_line = judge(solution.parents[1], solution, tmp_path)
    expect(tests, verdict_line, solution.stem.upper())


def test_samples_cover_every_verdict() -> None:
    assert {p.stem.upper() for p in SOLUTIONS} >= {"AC", "WA", "TLE", "MLE", "RE"}
    assert {p.suffix for p in SOLUTIONS} == {".cpp", ".py"}


def variant(tmp_path: Path, **conf: object) -> Path:
    """a+b with another problem.json."""
    problem = tmp_path / "problem"
    shutil.copytree(HERE / "problems" / "aplusb", problem, ignore=shutil.ignore_patterns("solutions"))
    base = json.loads((problem / "problem.json").read_text())
    (problem / "problem.json").write_text(json.dumps({**base, **conf}))
    return problem


def source(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


SPACED = "a, b = map(int, input().split())\nprint(a + b, end=' \\n')\n"  # a space too many
AC_PY = HERE / "problems" / "aplusb" / "solutions" / "ac.py"


def test_exact_compare_gives_pe_when_only_spacing_differs(tmp_path: Path) -> None:
    problem = variant(tmp_path, compare="exact")
    expect(*judge(problem, AC_PY, tmp_path / "s1"), "AC")
    expect(*judge(problem, source(tmp_path, "spaced.py", SPACED), tmp_path / "s2"), "PE")
    # The default token comparison takes it.
    expect(*judge(variant(tmp_path / "t"), source(tmp_path, "spaced2.py", SPACED), tmp_path / "s3"), "AC")


CHECKER = """import sys
out, ans = open(sys.argv[2]).read().split(), open(sys.argv[3]).read().split()
a, b = map(int, open(sys.argv[1]).read().split())
assert int(ans[0]) == a + b  # the checker sees the input and the answer
sys.exit(0 if out == ans else 2 if out[:1] == ans else 1)
"""


def test_checker_decides(tmp_path: Path) -> None:
    problem = variant(tmp_path, compare="checker", checker="check.py")
    (problem / "check.py").write_text(CHECKER)
    expect(*judge(problem, AC_PY, tmp_path / "s1"), "AC")
    extra = source(tmp_path, "extra.py", "a, b = map(int, input().split())\nprint(a + b, 0)\n")
    expect(*judge(problem, extra, tmp_path / "s2"), "PE")
    wrong = source(tmp_path, "wrong.py", "a, b = map(int, input().split())\nprint(a - b)\n")
    expect(*judge(problem, wrong, tmp_path / "s3"), "WA")
    (problem / "check.py").write_text("import sys\nsys.exit(3)\n")  # a broken checker
    expect(*judge(problem, AC_PY, tmp_path / "s4"), "IE")


def test_compilation_error(tmp_path: Path) -> None:
    bad = source(tmp_path, "bad.cpp", "int main() { x }\n")
    tests, verdict_line, log = judge_output(HERE / "problems" / "aplusb", bad, tmp_path)
    assert (tests, verdict_line) == ([], "verdict: CE")
    assert "was not declared in this scope" in log
