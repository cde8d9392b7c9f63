"""How PyTerrier, ir_datasets and ir_measures find this package without ``import pyterrier_hybrid``.

- **PyTerrier** reads the ``pyterrier.modules`` entry point group while ``import pyterrier`` runs and
  sets ``pt.<name>`` to each entry's object; this package declares ``hybrid = "pyterrier_hybrid"``, so
  ``import pyterrier`` imports the package (cheaply: every heavy module is lazy) and ``pt.hybrid`` is it.
  PyTerrier's ``pyterrier.dataset_provider`` group is not used: the ids are ir_datasets ids, which
  PyTerrier's own ``irds:`` provider resolves through ``ir_datasets.load``.
- **ir_datasets** (0.6) and **ir_measures** (0.4) have no plugin hook: no entry point group and no
  resolver for unknown ids or measure names. Importing this package therefore installs one post-import
  hook per library (:func:`when_imported`): the moment ir_datasets is imported, the XQuAD-R / MLQA-R
  entries and the noisy-id pattern are registered; the moment ir_measures is, the measure names
  ``RankDistance``, ``SameLangPref`` and ``LangPEER`` are. When a library is already imported, its hook
  runs at once. Neither library is imported by the hooks themselves, so ``import pyterrier`` stays as
  cheap as it was (ir_measures is already imported by PyTerrier; ir_datasets is not).
- **Measure names** are registered as :class:`_LazyMeasure` placeholders: parsing one
  (``ir_measures.parse_measure("RankDistance@100")``) imports :mod:`pyterrier_hybrid.measures` (which
  pulls in scipy through peer-measure) only then, and returns the real measure.
- **pt.Experiment** parses string ``eval_metrics`` with ``ir_measures.parse_trec_measure``, which knows
  trec_eval names only (``"map"``, ``"ndcg_cut_10"``), and has no hook either; the plugin wraps that one
  function so that a name it rejects is retried with ``ir_measures.parse_measure`` **only** when the name
  is one of this package's measures. Every other input behaves exactly as before.
- The command lines of ir_datasets and ir_measures run in processes that import neither PyTerrier nor
  this package; ``pyterrier-hybrid irds ...`` and ``pyterrier-hybrid measures ...`` run them with the
  plugin loaded (see :mod:`pyterrier_hybrid.cli_tools`).

Set ``PYTERRIER_HYBRID_NO_PLUGIN=1`` to install none of the hooks (``pt.hybrid`` is still the package;
``import pyterrier_hybrid.datasets`` / ``.measures`` still register everything explicitly).
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

DISABLE_ENV = "PYTERRIER_HYBRID_NO_PLUGIN"

MEASURE_MODULES: dict[str, str] = {
    "RankDistance": "pyterrier_hybrid.measures",
    "SameLangPref": "pyterrier_hybrid.measures",
    "LangPEER": "pyterrier_hybrid.named_measures",
}
"""Measure name → the module that defines it (imported when the name is first parsed)."""

_HOOKS: dict[str, list[Callable[[ModuleType], None]]] = {}


def disabled() -> bool:
    """Whether the hooks are switched off by :data:`DISABLE_ENV`."""
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


# --------------------------------------------------------------------------- post-import hooks


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Runs the hooks of a watched module once its body has executed (the other finders find it)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if fullname not in _HOOKS:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return spec

        # Patched on this loader instance only (a fresh one per spec), so the loader keeps its type and its
        # resource methods (ir_datasets reads package data through it).
        def exec_then_run_hooks(module: ModuleType) -> None:
            try:
                exec_module(module)
            finally:
                loader.__dict__.pop("exec_module", None)
            _run_hooks(fullname, module)

        try:
            loader.exec_module = exec_then_run_hooks
        except (AttributeError, TypeError):  # a loader that takes no attributes: leave the import alone
            return spec
        return spec


_FINDER = _PostImportFinder()


def _run_hooks(name: str, module: ModuleType) -> None:
    for hook in _HOOKS.pop(name, []):
        hook(module)
    if not _HOOKS and _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)


def when_imported(name: str, hook: Callable[[ModuleType], None]) -> None:
    """Run ``hook(module)`` once the top-level module ``name`` is imported (now, when it already is).

    Args:
        name: a top-level module name, e.g. ``"ir_datasets"``.
        hook: called with the module object, after its body has run.
    """
    module = sys.modules.get(name)
    if module is not None:
        hook(module)
        return
    _HOOKS.setdefault(name, []).append(hook)
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


# --------------------------------------------------------------------------- ir_datasets


def register_datasets(_ir_datasets: ModuleType | None = None) -> None:
    """Register the XQuAD-R / MLQA-R entries and the noisy-id pattern (importing :mod:`.datasets` does it).

    A failure is a warning, not an error: it must not break the import of ir_datasets for other datasets.
    """
    try:
        importlib.import_module("pyterrier_hybrid.datasets")
    except Exception as e:  # noqa: BLE001 - reported, and ir_datasets keeps working for everything else
        warnings.warn(f"pyterrier_hybrid could not register its ir_datasets entries ({type(e).__name__}: {e}); "
                      "run `import pyterrier_hybrid.datasets` to see the full error", RuntimeWarning, stacklevel=2)


# --------------------------------------------------------------------------- ir_measures


def _lazy_measure_class() -> type:
    from ir_measures.measures import Measure

    class _LazyMeasure(Measure):
        """Stands in the ir_measures registry for one of this package's measures until it is first parsed.

        ``ir_measures.parse_measure`` calls the registry entry with the parsed parameters; this call imports
        the defining module, puts the real measure in the registry in place of the placeholder and returns
        the real measure with those parameters.
        """

        def __init__(self, name: str, module: str):
            super().__init__()
            self.__name__ = self.NAME = name
            self._module = module

        def resolve(self) -> Measure:
            """The real measure (imports its module)."""
            from ir_measures.measures import registry

            real = getattr(importlib.import_module(self._module), self.NAME)
            if registry.get(self.NAME) is self:
                registry[self.NAME] = real
            return real

        def __call__(self, **params: Any) -> Measure:
            return self.resolve()(**params)

    return _LazyMeasure


def _base_name(measure: str) -> str | None:
    match = re.match(r"\s*([A-Za-z_]\w*)", measure)
    return match.group(1) if match else None


def register_measures(ir_measures: ModuleType) -> None:
    """Register the measure names and the ``parse_trec_measure`` fallback used by ``pt.Experiment``."""
    from ir_measures.measures import registry

    lazy = None
    for name, module in MEASURE_MODULES.items():
        if name in registry:
            continue
        lazy = lazy or _lazy_measure_class()
        registry[name] = lazy(name, module)

    original = ir_measures.parse_trec_measure
    if getattr(original, "_pyterrier_hybrid", False):
        return

    @functools.wraps(original)
    def parse_trec_measure(measure: str) -> list:
        try:
            return original(measure)
        except ValueError:
            # Only this package's names fall through; trec_eval names and errors are untouched.
            base = _base_name(measure) if isinstance(measure, str) else None
            if base in MEASURE_MODULES:
                return [ir_measures.parse_measure(measure)]
            if base == "PEER":
                raise ValueError(f"{measure!r}: peer-measure's PEER needs a doc id -> language dict and weights, "
                                 "which a measure name cannot carry; use 'LangPEER@1000' (PEER with the languages "
                                 "read from the ids) or pass pyterrier_hybrid.measures.peer(...)") from None
            raise

    parse_trec_measure._pyterrier_hybrid = True  # type: ignore[attr-defined]
    ir_measures.parse_trec_measure = parse_trec_measure


# --------------------------------------------------------------------------- entry


_installed = False


def install() -> bool:
    """Install the ir_datasets and ir_measures hooks (once per process) unless :data:`DISABLE_ENV` is set.

    Returns:
        Whether the hooks are installed.
    """
    global _installed
    if _installed:
        return True
    if disabled():
        return False
    _installed = True
    when_imported("ir_datasets", register_datasets)
    when_imported("ir_measures", register_measures)
    return True
