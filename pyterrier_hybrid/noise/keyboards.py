"""Keyboard layouts and the typo model's character operations.

A layout is a grid of key rows (unshifted layer, optionally a shifted layer at the same
positions). Keys are staggered as on a real keyboard, so the neighbours of the key in row ``r``,
column ``i`` are ``i - 1`` and ``i + 1`` in the same row, ``i`` and ``i + 1`` in the row above and
``i - 1`` and ``i`` in the row below. On layouts with a second layer (InScript, Kedmanee) the key
itself in the other layer is a neighbour too: a slipped Shift is the commonest typo there.
A space in a row is a key that types no letter (punctuation, a ligature key); it is skipped.

Layouts (unshifted rows from the number row or Q row down):

* ``qwerty`` (en, vi: Vietnamese is typed with Telex/VNI on a QWERTY keyboard), ``qwerty-es``
  (Spanish, with ñ), ``qwertz`` (German), ``turkish-q``, ``arabic`` (Arabic 101), ``greek``,
  ``jcuken`` (Russian ЙЦУКЕН), ``inscript`` (Hindi InScript, both layers), ``kedmanee`` (Thai,
  both layers, with the number row, which holds consonants).
* Chinese is typed through a pinyin input method, not a layout: its typo is the wrong candidate
  of the same toneless pinyin (a homophone) among the 3,755 commonest characters (GB 2312 level 1),
  kept in the script of the text (converted to traditional when the character was traditional).

A character not on the language's layout is looked up by its base letter (``ü`` → ``u``, ``أ`` →
``ا``, ``ά`` → ``α``); a Latin letter in a non-Latin text falls back to QWERTY.
"""

from __future__ import annotations

import functools
import random
import unicodedata

LAYOUTS: dict[str, tuple[tuple[str, ...], ...]] = {
    # layers: each a tuple of rows
    "qwerty": (("qwertyuiop", "asdfghjkl", "zxcvbnm"),),
    "qwerty-es": (("qwertyuiop", "asdfghjklñ", "zxcvbnm"),),
    "qwertz": (("qwertzuiopü", "asdfghjklöä", "yxcvbnm"),),
    "turkish-q": (("qwertyuıopğü", "asdfghjklşi", "zxcvbnmöç"),),
    "arabic": (("ضصثقفغعهخحجد", "شسيبلاتنمكط", "ئءؤر ىةوزظ"),),
    "greek": ((" ςερτυθιοπ", "ασδφγηξκλ", "ζχψωβνμ"),),
    "jcuken": (("йцукенгшщзхъ", "фывапролджэ", "ячсмитьбю"),),
    "inscript": (
        ("ौैाीूबहगदजड़", "ोे्िुपरकतचट", "ॆंमनवलस  य"),
        ("औऐआईऊभङघधझढञ", "ओएअइउफऱखथछठ", "ऎँणऩऴळशष य़"),
    ),
    "kedmanee": (
        ("ๅ/-ภถุึคตจขช", "ๆไำพะัีรนยบลฃ", "ฟหกดเ้่าสวง", "ผปแอิืทมใฝ"),
        (" ๑๒๓๔ู฿๕๖๗๘๙", "๐ ฎฑธํ๊ณฯญฐ ฅ", "ฤฆฏโฌ็๋ษศซ ", "  ฉฮฺ์ ฒฬฦ"),
    ),
}
"""Key rows per layout and layer; a space is a key that types no letter."""

LANG_LAYOUT: dict[str, str] = {
    "ar": "arabic",
    "de": "qwertz",
    "el": "greek",
    "en": "qwerty",
    "es": "qwerty-es",
    "hi": "inscript",
    "ru": "jcuken",
    "th": "kedmanee",
    "tr": "turkish-q",
    "vi": "qwerty",
    "zh": "qwerty",  # for Latin letters in Chinese text; Han characters use homophones
}
"""The layout used for each language's typos."""


@functools.cache
def neighbours(layout: str) -> dict[str, tuple[str, ...]]:
    """Key → the letters of the keys around it (see the module docstring), for one layout."""
    layers = LAYOUTS[layout]
    result: dict[str, list[str]] = {}

    def key(layer: int, row: int, col: int) -> str | None:
        rows = layers[layer]
        if 0 <= row < len(rows) and 0 <= col < len(rows[row]) and rows[row][col] != " ":
            return rows[row][col]
        return None

    for li, rows in enumerate(layers):
        for r, keys in enumerate(rows):
            for i, char in enumerate(keys):
                if char == " ":
                    continue
                around = [(r, i - 1), (r, i + 1), (r - 1, i), (r - 1, i + 1), (r + 1, i - 1), (r + 1, i)]
                found = [key(li, rr, cc) for rr, cc in around]
                found += [key(other, r, i) for other in range(len(layers)) if other != li]  # slipped Shift
                result.setdefault(char, [])
                result[char] += [c for c in found if c and c != char and c not in result[char]]
    return {char: tuple(near) for char, near in result.items()}


def base_letter(char: str) -> str:
    """The character without its combining marks (``ü`` → ``u``, ``أ`` → ``ا``, ``ё`` → ``е``)."""
    return unicodedata.normalize("NFD", char)[0]


def near_keys(char: str, layout: str) -> tuple[str, ...]:
    """Letters a finger aiming at ``char`` may hit instead, in the case of ``char``; empty if unknown."""
    lower = char.lower()
    for table in (neighbours(layout), neighbours("qwerty")):
        for candidate in (lower, base_letter(lower)):
            if candidate in table:
                near = table[candidate]
                return tuple(c.upper() for c in near) if char != lower else near
    return ()


# --- Chinese: homophones through the pinyin input method ------------------------------------------


def _toneless(reading: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", reading) if not unicodedata.combining(c)).replace(
        "ü", "v"
    )


def _gb2312_level1(char: str) -> bool:
    try:
        code = char.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return len(code) == 2 and 0xB0A1 <= int.from_bytes(code, "big") <= 0xD7F9


@functools.cache
def _homophone_index() -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    from pypinyin.pinyin_dict import pinyin_dict

    reading_of: dict[str, str] = {}
    by_reading: dict[str, list[str]] = {}
    for code, readings in pinyin_dict.items():
        char = chr(code)
        reading = _toneless(readings.split(",")[0])
        reading_of[char] = reading
        if _gb2312_level1(char):
            by_reading.setdefault(reading, []).append(char)
    return reading_of, {r: tuple(sorted(chars)) for r, chars in by_reading.items()}


@functools.cache
def _opencc(config: str):
    import opencc

    return opencc.OpenCC(config)


def homophones(char: str) -> tuple[str, ...]:
    """Common characters read like ``char`` (toneless pinyin), in the script (simplified/traditional) of ``char``."""
    reading_of, by_reading = _homophone_index()
    simplified = _opencc("t2s").convert(char)
    reading = reading_of.get(simplified) or reading_of.get(char)
    if reading is None:
        return ()
    candidates = [c for c in by_reading.get(reading, ()) if c != simplified]
    if simplified != char:  # a traditional character: offer traditional candidates
        candidates = [_opencc("s2t").convert(c) for c in candidates]
    return tuple(c for c in candidates if c != char)


def is_han(char: str) -> bool:
    """Whether ``char`` is a CJK unified ideograph."""
    return "CJK UNIFIED IDEOGRAPH" in unicodedata.name(char, "")


# --- the typo of one word --------------------------------------------------------------------------

_OPS = ("substitute", "insert", "delete", "swap")
_WEIGHTS = {"substitute": 0.4, "insert": 0.2, "delete": 0.2, "swap": 0.2}
_WEIGHTS_HAN = {"substitute": 0.7, "insert": 0.1, "delete": 0.1, "swap": 0.1}


def _alternatives(char: str, layout: str) -> tuple[str, ...]:
    return homophones(char) if is_han(char) else near_keys(char, layout)


def typo(word: str, lang: str, rng: random.Random) -> str | None:
    """One keyboard typo in ``word``: a substitution, insertion, deletion or adjacent swap.

    Substituted and inserted characters are neighbouring keys on the language's layout (a
    homophone for Chinese characters). Insertions go inside the word, deletions need two
    characters, swaps two different characters, so the word always changes, never empties and
    never grows into its neighbours.

    Returns:
        The misspelt word, or None when no operation applies (e.g. a one-character word with no
        known neighbouring key).
    """
    layout = LANG_LAYOUT.get(lang, "qwerty")
    han = any(is_han(c) for c in word)
    weights = _WEIGHTS_HAN if han else _WEIGHTS
    ops = list(_OPS)
    rng.shuffle(ops)
    ops.sort(key=lambda op: -weights[op] * rng.random())  # weighted order without replacement
    for op in ops:
        if op == "substitute":
            positions = [i for i, c in enumerate(word) if c.isalpha() and _alternatives(c, layout)]
            if positions:
                i = rng.choice(positions)
                return word[:i] + rng.choice(_alternatives(word[i], layout)) + word[i + 1 :]
        elif op == "insert" and len(word) >= 2:
            i = rng.randrange(1, len(word))
            # a fat finger hits a key next to the previous or the next letter; Chinese: a second candidate
            source = word[i - 1] if rng.random() < 0.5 else word[i]
            near = _alternatives(source, layout) or _alternatives(word[i - 1], layout)
            if near:
                return word[:i] + rng.choice(near) + word[i:]
        elif op == "delete" and len(word) >= 2:
            i = rng.randrange(len(word))
            return word[:i] + word[i + 1 :]
        elif op == "swap":
            pairs = [i for i in range(len(word) - 1) if word[i] != word[i + 1]]
            if pairs:
                i = rng.choice(pairs)
                return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return None
