#!/usr/bin/env python
"""Train expert trajectories on a real dataset, for trajectory matching (``mtt`` / ``lomtt``).

    python recipes/experts.py --dataset ylecun/mnist --num-experts 5 --epochs 10 --output-dir experts/mnist
    accelerate launch --multi_gpu --num_processes 4 recipes/experts.py --dataset uoft-cs/cifar10 \\
        --num-experts 100 --epochs 50 --output-dir experts/cifar10          # process r trains experts r, r+4, ...
    python recipes/condense.py --dataset ylecun/mnist --method lomtt --expert-dir experts/mnist ...

Experts already in --output-dir are reused, so a rerun of an interrupted command trains only the
missing ones; a directory made with other settings is refused.
"""

from __future__ import annotations

import contextlib

if __name__ == "__main__":  # before the libraries: a SIGTERM while they import says so (_startup.py)
    with contextlib.suppress(ImportError):  # found when run as a script: recipes/ is sys.path[0]
        import _startup  # noqa: F401

import argparse
import sys
from dataclasses import fields

from hf_lodc.engine.cli import add_options, base_parser, given, option_fields, yaml_base
from hf_lodc.engine.config import DataConfig
from hf_lodc.errors import ConfigError
from hf_lodc.launch import accelerated, exit_codes
from hf_lodc.objectives.experts import ExpertConfig, train_experts

_HELP = {
    "dataset": "Hub id (owner/name) or local repository folder (required)",
    "max_per_class": "train on the first k images of each class",
    "output_dir": "where the trajectories are written (and reused) (required)",
    "model": "network (alias or timm name); must be the matching network (default: the condenser's for the "
             "image size)",
    "num_experts": f"experts to train (default {ExpertConfig.num_experts})",
    "epochs": f"trajectory length in epochs (default {ExpertConfig.epochs})",
    "lr": f"SGD lr, no momentum (default {ExpertConfig.lr})",
    "batch": f"batch size (default {ExpertConfig.batch})",
    "dsa_strategy": "DSA families joined by _, or none to train without DSA",
    "seed": f"seed (default {ExpertConfig.seed})",
}


def build_parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__)
    p.add_argument("--output-dir", dest="output_dir", default=argparse.SUPPRESS, help=_HELP["output_dir"])
    add_options(p, option_fields(DataConfig, ExpertConfig), _HELP)  # the data options and the experts' own
    return p


def configs_from_args(argv: list[str] | None = None) -> tuple[DataConfig, ExpertConfig, str, argparse.Namespace]:
    """(data config, expert config with model None = the condenser's default, output dir, args)."""
    args = build_parser().parse_args(argv)
    base, source = yaml_base(args)
    flat = {str(k).replace("-", "_"): v for k, v in base.items()}
    flat.update(given(args))
    data_keys = {f.name for f in fields(DataConfig)}
    expert_keys = {f.name for f in fields(ExpertConfig)}
    unknown = sorted(k for k in flat if k not in data_keys | expert_keys | {"output_dir"})
    if unknown:
        raise ConfigError(f"{source}: unknown option(s) {unknown}; valid options: "
                          f"{', '.join(sorted(data_keys | expert_keys | {'output_dir'}))}")
    for required in ("dataset", "output_dir"):
        if not flat.get(required):
            raise ConfigError(f"set --{required.replace('_', '-')}: {_HELP[required]}")
    data_cfg = DataConfig(**{k: v for k, v in flat.items() if k in data_keys})
    expert = {k: v for k, v in flat.items() if k in expert_keys}
    expert.setdefault("model", "convnet")
    cfg = ExpertConfig(**expert)
    cfg.check()
    return data_cfg, cfg, flat["output_dir"], args


@exit_codes
def main(argv: list[str] | None = None) -> int:
    data_cfg, cfg, output_dir, args = configs_from_args(argv)
    from hf_lodc.preflight import check_strategy, locked_output_dir, resolve_output_dir

    check_strategy(cfg.dsa_strategy, "--dsa-strategy")
    out = resolve_output_dir(output_dir)  # ~ and relative paths resolved once
    with accelerated(None, cpu=args.cpu) as accelerator:
        with locked_output_dir(out if accelerator.is_main_process else None):  # one run per output dir
            return run(data_cfg, cfg, str(out), accelerator)


def run(data_cfg: DataConfig, cfg: ExpertConfig, output_dir: str, accelerator) -> int:
    from dataclasses import replace

    from hf_lodc.engine.resolve import matching_model_for
    from hf_lodc.models.factory import EVAL_MODEL_ALIASES
    from hf_lodc.pipeline import load_data

    with accelerator.main_process_first():
        data = load_data(data_cfg)
    model = EVAL_MODEL_ALIASES.get(cfg.model, cfg.model)
    if cfg.model == "convnet":  # the condenser's default matching network for this image size
        model = matching_model_for(data.image_shape)
    cfg = replace(cfg, model=model)
    buf = train_experts(data, cfg, output_dir, accelerator=accelerator, log=accelerator.print)
    accs = [a for a in buf.meta.get("test_accuracy", {}).values() if a is not None]
    summary = f", test accuracy {sum(accs) / len(accs):.2f} % (mean)" if accs else ""
    accelerator.print(f"{len(buf.trajectories)} experts x {cfg.epochs} epochs in {output_dir}{summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
