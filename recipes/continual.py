#!/usr/bin/env python
"""Class-incremental learning with a condensed memory (GDumb), as in Yang et al. (NeurIPS 2023), Sec. 5.

    python recipes/continual.py --dataset ylecun/mnist --tasks 5 --memory-ipc 1 \\
        --methods random,herding,dm,lodm --seeds 2 --iterations 100 --eval-epochs 100 --output-dir runs/cl-mnist
    python recipes/continual.py --config recipes/configs/continual-cifar10-k10.yaml
    accelerate launch recipes/continual.py --config recipes/configs/continual-cifar100-t10-k20.yaml

Every task's classes are condensed from that task's data only, into a memory of ``memory_ipc`` pixel
images per class (low-rank methods store more, smaller images in the same bytes); after each task a
fresh ConvNet-3 is trained on the whole memory and tested on all classes seen so far. A rerun with the
same --output-dir reuses every task memory (and evaluation) already there. Options on the command
line override the YAML file; YAML keys are the option names (flat, or nested under data/condense/eval).
"""

from __future__ import annotations

import contextlib

if __name__ == "__main__":  # before the libraries: a SIGTERM while they import says so (_startup.py)
    with contextlib.suppress(ImportError):  # found when run as a script: recipes/ is sys.path[0]
        import _startup  # noqa: F401

import argparse
import sys

from hf_lodc.continual.config import OWNED_OPTIONS, ContinualConfig
from hf_lodc.engine.cli import add_options, base_parser, given, option_fields, yaml_base
from hf_lodc.engine.config import CondenseConfig, DataConfig, EvalConfig
from hf_lodc.errors import ConfigError
from hf_lodc.launch import accelerated, exit_codes
from hf_lodc.methods import METHODS

_HELP = {
    "dataset": "Hub id (owner/name) or local repository folder",
    "tasks": "number of class-incremental tasks (classes split in a random order per seed)",
    "memory_ipc": "memory budget: pixel images per class (low-rank methods fit more images in it)",
    "methods": f"comma-separated memory types among {', '.join(METHODS.names())}",
    "seeds": "number of class orders / condensation seeds",
    "first_seed": "first seed (seeds first_seed .. first_seed+seeds-1)",
    "test_per_class": "test on the first n test images of each class (default: all)",
    "rank": "rank of the factors (low-rank methods)",
    "eval_runs": "GDumb models trained per step",
    "eval_epochs": "epochs of each GDumb model",
    "output_dir": "memories, per-step evaluations and continual.{json,md,png}",
}


def build_parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__)
    p.add_argument("--progress", action="store_true", help="show condensation progress bars")
    own = option_fields(ContinualConfig, skip=ContinualConfig.SECTIONS)
    core = option_fields(DataConfig, CondenseConfig, EvalConfig, skip=OWNED_OPTIONS)
    add_options(p, own + core, _HELP)
    for name, use in OWNED_OPTIONS.items():  # accepted only to be refused with the option to use
        p.add_argument("--" + name.replace("_", "-"), dest=name, default=argparse.SUPPRESS,
                       help=f"set per memory type / task here: use {use}")
    return p


def config_from_args(argv: list[str] | None = None) -> tuple[ContinualConfig, argparse.Namespace]:
    args = build_parser().parse_args(argv)
    base, source = yaml_base(args)
    cfg = ContinualConfig.from_dict(base, source=source)
    return cfg.replace(**given(args, exclude=("progress",))), args


@exit_codes
def main(argv: list[str] | None = None) -> int:
    cfg, args = config_from_args(argv)
    if not cfg.output_dir:
        raise ConfigError("set --output-dir: task memories and results are written there (and reused on rerun)")
    from hf_lodc.continual import markdown_table, run_continual

    with accelerated(cfg.condense.mixed_precision, cpu=args.cpu) as accelerator:
        result = run_continual(cfg, accelerator=accelerator, progress=args.progress, log=accelerator.print)
        if accelerator.is_main_process:
            print(markdown_table(result.summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
