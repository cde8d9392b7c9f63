"""Run every bad-input and fault case and print the table of what was tried and what happened.

The cases live in ``tests/test_trust_*.py`` (``CASES``, see ``tests/trust.py``) plus the kill -9 tests of
``tests/test_swap.py``. Each row names the area, the case, the expected outcome (a clear one-line error
or a correct result) and whether the run confirmed it; a failed row is what needs fixing.

Usage: ``python scripts/trust_table.py [--out trust.md]`` (from the project root, in the venv), or
``--junit report.xml`` to read the outcomes of a full ``pytest --junitxml=report.xml`` run instead of
running the cases again.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


class _Recorder:
    """Pytest plugin that keeps each test's outcome by node id."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.outcomes[report.nodeid] = report.outcome


def _junit_outcomes(path: str) -> dict[str, str]:
    """Outcomes by node id (``tests/<file>::<test>[<id>]``) from a pytest JUnit XML report."""
    outcomes = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        node = f"{module}.py::{case.get('name')}"
        failed = case.find("failure") is not None or case.find("error") is not None
        outcomes[node] = "failed" if failed else "skipped" if case.find("skipped") is not None else "passed"
    return outcomes


def _expected(case) -> str:
    if case.error is None:
        return "handled (correct result)"
    errors = case.error if isinstance(case.error, tuple) else (case.error,)
    return "clear error (" + " / ".join(e.__name__ for e in errors) + ")"


def main() -> int:
    """Run the cases, print the markdown table and the counts; exit 1 if any case failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the table to this markdown file")
    parser.add_argument("--junit", help="read outcomes from this pytest JUnit XML report instead of running")
    args = parser.parse_args()
    modules = sorted(TESTS.glob("test_trust_*.py"))
    files = [str(p) for p in modules] + ([str(TESTS / "test_swap.py")] if (TESTS / "test_swap.py").exists() else [])
    recorder = _Recorder()
    if args.junit:
        recorder.outcomes = _junit_outcomes(args.junit)
    else:
        pytest.main([*files, "-q", "-p", "no:cacheprovider", "--no-header"], plugins=[recorder])

    sys.path.insert(0, str(TESTS))
    rows = []
    for path in modules:
        module = importlib.import_module(path.stem)
        area = path.stem.removeprefix("test_trust_")
        for case in module.CASES:
            names = {f"[{case.name}]", f"[{case.name.encode('unicode_escape').decode('ascii')}]"}  # pytest's ids
            node = next((n for n in recorder.outcomes if n.startswith(f"tests/{path.name}::")
                         and any(n.endswith(name) for name in names)), None)
            rows.append((area, case.name, _expected(case), recorder.outcomes.get(node, "not run")))
    for node, outcome in recorder.outcomes.items():
        if node.startswith("tests/test_swap.py::"):
            rows.append(("swap (kill -9)", node.split("::", 1)[1], "no lost file (complete old or new folder)",
                         outcome))

    lines = ["| area | case | expected | result |", "|---|---|---|---|"]
    lines += [f"| {a} | {c.replace('|', '/')} | {e} | {r} |" for a, c, e, r in rows]
    passed = [r for r in rows if r[3] == "passed"]
    counts = {
        "cases": len(rows),
        "clear error": sum(1 for r in passed if r[2].startswith("clear error")),
        "handled correctly": sum(1 for r in passed if r[2].startswith("handled")),
        "no lost file (kill -9)": sum(1 for r in passed if r[0].startswith("swap")),
        "skipped (cannot fail here, e.g. read-only folders for root)": sum(1 for r in rows if r[3] == "skipped"),
        "failed (silent wrong, lost file or traceback)": sum(1 for r in rows if r[3] not in ("passed", "skipped")),
    }
    lines += ["", *(f"- {k}: {v}" for k, v in counts.items())]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0 if counts["failed (silent wrong, lost file or traceback)"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
