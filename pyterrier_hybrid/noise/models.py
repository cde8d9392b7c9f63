"""The noise models and :func:`perturb`, which applies one of them to a text at a given level.

Level semantics (the same for every model): the level ``p`` is the percentage of the text's
words (see :mod:`.segment`) to touch. ``k = p/100 * n`` words are touched, rounded at random
to one of the two nearest integers with the probability that makes the expected count exact.
Words are chosen in a random order among the words the model can change ("eligible" words: for
``typo`` any word with a letter, for ``orthographic`` a word with an informal spelling, for
``dialect`` a word in the list or matched by a rule, for ``script`` a word not already ASCII).
When fewer than ``k`` words are eligible, all eligible words are touched, so ``orthographic``,
``dialect`` and ``script`` may change fewer words than asked; ``typo`` and ``mixed`` (which
falls back to a typo where no other model applies) reach the level on real questions.

Determinism: all randomness comes from a stable hash (BLAKE2b, never Python's salted
``hash()``) of ``(seed, model, lang, key)`` where ``key`` is the text itself unless given (the
datasets and the transformer use the query id). The level is not part of the hash: the words
touched at level 20 are among those touched at level 30, with the same changes, so a
robustness curve adds noise to the same questions rather than drawing new noise per level.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import random
import unicodedata
from collections.abc import Callable

from .._checks import check_text
from ..languages import ALL_LANGS, validate_lang
from . import dialect as _dialect
from . import keyboards as _keyboards
from . import orthographic as _orthographic
from . import script as _script
from .segment import word_spans

WordModel = Callable[[str, str, random.Random], "str | None"]

_WORD_MODELS: dict[str, WordModel] = {
    "typo": _keyboards.typo,
    "orthographic": _orthographic.orthographic,
    "dialect": _dialect.dialect,
    "script": _script.romanise,
}

NOISE_MODELS: tuple[str, ...] = ("typo", "orthographic", "dialect", "script", "mixed")
"""Names of the noise models."""

NOISE_LEVELS: tuple[int, ...] = (10, 20, 30, 50)
"""The levels (percent of words) registered and documented; any integer from 0 to 100 is accepted."""

SCRIPT_PRESERVING: tuple[str, ...] = ("typo", "orthographic", "dialect")
"""Models whose output stays in the script of the input (``script`` and ``mixed`` romanise)."""

DESCRIPTIONS: dict[str, str] = {
    "typo": "keyboard typos: one insertion, deletion, substitution or adjacent swap per touched word, with "
    "neighbouring keys of the language's layout (pinyin homophones for Chinese characters)",
    "orthographic": "informal spelling: dropped diacritics and accents, letter variants (Arabic hamza/taa "
    "marbuta/yaa, Hindi nukta/chandrabindu, Russian ё), lower case, simplified/traditional Chinese",
    "dialect": "regional words and spellings from small hand-written lists (US/UK English, peninsular/Latin "
    "American Spanish, German/Austrian/Swiss, MSA/Egyptian/Levantine Arabic, mainland/Taiwan Chinese, ...)",
    "script": "romanisation as typed on a Latin keyboard (Arabizi, Greeklish, Hinglish, translit, RTGS Thai, "
    "toneless pinyin; ASCII letters for Latin-script languages)",
    "mixed": "each touched word gets one of typo, orthographic, dialect or script, drawn at random among "
    "those that can change it",
}


def validate_model(model: str) -> str:
    """Return ``model`` if it is a noise model name; otherwise raise a ValueError listing them."""
    if model not in NOISE_MODELS:
        raise ValueError(f"unknown noise model {model!r}; valid models are: {', '.join(NOISE_MODELS)}")
    return model


def validate_level(level: float) -> float:
    """Return ``level`` if it is a number in [0, 100]; otherwise raise a ValueError saying so.

    Any real number type is accepted (NumPy's too); bools, strings, NaN and infinities are not.
    """
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 <= level <= 100:
        raise ValueError(f"noise level must be a number of percent in [0, 100] (e.g. 10, 20, 30, 50); got {level!r}"
                         + (" (a string: convert it with float())" if isinstance(level, str) else ""))
    return level


def validate_seed(seed: int) -> int:
    """Return ``seed`` as an ``int`` if it is an integer (NumPy's too); otherwise raise a ValueError.

    Bools are refused: ``seed=True`` is almost always a misplaced flag, and would silently mean seed 1.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"noise seed must be an integer (e.g. 0, 1, 2); got {seed!r}")
    return int(seed)


def _rng(*parts: object) -> random.Random:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


_UNSPACED = ("th", "zh")


def _is_letter(char: str) -> bool:
    return unicodedata.category(char)[0] in "LMN"


def _mixed(word: str, lang: str, rng: random.Random) -> str | None:
    order = ["orthographic", "dialect", "script", "typo"]
    rng.shuffle(order)
    for name in order:
        variant = _WORD_MODELS[name](word, lang, rng)
        if variant is not None:
            return variant
    return None


def _word_model(model: str) -> WordModel:
    return _mixed if model == "mixed" else _WORD_MODELS[model]


def perturb(text: str, lang: str, *, model: str, level: float, seed: int = 0, key: str | None = None) -> str:
    """Noisy version of ``text`` (see the module docstring for what the level means).

    Args:
        text: a question or sentence.
        lang: its ISO 639-1 code (one of :data:`pyterrier_hybrid.languages.ALL_LANGS`).
        model: one of :data:`NOISE_MODELS`.
        level: percent of words to touch, 0 to 100; 0 returns ``text`` unchanged.
        seed: the same seed gives the same noise, a different seed different noise.
        key: what the noise of this text is tied to (default: the text). The datasets pass the query
            id, so a question's noise does not depend on which other questions are perturbed with it.

    Returns:
        The text with the touched words replaced; spaces, punctuation and untouched words are kept
        exactly. Never empty when ``text`` has a word.

    Raises:
        ValueError: unknown language or model, a level outside [0, 100], or a seed that is not an integer.
        TextError: ``text`` is not a str (None, NaN, bytes, a number) or holds a lone surrogate
            (:func:`pyterrier_hybrid._checks.check_text`); also a ValueError.

    >>> perturb("How many balls did Josh Norman intercept?", "en", model="typo", level=0)
    'How many balls did Josh Norman intercept?'
    """
    check_text(text, what="text to perturb")  # a missing text stays an error, never the string "None"
    validate_lang(lang, ALL_LANGS)
    validate_model(model)
    validate_level(level)
    seed = validate_seed(seed)
    if key is not None and (isinstance(key, bool) or not isinstance(key, (str, numbers.Integral))):
        raise ValueError(f"noise key must be a str or an integer id (or None: the text); got {key!r}")
    spans = word_spans(text, lang) if level > 0 else []
    if not spans:
        return text
    key = text if key is None else key
    text_rng = _rng(seed, model, lang, key)
    order = text_rng.sample(range(len(spans)), len(spans))
    x = level / 100 * len(spans)
    k = math.floor(x) + (text_rng.random() < x - math.floor(x))  # unbiased rounding, monotone in the level
    word_model = _word_model(model)
    replaced: dict[int, str] = {}
    for index in order:
        if len(replaced) >= k:
            break
        start, end = spans[index]
        variant = word_model(text[start:end], lang, _rng(seed, model, lang, key, index))
        if variant is not None and variant != text[start:end]:
            replaced[index] = variant
    if not replaced:
        return text
    result, last, previous_roman = "", 0, False
    for index, (start, end) in enumerate(spans):
        if index not in replaced:
            continue
        gap, variant = text[last:start], replaced[index]
        roman = lang in _UNSPACED and variant.isascii()  # romanised Thai/Chinese is typed between spaces
        if previous_roman and _is_letter((gap + variant)[0]):
            result += " "
        result += gap
        if roman and result and _is_letter(result[-1]):
            result += " "
        result += variant
        last, previous_roman = end, roman
    tail = text[last:]
    result += (" " if previous_roman and tail and _is_letter(tail[0]) else "") + tail
    return result if result.strip() else text
