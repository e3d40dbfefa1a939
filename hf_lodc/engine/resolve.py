"""A condensation config resolved for one dataset: validated, the method row's defaults filled, the budget planned.

It lives apart from the loop (``condenser.py``) because more than the loop asks it: the pipeline's
checks before any work, the speed choice, the continual memory and the Condenser itself all
resolve a config the same way, and none of the others needs the loop to do it.
"""

from __future__ import annotations

import copy
from dataclasses import MISSING, fields
from typing import Any

from ..errors import ConfigError
from ..methods import MethodSpec, get_method
from ..synset.base import PARAMETERISATIONS, SyntheticSet
from ..synset.budget import Budget, plan_budget
from .config import CondenseConfig

__all__ = ["matching_model_for", "method_config", "resolve_config", "build_synset"]


def matching_model_for(image_shape: tuple[int, int, int], name: str = "auto") -> str:
    if name != "auto":
        return name
    return "lodc_convnet_d4_w128" if min(image_shape[1:]) >= 64 else "lodc_convnet_d3_w128"


def method_config(spec: MethodSpec, cfg: CondenseConfig) -> tuple[CondenseConfig, dict[str, Any]]:
    """``cfg`` with the method row's objective defaults (``objective_options``: the paper's values,
    applied to options the config leaves at their generic default) and the parameterisation options
    (the row's ``param_options``, overridden by the objective's ``PARAM_OPTIONS`` fields that are set,
    e.g. ``factor``, ``hallucinators``, ``shared_in_budget``). Returns (config copy, param options)."""
    out = _copy(cfg)
    opts = out.options
    if opts is not None:
        defaults = {f.name: f.default for f in fields(opts) if f.default is not MISSING}
        row = {k: v for k, v in dict(getattr(spec, "objective_options", {}) or {}).items()
               if k in defaults and getattr(opts, k) == defaults[k]}
        if row:
            out.options = opts = _with(opts, **row)
    params = dict(getattr(spec, "param_options", {}) or {})
    if opts is not None:
        for k in getattr(type(opts), "PARAM_OPTIONS", ()):
            if getattr(opts, k) is not None:
                params[k] = getattr(opts, k)
    return out, params


def resolve_config(cfg: CondenseConfig, image_shape, num_classes: int | None = None
                   ) -> tuple[MethodSpec, CondenseConfig, Budget]:
    """Fill method defaults and plan the budget; never mutates the caller's config. ``num_classes``
    (the classes condensed) is needed by parameterisations with shared numbers (HaBa). The config's
    fields are checked already (each by its config class); what needs the method row and the image
    size is checked here, once: this is the validate step's budget check (``engine/validate.py``)."""
    spec = get_method(cfg.method)
    rank = cfg.rank if spec.lowrank else None
    if spec.lowrank and rank is None:
        raise ConfigError(f"method {spec.name!r} is low-rank: set rank (e.g. 2)")
    cfg, param_options = method_config(spec, cfg)
    budget = plan_budget(image_shape, ipc=cfg.ipc, rank=rank, images_per_class=cfg.images_per_class,
                         parameterisation=spec.parameterisation, num_classes=num_classes, **param_options)
    iterations = cfg.iterations if cfg.iterations is not None else spec.iterations
    if spec.kind == "coreset":
        iterations = 0
    options = cfg.options.resolve(budget, iterations) if cfg.options is not None else None
    resolved = _copy(cfg)
    resolved.rank = rank
    resolved.init = cfg.init or spec.init
    resolved.iterations = iterations
    resolved.lr = cfg.lr if cfg.lr is not None else spec.lr
    if options is not None:  # the objective's defaults, resolved by the objective
        params = {k: budget.options.get(k, getattr(options, k))  # the parameterisation options in force
                  for k in getattr(type(options), "PARAM_OPTIONS", ())}
        if hasattr(options, "compile"):
            params["compile"] = bool(options.compile)
        resolved.options = _with(options, **params)
    resolved.matching_model = matching_model_for(image_shape, cfg.matching_model)
    resolved.mixed_precision = cfg.mixed_precision or "no"  # the Condenser records an Accelerator's instead
    resolved.channels_last = bool(cfg.channels_last)  # None: speed chose nothing, contiguous
    resolved.images_per_class = budget.images_per_class
    return spec, resolved, budget


def build_synset(spec: MethodSpec, num_classes: int, budget: Budget) -> SyntheticSet:
    cls = PARAMETERISATIONS.get(spec.parameterisation)
    return cls(num_classes, budget.images_per_class, budget.image_shape, rank=budget.rank, **budget.options)


def _copy(cfg: CondenseConfig) -> CondenseConfig:
    """A copy of a checked config with its own options object: not rebuilt, so not checked again."""
    out = copy.copy(cfg)
    if out.options is not None:
        out.options = copy.copy(out.options)
    return out


def _with(options, **values):
    """``options`` with ``values`` set (the method row's, the budget's: not user input), on a copy, without
    running its field checks again."""
    out = copy.copy(options)
    for k, v in values.items():
        setattr(out, k, v)
    return out
