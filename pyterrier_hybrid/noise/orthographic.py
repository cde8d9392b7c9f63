"""Informal spelling that speakers really type: dropped diacritics, letter variants, lower case.

Each language has a few *operations*; a touched word gets a random non-empty subset of the ones
that change it (so a German noun may lose its capital, its umlaut, or both). All operations are
spellings found in informal writing:

==== =====================================================================================
ar   hamza on alef dropped (أ إ آ → ا), hamza seats dropped (ؤ → و, ئ → ي), taa marbuta ة → ه,
     final yaa/alef maqsura swapped (ي ↔ ى), short-vowel marks stripped; tatweel (ـ, stretching a
     joined letter) only for words that have none of the others
de   umlauts spelt out or dropped (ä → ae or a, ö → oe or o, ü → ue or u), ß → ss, lower case
el   tonos and dialytika dropped (ά → α, ϊ → ι), lower case
en   lower case, apostrophe dropped (don't → dont), texting spellings (you → u, because → cuz)
es   accents and tilde dropped (á → a, ñ → n, ü → u), lower case, texting spellings (que → q)
hi   nukta dropped (ज़ → ज), chandrabindu → anusvara (ँ → ं), anusvara ↔ nasal conjunct (हिंदी ↔ हिन्दी),
     short/long vowel signs confused (ि ↔ ी, ु ↔ ू)
ru   ё → е, lower case, -тся ↔ -ться confused
th   tone marks dropped (่ ้ ๊ ๋), ร/ล dropped from initial clusters (ครับ → คับ), silent
     letters marked with ์ dropped (จันทร์ → จัน)
tr   Turkish letters typed on an ASCII keyboard (ş ğ ı ç ö ü İ → s g i c o u I), lower case
vi   tone marks dropped, or all diacritics dropped (including đ → d), lower case
zh   simplified ↔ traditional characters (OpenCC: mainland, Taiwan or Hong Kong standard forms)
==== =====================================================================================
"""

from __future__ import annotations

import functools
import json
import random
import re
import unicodedata
from collections.abc import Callable
from importlib import resources

Op = Callable[[str], str]


@functools.cache
def _data() -> dict:
    return json.loads(resources.files(__package__).joinpath("data").joinpath("informal.json").read_text("utf-8"))


def _strip_marks(word: str, keep: Callable[[str], bool] = lambda mark: False) -> str:
    """Drop combining marks (after NFD) except those ``keep`` accepts; recompose."""
    decomposed = unicodedata.normalize("NFD", word)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c) or keep(c)))


def _lower(word: str) -> str:
    return word.lower()


def _texting(lang: str) -> Op:
    table = _data().get(lang, {})

    def op(word: str) -> str:
        return table.get(word.lower(), word)

    return op


def _table(mapping: dict[str, str]) -> Op:
    trans = str.maketrans(mapping)
    return lambda word: word.translate(trans)


# --- per language ----------------------------------------------------------------------------------

_AR_DIACRITICS = re.compile("[\u064b-\u0652\u0670]")
_AR_JOINING = set("بتثجحخسشصضطظعغفقكلمنهي")  # letters that join to the next one (tatweel fits after them)


def _ar_ops(word: str, rng: random.Random) -> list[Op]:
    final_yaa = lambda w: w[:-1] + "ى" if w.endswith("ي") else (w[:-1] + "ي" if w.endswith("ى") else w)  # noqa: E731
    return [
        _table({"أ": "ا", "إ": "ا", "آ": "ا"}),
        _table({"ؤ": "و", "ئ": "ي"}),
        lambda w: w[:-1] + "ه" if w.endswith("ة") else w,
        final_yaa,
        lambda w: _AR_DIACRITICS.sub("", w),
    ]


def _ar_tatweel(word: str, rng: random.Random) -> str:
    slots = [i + 1 for i in range(len(word) - 1) if word[i] in _AR_JOINING and "\u0621" <= word[i + 1] <= "\u064a"]
    if not slots:
        return word
    i = rng.choice(slots)
    return word[:i] + "ـ" * rng.randint(1, 3) + word[i:]


def _de_ops(word: str, rng: random.Random) -> list[Op]:
    spelt = rng.random() < 0.6  # "ae" is the standard fallback, dropping the dots is sloppier
    umlauts = {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"} if spelt else {
        "ä": "a", "ö": "o", "ü": "u", "Ä": "A", "Ö": "O", "Ü": "U"}
    return [_table({**umlauts, "ß": "ss"}), _lower]


def _el_ops(word: str, rng: random.Random) -> list[Op]:
    return [_strip_marks, _lower]


def _en_ops(word: str, rng: random.Random) -> list[Op]:
    return [_lower, lambda w: w.replace("'", "").replace("’", ""), _texting("en")]


def _es_ops(word: str, rng: random.Random) -> list[Op]:
    return [_strip_marks, _lower, _texting("es")]


_HI_NASAL = {"क": "ङ", "ख": "ङ", "ग": "ङ", "घ": "ङ", "च": "ञ", "छ": "ञ", "ज": "ञ", "झ": "ञ", "ट": "ण", "ठ": "ण",
             "ड": "ण", "ढ": "ण", "त": "न", "थ": "न", "द": "न", "ध": "न", "प": "म", "फ": "म", "ब": "म", "भ": "म"}
_HI_ANUSVARA = re.compile("ं(" + "|".join(_HI_NASAL) + ")")
_HI_CONJUNCT = re.compile("(" + "|".join(sorted(set(_HI_NASAL.values()))) + ")्(" + "|".join(_HI_NASAL) + ")")


def _hi_ops(word: str, rng: random.Random) -> list[Op]:
    def nasal(w: str) -> str:
        w2 = _HI_ANUSVARA.sub(lambda m: _HI_NASAL[m.group(1)] + "्" + m.group(1), w)
        return w2 if w2 != w else _HI_CONJUNCT.sub(lambda m: "ं" + m.group(2), w)

    def vowel_length(w: str) -> str:
        signs = [i for i, c in enumerate(w) if c in "िीुू"]
        if not signs:
            return w
        i = signs[int.from_bytes(w.encode(), "big") % len(signs)]  # the same sign each time the op is asked
        return w[:i] + {"ि": "ी", "ी": "ि", "ु": "ू", "ू": "ु"}[w[i]] + w[i + 1 :]

    return [lambda w: unicodedata.normalize("NFC", unicodedata.normalize("NFD", w).replace("\u093c", "")),
            lambda w: w.replace("ँ", "ं"), nasal, vowel_length]


def _ru_ops(word: str, rng: random.Random) -> list[Op]:
    def tsya(w: str) -> str:
        if w.endswith("ться"):
            return w[:-4] + "тся"
        return w[:-3] + "ться" if w.endswith("тся") else w

    return [_table({"ё": "е", "Ё": "Е"}), _lower, tsya]


_TH_CLUSTER = re.compile("^([เแโใไ]?)([กขคตปพ])([รล])(?=[ก-ฮ]|[ะ-ู็-๋])")


def _th_ops(word: str, rng: random.Random) -> list[Op]:
    return [
        lambda w: re.sub("[่้๊๋]", "", w),
        lambda w: _TH_CLUSTER.sub(r"\1\2", w),
        lambda w: re.sub("[ก-ฮ][ิุ]?์", "", w) or w,
    ]


def _tr_ops(word: str, rng: random.Random) -> list[Op]:
    fold = _table({"ş": "s", "Ş": "S", "ğ": "g", "Ğ": "G", "ı": "i", "İ": "I", "ç": "c", "Ç": "C", "ö": "o", "Ö": "O",
                   "ü": "u", "Ü": "U", "â": "a", "î": "i", "û": "u"})
    return [fold, lambda w: fold(w).lower() if fold(w) != w else w.replace("I", "ı").replace("İ", "i").lower()]


def _vi_ops(word: str, rng: random.Random) -> list[Op]:
    tones = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}  # huyền, sắc, ngã, hỏi, nặng
    if rng.random() < 0.5:
        strip = lambda w: _strip_marks(w, keep=lambda m: m not in tones)  # noqa: E731
    else:
        strip = lambda w: _strip_marks(w).replace("đ", "d").replace("Đ", "D")  # noqa: E731
    return [strip, _lower]


def _zh_ops(word: str, rng: random.Random) -> list[Op]:
    from .keyboards import _opencc

    def convert(w: str) -> str:
        simplified = _opencc("t2s").convert(w)
        if simplified != w:  # traditional text: write it simplified
            return simplified
        return _opencc(rng.choice(("s2t", "s2tw", "s2hk"))).convert(w)

    return [convert]


_OPS: dict[str, Callable[[str, random.Random], list[Op]]] = {
    "ar": _ar_ops, "de": _de_ops, "el": _el_ops, "en": _en_ops, "es": _es_ops, "hi": _hi_ops, "ru": _ru_ops,
    "th": _th_ops, "tr": _tr_ops, "vi": _vi_ops, "zh": _zh_ops,
}
LANGS: tuple[str, ...] = tuple(sorted(_OPS))


def orthographic(word: str, lang: str, rng: random.Random) -> str | None:
    """An informal spelling of ``word`` (see the module docstring), or None when the language has none for it."""
    ops = [op for op in _OPS[lang](word, rng) if op(word) != word]
    if not ops:
        if lang == "ar":
            variant = _ar_tatweel(word, rng)
            return variant if variant != word else None
        return None
    chosen = [op for op in ops if rng.random() < 0.5] or [rng.choice(ops)]
    variant = word
    for op in chosen:
        variant = op(variant) or variant
    return variant if variant and variant != word else ops[0](word)
