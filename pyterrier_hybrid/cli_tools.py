"""The ir_datasets and ir_measures command lines, run with this package's datasets and measures loaded.

Neither library has a plugin hook, and their command lines (``python -m ir_datasets``, ``ir_measures``)
run in a process that never imports this package, so they know none of its ids or measure names.
``pyterrier-hybrid irds ...`` and ``pyterrier-hybrid measures ...`` register both and then run the
library's own command line with the remaining arguments unchanged; the exit status is the tool's.

Examples::

    pyterrier-hybrid irds export xquad-r/en-de queries --format jsonl
    pyterrier-hybrid irds lookup xquad-r/en-de --qid en_56beb4343aeaaa14008c925b
    pyterrier-hybrid measures xquad-r/en-de run.trec AP RankDistance@100 SameLangPref LangPEER@100
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def _status(exit_: SystemExit) -> int:
    """The exit status a process ending with this ``SystemExit`` would have."""
    code = exit_.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message") prints the message and exits 1
    return 1


def run_ir_datasets(args: Sequence[str]) -> int:
    """Run ``python -m ir_datasets <args>`` (export, lookup, list, ...) with the XQuAD-R / MLQA-R entries.

    Args:
        args: the arguments of the ir_datasets command line, e.g. ``["export", "xquad-r/en-de", "queries"]``.

    Returns:
        The exit status of the ir_datasets command line.
    """
    import ir_datasets

    from . import datasets  # noqa: F401  (registers the entries and the noisy-id pattern)

    try:
        ir_datasets.main(list(args))
    except SystemExit as e:
        return _status(e)
    finally:
        sys.stdout.flush()
    return 0


def run_ir_measures(args: Sequence[str]) -> int:
    """Run the ``ir_measures`` command line (``qrels run measures...``) with this package's measures.

    ``qrels`` may be a TREC qrels file or an ir_datasets id (``xquad-r/en-de``); the measures include
    ``RankDistance``, ``SameLangPref`` and ``LangPEER`` (PEER with the languages read from the ids).

    Args:
        args: the arguments of the ir_measures command line.

    Returns:
        The exit status of the ir_measures command line.
    """
    import ir_measures.__main__ as ir_measures_cli

    from . import datasets, measures, named_measures  # noqa: F401  (ids, measures and their providers)

    argv = sys.argv
    sys.argv = ["pyterrier-hybrid measures", *args]  # its main_cli parses sys.argv
    try:
        ir_measures_cli.main_cli()
    except SystemExit as e:
        return _status(e)
    finally:
        sys.argv = argv
        sys.stdout.flush()
    return 0


PASSTHROUGH = {"irds": run_ir_datasets, "measures": run_ir_measures}
"""Subcommand → the function that runs the wrapped command line with the remaining arguments."""

HELP = {
    "irds": "run the ir_datasets command line (export, lookup, list) with the XQuAD-R / MLQA-R entries "
    "registered; arguments are passed on unchanged",
    "measures": "run the ir_measures command line (qrels run measures...) with RankDistance, SameLangPref "
    "and LangPEER; arguments are passed on unchanged",
}
