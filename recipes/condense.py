#!/usr/bin/env python
"""Condense a Hub image dataset, evaluate it with the standard protocol, save (and push) it.

    python recipes/condense.py --dataset ylecun/mnist --method lodm --ipc 1 --output-dir runs/mnist-lodm
    python recipes/condense.py --config recipes/configs/mnist-lodm-ipc1-cpu.yaml
    accelerate launch recipes/condense.py --config recipes/configs/cifar10-lodm-ipc10.yaml

Options given on the command line override the YAML file; YAML keys are the option names.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from hf_lodc.engine.config import CondenseConfig, DataConfig, EvalConfig, RunConfig, load_yaml_config
from hf_lodc.launch import exit_codes, make_accelerator
from hf_lodc.methods import METHODS

_HELP = {
    "dataset": "Hub id (owner/name) or local repository folder",
    "method": f"one of {', '.join(METHODS.names())}",
    "ipc": "pixel budget: images per class a pixel method may store",
    "rank": "rank of the factors (low-rank methods)",
    "init": "noise | real | svd (default: svd for low-rank, real for pixel)",
    "output_dir": "where the artefact is written (created only once inputs are validated)",
    "eval_models": "comma-separated evaluation models (convnet, convnet_bn, resnet18_bn, any timm name)",
    "push_to_hub": "repo id to publish the condensed set to",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file with any of the options below")
    p.add_argument("--cpu", action="store_true", help="force CPU even if a GPU is visible")
    p.add_argument("--log-with", type=lambda s: [v for v in s.split(",") if v], default=None,
                   help="comma-separated Accelerate trackers (e.g. tensorboard), logging to <output-dir>/logs")
    for section in (DataConfig, CondenseConfig, EvalConfig):
        for f in fields(section):
            _add_option(p, f.name, f.type)
    for name in ("output_dir", "push_to_hub", "hub_config_name"):
        p.add_argument("--" + name.replace("_", "-"), dest=name, default=argparse.SUPPRESS, help=_HELP.get(name))
    p.add_argument("--hub-private", dest="hub_private", action="store_true", default=argparse.SUPPRESS)
    p.add_argument("--no-test-split", dest="hub_test_split", action="store_false", default=argparse.SUPPRESS,
                   help="push only the condensed set (train), not the real test split as validation/test")
    p.add_argument("--push-models", dest="hub_push_models", action="store_true", default=argparse.SUPPRESS,
                   help="also push, per eval model, the trained network closest to the median accuracy as a "
                        "model repo <push-to-hub>-<model> (timm models only)")
    p.add_argument("--resume", dest="resume", action="store_true", default=argparse.SUPPRESS,
                   help="continue from the checkpoint in --output-dir")
    return p


def _add_option(p: argparse.ArgumentParser, name: str, ftype) -> None:
    flag = "--" + name.replace("_", "-")
    t = str(ftype)
    kw = {"dest": name, "default": argparse.SUPPRESS, "help": _HELP.get(name)}
    if t == "bool":
        p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
    elif "list" in t:
        p.add_argument(flag, type=lambda s: [v for v in s.split(",") if v], **kw)
    elif t.startswith("int"):
        p.add_argument(flag, type=_none_or(int), **kw)
    elif t.startswith("float"):
        p.add_argument(flag, type=_none_or(float), **kw)
    else:
        p.add_argument(flag, type=_none_or(str), **kw)


def _none_or(fn):
    def parse(s: str):
        return None if s.lower() in ("none", "null") else fn(s)

    parse.__name__ = fn.__name__
    return parse


def config_from_args(argv: list[str] | None = None) -> tuple[RunConfig, argparse.Namespace]:
    args = build_parser().parse_args(argv)
    given = {k: v for k, v in vars(args).items() if k not in ("config", "cpu", "log_with")}
    base = load_yaml_config(args.config) if args.config else {}
    cfg = RunConfig.from_dict(base, source=args.config or "config")
    return cfg.replace(**given), args


@exit_codes
def main(argv: list[str] | None = None) -> int:
    cfg, args = config_from_args(argv)
    from hf_lodc.pipeline import run_experiment

    # mixed_precision None (not in the YAML / command line) = what `accelerate launch` says
    accelerator = make_accelerator(cfg.condense.mixed_precision, cpu=args.cpu, log_with=args.log_with,
                                   project_dir=cfg.output_dir)
    art = run_experiment(cfg, accelerator=accelerator, log=accelerator.print)  # ... save once, push
    for name, rec in art.results.get("evaluations", {}).items():
        accelerator.print(f"{name}: {rec['accuracy_mean']:.2f} +- {rec['accuracy_std']:.2f} % "
                          f"({rec['runs']} runs x {rec['epochs']} epochs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
