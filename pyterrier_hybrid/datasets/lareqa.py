"""Parsing of LAReQA JSON (SQuAD v1.1 plus ``sentences`` / ``sentence_breaks``).

One file holds one language. Its candidate pool is every sentence of every paragraph; a
question's gold candidate is the sentence whose ``[start, end)`` break range contains the
answer's ``answer_start`` in the question's paragraph. An ``answer_start`` that falls in the
whitespace between two ranges is given to the sentence before it (the sentence "owns" its
trailing gap). :class:`LanguageData` lists those cases and the questions whose gold sentence does
not contain the whole answer text (an answer that runs over a sentence break, or a sentence whose
text was cleaned relative to the paragraph), so they are reported, never silently dropped.
"""

# No `from __future__ import annotations`: PyTerrier reads the NamedTuple annotations as types (`is str`)
# to find the text fields of docs (pt.text.get_text).
import bisect
import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .._checks import TextError, check_texts
from ..languages import ALL_LANGS, ID_SEP, validate_langs
from .source import LareqaFileError, fix_hint, lareqa_file


class LareqaDoc(NamedTuple):
    """A candidate answer sentence.

    Attributes:
        doc_id: ``<lang>_<paragraph:05d>_<sentence:03d>`` (paragraph numbering follows the file).
        text: the sentence.
        lang: ISO 639-1 code of the sentence.
        context: the whole paragraph that holds the sentence.
    """

    doc_id: str
    text: str
    lang: str
    context: str


class LareqaQuery(NamedTuple):
    """A question.

    Attributes:
        query_id: ``<lang>_<group_id>``, unique across languages.
        text: the question.
        lang: ISO 639-1 code of the question.
        group_id: the SQuAD/MLQA question id, shared by all translations of the question.
    """

    query_id: str
    text: str
    lang: str
    group_id: str


@dataclass
class LanguageData:
    """Everything one ``<benchmark>/<lang>.json`` holds, with gold sentences resolved.

    Attributes:
        benchmark: ``"xquad-r"`` or ``"mlqa-r"``.
        lang: the language of the file.
        docs: candidate sentences in file order.
        queries: questions in file order.
        gold: group id → doc id of the gold sentence.
        answers: group id → answer text.
        gap_answers: group ids whose ``answer_start`` fell between two sentence ranges.
        answer_crosses_break: group ids whose answer starts in the gold sentence but runs past its
            end (the sentence splitter cut inside the answer, e.g. after "E.I.").
        answer_not_in_gold: other group ids whose gold sentence does not contain the answer text.
    """

    benchmark: str
    lang: str
    docs: list[LareqaDoc] = field(default_factory=list)
    queries: list[LareqaQuery] = field(default_factory=list)
    gold: dict[str, str] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    gap_answers: list[str] = field(default_factory=list)
    answer_crosses_break: list[str] = field(default_factory=list)
    answer_not_in_gold: list[str] = field(default_factory=list)

    @functools.cached_property
    def docs_by_id(self) -> dict[str, LareqaDoc]:
        """Doc id → doc."""
        return {doc.doc_id: doc for doc in self.docs}

    @functools.cached_property
    def queries_by_group(self) -> dict[str, LareqaQuery]:
        """Group id → question of this language."""
        return {query.group_id: query for query in self.queries}


def doc_id(lang: str, paragraph: int, sentence: int) -> str:
    """Doc id of sentence ``sentence`` of paragraph ``paragraph`` (both 0-based) of ``lang``."""
    return f"{lang}{ID_SEP}{paragraph:05d}{ID_SEP}{sentence:03d}"


def query_id(lang: str, group_id: str) -> str:
    """Query id of the ``lang`` translation of question ``group_id``."""
    return f"{lang}{ID_SEP}{group_id}"


def gold_sentence(breaks: list[list[int]], answer_start: int) -> tuple[int, bool]:
    """Index of the sentence whose break range holds ``answer_start``, and whether it fell in a gap.

    Args:
        breaks: ``[start, end)`` character ranges of the paragraph's sentences, in order.
        answer_start: character offset of the answer in the paragraph.

    Returns:
        ``(index, in_gap)``; ``in_gap`` is true when no range contains the offset and the
        sentence before it was taken.
    """
    starts = [start for start, _ in breaks]
    i = max(bisect.bisect_right(starts, answer_start) - 1, 0)
    start, end = breaks[i]
    return i, not (start <= answer_start < end)


def _read_json(path: Path) -> object:
    """The parsed JSON of ``path``; a bad file raises ValueError naming it (the callers add their own fix)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}; a truncated or hand-edited file? restore or regenerate "
                         "it") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 ({e.reason} at byte {e.start}); JSON files are UTF-8: convert it "
                         "(e.g. iconv -t utf-8)") from None


def parse_lareqa(raw: object, *, benchmark: str, lang: str, source: str | Path) -> LanguageData:
    """Walk parsed LAReQA JSON: the one reader of the format, behind the entries and a user's own files.

    Args:
        raw: the parsed JSON (SQuAD v1.1 with ``sentences`` and ``sentence_breaks`` per paragraph).
        benchmark: the benchmark name recorded in the result (a user's folder for their own data).
        lang: the language of the file.
        source: the file, for error messages.

    Raises:
        ValueError: not LAReQA-style (the message names what is missing) or a question id that is not a
            string or an integer.
        TextError: a sentence or question that is not text (e.g. null), never read as the text "None".
    """
    data = LanguageData(benchmark=benchmark, lang=lang)
    try:
        paragraph_index = 0
        for article in raw["data"]:  # type: ignore[index]
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                ids = [doc_id(lang, paragraph_index, s) for s in range(len(paragraph["sentences"]))]
                data.docs.extend(
                    LareqaDoc(did, sentence, lang, context) for did, sentence in zip(ids, paragraph["sentences"])
                )
                for qa in paragraph["qas"]:
                    if isinstance(qa["id"], bool) or not isinstance(qa["id"], (str, int)):
                        raise ValueError(f"{source}: question id {qa['id']!r} (question {qa.get('question')!r}) "
                                         "is not a string; give every question an 'id'")
                    group = str(qa["id"])
                    answer = qa["answers"][0]
                    index, in_gap = gold_sentence(paragraph["sentence_breaks"], answer["answer_start"])
                    data.queries.append(LareqaQuery(query_id(lang, group), qa["question"], lang, group))
                    data.gold[group] = ids[index]
                    data.answers[group] = answer["text"]
                    if in_gap:
                        data.gap_answers.append(group)
                    if str(answer["text"]).strip() not in paragraph["sentences"][index]:
                        end = answer["answer_start"] + len(answer["text"])
                        crosses = end > paragraph["sentence_breaks"][index][1]
                        (data.answer_crosses_break if crosses else data.answer_not_in_gold).append(group)
                paragraph_index += 1
    except (KeyError, IndexError, TypeError) as e:
        raise ValueError(f"{source} is not LAReQA-style JSON (SQuAD v1.1 with 'sentences' and 'sentence_breaks' "
                         f"per paragraph): missing or malformed {e}") from None
    try:  # a null sentence or question is an error, never the text "None"
        check_texts((d.text for d in data.docs), ids=[d.doc_id for d in data.docs], column="sentence",
                    id_name="docno")
        check_texts((q.text for q in data.queries), ids=[q.query_id for q in data.queries], column="question",
                    id_name="qid")
    except TextError as e:
        raise TextError(f"{source}: {e}") from None
    return data


@functools.cache
def load_language(benchmark: str, lang: str) -> LanguageData:
    """Parse ``<benchmark>/<lang>.json`` (resolved by :func:`~.source.lareqa_file`), cached per process.

    Raises:
        LareqaFileError: the file is missing, does not match its pinned md5, or (changed after the md5 check)
            does not parse; the message names the file and how to restore it.
    """
    path = lareqa_file(benchmark, lang)
    rel = f"{benchmark}/{lang}.json"
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        return parse_lareqa(raw, benchmark=benchmark, lang=lang, source=path)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LareqaFileError(f"{path}: LAReQA file {rel} is not valid JSON ({e}; truncated or changed since "
                              f"its md5 check); {fix_hint(rel)}") from None
    except ValueError as e:  # not LAReQA-style, or a null text (TextError is a ValueError)
        raise LareqaFileError(f"{' '.join(str(e).split())} (changed since its md5 check?); {fix_hint(rel)}") from None


def lareqa_json_files(path: str | Path, *, langs: Iterable[str] | None = None,
                      valid_langs: Sequence[str] = ALL_LANGS) -> dict[str, Path]:
    """The ``<lang>.json`` files of a directory of LAReQA-style JSON (a user's own data), by language.

    Args:
        path: the directory.
        langs: keep only these languages (each must have a file).
        valid_langs: accepted language codes (file names).

    Raises:
        ValueError: not a directory, no files, a requested language without file, an unknown language.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory of LAReQA-style <lang>.json files")
    files = {p.stem: p for p in sorted(path.glob("*.json"))}
    if langs is not None:
        langs = list(langs)
        if absent := [lang for lang in langs if lang not in files]:
            raise ValueError(f"{path} has no file for language(s) {absent}; found {sorted(files)}")
        files = {lang: files[lang] for lang in langs}
    if not files:
        raise ValueError(f"{path} holds no <lang>.json files")
    validate_langs(list(files), valid_langs, what=f"language (file name) in {path}")
    return files


def read_lareqa_json(path: str | Path, lang: str) -> LanguageData:
    """Parse one LAReQA-style JSON file of a user's own data, with the ids of the registered entries.

    Args:
        path: the ``<lang>.json`` file (SQuAD v1.1 with ``sentences`` and ``sentence_breaks`` per paragraph).
        lang: its language.

    Returns:
        The file's :class:`LanguageData` (``benchmark`` is the file's folder): every sentence and question in
        file order and group id -> gold docno (the sentence holding the answer start; a repeated question id
        keeps its last occurrence).

    Raises:
        ValueError: not JSON, or not LAReQA-style (the message names what is missing and how to fix it).
    """
    path = Path(path)
    raw = _read_json(path) if path.is_file() else None
    if raw is None:
        raise ValueError(f"{path} is not a file; give the <lang>.json file of LAReQA-style data")
    return parse_lareqa(raw, benchmark=str(path.parent), lang=lang, source=path)
