"""A PyTerrier transformer that perturbs the ``query`` column."""

from __future__ import annotations

import pandas as pd
import pyterrier as pt
import pyterrier_alpha as pta

from .._checks import check_texts
from ..languages import ALL_LANGS, lang_of_id, validate_lang
from .models import perturb, validate_level, validate_model, validate_seed


class NoiseTransformer(pt.Transformer):
    """Replaces each query by its noisy version and keeps the clean one in ``query_0``.

    The noise of a query is tied to its ``qid`` (with the seed, model and language), so it does
    not depend on the order or the company of the queries, and equals the noise of the same query
    in the registered noisy datasets (``xquad-r/en-de/noise-typo-20``) for the same seed.

    The language of a query is its ``lang`` column when there is one, else ``lang=`` when given,
    else the prefix of its ``qid`` (``de_...``; see :func:`pyterrier_hybrid.languages.lang_of_id`).

    Example::

        noisy = NoiseTransformer("typo", 20) >> retriever
        pt.Experiment([retriever, noisy], topics, qrels, ["map"])
    """

    def __init__(self, model: str, level: float, *, seed: int = 0, lang: str | None = None, verbose: bool = False):
        """Create the transformer.

        Args:
            model: a noise model (see :data:`pyterrier_hybrid.noise.NOISE_MODELS`).
            level: percent of words to touch, 0 to 100.
            seed: the noise seed.
            lang: language of all queries; default: per row, from ``lang`` or the ``qid`` prefix.
            verbose: show a progress bar.

        Raises:
            ValueError: unknown model or language, a level outside [0, 100], a seed that is not an integer.
        """
        self.model = validate_model(model)
        self.level = validate_level(level)
        self.seed = validate_seed(seed)
        self.lang = None if lang is None else validate_lang(lang, ALL_LANGS)
        self.verbose = verbose

    def __repr__(self) -> str:
        return f"NoiseTransformer({self.model!r}, {self.level!r}, seed={self.seed!r})"

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Perturb ``query`` (``qid`` and ``query`` required); the clean text moves to ``query_0``.

        Raises:
            ValueError: a missing ``qid`` or ``lang``, or a query that is not a str (missing, NaN, bytes, a
                number, a lone surrogate), naming the qid; checked for every row before any is perturbed.
        """
        with pta.validate.any(inp) as v:
            v.query_frame(extra_columns=["query"])
        if (missing := inp["qid"].isna()).any():
            raise ValueError(f"'qid' is missing in {int(missing.sum())} row(s) (first: row {int(missing.argmax())}); "
                             "the noise of a query is keyed by its qid: give every row one")
        check_texts(inp["query"], ids=inp["qid"].tolist(), column="query", id_name="qid")
        langs = inp["lang"] if self.lang is None and "lang" in inp.columns else None
        if langs is not None and (missing := langs.isna()).any():
            raise ValueError(f"'lang' of qid {inp['qid'].iloc[int(missing.argmax())]!r} is missing; fill the "
                             "'lang' column, or drop it to read the language from the qid prefix")
        out = pt.model.push_queries(inp, keep_original=False, inplace=False)
        if len(out) == 0:
            out["query"] = pd.Series(dtype=object)
            return out
        rows = zip(out["qid"].astype(str), out["query_0"], langs if langs is not None else [None] * len(out))
        if self.verbose:
            rows = pt.tqdm(rows, total=len(out), desc=repr(self), unit="query")
        out["query"] = [
            perturb(text, lang or self.lang or lang_of_id(qid), model=self.model, level=self.level, seed=self.seed,
                    key=qid)
            for qid, text, lang in rows
        ]
        return out
