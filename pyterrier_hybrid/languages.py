"""Language codes of the LAReQA benchmarks and the id conventions that carry them.

Every query id and doc id of the registered datasets starts with its ISO 639-1 language
code followed by an underscore (``en_56beb4343aeaaa14008c925b``, ``de_00012_003``), so the
language of any row of a run can be recovered from the id alone (see :func:`lang_of_id`). Ids that carry no
language (a pyterrier-dr-style corpus, MIRACL docnos) get theirs from :func:`register_languages`. This module is
the one place where an id's language is decided; BM25 stemming, DenseIndex language blocks, the bias measures
and the grid all ask :func:`lang_of_id`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, overload

import numpy as np

from ._checks import check_text

XQUAD_R_LANGS: tuple[str, ...] = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
MLQA_R_LANGS: tuple[str, ...] = ("ar", "de", "en", "es", "hi", "vi", "zh")
BENCHMARK_LANGS: dict[str, tuple[str, ...]] = {"xquad-r": XQUAD_R_LANGS, "mlqa-r": MLQA_R_LANGS}
ALL_LANGS: tuple[str, ...] = tuple(sorted(set(XQUAD_R_LANGS) | set(MLQA_R_LANGS)))

LANG_NAMES: dict[str, str] = {
    "ar": "Arabic",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "hi": "Hindi",
    "ru": "Russian",
    "th": "Thai",
    "tr": "Turkish",
    "vi": "Vietnamese",
    "zh": "Chinese",
}

ID_SEP = "_"


def validate_lang(lang: str, valid: Sequence[str] = ALL_LANGS, *, what: str = "language") -> str:
    """Return ``lang`` if it is one of ``valid``; otherwise raise a ValueError listing them.

    Args:
        lang: a language code such as ``"en"``.
        valid: the codes accepted here.
        what: how the value is named in the error message.
    """
    if lang not in valid:
        raise ValueError(f"unknown {what} {lang!r}; valid codes are: {', '.join(valid)}")
    return lang


def validate_langs(langs: Iterable[str], valid: Sequence[str] = ALL_LANGS, *, what: str = "language") -> list[str]:
    """Validate several language codes (see :func:`validate_lang`) and return them as a list."""
    return [validate_lang(lang, valid, what=what) for lang in langs]


def validate_benchmark(benchmark: str) -> tuple[str, ...]:
    """Return the languages of ``benchmark`` (``"xquad-r"`` or ``"mlqa-r"``) or raise a clear error."""
    if benchmark not in BENCHMARK_LANGS:
        raise ValueError(f"unknown benchmark {benchmark!r}; valid names are: {', '.join(BENCHMARK_LANGS)}")
    return BENCHMARK_LANGS[benchmark]


# Languages of ids that carry none in a prefix; filled by register_languages, read first by lang_of_id.
_REGISTERED: dict[str, str] = {}


def register_languages(mapping: Mapping[Any, str]) -> None:
    """Register id → language entries, used before the id prefix by :func:`lang_of_id` everywhere.

    Args:
        mapping: doc ids and/or query ids to language codes; added to (and overriding) earlier entries.
            Integer ids are registered as their decimal text (PyTerrier's qid/docno columns are strings).

    Raises:
        TextError: a missing id or language (None / NaN), never registered as the text "None" or "nan".
        ValueError: an empty language code.
    """
    checked = {}
    for k, v in mapping.items():
        integer = isinstance(k, (int, np.integer)) and not isinstance(k, bool)
        key = str(k) if integer else check_text(k, what="an id in register_languages")
        lang = check_text(v, what=f"the language of id {k!r} in register_languages")
        if not lang.strip():
            raise ValueError(f"the language of id {k!r} in register_languages is empty; give a code such as 'en'")
        checked[key] = lang
    _REGISTERED.update(checked)


def unregister_languages(ids: Iterable[Any] | None = None) -> None:
    """Forget registered languages: those of ``ids``, or all of them when ``ids`` is None."""
    if ids is None:
        _REGISTERED.clear()
    for i in ids or ():
        _REGISTERED.pop(str(i), None)


@overload
def lang_of_id(identifier: Any) -> str: ...
@overload
def lang_of_id(identifier: Any, *, strict: bool) -> str | None: ...
def lang_of_id(identifier: Any, *, strict: bool = True) -> str | None:
    """Language code of a query id or doc id: its registered language, else its ``<lang>_`` prefix.

    >>> lang_of_id("de_00012_003")
    'de'

    Args:
        identifier: a qid or docno.
        strict: when True (measures, the grid, DenseIndex) an id without a registered language must carry a
            prefix, whatever its code; when False (BM25 stemming and language filters) the answer is None
            unless the id's language is registered or its prefix is one of :data:`ALL_LANGS`, so that ids
            such as ``doc_17`` are not mistaken for a language ``doc``.

    Raises:
        ValueError: (``strict`` only) the id carries no language prefix and none is registered.
    """
    key = str(identifier)
    if (registered := _REGISTERED.get(key)) is not None:
        return registered
    lang, sep, _ = key.partition(ID_SEP)
    if not strict:
        return lang if sep and lang in ALL_LANGS else None
    if not sep:
        raise ValueError(
            f"id {identifier!r} carries no language prefix; ids of pyterrier_hybrid datasets look like "
            f"'<lang>{ID_SEP}...' (e.g. 'en{ID_SEP}00012_003'); register the languages of other ids with "
            f"pyterrier_hybrid.languages.register_languages({{id: lang}})"
        )
    return lang
