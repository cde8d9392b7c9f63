"""Language codes of the LAReQA benchmarks and the id conventions that carry them.

Every query id and doc id of the registered datasets starts with its ISO 639-1 language
code followed by an underscore (``en_56beb4343aeaaa14008c925b``, ``de_00012_003``), so the
language of any row of a run can be recovered from the id alone (see :func:`lang_of_id`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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


def lang_of_id(identifier: str) -> str:
    """Language code carried by a query id or doc id of the registered datasets.

    >>> lang_of_id("de_00012_003")
    'de'
    """
    lang, sep, _ = str(identifier).partition(ID_SEP)
    if not sep:
        raise ValueError(
            f"id {identifier!r} carries no language prefix; ids of pyterrier_hybrid datasets look like "
            f"'<lang>{ID_SEP}...' (e.g. 'en{ID_SEP}00012_003')"
        )
    return lang
