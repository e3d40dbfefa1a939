#!/usr/bin/env python
"""Train a teacher on a dataset's real train split, for evaluating teacher-label sets (SRe2L, RDED).

    python recipes/teacher.py --dataset uoft-cs/cifar10 --output cifar10-convnet.pt
    python recipes/teacher.py --dataset uoft-cs/cifar10 --model resnet18_bn --epochs 100 \\
        --output cifar10-resnet18.pt --push-to-hub alice/cifar10-teacher-resnet18
    python recipes/evaluate.py rded_cifar10_ipc10/ --test-dataset uoft-cs/cifar10 \\
        --teacher cifar10-convnet.pt --teacher-model convnet

The teacher trains with the evaluation protocol (SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch
256, lr x0.1 at half, DSA; ``--protocol idc`` for IDC's) on images normalised with the train split's
mean/std: the space ``recipes/evaluate.py --test-dataset`` trains a set in. It writes the state dict
(``--output``, what ``--teacher`` loads) and a JSON record beside it (same name, ``.json``: settings,
test accuracy, hf_lodc version); ``--push-to-hub`` also publishes it as a timm model repo whose
``model.safetensors`` ``--teacher`` loads too.
"""

from __future__ import annotations

import contextlib

if __name__ == "__main__":  # before the libraries: a SIGTERM while they import says so (_startup.py)
    with contextlib.suppress(ImportError):  # found when run as a script: recipes/ is sys.path[0]
        import _startup  # noqa: F401

import argparse
import sys

from hf_lodc.errors import ConfigError
from hf_lodc.launch import exit_codes, make_accelerator
from hf_lodc.published.teacher_training import TEACHER_EPOCHS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="Hub id (owner/name) or local repository folder")
    p.add_argument("--output", required=True, help="the teacher's .pt (the record is written beside it as .json)")
    p.add_argument("--model", default="convnet", help="evaluation model name: alias, lodc_* or timm (default convnet)")
    p.add_argument("--epochs", type=int, default=TEACHER_EPOCHS, help=f"training epochs (default {TEACHER_EPOCHS})")
    p.add_argument("--seed", type=int, default=0, help="seed of the network and of the batches (default 0)")
    p.add_argument("--protocol", default="dc", help="evaluation protocol whose settings train it: dc (default) or idc")
    p.add_argument("--max-per-class", type=int, help="train on the first k images of each class (and take the "
                                                     "normalisation statistics from them)")
    p.add_argument("--eval-max-per-class", type=int, help="test on the first k test images per class only")
    p.add_argument("--config-name", help="dataset config (subset) name")
    p.add_argument("--revision", help="branch, tag or commit of a Hub dataset")
    p.add_argument("--push-to-hub", metavar="REPO", help="also publish the teacher as this timm model repo")
    p.add_argument("--hub-private", action="store_true")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN / `hf auth login`)")
    p.add_argument("--cpu", action="store_true", help="force CPU even if a GPU is visible")
    return p


def check_args(args) -> None:
    """Every option that needs no data, before anything is read."""
    from pathlib import Path

    from hf_lodc.engine.config import EvalConfig
    from hf_lodc.preflight import check_output_file, check_repo_id, check_token

    for name in ("epochs", "max_per_class", "eval_max_per_class"):
        v = getattr(args, name)
        if v is not None and v <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be a positive whole number, got {v}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    EvalConfig(eval_protocol=args.protocol)  # the option's own check, naming the valid protocols
    if Path(args.output).suffix not in (".pt", ".pth"):
        raise ConfigError(f"--output {args.output!r} must name a .pt file (the record is written beside it as .json)")
    args.output = check_output_file(args.output, "--output", "name the teacher's .pt file in it")
    if args.push_to_hub:
        check_repo_id(args.push_to_hub)
        check_token(args.token)


@exit_codes
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    from hf_lodc.data.hub import load_image_classification
    from hf_lodc.engine.config import EvalConfig
    from hf_lodc.published.teacher_training import check_publishable, push_teacher, save_teacher, train_teacher

    data = load_image_classification(args.dataset, config_name=args.config_name, revision=args.revision,
                                     max_per_class=args.max_per_class)
    if args.push_to_hub:  # before the training, not after it
        check_publishable(args.model, data.image_shape)
    device = make_accelerator(cpu=args.cpu).device
    teacher = train_teacher(data, args.model, epochs=args.epochs, seed=args.seed,
                            eval_config=EvalConfig(eval_protocol=args.protocol),
                            eval_max_per_class=args.eval_max_per_class, device=device, progress=True)
    pt, record = save_teacher(teacher, args.output)
    r = teacher.record
    print(f"[hf_lodc] teacher {args.model} on {r['dataset']}: {teacher.accuracy:.2f} % on {r['test_rows']} test "
          f"images ({r['train']['images']} train images, {args.epochs} epochs, {r['wall_time_s']:.0f} s)")
    print(f"[hf_lodc] wrote {pt} and {record}; evaluate a set with: recipes/evaluate.py <set> --test-dataset "
          f"{args.dataset} --teacher {pt} --teacher-model {args.model}"
          + (f" --max-per-class {args.max_per_class}" if args.max_per_class else ""))
    if args.push_to_hub:  # last: a Hub failure leaves the teacher written
        push_teacher(teacher, args.push_to_hub, license=data.info.license, private=args.hub_private,
                     token=args.token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
