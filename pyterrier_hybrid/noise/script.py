"""Script noise: the romanisation users type when they write their language on a Latin keyboard.

=====  ===========================================================================================
ar     Arabizi (3 for ع, 7 for ح, 2 for ء, ...), from a small table (``data/arabizi.json``): no
       maintained Arabizi romaniser exists; vowels are the written long vowels only (short vowels
       are not written in Arabic), the article ال is written ``el`` or ``al``
el     Greeklish: anyascii's phonetic romanisation, or the "visual" style (θ → 8, ξ → 3, η → h, ω → w)
hi     Hinglish: indic-transliteration's ITRANS, lower-cased without its diacritic signs, with the
       word-final inherent vowel dropped as speakers do (भारत → bharat)
ru     translit: anyascii (ж → zh, ш → sh, я → ya), soft and hard signs dropped
th     Royal Thai General System via PyThaiNLP's ``royin`` engine (ครับ → khrap); anyascii's
       letter-by-letter romanisation when PyThaiNLP is not installed
zh     pinyin without tones from pypinyin, syllables of a word run together (中国 → zhongguo), ü as v
       as on a pinyin keyboard
Latin  de, en, es, tr, vi: the letters a plain US keyboard has (anyascii: ü → u, ş → s, ờ → o,
       đ → d); English words rarely have anything to change
=====  ===========================================================================================
"""

from __future__ import annotations

import functools
import json
import random
import re
import unicodedata
from importlib import resources

from anyascii import anyascii


@functools.cache
def _arabizi_table() -> dict[str, list[str]]:
    raw = json.loads(resources.files(__package__).joinpath("data").joinpath("arabizi.json").read_text("utf-8"))
    return {k: v for k, v in raw.items() if not k.startswith("_")}


def _arabizi(word: str, rng: random.Random) -> str:
    table = _arabizi_table()
    style = rng.random() < 0.7  # one writer uses one style within a word: mostly the commonest spelling
    out = []
    if word.startswith("ال") and len(word) > 3:
        out.append(rng.choice(("el", "al")))
        word = word[2:]
    for char in word:
        options = table.get(char)
        out.append(char if options is None else (options[0] if style else rng.choice(options)))
    return "".join(out)


_GREEKLISH_VISUAL = str.maketrans({"θ": "8", "Θ": "8", "ξ": "3", "Ξ": "3", "η": "h", "Η": "H", "ω": "w", "Ω": "W",
                                   "ψ": "4", "Ψ": "4"})


def _greeklish(word: str, rng: random.Random) -> str:
    stripped = unicodedata.normalize("NFC", "".join(c for c in unicodedata.normalize("NFD", word)
                                                    if not unicodedata.combining(c)))
    if rng.random() < 0.3:
        return anyascii(stripped.translate(_GREEKLISH_VISUAL))
    return anyascii(stripped)


_DEVANAGARI_CONSONANT = re.compile("[\u0915-\u0939\u0958-\u095f]$")


def _hinglish(word: str, rng: random.Random) -> str:
    from indic_transliteration import sanscript

    text = sanscript.transliterate(word, sanscript.DEVANAGARI, sanscript.ITRANS)
    text = text.replace("M", "n").replace(".N", "n").replace("~N", "n").replace("~n", "n")
    text = re.sub(r"[.~^|]", "", text).lower()
    text = text.replace("aa", "a") if rng.random() < 0.5 else text  # "baat" and "bat" are both typed
    if _DEVANAGARI_CONSONANT.search(word) and len(word) > 2 and text.endswith("a"):
        text = text[:-1]  # schwa deletion: भारत is said and typed "bharat"
    return text


def _translit_ru(word: str, rng: random.Random) -> str:
    return anyascii(word).replace("'", "").replace('"', "")


@functools.cache
def _thai_romanizer():
    try:
        from pythainlp.transliterate import romanize
    except ImportError:  # optional dependency: fall back to letter-by-letter
        return None
    return functools.partial(romanize, engine="royin")


def _romanise_th(word: str, rng: random.Random) -> str:
    romanize = _thai_romanizer()
    result = romanize(word) if romanize is not None else ""
    return result if result.strip() else anyascii(word)


def _pinyin(word: str, rng: random.Random) -> str:
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(word, v_to_u=False)).replace("ü", "v")


def _ascii(word: str, rng: random.Random) -> str:
    return anyascii(word)


_ROMANISERS = {
    "ar": _arabizi, "el": _greeklish, "hi": _hinglish, "ru": _translit_ru, "th": _romanise_th, "zh": _pinyin,
    "de": _ascii, "en": _ascii, "es": _ascii, "tr": _ascii, "vi": _ascii,
}
LANGS: tuple[str, ...] = tuple(sorted(_ROMANISERS))
LATIN_LANGS: tuple[str, ...] = ("de", "en", "es", "tr", "vi")
"""Languages already written in the Latin script: their script noise only removes non-ASCII letters."""


def romanise(word: str, lang: str, rng: random.Random) -> str | None:
    """The word as typed on a plain Latin keyboard, or None when it has nothing to romanise (digits, Latin)."""
    if all(ord(c) < 128 for c in word):
        return None
    variant = _ROMANISERS[lang](word, rng)
    return variant if variant and variant != word else None
