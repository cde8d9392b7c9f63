"""``python -m pyterrier_hybrid.noise --lang de --model typo --level 20``: print before/after examples."""

from __future__ import annotations

import argparse
import sys

from ..languages import ALL_LANGS
from .models import NOISE_MODELS
from .preview import preview


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and print the preview; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m pyterrier_hybrid.noise", description=__doc__)
    parser.add_argument("--lang", required=True, choices=ALL_LANGS, help="question language")
    parser.add_argument("--model", required=True, choices=NOISE_MODELS, help="noise model")
    parser.add_argument("--level", type=float, default=20, help="percent of words to touch (0-100, default 20)")
    parser.add_argument("-n", type=int, default=5, help="number of examples (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.add_argument("--benchmark", default="xquad-r", choices=("xquad-r", "mlqa-r"))
    args = parser.parse_args(argv)
    try:
        preview(args.lang, args.model, args.level, n=args.n, seed=args.seed, benchmark=args.benchmark)
    except ValueError as error:  # a bad argument value (level, n): argparse's usage error, status 2
        parser.error(" ".join(str(error).split()))
    except KeyboardInterrupt:
        parser.exit(130, f"{parser.prog}: error: interrupted\n")
    except Exception as error:  # e.g. a missing or corrupt benchmark file: one line, status 1
        parser.exit(1, f"{parser.prog}: error: {' '.join(str(error).split()) or type(error).__name__}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
