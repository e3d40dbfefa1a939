#!/usr/bin/env python
"""Re-evaluate a condensed set with the literature protocol, and optionally update its card.

    python recipes/evaluate.py alice/mnist-lodm --eval-models convnet,resnet18_bn --eval-runs 5 --update-card
    python recipes/evaluate.py runs/mnist-lodm --eval-runs 2 --eval-epochs 300  # a local artefact directory
    python recipes/evaluate.py runs/mnist-lodm --eval-runs 0 --push-to-hub alice/mnist-lodm   # just publish it
    python recipes/evaluate.py someone/their-distilled-mnist --test-dataset ylecun/mnist  # any image+label set
    python recipes/evaluate.py idc_cifar10_ipc10.pt --test-dataset uoft-cs/cifar10 --input-normalization source
    python recipes/evaluate.py user/set --test-dataset uoft-cs/cifar10 --image-column pixel_values --labels by-id
    python recipes/evaluate.py logged_files/CIFAR10/run --test-dataset uoft-cs/cifar10 --input-normalization zca \
        --eval-lr 0.01     # a HaBa run folder: images_best.pt bases rendered through weights_best.pt hallucinators

A set made by hf_lodc is loaded with its factors, labels and normalisation, and tested on its own
source's test split. Any other Hub/local image-classification dataset is read as uint8 images + labels,
normalised with the per-channel statistics of ``--test-dataset``'s train split, and tested on its
test split (class names must match, or ``--labels by-id``). ``--update-card`` pushes the new records and
card in one commit. Sets not made by hf_lodc (``.pt`` files, Image or float Array3D datasets) go to
``hf_lodc.evaluate_condensed_set`` (hf_lodc/foreign/load.py lists the layouts): the report states the
normalisation assumed, the storage in bytes and the accuracy of random real images at that storage.
"""

from __future__ import annotations

import contextlib

if __name__ == "__main__":  # before the libraries: a SIGTERM while they import says so (_startup.py)
    with contextlib.suppress(ImportError):  # found when run as a script: recipes/ is sys.path[0]
        import _startup  # noqa: F401

import argparse
import json
import sys
from dataclasses import fields

from hf_lodc.engine.cli import add_alias, add_options, option_fields
from hf_lodc.engine.config import EvalConfig
from hf_lodc.engine.eval_journal import JOURNAL_NAME
from hf_lodc.errors import ConfigError, IncompatibleArtifactError
from hf_lodc.export.views import VIEWS, evaluated_views
from hf_lodc.foreign.options import ForeignEvalOptions
from hf_lodc.launch import exit_codes, make_accelerator, sigterm_as_interrupt
from hf_lodc.pipeline import FLOAT32, UINT8


# The protocol's options are EvalConfig's fields, with the flags, help and checks recipes/condense.py
# gives them, minus the accuracy curve's (iterations of a condensation) and eval_lr: a set made
# elsewhere may carry its own learned lr, so --eval-lr is among that set's options below.
EVAL_SKIP = ("eval_at", "eval_at_runs", "eval_at_epochs", "eval_lr")
EVAL_OPTIONS = tuple(name for name, _, _ in option_fields(EvalConfig, skip=EVAL_SKIP))
# hf_lodc.evaluate_condensed_set's options (foreign/options.py), --eval-lr among them
FOREIGN_OPTIONS = option_fields(ForeignEvalOptions)
# this recipe's spellings before they were generated: deprecated, same meaning, for one release
OLD_SPELLINGS = {"--models": "--eval-models", "--runs": "--eval-runs", "--epochs": "--eval-epochs",
                 "--seed": "--eval-seed", "--protocol": "--eval-protocol", "--compile": "--eval-compile",
                 "--channels-last": "--eval-channels-last", "--mixed-precision": "--eval-mixed-precision"}
# --mixed-precision took no|bf16, "no" (its default) leaving the precision to the speed choice
OLD_VALUES = {"--mixed-precision": {"choices": ("no", "bf16"), "unset": ("no",)}}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="Hub repo id or local directory (artefact or repo layout)")
    p.add_argument("--config-name", help="condensation (config) name in the repo; default: the repo's default")
    p.add_argument("--revision", help="branch, tag or commit of the repo")
    add_options(p, option_fields(EvalConfig, skip=EVAL_SKIP))  # --eval-runs ...: the flags condense.py has
    for old_flag, new_flag in OLD_SPELLINGS.items():
        add_alias(p, old_flag, new_flag, **OLD_VALUES.get(old_flag, {}))
    p.set_defaults(**dict.fromkeys(EVAL_OPTIONS))  # None: not given (the set's recorded protocol, or speed's)
    p.add_argument("--no-uint8", dest="uint8", action="store_false",
                   help="skip evaluating the uint8 PNG images (the card then shows no rounding effect)")
    add_options(p, [o for o in FOREIGN_OPTIONS if o[0] == "eval_max_per_class"])  # any set's test split
    p.add_argument("--test-dataset", help="for sets not made by hf_lodc: the real dataset to test on")
    f = p.add_argument_group("sets not made by hf_lodc (.pt files, Image / Array3D datasets; need --test-dataset)")
    # hf_lodc.evaluate_condensed_set's keywords: one field each (foreign/options.py), flag, help and check
    add_options(f, [o for o in FOREIGN_OPTIONS if o[0] != "eval_max_per_class"], extra=ForeignEvalOptions.cli())
    p.set_defaults(**{k.name: k.default for k in fields(ForeignEvalOptions)})  # the entry's own defaults
    p.add_argument("--update-card", action="store_true", help="push the new results + card to the source repo")
    p.add_argument("--push-to-hub", help="push the set (with its results) to this repo")
    p.add_argument("--hub-private", action="store_true")
    p.add_argument("--no-test-split", dest="test_split", action="store_false",
                   help="push only the condensed set (train), not the real test split as validation/test")
    p.add_argument("--push-models", action="store_true",
                   help="also push, per model, the trained network closest to the median accuracy as a model "
                        "repo <repo>-<model> (timm models; needs --eval-runs > 0)")
    p.add_argument("--leaderboard", metavar="REPO",
                   help="append this evaluation (one row per model) to the leaderboard dataset REPO on the Hub, in one "
                        "commit; the repo is created if missing and loads with datasets.load_dataset(REPO)")
    p.add_argument("--method-name", help="the method's name in the leaderboard row (default: inferred from the layout "
                                         "or the artefact's record; the row says which)")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN / `hf auth login`)")
    p.add_argument("--output", help="also write the results as JSON here")
    p.add_argument("--cpu", action="store_true", help="force CPU even if a GPU is visible")
    return p


def _looks_like_path(source: str) -> bool:
    """``./x``, ``../x``, ``/x``, ``~/x``, ``a/b/c``, ``x/`` or an existing file/folder: a local path, never a
    Hub id (``owner/name``)."""
    import os

    from hf_lodc.data.sources import looks_like_path

    return (looks_like_path(source) or source.endswith(("/", "\\")) or source in (".", "..")
            or os.path.exists(os.path.expanduser(source)))


def check_args(args) -> None:
    """Everything that can fail after the evaluation, checked before it: the source path, --output,
    --update-card on a local set, the repo id and token of a push."""
    import os
    from pathlib import Path

    from hf_lodc.errors import ArtifactError, LocalPathNotFoundError
    from hf_lodc.preflight import check_output_file, check_repo_id, check_token

    if _looks_like_path(args.source):
        p = Path(os.path.abspath(os.path.expanduser(args.source)))
        if not p.exists():
            raise LocalPathNotFoundError(f"source {args.source!r} not found: no such file or directory {str(p)!r} "
                                         f"(cwd: {os.getcwd()}); pass an existing artefact directory or a Hub repo id")
        args.source = str(p)
        if p.is_file() and p.suffix not in (".pt", ".pth") and not args.test_dataset:
            raise ArtifactError(f"source {args.source!r} is a file, not an artefact directory; pass the directory "
                                "a condensation wrote (or a .pt set with --test-dataset)")
    if args.eval_max_per_class is not None and args.eval_max_per_class <= 0:
        raise ConfigError(f"--eval-max-per-class must be a positive number of test images per class, got "
                          f"{args.eval_max_per_class}; leave it out to use the whole test split")
    if args.output:
        folder = Path(os.path.abspath(os.path.expanduser(args.output)))
        args.output = check_output_file(args.output, "--output", f"name a file for the JSON results (e.g. "
                                        f"{str(folder / 'results.json')!r})")
    if args.update_card and Path(args.source).is_dir() and not args.push_to_hub:
        raise ConfigError("--update-card needs a Hub repo as source (or --push-to-hub REPO for a local set)")
    EvalConfig(**protocol_given(args))  # the options' own checks (type, range, registry), before the set is read
    if args.push_to_hub:
        check_repo_id(args.push_to_hub)
    if args.push_to_hub or args.update_card:
        check_token(args.token, "--push-to-hub" if args.push_to_hub else "--update-card")
    if args.leaderboard:
        check_repo_id(args.leaderboard, "--leaderboard")
        check_token(args.token, "--leaderboard")
    elif args.method_name:
        raise ConfigError("--method-name names the method in a leaderboard row: pass --leaderboard REPO too")


def evaluate_condensed(args, device) -> tuple[dict, object]:
    from pathlib import Path

    from hf_lodc import CondensedDataset

    if args.push_models and (not target_of(args) or args.eval_runs == 0):
        raise ConfigError("--push-models needs --push-to-hub REPO (or --update-card) and --eval-runs > 0: the models "
                          "pushed are the networks this evaluation trains")
    if Path(args.source).is_dir():
        cd = CondensedDataset.from_disk(args.source)
    else:
        cd = CondensedDataset.from_hub(args.source, args.config_name, revision=args.revision, token=args.token)
    if args.eval_max_per_class is not None:
        cd.eval_max_per_class = args.eval_max_per_class
    print(f"[hf_lodc] {cd!r}")
    if args.eval_runs != 0:
        journal = None
        if Path(args.source).is_dir() and (Path(args.source) / "config.json").is_file():
            # inside the set's folder (which the new records replace): a stop keeps the runs that finished
            journal = Path(args.source) / "checkpoints" / JOURNAL_NAME
        try:
            with sigterm_as_interrupt():
                cd.evaluate(models=args.eval_models, runs=args.eval_runs, epochs=args.eval_epochs,
                            seed=args.eval_seed, uint8=args.uint8, device=device, progress=True, journal=journal,
                            keep_models=args.push_models and bool(target_of(args)), **eval_options(args))
        except KeyboardInterrupt as e:
            kept = (f"the evaluation runs that finished are kept in {str(journal)!r}: the same command again trains "
                    "only the others" if journal is not None and journal.is_file()
                    else "nothing was written; run the same command again")
            raise KeyboardInterrupt(f"{e or 'SIGINT'} during the evaluation of {args.source!r}; {kept}") from None
    if args.eval_runs != 0 and Path(args.source).is_dir() and (Path(args.source) / "config.json").is_file():
        cd.save_to_disk(args.source)  # the records go into the artefact they measure (one atomic write)
        print(f"[hf_lodc] wrote the new records to {args.source}")
    target = target_of(args)
    if args.update_card and Path(args.source).is_dir() and not args.push_to_hub:
        raise ConfigError("--update-card needs a Hub repo as source (or --push-to-hub REPO for a local set)")
    folder = Path(args.source)
    saved = [m for m in folder.glob("condensations/*/hf_lodc.json") if not m.parent.name.startswith("_")]
    as_is = folder.is_dir() and args.eval_runs == 0 and args.test_split and len(saved) == 1
    if target and as_is:  # a saved run, unchanged: upload its repo files as they are
        from hf_lodc.export.push import push_folder

        push_folder(folder, target, private=args.hub_private, token=args.token)
    elif target:
        cd.push_to_hub(target, private=args.hub_private, token=args.token, config_name=cd.name,
                       test_split=args.test_split, push_models=args.push_models)
    return {v.results_key: cd.results.get(v.results_key, {}) for v in evaluated_views()}, cd


def eval_options(args) -> dict:
    """The EvalConfig fields given beyond models/runs/epochs (passed by name) and the seed (the evaluation's
    ``seed``, as the recorded one is): only those given, so a default run records exactly what it always did."""
    return {k: v for k, v in protocol_given(args).items()
            if k not in ("eval_models", "eval_runs", "eval_epochs", "eval_seed")}


def protocol_given(args) -> dict:
    """The EvalConfig options the command line set."""
    return {k: getattr(args, k) for k in EVAL_OPTIONS if getattr(args, k) is not None}


def target_of(args) -> str | None:
    return args.push_to_hub or (args.source if args.update_card else None)


def foreign_values(args) -> dict:
    """The ForeignEvalOptions of the command line (its defaults where not given)."""
    return {k.name: getattr(args, k.name) for k in fields(ForeignEvalOptions)}


def foreign_options(args) -> list[str]:
    """The options given that only sets not made by hf_lodc have (their flags)."""
    return ["--" + n.replace("_", "-") for n in ForeignEvalOptions.marking_foreign(foreign_values(args))]


def is_foreign(args) -> bool:
    """A .pt file, or options only sets not made by hf_lodc have: skip the hf_lodc artefact reader."""
    from pathlib import Path

    from hf_lodc.published.haba import haba_run_folder

    return Path(args.source).is_file() or haba_run_folder(args.source) is not None or bool(foreign_options(args))


def _is_hf_lodc_folder(source: str) -> bool:
    from pathlib import Path

    p = Path(source).expanduser()
    return p.is_dir() and ((p / "config.json").is_file() or any(p.glob("condensations/*/hf_lodc.json")))


def evaluate_foreign(args, device) -> tuple[dict, object]:
    """Any condensed set (.pt, Image or Array3D dataset): hf_lodc.evaluate_condensed_set, with its report."""
    from hf_lodc.foreign import evaluate_condensed_set

    if not args.test_dataset and _is_hf_lodc_folder(args.source):
        raise ConfigError(f"{' '.join(foreign_options(args))} only apply to sets not made by hf_lodc, and "
                          f"{args.source!r} is an hf_lodc artefact (its own record gives the labels, normalisation "
                          "and split): drop those options, or pass --test-dataset to evaluate it as a plain set")
    if not args.test_dataset:
        raise ConfigError(f"{args.source!r} is not an hf_lodc set: pass --test-dataset (the real dataset it was "
                          f"condensed from, e.g. ylecun/mnist)")
    if args.update_card or args.push_to_hub:
        raise ConfigError("--update-card / --push-to-hub only work for sets made by hf_lodc")
    options = eval_options(args)
    report = evaluate_condensed_set(
        args.source, args.test_dataset, models=args.eval_models, runs=args.eval_runs, epochs=args.eval_epochs,
        config_name=args.config_name, revision=args.revision, seed=args.eval_seed or 0,
        eval_config=EvalConfig(**options) if options else None, device=device, progress=True,
        **{**foreign_values(args), "real_accuracy_from": args.real_accuracy_from or (
            "--real-accuracy" if args.real_accuracy is not None else None)},
    )
    print(report.summary())
    key = VIEWS.get(UINT8 if report.stored_dtype.startswith("uint8") else FLOAT32).results_key
    return {key: report.evaluations, "foreign_report": report.to_dict()}, report


@exit_codes
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    device = make_accelerator(cpu=args.cpu).device
    try:
        out, evaluated = evaluate_foreign(args, device) if is_foreign(args) else evaluate_condensed(args, device)
    except IncompatibleArtifactError:
        if not args.test_dataset:
            raise
        print(f"[hf_lodc] {args.source!r} is not an hf_lodc set; evaluating its images against "
              f"{args.test_dataset!r}")
        out, evaluated = evaluate_foreign(args, device)
    for key, recs in out.items():
        if not key.startswith("evaluations"):
            continue
        for name, rec in recs.items():
            kind = "uint8 images" if key == VIEWS.get(UINT8).results_key else "float32 tensors"
            print(f"{name} ({kind}): {rec['accuracy_mean']:.2f} +- {rec['accuracy_std']:.2f} % "
                  f"({rec['runs']} runs x {rec['epochs']} epochs)")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(out, f, indent=2)
    if args.leaderboard:  # last: a Hub failure leaves the results printed and written
        from hf_lodc.leaderboard import push_to_leaderboard

        push_to_leaderboard(args.leaderboard, evaluated, method=args.method_name, token=args.token,
                            source=args.source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
