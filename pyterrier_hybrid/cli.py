"""``pyterrier-hybrid``: command line for data import/listing and the other tasks of the package.

Every subcommand has ``--help``. Bad arguments exit with status 2 and a one-line reason
(argparse's convention); a failure while running prints ``pyterrier-hybrid: error: <reason>``
and exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

PROG = "pyterrier-hybrid"


class CommandError(Exception):
    """A command failed for a reason the user can fix; printed as one line."""


# --------------------------------------------------------------------------- data


def _data_import(args: argparse.Namespace) -> None:
    from .datasets import import_mirror

    paths = import_mirror(args.mirror, benchmarks=tuple(args.benchmark))
    print(f"imported {len(paths)} files into {paths[0].parent.parent}")


def _data_list(args: argparse.Namespace) -> None:
    import ir_datasets

    from .datasets import DATASET_IDS

    for name in DATASET_IDS:
        if args.benchmark and not name.startswith(args.benchmark):
            continue
        if args.verbose:
            print(f"{name}\t{ir_datasets.load(name).documentation()['pretty_name']}")
        else:
            print(name)


def _data_info(args: argparse.Namespace) -> None:
    import ir_datasets

    from . import datasets  # noqa: F401  (registers the entries)

    try:
        ds = ir_datasets.load(args.id)
    except KeyError as e:
        raise CommandError(f"unknown dataset id {args.id!r}; see `{PROG} data list`") from e
    doc = ds.documentation()
    print(doc["pretty_name"])
    print(f"docs: {ds.docs_count()}  queries: {sum(1 for _ in ds.queries_iter())}  "
          f"qrels: {sum(1 for _ in ds.qrels_iter())}  languages: {' '.join(doc['languages'])}")


def _add_data(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="import and list the XQuAD-R / MLQA-R entries")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    imp = data_sub.add_parser("import", help="copy a LAReQA mirror into the ir_datasets cache (md5-verified)")
    imp.add_argument("mirror", help="folder holding xquad-r/<lang>.json and mlqa-r/<lang>.json")
    imp.add_argument("--benchmark", nargs="+", choices=["xquad-r", "mlqa-r"], default=["xquad-r", "mlqa-r"])
    imp.set_defaults(func=_data_import)
    lst = data_sub.add_parser("list", help="list the registered dataset ids")
    lst.add_argument("--benchmark", choices=["xquad-r", "mlqa-r"])
    lst.add_argument("-v", "--verbose", action="store_true", help="also print each entry's name")
    lst.set_defaults(func=_data_list)
    info = data_sub.add_parser("info", help="counts and languages of one entry")
    info.add_argument("id", help="a dataset id such as xquad-r/en-de")
    info.set_defaults(func=_data_info)


# Subcommand builders; other modules' commands are added here as they land.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_data]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Hybrid batch training and LAReQA-style multilingual retrieval experiments for PyTerrier.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyterrier-hybrid`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (CommandError, ValueError, OSError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
