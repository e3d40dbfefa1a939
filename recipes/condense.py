#!/usr/bin/env python
"""Condense a Hub image dataset, evaluate it with the standard protocol, save (and push) it.

    python recipes/condense.py --dataset ylecun/mnist --method lodm --ipc 1 --output-dir runs/mnist-lodm
    python recipes/condense.py --config recipes/configs/mnist-lodm-ipc1-cpu.yaml
    accelerate launch recipes/condense.py --config recipes/configs/cifar10-lodm-ipc10.yaml

Options given on the command line override the YAML file; YAML keys are the option names.
"""

from __future__ import annotations

import contextlib

if __name__ == "__main__":  # before the libraries: a SIGTERM while they import says so (_startup.py)
    with contextlib.suppress(ImportError):  # found when run as a script: recipes/ is sys.path[0]
        import _startup  # noqa: F401

import argparse
import sys

from hf_lodc.engine.cli import add_options, base_parser, given, option_fields, yaml_base
from hf_lodc.engine.config import CondenseConfig, DataConfig, EvalConfig, RunConfig
from hf_lodc.launch import accelerated, exit_codes
from hf_lodc.methods import METHODS

_HELP = {
    "dataset": "Hub id (owner/name) or local repository folder",
    "method": f"one of {', '.join(METHODS.names())}",
    "ipc": "pixel budget: images per class a pixel method may store",
    "rank": "rank of the factors (low-rank methods)",
    "init": "noise | real | svd (default: svd for low-rank, real for pixel)",
    "output_dir": "where the artefact is written (created only once inputs are validated)",
    "push_to_hub": "repo id to publish the condensed set to",
    "resume": "continue from the checkpoint in --output-dir (same settings; a larger --iterations is fine)",
    "contrast": "contrast of finished matching sets: class_std or none",
    "tf32": "CUDA: float32 matmuls and convolutions through TF32 tensor cores (default off: float32 stays float32)",
    "channels_last": "run the matching network in channels_last memory format (faster with --compile on a CPU)",
    "dsa_strategy": "DSA families joined by _ (e.g. color_crop), or none",
}


def build_parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__)
    p.add_argument("--log-with", type=lambda s: [v for v in s.split(",") if v], default=None,
                   help="comma-separated Accelerate trackers (e.g. tensorboard), logging to <output-dir>/logs")
    # every config field (the objectives' options included: CondenseConfig composes them)
    add_options(p, option_fields(DataConfig, CondenseConfig, EvalConfig, RunConfig,
                                 skip=(*RunConfig.SECTIONS, "hub_test_split", "hub_push_models")), _HELP)
    p.add_argument("--no-test-split", dest="hub_test_split", action="store_false", default=argparse.SUPPRESS,
                   help="push only the condensed set (train), not the real test split as validation/test")
    p.add_argument("--push-models", dest="hub_push_models", action="store_true", default=argparse.SUPPRESS,
                   help="also push, per eval model, the trained network closest to the median accuracy as a "
                        "model repo <push-to-hub>-<model> (timm models only)")
    return p


def config_from_args(argv: list[str] | None = None) -> tuple[RunConfig, argparse.Namespace]:
    args = build_parser().parse_args(argv)
    base, source = yaml_base(args)
    cfg = RunConfig.from_dict(base, source=source)
    return cfg.replace(**given(args, exclude=("log_with",))), args


@exit_codes
def main(argv: list[str] | None = None) -> int:
    cfg, args = config_from_args(argv)
    from hf_lodc.errors import ConfigError
    from hf_lodc.methods import get_method
    from hf_lodc.pipeline import run_experiment
    from hf_lodc.preflight import resolve_output_dir

    if vars(args).get("rank") is not None and not get_method(cfg.condense.method).lowrank:
        raise ConfigError(f"--rank {cfg.condense.rank} has no effect with the pixel method {cfg.condense.method!r} "
                          "(it stores full images); drop --rank, or choose a low-rank method such as lodm")
    out = resolve_output_dir(cfg.output_dir)  # one absolute path for the artefact, checkpoints and logs
    cfg = cfg.replace(output_dir=str(out) if out else None)

    # mixed_precision None (not in the YAML / command line) = what `accelerate launch` says
    with accelerated(cfg.condense.mixed_precision, cpu=args.cpu, log_with=args.log_with,
                     project_dir=out) as accelerator:
        art = run_experiment(cfg, accelerator=accelerator, log=accelerator.print)  # ... save once, push
        for name, rec in art.results.get("evaluations", {}).items():
            accelerator.print(f"{name}: {rec['accuracy_mean']:.2f} +- {rec['accuracy_std']:.2f} % "
                              f"({rec['runs']} runs x {rec['epochs']} epochs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
