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

import argparse
import sys
import typing
from dataclasses import fields

from hf_lodc.continual.config import OWNED_OPTIONS, ContinualConfig
from hf_lodc.engine.config import CondenseConfig, DataConfig, EvalConfig, load_yaml_config
from hf_lodc.errors import ConfigError
from hf_lodc.launch import exit_codes, make_accelerator
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


def _value_parser(ftype):
    """Command-line text -> the field's type (``none`` -> None); the config checks the result."""
    args = [a for a in typing.get_args(ftype) if a is not type(None)] or [ftype]
    number = next((a for a in args if a in (int, float)), None)

    def parse(text: str):
        if text.lower() in ("none", "null"):
            return None
        if number is not None:
            try:
                return number(text)
            except ValueError:
                return text  # refused by the config with the option's name
        return text  # str, or a comma-separated list

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file with any of the options below")
    p.add_argument("--cpu", action="store_true", help="force CPU even if a GPU is visible")
    p.add_argument("--progress", action="store_true", help="show condensation progress bars")
    own = [f for f in fields(ContinualConfig) if f.name not in ContinualConfig.SECTIONS]
    core = [f for s in (DataConfig, CondenseConfig, EvalConfig) for f in fields(s) if f.name not in OWNED_OPTIONS]
    hints = {**typing.get_type_hints(ContinualConfig), **typing.get_type_hints(DataConfig),
             **typing.get_type_hints(CondenseConfig), **typing.get_type_hints(EvalConfig)}
    for f in own + core:
        flag = "--" + f.name.replace("_", "-")
        kw = {"dest": f.name, "default": argparse.SUPPRESS, "help": _HELP.get(f.name)}
        if hints[f.name] is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        else:
            p.add_argument(flag, type=_value_parser(hints[f.name]), metavar=f.name.upper(), **kw)
    for name, use in OWNED_OPTIONS.items():  # accepted only to be refused with the option to use
        p.add_argument("--" + name.replace("_", "-"), dest=name, default=argparse.SUPPRESS,
                       help=f"set per memory type / task here: use {use}")
    return p


def config_from_args(argv: list[str] | None = None) -> tuple[ContinualConfig, argparse.Namespace]:
    args = build_parser().parse_args(argv)
    given = {k: v for k, v in vars(args).items() if k not in ("config", "cpu", "progress")}
    base = load_yaml_config(args.config) if args.config else {}
    cfg = ContinualConfig.from_dict(base, source=args.config or "config")
    return cfg.replace(**given), args


@exit_codes
def main(argv: list[str] | None = None) -> int:
    cfg, args = config_from_args(argv)
    if not cfg.output_dir:
        raise ConfigError("set --output-dir: task memories and results are written there (and reused on rerun)")
    from hf_lodc.continual import markdown_table, run_continual

    accelerator = make_accelerator(cfg.condense.mixed_precision, cpu=args.cpu)
    result = run_continual(cfg, accelerator=accelerator, progress=args.progress, log=accelerator.print)
    if accelerator.is_main_process:
        print(markdown_table(result.summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
