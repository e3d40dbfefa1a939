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

import argparse
import sys

from hf_lodc.engine.config import DataConfig
from hf_lodc.launch import exit_codes, make_accelerator
from hf_lodc.objectives.experts import ExpertConfig, train_experts


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="Hub id (owner/name) or local repository folder")
    p.add_argument("--max-per-class", type=int, default=None, help="train on the first k images of each class")
    p.add_argument("--output-dir", required=True, help="where the trajectories are written (and reused)")
    d = ExpertConfig()
    p.add_argument("--model", default="convnet", help="network (alias or timm name); must be the matching network")
    p.add_argument("--num-experts", type=int, default=d.num_experts)
    p.add_argument("--epochs", type=int, default=d.epochs, help="trajectory length in epochs")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--dsa-strategy", default=d.dsa_strategy, help="'none' to train without DSA")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--cpu", action="store_true", help="force CPU even if a GPU is visible")
    return p


@exit_codes
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from hf_lodc.engine.condenser import matching_model_for
    from hf_lodc.models.factory import EVAL_MODEL_ALIASES
    from hf_lodc.pipeline import load_data

    accelerator = make_accelerator(None, cpu=args.cpu)
    with accelerator.main_process_first():
        data = load_data(DataConfig(dataset=args.dataset, max_per_class=args.max_per_class))
    model = EVAL_MODEL_ALIASES.get(args.model, args.model)
    if args.model == "convnet":  # the condenser's default matching network for this image size
        model = matching_model_for(data.image_shape)
    cfg = ExpertConfig(model=model, num_experts=args.num_experts, epochs=args.epochs, lr=args.lr, batch=args.batch,
                       dsa_strategy=args.dsa_strategy, seed=args.seed)
    buf = train_experts(data, cfg, args.output_dir, accelerator=accelerator, log=accelerator.print)
    accs = [a for a in buf.meta.get("test_accuracy", {}).values() if a is not None]
    summary = f", test accuracy {sum(accs) / len(accs):.2f} % (mean)" if accs else ""
    accelerator.print(f"{len(buf.trajectories)} experts x {cfg.epochs} epochs in {args.output_dir}{summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
