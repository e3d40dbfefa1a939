"""``CondensedDataset``: the user's handle on one condensed set, from source to the Hub and back.

    >>> from hf_lodc import CondensedDataset
    >>> cd = CondensedDataset("ylecun/mnist")
    >>> cd.condense(method="lodm", ipc=1, rank=2, iterations=2000)
    >>> cd.evaluate(models=["convnet"], runs=5, epochs=1000)
    >>> cd.push_to_hub("alice/mnist-lodm")                     # one commit; card with the accuracies
    >>> again = CondensedDataset.from_hub("alice/mnist-lodm")  # factors, labels, normalisation, config
    >>> again.condense(iterations=1000)                       # continue condensing from the loaded factors
    >>> loader = torch.utils.data.DataLoader(again.to_torch_dataset(), batch_size=256)

A facade over the orchestrator (``pipeline``: load, condense, evaluate, publish) and the artefact
(``export.artifact``): it only keeps the state between calls (the source, the set, its name in a
repo) and hands every step (the speed choice, the artefact, the evaluation) to ``pipeline``, so a set
made here and one made by ``recipes/condense.py`` are the same thing.
"""

from __future__ import annotations

import os
from dataclasses import asdict, fields
from typing import Any

import torch

from . import pipeline
from .data.splits import first_per_class
from .data.types import ImageClassificationData, LabeledImages
from .engine.condense_options import flat_condense_record, flat_option_names
from .engine.config import (CORE_CONDENSE_FIELDS, CondenseConfig, DataConfig, EvalConfig, RunConfig,
                            check_option_names)
from .engine.eval_journal import EvalJournal
from .engine.evaluate import EvalRecord
from .errors import ConfigError
from .engine.identity import identity_diff, run_identity
from .export.artifact import Artifact, load_artifact
from .export.artifact_source import anchor_relative_source, check_same_source, data_config_of
from .export.save import save_artifact

__all__ = ["CondensedDataset", "first_per_class"]


class CondensedDataset:
    """A source dataset and (once condensed or loaded) its synthetic set.

    Args:
        source: Hub id (``"uoft-cs/cifar10"``) or local repository folder.
        config_name / revision / split / eval_split / image_column / label_column: how to read the
            source (columns are auto-detected when None).
        max_per_class: keep at most this many train images per class (quick experiments).
        eval_max_per_class: evaluate on the first k test images per class only (recorded with the
            results, and reused by a set loaded back from the Hub).
        data: already-loaded tensors instead of ``source``.
        **data_options: any other ``DataConfig`` field (``holdout_fraction``, ``skip_corrupt``, ...).
    """

    def __init__(
        self,
        source: str | None = None,
        *,
        config_name: str | None = None,
        revision: str | None = None,
        split: str = "train",
        eval_split: str | None = "test",
        image_column: str | None = None,
        label_column: str | None = None,
        max_per_class: int | None = None,
        eval_max_per_class: int | None = None,
        data: ImageClassificationData | None = None,
        **data_options: Any,
    ):
        if source is None and data is None:
            raise ConfigError("give a source dataset (Hub id or local folder) or data=...")
        check_option_names(data_options, DataConfig, "data")
        self.data_config = DataConfig(
            dataset=source if source is not None else data.info.dataset, config_name=config_name, revision=revision,
            train_split=split, eval_split=eval_split, image_column=image_column, label_column=label_column,
            max_per_class=max_per_class, **data_options,
        )
        self.eval_max_per_class = eval_max_per_class
        self.eval_config = EvalConfig()
        self._data = data
        self._artifact: Artifact | None = None
        self.name: str | None = None  # the condensation's name in a Hub repo, once pushed or loaded

    # -- construction from saved sets --------------------------------------------------------------
    @classmethod
    def from_artifact(cls, art: Artifact, name: str | None = None) -> "CondensedDataset":
        """Wrap an artefact (e.g. the one ``pipeline.run_experiment`` returns); its source is read lazily."""
        data_cfg = data_config_of(art)
        options = {f.name: getattr(data_cfg, f.name) for f in fields(DataConfig)}
        obj = cls(
            options.pop("dataset"), config_name=options.pop("config_name"), revision=options.pop("revision"),
            split=options.pop("train_split"), eval_split=options.pop("eval_split"),
            image_column=options.pop("image_column"), label_column=options.pop("label_column"),
            max_per_class=options.pop("max_per_class"),
            eval_max_per_class=(art.results.get("evaluation_data") or {}).get("max_per_class"), **options,
        )
        eval_rec = (art.run_config or {}).get("eval")
        if isinstance(eval_rec, dict):
            known = {f.name for f in fields(EvalConfig)}
            obj.eval_config = EvalConfig(**{k: v for k, v in eval_rec.items() if k in known})
        obj._artifact = art
        obj.name = name
        return obj

    @classmethod
    def from_disk(cls, path: str | os.PathLike) -> "CondensedDataset":
        """An artefact directory (``save_to_disk`` / ``recipes/condense.py --output-dir``), or a local copy
        of a Hub repo (same layout as on the Hub)."""
        from pathlib import Path

        p = Path(path)
        # hf_lodc's own files present (even some: a damaged artefact is refused by load_artifact, naming
        # what is missing) -> the artefact; none of them -> a local copy of a Hub repo
        own = any((p / f).is_file() for f in ("synset.safetensors", "config.json", "results.json"))
        if not own and (p / "README.md").is_file() and (p / "condensations").is_dir():
            return cls.from_hub(str(p))  # a local copy of a Hub repo
        art = load_artifact(p)
        names = [m.parent.name for m in p.glob("condensations/*/hf_lodc.json") if not m.parent.name.startswith("_")]
        cd = cls.from_artifact(art, names[0] if len(names) == 1 else None)
        anchor_relative_source(cd.data_config, art, p)
        return cd

    @classmethod
    def from_hub(
        cls, repo_id: str, config_name: str | None = None, *, revision: str | None = None, token: str | None = None
    ) -> "CondensedDataset":
        """Load a condensation from a Hub dataset repo (the default one unless ``config_name``)."""
        from .export.pull import load_condensation

        loaded = load_condensation(repo_id, config_name, revision=revision, token=token)
        return cls.from_artifact(loaded.artifact, loaded.name)

    # -- data ------------------------------------------------------------------------------------------
    @property
    def data(self) -> ImageClassificationData:
        """The source dataset as tensors (loaded on first use)."""
        if self._data is None:
            self._data = pipeline.load_data(self.data_config)
            if self._artifact is not None:
                check_same_source(self._artifact, self._data)
        return self._data

    def test_split(self) -> LabeledImages:
        test = self.data.test
        if test is None or len(test) == 0:
            raise ConfigError(
                f"source {self.data_config.dataset!r} has no evaluation split; "
                "set eval_split=... or holdout_fraction=..."
            )
        if self.eval_max_per_class is None:
            return test
        keep = first_per_class(test.labels, self.eval_max_per_class, self.data.num_classes)
        return test.subset(keep)

    # -- the synthetic set -----------------------------------------------------------------------------
    @property
    def artifact(self) -> Artifact:
        if self._artifact is None:
            raise ConfigError("nothing condensed yet: call .condense(...) or load a set with from_hub / from_disk")
        return self._artifact

    @property
    def is_condensed(self) -> bool:
        return self._artifact is not None

    def images(self) -> torch.Tensor:
        """(N, C, H, W) float32 images, normalised with ``mean`` / ``std`` (what the accuracy was measured on)."""
        return self.artifact.images()

    @property
    def labels(self) -> torch.Tensor:
        return self.artifact.labels

    @property
    def factors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(A (N, C, H, r), B (N, C, r, W)) when the stored units are rank-r factors (low-rank sets, and
        LoIDC/LoHaBa units), else None; the general accessor is ``export_tables``."""
        units = self.export_tables().get("units", {})
        if "A" not in units or "B" not in units:
            return None
        return units["A"].clone(), units["B"].clone()

    def export_tables(self) -> dict[str, dict[str, torch.Tensor]]:
        """The stored parameters as the parameterisation exports them: table ("units": one row per
        stored unit, class-major; "shared": one row per shared module, e.g. HaBa's hallucinators) ->
        column -> tensor. ``artifact.synset.how_to_decode()`` says how they become the images."""
        return self.artifact.synset.export_tables()

    @property
    def mean(self) -> torch.Tensor:
        return self.artifact.mean

    @property
    def std(self) -> torch.Tensor:
        return self.artifact.std

    @property
    def class_names(self) -> list[str]:
        return list(self.artifact.source.class_names)

    @property
    def config(self) -> dict[str, Any]:
        """Method, budget, rank, resolved condensation options, source, versions (``config.json``)."""
        return self.artifact.config_record()

    @property
    def results(self) -> dict[str, Any]:
        return self.artifact.results

    def to_torch_dataset(self, uint8: bool = False) -> torch.utils.data.TensorDataset:
        """(image, label) pairs; ``uint8=True`` gives the published PNG pixels (N, C, H, W) uint8 instead."""
        if uint8:
            from .export.views import png_images

            return torch.utils.data.TensorDataset(png_images(self.artifact), self.labels)
        return torch.utils.data.TensorDataset(self.images(), self.labels)

    # -- condense ----------------------------------------------------------------------------------------
    def condense(
        self,
        method: str | None = None,
        ipc: int | None = None,
        rank: int | None = None,
        iterations: int | None = None,
        *,
        continue_from_current: bool | None = None,
        accelerator=None,
        checkpoint_dir: str | os.PathLike | None = None,
        progress: bool = False,
        speed: str | None = None,
        **options: Any,
    ) -> "CondensedDataset":
        """Condense the source (any ``CondenseConfig`` option as keyword); ``speed`` (auto, the default, or
        exact) fills the speed options left unset (``hf_lodc.engine.speed``).

        If this object already holds a set (condensed or loaded) with the same method, ipc and rank,
        ``iterations`` MORE iterations continue from it (``continue_from_current=None``: when
        compatible; True: required; False: start afresh).
        """
        given = {"method": method, "ipc": ipc, "rank": rank, "iterations": iterations, **options}
        check_option_names(given, CondenseConfig, "condense")
        given = {k: v for k, v in given.items() if v is not None}
        cfg, prev = self._condense_plan(given, continue_from_current)
        run = RunConfig(data=self.data_config, condense=cfg, eval=self.eval_config, speed=speed)
        self._artifact = pipeline.condense(self.data, run, speed=True, continue_from=prev, accelerator=accelerator,
                                           checkpoint_dir=checkpoint_dir, progress=progress)
        if prev is None:
            self.name = None  # a new condensation; a continued one keeps its name in the repo
        return self

    def _condense_plan(self, given: dict[str, Any], continue_from_current: bool | None):
        """(config, the held set to continue or None): continue the held set, or start afresh."""
        prev = self._artifact
        if prev is None or continue_from_current is False:
            return CondenseConfig(**given), None
        # the set's engine fields and its method's options, from a record of any version (flat or nested)
        base = flat_condense_record({**prev.condense_config, "method": prev.method})
        known = {*CORE_CONDENSE_FIELDS, *flat_option_names(prev.method)}
        base = {k: v for k, v in base.items() if k in known}
        # the settings given that change what is computed (engine/identity.py) must equal the set's
        mismatch = identity_diff(run_identity(given), run_identity(base), only_common=True)
        if mismatch:
            if continue_from_current:
                diff = ", ".join(f"{k}={a!r} (set has {b!r})" for k, (a, b) in mismatch.items())
                raise ConfigError(f"cannot continue the current set: {diff}")
            return CondenseConfig(**given), None
        if "iterations" not in given:
            raise ConfigError("continuing a condensation: say how many more iterations with iterations=...")
        done = int(base.get("iterations") or 0)
        return CondenseConfig(**{**base, **given, "iterations": done + given["iterations"]}), prev

    # -- evaluate ----------------------------------------------------------------------------------------
    def evaluate(
        self,
        models: list[str] | None = None,
        runs: int | None = None,
        epochs: int | None = None,
        *,
        seed: int | None = None,
        float32: bool = True,
        uint8: bool = True,
        test: LabeledImages | None = None,
        device: torch.device | str = "cpu",
        accelerator=None,
        progress: bool = False,
        keep_models: bool = False,
        speed: str | None = None,
        journal: str | os.PathLike | None = None,
        **eval_options: Any,
    ) -> dict[str, EvalRecord]:
        """Train fresh models on the synthetic set, test on the real test split; records go into ``results``.

        ``float32``: evaluate the exact tensors (``pixel_values``, what the card reports first).
        ``uint8``: evaluate the published PNG images (decoded, re-normalised) with the same seeds, so
        the card states what uint8 rounding costs. Records of other models already in ``results``
        are kept. ``test`` replaces the test split. With an ``accelerator`` the runs are split over its
        processes (same records). Returns the float32 records (else the uint8 ones).
        ``keep_models``: keep the networks trained on the float32 tensors, so that
        ``push_to_hub(push_models=True)`` can publish, per model, the run closest to the median
        (timm models only; the accuracies are the same with or without).
        ``journal``: a JSON file where each finished run is written; runs it holds for this set, test
        split, options and seed are read back instead of trained (an evaluation stopped part-way goes on
        where it stopped; one process, not with ``keep_models``).
        """
        art = self.artifact
        overrides = {"eval_models": models, "eval_runs": runs, "eval_epochs": epochs, **eval_options}
        check_option_names(overrides, EvalConfig, "evaluation")
        if not (float32 or uint8):
            raise ConfigError("nothing to evaluate: set float32=True and/or uint8=True")
        ec = EvalConfig(**{**asdict(self.eval_config), **{k: v for k, v in overrides.items() if v is not None}})
        views = tuple(v for v, wanted in ((pipeline.FLOAT32, float32), (pipeline.UINT8, uint8)) if wanted)
        nets = None
        if keep_models:
            from .export.model_repo import TrainedNets

            nets = TrainedNets()
        desc = f"a test set given by the caller ({len(test)} rows)" if test is not None else None
        records = pipeline.evaluate(art, test if test is not None else self._held_test_split, ec, views=views,
                                    seed=seed, test_data=desc, device=device, accelerator=accelerator,
                                    progress=progress, keep_state=nets, held=True, speed=speed,
                                    journal=EvalJournal(journal) if journal is not None else None)
        if nets is not None:
            self._trained = nets
        self.eval_config = EvalConfig(**art.run_config["eval"])  # with the speed options the evaluation chose
        return records[views[0]]

    def _held_test_split(self) -> tuple[LabeledImages, str, dict[str, Any]]:
        """The test split this object evaluates on, its description and its ``evaluation_data`` record."""
        test = self.test_split()
        split = self.data.info.eval_split
        desc = (f"first {self.eval_max_per_class} images per class of split {split!r} ({len(test)} rows)"
                if self.eval_max_per_class is not None else f"split {split!r} ({len(test)} rows)")
        return test, desc, {"split": split, "rows": len(test), "max_per_class": self.eval_max_per_class}

    # -- save / publish ----------------------------------------------------------------------------------
    def save_to_disk(self, path: str | os.PathLike, overwrite: bool = True, *, test_split: bool = True):
        """Write the artefact directory atomically (nothing partial on failure): the hf_lodc files and the
        layout a push commits (README card, ``condensations/<name>/`` parquet configs and, with
        ``test_split``, the real test split as ``validation`` / ``test``), so ``datasets.load_dataset(path)``
        reads it exactly as the pushed repo and ``export.push.push_folder`` uploads it as it is."""
        test = self.test_split() if test_split else None
        return save_artifact(self.artifact, path, overwrite=overwrite,
                             repo={"config_name": self.name, "test": test})

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool = False,
        token: str | None = None,
        config_name: str | None = None,
        set_default: bool | None = None,
        test_split: bool = True,
        push_models: bool = False,
        model_repos: dict[str, str] | None = None,
        **kwargs: Any,
    ):
        """Publish as condensation ``config_name`` (default ``<method>-ipc<k>-r<r>``) of ``repo_id``, in one
        commit. Returns a ``PushResult`` (``changed=False`` when the repo already held exactly this).

        ``test_split``: also publish the real test split the set is evaluated on as the ``validation`` and
        ``test`` splits (one copy). ``push_models``: first push, per evaluation model, the network of the
        run closest to the median accuracy as model repo ``<repo_id>-<model>`` (``model_repos``: model ->
        repo id), one commit each; needs ``evaluate(..., keep_models=True)`` before."""
        test = self.test_split() if test_split else None
        nets = None
        if push_models:
            nets = getattr(self, "_trained", None)
            if nets is None or not nets.kept:
                raise ConfigError(
                    "push_models=True: no trained networks were kept; call evaluate(..., keep_models=True) "
                    "first (or push without push_models)"
                )
        res = pipeline.publish(self.artifact, repo_id, private=private, token=token,
                               config_name=config_name or self.name, set_default=set_default, test=test,
                               nets=nets, model_repos=model_repos, **kwargs)
        self.name = res.config_name
        return res

    def __repr__(self) -> str:
        if self._artifact is None:
            return f"CondensedDataset(source={self.data_config.dataset!r}, not condensed)"
        a = self._artifact
        s = a.synset
        opts = "".join(f", {k}={v}" for k, v in s.options.items() if v is not None)
        units = "" if s.decoded_per_unit == 1 and not s.numel_shared else f"units={s.per_class}/class, "
        shared = f", shared_numbers={s.numel_shared}" if s.numel_shared else ""
        return (f"CondensedDataset(source={self.data_config.dataset!r}, method={a.method!r}, ipc={a.budget.ipc}"
                f"{opts}, {units}images={len(s)} ({s.decoded_per_class}/class){shared}, classes={s.num_classes})")
