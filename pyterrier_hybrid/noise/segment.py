"""What a "word" is for the noise models: ICU word segments that hold a letter or a digit.

One definition for all languages keeps the noise level comparable: spaces separate words in
most of them, but Thai and Chinese are written without spaces, and ICU's dictionary-based word
breaker (the one behind every browser's double-click selection) segments them. Punctuation and
spaces are never words and are never touched by a noise model.
"""

from __future__ import annotations

import functools

from icu4py.breakers import WordBreaker
from icu4py.locale import Locale


@functools.cache
def _locale(lang: str) -> Locale:
    return Locale(lang)


def word_spans(text: str, lang: str) -> list[tuple[int, int]]:
    """``[start, end)`` character offsets of the words of ``text``.

    Args:
        text: any text.
        lang: ISO 639-1 code; selects ICU's rules (and dictionary for Thai and Chinese).

    Returns:
        The spans of ICU word segments that contain at least one letter or digit, in order.

    >>> word_spans("Wie viele Bälle?", "de")
    [(0, 3), (4, 9), (10, 15)]
    """
    if not text:
        return []
    return [(s, e) for s, e in WordBreaker(text, _locale(lang)).segments() if any(c.isalnum() for c in text[s:e])]


def words(text: str, lang: str) -> list[str]:
    """The words of ``text`` (see :func:`word_spans`)."""
    return [text[s:e] for s, e in word_spans(text, lang)]
