r"""Language Information Removal (LIR; Yang et al., EMNLP 2021), a training-free language-bias baseline.

For each language :math:`\ell`, the top-``k`` right singular vectors :math:`c_1..c_k` of that language's
candidate embedding matrix :math:`E_\ell` (rows = candidate vectors) mostly carry language identity
(Yang et al., 2021, "A Simple and Effective Method To Eliminate the Self Language Bias in Multilingual
Representations"). LIR projects them out of every vector of that language and re-normalises:

.. math:: u = e - \sum_{i \le k} (c_i^\top e)\, c_i, \qquad e' = u / \lVert u \rVert

Questions use the directions of their own language (estimated from that language's candidates). By
default the SVD is taken of the uncentred matrix (its first direction then tracks the language's mean
vector); ``center=True`` uses principal components of the mean-centred matrix instead.

Usage::

    lir = LIR(k=1).fit(docs_with_doc_vec)            # or .fit_vectors({"en": E_en, "de": E_de, ...})
    pipeline = encoder.query_encoder() >> lir >> retriever_over_lir_doc_vectors
    grid = evaluate_grid(encoder, "xquad-r", lir=LIR(k=1))   # "base + LIR", fitted on the candidates
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyterrier as pt
import pyterrier_alpha as pta

from ._checks import check_finite, check_int, check_texts
from .languages import lang_of_id

__all__ = ["LIR"]

_ID_COLUMN = {"query_vec": "qid", "doc_vec": "docno"}
_HINT = "the encoder produced them (damaged weights or diverged training); fix the model before LIR"


class LIR(pt.Transformer):
    """Removes per-language principal directions from ``query_vec`` / ``doc_vec`` (then re-normalises).

    The language of a row is its ``lang`` column when present, else the prefix of its ``qid`` (for
    ``query_vec``) or ``docno`` (for ``doc_vec``), see :func:`~pyterrier_hybrid.lang_of_id`.
    """

    def __init__(self, k: int = 1, *, center: bool = False, normalize: bool = True, verbose: bool = False):
        """Create an unfitted LIR transformer.

        Args:
            k: number of directions removed per language (the paper's best setting is small, 1-3).
            center: use principal components of the mean-centred matrix instead of the uncentred SVD.
            normalize: L2-normalise the projected vectors.
            verbose: progress bar while fitting.
        """
        self.k = check_int(k, "k", minimum=0)  # directions removed per language
        self.center = center
        self.normalize = normalize
        self.verbose = verbose
        self.directions: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        return f"LIR(k={self.k}, center={self.center}, langs={sorted(self.directions)})"

    @property
    def is_fitted(self) -> bool:
        """Whether directions were estimated."""
        return bool(self.directions)

    def fit_vectors(self, vectors: Mapping[str, np.ndarray]) -> LIR:
        """Estimate the directions of every language from its candidate vectors.

        Args:
            vectors: language → ``(n, dim)`` candidate vectors of that language (n ≥ k).
        """
        if not vectors:
            raise ValueError("fit_vectors needs the candidate vectors of at least one language")
        directions = {}
        for lang, matrix in pt.tqdm(vectors.items(), desc="LIR", unit="lang", disable=not self.verbose):
            matrix = np.asarray(matrix, dtype=np.float64)
            if matrix.ndim != 2 or len(matrix) < max(self.k, 1):
                raise ValueError(f"language {lang!r}: need a (n, dim) matrix with n >= k={self.k}, got "
                                 f"shape {matrix.shape}")
            # NaN would make the SVD fail ("did not converge") or return NaN directions for every vector
            check_finite(matrix, what=f"LIR fitting vectors of language {lang!r}", hint=_HINT)
            if self.center:
                matrix = matrix - matrix.mean(axis=0, keepdims=True)
            _, _, vt = np.linalg.svd(matrix, full_matrices=False)
            directions[lang] = vt[:self.k].astype(np.float32)
        self.directions = directions
        return self

    def fit(self, docs: pd.DataFrame) -> LIR:
        """Estimate the directions from a document frame with ``doc_vec`` (and ``docno`` or ``lang``)."""
        pta.validate.columns(docs, includes=["doc_vec"])
        langs = self._langs(docs, "doc_vec")
        matrix = self._matrix(docs, "doc_vec")
        return self.fit_vectors({lang: matrix[langs == lang] for lang in dict.fromkeys(langs)})

    def project(self, vectors: np.ndarray, langs: Sequence[str]) -> np.ndarray:
        """Project the directions of each row's language out of ``vectors`` (``(n, dim)``).

        Raises:
            NonFiniteError: ``vectors`` hold NaN or infinity (the projection would spread them).
        """
        if not self.is_fitted:
            raise ValueError("LIR is not fitted: call fit(docs) or fit_vectors({lang: vectors}) first")
        vectors = np.asarray(vectors, dtype=np.float32)
        langs = np.asarray(langs, dtype=object)
        if len(langs) != len(vectors):
            raise ValueError(f"{len(langs)} languages for {len(vectors)} vectors")
        check_finite(vectors, what="vectors to project", hint=_HINT)
        dim = next(iter(self.directions.values())).shape[1]
        if len(vectors) and (vectors.ndim != 2 or vectors.shape[1] != dim):
            raise ValueError(f"vectors of shape {vectors.shape}; LIR was fitted on vectors of dimension {dim}")
        out = vectors.copy()
        for lang in dict.fromkeys(langs):
            if lang not in self.directions:
                raise ValueError(f"LIR has no directions for language {lang!r}; fitted languages: "
                                 f"{', '.join(sorted(self.directions))}")
            rows = langs == lang
            c = self.directions[lang]
            out[rows] = vectors[rows] - (vectors[rows] @ c.T) @ c
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.where(norms > 0, norms, 1.0)
        return out

    def _langs(self, inp: pd.DataFrame, column: str) -> np.ndarray:
        if "lang" in inp.columns:
            ids = _ID_COLUMN[column]
            row_ids = inp[ids].tolist() if ids in inp.columns else None
            # a missing language must not become the language "nan"
            langs = check_texts(inp["lang"], row_ids, column="lang", id_name=ids if row_ids else "row")
            return np.array(langs, dtype=object)
        ids = _ID_COLUMN[column]
        if ids not in inp.columns:
            raise ValueError(f"LIR needs a 'lang' or '{ids}' column to know the language of each {column}")
        return np.array([lang_of_id(x) for x in inp[ids]], dtype=object)

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Replace ``query_vec`` and/or ``doc_vec`` by their LIR projections."""
        with pta.validate.any(inp) as v:
            v.columns(includes=["query_vec"])
            v.columns(includes=["doc_vec"])
        out = inp.copy()
        for column in ("query_vec", "doc_vec"):
            if column in out.columns and len(out):
                out[column] = list(self.project(self._matrix(out, column), self._langs(out, column)))
        return out

    @staticmethod
    def _matrix(inp: pd.DataFrame, column: str) -> np.ndarray:
        """The vectors of ``column`` as one matrix, checked finite (named by qid / docno)."""
        try:
            matrix = np.stack(inp[column].to_numpy()).astype(np.float32)
        except (ValueError, TypeError) as e:
            raise ValueError(f"the {column!r} column does not hold vectors of one length: "
                             f"{' '.join(str(e).split())}") from None
        ids = _ID_COLUMN[column]
        row_ids = inp[ids].tolist() if ids in inp.columns else None
        return check_finite(matrix, what=f"the {column!r} column", ids=row_ids, id_name=ids if row_ids else "row",
                            hint=_HINT)
