"""Table-driven bad-input and fault cases (issue: no silent wrong number, no lost file, one clear line).

Every ``tests/test_trust_*.py`` module lists its cases as ``CASES = [Case(...), ...]`` and runs them with
:func:`run_case`. ``python scripts/trust_table.py`` prints all cases with their area and expected outcome
(the table of what was tried).

Outcomes:
    ``error``: the call raises ``error`` with a one-line message matching ``match`` (before any expensive
    work where the case says so).
    ``handled``: the call succeeds and ``check(result, ctx)`` confirms the result is correct.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class Case:
    """One bad input or fault and what must happen.

    Attributes:
        name: what the user does, in words (the test id and the table row).
        run: ``run(ctx)`` performs it; ``ctx`` is the module's context fixture.
        error: the exception type expected; ``None`` means the call must succeed.
        match: regex the exception message must match (searched, case-insensitive).
        check: for ``error=None``: ``check(result, ctx)`` asserts the result is right.
    """

    name: str
    run: Callable[[Any], Any]
    error: type[BaseException] | tuple[type[BaseException], ...] | None = None
    match: str | None = None
    check: Callable[[Any, Any], None] | None = None

    @property
    def outcome(self) -> str:
        return "handled" if self.error is None else "error"


def run_case(case: Case, ctx: Any) -> None:
    """Run one case and assert its outcome (errors must be one line and match ``case.match``)."""
    if case.error is None:
        result = case.run(ctx)
        if case.check is not None:
            case.check(result, ctx)
        return
    with pytest.raises(case.error) as info:
        case.run(ctx)
    message = str(info.value)
    assert message.strip(), f"{case.name}: empty error message"
    assert "\n" not in message.strip(), f"{case.name}: message is not one line: {message!r}"
    if case.match is not None:
        assert re.search(case.match, message, re.IGNORECASE), f"{case.name}: {message!r} !~ {case.match!r}"


def ids(cases: list[Case]) -> list[str]:
    """Test ids: the case names, which must be unique (the trust table is keyed by them)."""
    names = [c.name for c in cases]
    if repeated := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"trust case names repeat: {repeated}; give each case its own name")
    return names
