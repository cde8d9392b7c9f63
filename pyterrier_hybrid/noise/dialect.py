"""Dialect noise: lexical substitution from small hand-written word lists, plus a few spelling rules.

The word lists (``data/dialect.json``, provenance in ``data/PROVENANCE.md``) map a word of the
benchmark's standard variety to regional forms; one is drawn at random. Rules cover regional
pronunciations that speakers also spell:

================  ==========================================================================
``ar-tha-ta``     ث → ت (Egyptian/Levantine: كثير → كتير)
``ar-dhal-dal``   ذ → د (Egyptian/Levantine: ذهب → دهب)
``de-swiss-ss``   ß → ss (Swiss Standard German has no ß)
``en-ize-ise``    -ize/-ization → -ise/-isation (British)
``es-seseo``      z, ce, ci → s, se, si (Latin American and Andalusian seseo)
``es-yeismo``     ll → y (yeísmo)
``tr-yor``        -yor → -yo, -yorum → -yom (spoken present tense)
``vi-initials``   syllable-initial l ↔ n, s ↔ x, tr ↔ ch, d ↔ gi ↔ r (northern merger)
``zh-s2twp``      mainland → Taiwan vocabulary with OpenCC's s2twp phrase table, written back in
                  the text's script (软件 → 软体)
================  ==========================================================================

Word lists are thin for some languages (a word list covers few words of a question), so the
dialect model may touch fewer words than asked; see :func:`pyterrier_hybrid.noise.perturb`.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Callable
from importlib import resources


@functools.cache
def data() -> dict:
    """The word lists and rules per language (``data/dialect.json``)."""
    raw = json.loads(resources.files(__package__).joinpath("data").joinpath("dialect.json").read_text("utf-8"))
    return {lang: entry for lang, entry in raw.items() if not lang.startswith("_")}


def _match_case(template: str, word: str) -> str:
    if template[:1].isupper() and word[:1].islower():
        return word[:1].upper() + word[1:]
    return word


def _seseo(w: str) -> str:
    w = re.sub("z", "s", w)
    w = re.sub("Z", "S", w)
    return re.sub("c([eiéí])", r"s\1", re.sub("C([eiéíEI])", r"S\1", w))


_VI_SWAPS = (("tr", "ch"), ("ch", "tr"), ("gi", "d"), ("l", "n"), ("n", "l"), ("s", "x"), ("x", "s"), ("d", "gi"),
             ("r", "d"))


def _vi_initials(w: str) -> str:
    low = w.lower()
    for old, new in _VI_SWAPS:
        # "nh", "ng" are their own initials; never touch them
        if low.startswith(old) and not low.startswith(("nh", "ng")):
            return _match_case(w, new + w[len(old):])
    return w


def _tr_yor(w: str) -> str:
    for old, new in (("yorum", "yom"), ("yorsun", "yon"), ("yorlar", "yolar"), ("yor", "yo")):
        if w.endswith(old):
            return w[: -len(old)] + new
    return w


def _zh_s2twp(w: str) -> str:
    from .keyboards import _opencc

    simplified = _opencc("t2s").convert(w)
    taiwan = _opencc("s2twp").convert(simplified)
    return taiwan if simplified != w else _opencc("t2s").convert(taiwan)


RULES: dict[str, Callable[[str], str]] = {
    "ar-tha-ta": lambda w: w.replace("ث", "ت"),
    "ar-dhal-dal": lambda w: w.replace("ذ", "د"),
    "de-swiss-ss": lambda w: w.replace("ß", "ss"),
    "en-ize-ise": lambda w: re.sub("iz(e|ed|es|ing|ation|ations)$", r"is\1", w) if len(w) > 5 else w,
    "es-seseo": _seseo,
    "es-yeismo": lambda w: w.replace("ll", "y").replace("Ll", "Y"),
    "tr-yor": _tr_yor,
    "vi-initials": _vi_initials,
    "zh-s2twp": _zh_s2twp,
}
"""Spelling rules by name (see the module docstring)."""


def dialect(word: str, lang: str, rng: random.Random) -> str | None:
    """A regional form of ``word``: from the word list when listed, else from a rule; None when neither applies."""
    entry = data()[lang]
    listed = [alt for alt in entry["words"].get(word.lower(), ()) if alt.lower() != word.lower()]
    if listed:
        variant = rng.choice(listed)
        if lang == "zh":  # the lists are written in simplified characters; keep a traditional text traditional
            from .keyboards import _opencc

            if _opencc("t2s").convert(word) != word:
                variant = _opencc("s2t").convert(variant)
        return _match_case(word, variant)
    variants = [v for v in (RULES[name](word) for name in entry["rules"]) if v != word]
    return rng.choice(variants) if variants else None


LANGS: tuple[str, ...] = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
