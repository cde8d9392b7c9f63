"""DDP demo: hybrid batch training of a tiny random model on 2 CPU processes (gloo), under torchrun.

Run through ``scripts/ddp_demo.sh``. Every rank records the language configuration of each batch it
trains on; rank 0 checks that at every step both ranks trained on the same configuration and that
no parallel group was split across ranks, and writes ``$DDP_DEMO_OUT/ddp_report.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

from pyterrier_hybrid.training import HybridBatchTrainer, validate_pairs
from pyterrier_hybrid.training.testing import synthetic_pairs

OUT = Path(os.environ.get("DDP_DEMO_OUT", "/tmp/ddp_demo"))
RANK = int(os.environ.get("RANK", 0))
torch.set_num_threads(1)

pairs = validate_pairs(synthetic_pairs(120, ("en", "de", "es"), seed=0))
trainer = HybridBatchTrainer(
    str(OUT / "tiny"),
    mode="hybrid",
    alpha=0.5,
    batch_size=4,
    max_steps=6,
    lr=1e-3,
    seed=0,
    output_dir=OUT / "model",
    freeze_embeddings=True,
    logging_steps=1,
    training_args={"ddp_backend": "gloo", "use_cpu": True},
    verbose=False,
)
trainer.fit_pairs(pairs)

# The batches this rank received: the prepared dataloader's batch sampler is accelerate's shard of ours.
world = dist.get_world_size() if dist.is_initialized() else 1
steps = trainer.trainer_.state.global_step
mine = list(trainer.trainer_.get_train_dataloader().batch_sampler)[:steps]
if dist.is_initialized():
    everyone: list = [None] * world
    dist.all_gather_object(everyone, mine)
else:
    everyone = [mine]
if RANK == 0:
    qlang, dlang, group = pairs["qlang"].tolist(), pairs["dlang"].tolist(), pairs["group_id"].tolist()
    same = all(len({(qlang[i], dlang[i]) for r in range(world) for i in everyone[r][s]}) == 1 for s in range(steps))
    split = all(
        len({group[i] for r in range(world) for i in everyone[r][s]}) == sum(len(everyone[r][s]) for r in range(world))
        for s in range(steps)
    )
    report = {
        "world_size": trainer.trainer_.args.world_size,
        "steps": steps,
        "configs": [
            sorted({f"{qlang[i]}-{dlang[i]}" for r in range(world) for i in everyone[r][s]}) for s in range(steps)
        ],
        "same_config_every_step": same,
        "no_group_across_ranks": split,
        "losses": [log["loss"] for log in trainer.trainer_.state.log_history if "loss" in log],
    }
    (OUT / "ddp_report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
