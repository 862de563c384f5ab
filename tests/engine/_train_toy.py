"""A tiny training run in its own process, for the kill-and-resume test.

Usage: ``python _train_toy.py STORE RUN_DIR [--resume] [--hold-after-step K]``. ``--hold-after-step``
stops the run, once a checkpoint exists and step K is logged, before its next micro-batch: it writes
``RUN_DIR/held`` and sleeps, so the test kills it at a known point whatever the machine's load.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, where _toys.py is

from _toys import build_toy, scale_transform  # noqa: E402

from skelssl.data.dataset import SkeletonDataset  # noqa: E402
from skelssl.engine.config import OptimConfig, ScheduleConfig, TrainerConfig  # noqa: E402
from skelssl.engine.logging import read_metrics  # noqa: E402
from skelssl.engine.loop import Trainer  # noqa: E402
from skelssl.engine.optim import optimizer_factory, scheduler_factory  # noqa: E402

TRAINER = TrainerConfig(
    epochs=3, accumulate=2, grad_clip=1.0, accelerator="cpu", seed=3, log_every=1, ckpt_every_steps=2, progress=False
)
OPTIM = OptimConfig(name="adamw", lr=3e-3, weight_decay=0.05)
SCHEDULE = ScheduleConfig(name="cosine", warmup_steps=3, min_lr=1e-4)


def main(argv: list[str]) -> None:
    store, run_dir = Path(argv[0]), Path(argv[1])
    resume = "--resume" in argv
    hold = int(argv[argv.index("--hold-after-step") + 1]) if "--hold-after-step" in argv else None
    first_ckpt = run_dir / "checkpoints" / "last" / "state.json"

    def transform(batch, generator):
        if hold is not None and first_ckpt.exists():
            steps = [r["step"] for r in read_metrics(run_dir) if r.get("kind") == "train"]
            if max(steps, default=0) >= hold:
                (run_dir / "held").write_text("held\n")
                time.sleep(3600)  # until the test's SIGKILL
        return scale_transform(batch, generator)

    method = build_toy(seed=0)
    trainer = Trainer(TRAINER, run_dir)
    trainer.fit(
        method,
        SkeletonDataset(store),
        batch_size=4,
        optimizer_factory=optimizer_factory(OPTIM),
        scheduler_factory=scheduler_factory(SCHEDULE),
        batch_transform=transform,
        resume=resume,
        config_dict={"trainer": {"seed": 3}},
    )


if __name__ == "__main__":
    main(sys.argv[1:])
