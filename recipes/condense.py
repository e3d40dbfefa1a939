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

from hf_lodc.engine.cli import add_options, base_parser, given, option_fields, yaml_base
from hf_lodc.engine.config import CondenseConfig, DataConfig, EvalConfig, RunConfig
from hf_lodc.errors import HubError
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
    "resume": "continue from the checkpoint in --output-dir (same settings; a larger --iterations is fine)",
    "contrast": "contrast of finished matching sets: class_std or none",
    "dsa_strategy": "DSA families joined by _ (e.g. color_crop), or none",
    "eval_dsa_strategy": "DSA families of the evaluation training, or none",
}


def build_parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__)
    p.add_argument("--log-with", type=lambda s: [v for v in s.split(",") if v], default=None,
                   help="comma-separated Accelerate trackers (e.g. tensorboard), logging to <output-dir>/logs")
    # every config field (the objectives' options included: CondenseConfig composes them)
    add_options(p, option_fields(DataConfig, CondenseConfig, EvalConfig, RunConfig, skip=RunConfig.SECTIONS), _HELP)
    return p


def config_from_args(argv: list[str] | None = None) -> tuple[RunConfig, argparse.Namespace]:
    args = build_parser().parse_args(argv)
    base, source = yaml_base(args)
    cfg = RunConfig.from_dict(base, source=source)
    return cfg.replace(**given(args, exclude=("log_with",))), args


@exit_codes
def main(argv: list[str] | None = None) -> int:
    cfg, args = config_from_args(argv)
    from hf_lodc.pipeline import run_experiment

    # mixed_precision None (not in the YAML / command line) = what `accelerate launch` says
    accelerator = make_accelerator(cfg.condense.mixed_precision, cpu=args.cpu, log_with=args.log_with,
                                   project_dir=cfg.output_dir)
    art = run_experiment(cfg, accelerator=accelerator, log=accelerator.print)
    if cfg.push_to_hub and accelerator.is_main_process:
        from hf_lodc.api import CondensedDataset
        from hf_lodc.export.to_hub import push_artifact

        if art.results.get("evaluations") and not art.results.get("evaluations_uint8"):
            # what the uint8 PNG `image` column costs: same models, same seeds, for the card
            CondensedDataset.from_artifact(art).evaluate(float32=False, uint8=True, device=accelerator.device)
            if cfg.output_dir:
                from hf_lodc.export.artifact import save_artifact

                save_artifact(art, cfg.output_dir)  # keep the local results.json in step with the card
        try:
            push_artifact(art, cfg.push_to_hub, private=cfg.hub_private, config_name=cfg.hub_config_name)
        except HubError as e:
            if cfg.output_dir:
                raise type(e)(f"{e} The condensed set is saved in {cfg.output_dir!r}; publish it later with "
                              f"`python recipes/evaluate.py {cfg.output_dir} --runs 0 --push-to-hub "
                              f"{cfg.push_to_hub}`") from None
            raise
    for name, rec in art.results.get("evaluations", {}).items():
        accelerator.print(f"{name}: {rec['accuracy_mean']:.2f} +- {rec['accuracy_std']:.2f} % "
                          f"({rec['runs']} runs x {rec['epochs']} epochs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
