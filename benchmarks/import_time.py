"""Cost of the plugin in ``import pyterrier``: fresh processes, arms interleaved, medians and ratios.

Arms (each a fresh ``python -c``):

- ``plugin``: ``import pyterrier`` as installed (the ``pyterrier.modules`` entry point imports this package,
  which installs its import hooks);
- ``no-entry-points`` (the peer): the same, with this package's entry points hidden from
  ``importlib.metadata.entry_points``, i.e. PyTerrier as if the plugin were not installed;
- ``opt-out``: ``PYTERRIER_HYBRID_NO_PLUGIN=1`` (entry point loaded, hooks off).

Each run reports its process CPU time and wall time of the import; also whether torch, ir_datasets or the
package's heavy modules were loaded by it (they must not be). Run it on an idle machine:

    python benchmarks/import_time.py --runs 9
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HIDE = """
import importlib.metadata as md
_orig = md.entry_points
def _hidden(*a, **k):
    eps = _orig(*a, **k)
    keep = [e for e in eps if not e.value.startswith("pyterrier_hybrid")]
    return md.EntryPoints(keep) if isinstance(eps, md.EntryPoints) else keep
md.entry_points = _hidden
"""

PROBE = """
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import pyterrier
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
heavy = [m for m in ("torch", "ir_datasets", "pyterrier_hybrid.measures", "pyterrier_hybrid.datasets",
                     "pyterrier_hybrid.index", "pyterrier_hybrid.bm25") if m in sys.modules]
print(json.dumps({"wall": wall, "cpu": cpu, "heavy": heavy, "plugin": "pyterrier_hybrid" in sys.modules}))
"""

ARMS = {"plugin": ("", {}), "no-entry-points": (HIDE, {}), "opt-out": ("", {"PYTERRIER_HYBRID_NO_PLUGIN": "1"})}


def run_once(prefix: str, env: dict[str, str]) -> dict:
    """One fresh interpreter importing pyterrier; its measurements."""
    out = subprocess.run([sys.executable, "-c", prefix + PROBE], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}, cwd="/")  # cwd "/": no source tree or egg-info on sys.path
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    """Measure every arm ``--runs`` times, interleaved; print medians and ratios to the peer."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=9, help="runs per arm (default 9)")
    args = p.parse_args(argv)
    for prefix, env in ARMS.values():  # warm the file cache once per arm
        run_once(prefix, env)
    results: dict[str, list[dict]] = {name: [] for name in ARMS}
    for _ in range(args.runs):
        for name, (prefix, env) in ARMS.items():
            results[name].append(run_once(prefix, env))
    peer = {k: statistics.median(r[k] for r in results["no-entry-points"]) for k in ("cpu", "wall")}
    summary = {}
    print(f"import pyterrier, median of {args.runs} fresh processes per arm (arms interleaved)")
    print("| arm | cpu ms | wall ms | cpu / peer | wall / peer | plugin loaded | heavy modules loaded |")
    print("|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        cpu, wall = (statistics.median(r[k] for r in runs) for k in ("cpu", "wall"))
        heavy = sorted({m for r in runs for m in r["heavy"]})
        summary[name] = {"cpu_ms": cpu * 1e3, "wall_ms": wall * 1e3, "heavy": heavy}
        print(f"| {name} | {cpu * 1e3:.0f} | {wall * 1e3:.0f} | {cpu / peer['cpu']:.3f} | {wall / peer['wall']:.3f} "
              f"| {all(r['plugin'] for r in runs)} | {', '.join(heavy) or 'none'} |")
    return summary


if __name__ == "__main__":
    main()
