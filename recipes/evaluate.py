#!/usr/bin/env python
"""Re-evaluate a condensed set with the literature protocol, and optionally update its card.

    python recipes/evaluate.py alice/mnist-lodm --models convnet,resnet18_bn --runs 5 --epochs 1000 --update-card
    python recipes/evaluate.py runs/mnist-lodm --runs 2 --epochs 300            # a local artefact directory
    python recipes/evaluate.py runs/mnist-lodm --runs 0 --push-to-hub alice/mnist-lodm   # just publish it
    python recipes/evaluate.py someone/their-distilled-mnist --test-dataset ylecun/mnist  # any image+label set

A set made by hf_lodc is loaded with its factors, labels and normalisation, and tested on its own
source's test split. Any other Hub/local image-classification dataset is read as uint8 images + labels,
normalised with the per-channel statistics of ``--test-dataset``'s train split, and tested on its
test split (class names must match). ``--update-card`` pushes the new records and card in one commit.
"""

from __future__ import annotations

import argparse
import json
import sys

from hf_lodc.engine.cli import value_parser
from hf_lodc.errors import ConfigError, IncompatibleArtifactError
from hf_lodc.launch import exit_codes, make_accelerator


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="Hub repo id or local directory (artefact or repo layout)")
    p.add_argument("--config-name", help="condensation (config) name in the repo; default: the repo's default")
    p.add_argument("--revision", help="branch, tag or commit of the repo")
    p.add_argument("--models", type=value_parser(list[str]), help="comma-separated eval models")
    p.add_argument("--runs", type=int, help="models per architecture (0: no evaluation)")
    p.add_argument("--epochs", type=int, help="training epochs (protocol: 1000)")
    p.add_argument("--seed", type=int, help="evaluation seed (default: the recorded one)")
    p.add_argument("--no-uint8", dest="uint8", action="store_false",
                   help="skip evaluating the uint8 PNG images (the card then shows no rounding effect)")
    p.add_argument("--eval-max-per-class", type=int, help="test on the first k test images per class only")
    p.add_argument("--test-dataset", help="for sets not made by hf_lodc: the real dataset to test on")
    p.add_argument("--max-per-class", type=int,
                   help="with --test-dataset: real train images per class used for the normalisation statistics")
    p.add_argument("--update-card", action="store_true", help="push the new results + card to the source repo")
    p.add_argument("--push-to-hub", help="push the set (with its results) to this repo")
    p.add_argument("--hub-private", action="store_true")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN / `hf auth login`)")
    p.add_argument("--output", help="also write the results as JSON here")
    p.add_argument("--cpu", action="store_true", help="force CPU even if a GPU is visible")
    return p


def evaluate_condensed(args, device) -> dict:
    from pathlib import Path

    from hf_lodc import CondensedDataset

    if Path(args.source).is_dir():
        cd = CondensedDataset.from_disk(args.source)
    else:
        cd = CondensedDataset.from_hub(args.source, args.config_name, revision=args.revision, token=args.token)
    if args.eval_max_per_class is not None:
        cd.eval_max_per_class = args.eval_max_per_class
    print(f"[hf_lodc] {cd!r}")
    if args.runs != 0:
        cd.evaluate(models=args.models, runs=args.runs, epochs=args.epochs, seed=args.seed, uint8=args.uint8,
                    device=device, progress=True)
    target = args.push_to_hub or (args.source if args.update_card else None)
    if args.update_card and Path(args.source).is_dir() and not args.push_to_hub:
        raise ConfigError("--update-card needs a Hub repo as source (or --push-to-hub REPO for a local set)")
    if target:
        cd.push_to_hub(target, private=args.hub_private, token=args.token, config_name=cd.name)
    return {key: cd.results.get(key, {}) for key in ("evaluations", "evaluations_uint8")}


def evaluate_foreign(args, device) -> dict:
    """Any image+label dataset: uint8 images normalised with the real data's statistics."""
    from hf_lodc import EvalConfig, evaluate_synthetic, load_image_classification
    from hf_lodc.data.types import normalize

    syn = load_image_classification(args.source, revision=args.revision, config_name=args.config_name,
                                    eval_split=None)
    real = load_image_classification(args.test_dataset, max_per_class=args.max_per_class)
    if list(syn.info.class_names) != list(real.info.class_names) or syn.image_shape != real.image_shape:
        raise ConfigError(
            f"{args.source!r} ({syn.num_classes} classes {syn.info.class_names[:5]}..., images {syn.image_shape}) does "
            f"not match {args.test_dataset!r} ({real.num_classes} classes {real.info.class_names[:5]}..., images "
            f"{real.image_shape}); the synthetic set must use the test dataset's classes and image size"
        )
    test = real.test
    if args.eval_max_per_class is not None:
        from hf_lodc.api import first_per_class

        test = test.subset(first_per_class(test.labels, args.eval_max_per_class, real.num_classes))
    ec = EvalConfig(**{k: v for k, v in {"eval_models": args.models, "eval_runs": args.runs,
                                          "eval_epochs": args.epochs}.items() if v is not None})
    x = normalize(syn.train.images, real.mean, real.std)  # (N, C, H, W)
    records = evaluate_synthetic(x, syn.train.labels, test, real.mean, real.std, real.num_classes, ec,
                                 seed=args.seed or 0, device=device, progress=True)
    return {"evaluations_uint8": {m: r.to_dict() for m, r in records.items()}}


@exit_codes
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = make_accelerator(cpu=args.cpu).device
    try:
        out = evaluate_condensed(args, device)
    except IncompatibleArtifactError:
        if not args.test_dataset:
            raise
        if args.update_card or args.push_to_hub:
            raise ConfigError("--update-card / --push-to-hub only work for sets made by hf_lodc") from None
        print(f"[hf_lodc] {args.source!r} is not an hf_lodc set; evaluating its images against "
              f"{args.test_dataset!r}")
        out = evaluate_foreign(args, device)
    for key, recs in out.items():
        for name, rec in recs.items():
            kind = "uint8 images" if key.endswith("uint8") else "float32 tensors"
            print(f"{name} ({kind}): {rec['accuracy_mean']:.2f} +- {rec['accuracy_std']:.2f} % "
                  f"({rec['runs']} runs x {rec['epochs']} epochs)")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
