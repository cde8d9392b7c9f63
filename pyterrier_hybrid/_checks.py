r"""The package's input rules, in one place: what counts as a text, and that numbers are finite.

*Missing-text policy.* A text (query, document, training question or answer) must be a ``str`` that
encodes as UTF-8. ``None``, ``NaN`` / ``pd.NA``, bytes, numbers and strings holding a lone surrogate
(``"\\ud800"``, left behind by a bad decode) are errors that name the row, its id and the column,
never silently turned into the words "None" or "nan" or into an empty string. An empty string is a
text (of no words), so it is accepted. Callers that want to skip rows without text drop them first
(``frame.dropna(subset=["text"])``), where the choice is visible.

*Finite numbers.* Vectors and scores must be finite: a model that outputs NaN would otherwise rank
every candidate equal and can even score perfectly (a NaN score never compares smaller). Checks
raise :class:`NonFiniteError` naming the first offending rows.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["NonFiniteError", "TextError", "check_device", "check_finite", "check_text", "check_texts"]

_SHOWN = 5  # ids named in an error message


class TextError(ValueError):
    """A text is missing, not a string, or not valid Unicode."""


class NonFiniteError(ValueError):
    """A vector or score is NaN or infinite."""


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:  # pd.NA, pd.NaT, np.nan of other float types
        import pandas as pd

        return bool(pd.isna(value)) if np.ndim(value) == 0 else False
    except (TypeError, ValueError):
        return False


def _problem(value: Any) -> str | None:
    """Why ``value`` is not an acceptable text, or None when it is one."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            return f"holds a lone surrogate {value[e.start]!r} at character {e.start} (not valid Unicode; decode " \
                   "the source with the right encoding)"
        return None
    if _missing(value):
        return f"is missing ({value!r})"
    if isinstance(value, (bytes, bytearray)):
        return f"is bytes ({bytes(value[:20])!r}), not str (decode it first, e.g. value.decode('utf-8'))"
    name = type(value).__name__
    return f"is {'an' if name[0] in 'aeiou' else 'a'} {name} ({value!r}), not str"


def check_text(value: Any, *, what: str = "text") -> str:
    """Return ``value`` if it is an acceptable text (see the module docstring), else raise :class:`TextError`."""
    problem = _problem(value)
    if problem is not None:
        raise TextError(f"{what} {problem}")
    return value


def check_texts(texts: Iterable[Any], ids: Sequence[Any] | None = None, *, column: str = "text",
                id_name: str = "row") -> list[str]:
    """Check every text (see the module docstring) and return them as a list.

    Args:
        texts: the texts, in row order.
        ids: the id of each row (qid, docno, ...), used in the error message; default the row number.
        column: the column (or role) the texts come from, for the message.
        id_name: what the ids are called (``"qid"``, ``"docno"``).

    Raises:
        TextError: naming the first bad row, the number of bad rows, and what to do.
    """
    texts = list(texts)
    bad = [(i, p) for i, p in ((i, _problem(t)) for i, t in enumerate(texts)) if p is not None]
    if bad:
        i, problem = bad[0]
        who = f"{id_name} {ids[i]!r}" if ids is not None else f"row {i}"
        more = f" ({len(bad)} rows in all)" if len(bad) > 1 else ""
        raise TextError(f"{column!r} of {who} {problem}{more}; every {column!r} must be a str "
                        f"(drop or fill rows without text first, e.g. frame.dropna(subset=[{column!r}]))")
    return texts


def check_finite(values: np.ndarray, *, what: str, ids: Sequence[Any] | None = None, id_name: str = "row",
                 hint: str = "") -> np.ndarray:
    """Raise :class:`NonFiniteError` when ``values`` (1-D, or rows of a 2-D array) hold NaN or infinity.

    Args:
        values: scores (1-D) or vectors (2-D, one per row).
        what: what the values are (``"document vectors"``, ``"scores of run 1"``), for the message.
        ids: the id of each row, for the message; default the row number.
        id_name: what the ids are called.
        hint: the likely cause and fix, appended to the message.

    Returns:
        ``values`` unchanged.
    """
    arr = np.asarray(values)
    if arr.size == 0 or not np.issubdtype(arr.dtype, np.floating):
        return values
    finite = np.isfinite(arr)
    if arr.ndim > 1:
        finite = finite.reshape(len(arr), -1).all(axis=1)
    if finite.all():
        return values
    rows = np.flatnonzero(~finite)
    named = [repr(ids[i]) if ids is not None else str(i) for i in rows[:_SHOWN]]
    more = " ..." if len(rows) > _SHOWN else ""
    raise NonFiniteError(f"{what} hold NaN or infinity in {len(rows)} of {len(arr)} rows ({id_name} "
                         f"{', '.join(named)}{more}){'; ' + hint if hint else ''}")


def check_device(device: Any) -> str | None:
    """Check a torch device string before any model is loaded; return it (``None`` stays ``None``: the default).

    Raises:
        ValueError: not a device torch knows (``"bogus"``), or a CUDA / MPS device this machine does not have.
    """
    if device is None:
        return None
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device {device!r} is not a torch device (e.g. 'cpu', 'cuda', 'cuda:1'): "
                         f"{' '.join(str(e).split())}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: CUDA is not available on this machine; use device='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r}: MPS is not available on this machine; use device='cpu'")
    return str(device)


class SettingError(ValueError, TypeError):
    """A bad option value, such as a count of 2.5 or a NaN learning rate.

    Both a ValueError and (for a value of the wrong type) the TypeError Python itself would raise, so callers
    may catch either.
    """


def check_int(value: Any, what: str, *, minimum: int = 1, optional: bool = False) -> int | None:
    """The one rule for counts: an int (not a bool, not 2.5, not "3") >= ``minimum``; None only if ``optional``.

    Raises:
        SettingError: naming the option, the rule and the value with its type.
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise SettingError(f"{what} must be an int >= {minimum}{' or None' if optional else ''}, got {value!r} "
                           f"({type(value).__name__})")
    return int(value)


def check_number(value: Any, what: str, *, positive: bool = False) -> float:
    """The one rule for real settings: a finite number (NaN passes ``<= 0`` tests silently), > 0 if ``positive``.

    Raises:
        SettingError: naming the option, the rule and the value with its type.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or (positive and value <= 0):
        raise SettingError(f"{what} must be a finite number{' > 0' if positive else ''}, got {value!r} "
                           f"({type(value).__name__})")
    return float(value)


def folded_cutoff(k: Any, num_results: int | None) -> int | None:
    """The ``num_results`` that ``transformer % k`` leaves when folded into it (PyTerrier's compile step).

    None when ``k`` is not a positive int: an unusual cutoff (``% 0``) is left to ``RankCutoff`` itself.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        return None
    return int(k) if num_results is None else min(int(k), num_results)
