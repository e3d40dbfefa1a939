"""The Python API's in-memory arguments, checked and converted where they come in.

``condense(data=...)`` and ``evaluate_synthetic(images, labels, test, mean, std, num_classes)`` take
tensors a user built, not options read from a config file: a float image tensor, labels that run past
the class list, a ``(images, labels)`` tuple for ``test``, a numpy array. Each check here raises one
:class:`~hf_lodc.errors.HfLodcError` naming the argument and what to pass instead, before a training
loop fails on it with a shape error. The checks of options and of the run's surroundings (output
directory, token, models against the image size, memory) are ``preflight.py``'s.
"""

from __future__ import annotations

import os

from .errors import ConfigError

__all__ = ["check_data", "check_eval_inputs", "as_tensor"]


def check_data(data, option: str = "data") -> None:
    """``data`` must be loaded ``ImageClassificationData``: uint8 (N, C, H, W) train images, integer labels
    in [0, num_classes) of the same length."""
    import torch

    from .data.types import ImageClassificationData
    from .errors import DatasetError

    if not isinstance(data, ImageClassificationData):
        hint = (" (a path or Hub id: load it first with hf_lodc.load_image_classification(...), or use "
                "hf_lodc.CondensedDataset(...))" if isinstance(data, (str, os.PathLike)) else
                "; load it with hf_lodc.load_image_classification(...)")
        raise ConfigError(f"{option} must be an ImageClassificationData, got {type(data).__name__} {_short(data)}"
                          + hint)
    tr = data.train
    if not isinstance(tr.images, torch.Tensor) or tr.images.dtype != torch.uint8 or tr.images.dim() != 4:
        what = (f"{tr.images.dtype} {tuple(tr.images.shape)}" if isinstance(tr.images, torch.Tensor)
                else type(tr.images).__name__)
        raise DatasetError(f"{option}.train.images must be a uint8 tensor (N, C, H, W) of pixels 0..255, got {what}; "
                           "convert with (x * 255).round().to(torch.uint8) or load with load_image_classification")
    labels = tr.labels
    if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point or labels.dim() != 1:
        raise DatasetError(f"{option}.train.labels must be an integer tensor (N,), got "
                           f"{getattr(labels, 'dtype', type(labels).__name__)}")
    if len(labels) != tr.images.shape[0]:
        raise DatasetError(f"{option}.train has {tr.images.shape[0]} images but {len(labels)} labels; give one label "
                           "per image")
    k = data.num_classes
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise DatasetError(f"{option}.train.labels range over [{int(labels.min())}, {int(labels.max())}], outside the "
                           f"{k} classes of data.info.class_names; fix the labels or the class list")


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def as_tensor(x, option: str, *, integer: bool = False):
    """A torch tensor from a tensor / numpy array / nested list; anything else is a ConfigError naming ``option``."""
    import numpy as np
    import torch

    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, (list, tuple)) and not integer:
        try:
            x = torch.as_tensor(x, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError):
            pass
    elif isinstance(x, (list, tuple)):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError):
            pass
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"{option} must be a torch tensor (or numpy array), got {type(x).__name__}")
    if integer and x.dtype.is_floating_point:
        raise ConfigError(f"{option} must hold integer class ids, got {x.dtype}; convert with .long() if they are "
                          "whole numbers")
    return x


def check_eval_inputs(images, labels, test, mean, std, num_classes):
    """The arguments of ``evaluate_synthetic``, checked and converted: returns (images (N, C, H, W) float32,
    labels (N,) int64, mean (C,), std (C,)). Every error names the argument."""
    import torch

    from .data.types import LabeledImages
    from .errors import NonFiniteError

    images = as_tensor(images, "images")
    labels = as_tensor(labels, "labels", integer=True)
    if not isinstance(test, LabeledImages):
        raise ConfigError(f"test must be a LabeledImages (uint8 images + labels; e.g. data.test), got "
                          f"{type(test).__name__}" + ("; wrap the pair as hf_lodc.LabeledImages(images, labels)"
                                                      if isinstance(test, tuple) else ""))
    if len(test) == 0:
        raise ConfigError("evaluation needs a test split; set eval_split or holdout_fraction (test is empty)")
    if images.dim() != 4:
        raise ConfigError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ConfigError("images is empty (no images to train on); condense first or pass a non-empty set")
    if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise ConfigError(f"labels must be (N,) with one label per image: {images.shape[0]} images, labels of shape "
                          f"{tuple(labels.shape)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    test_classes = int(test.labels.max()) + 1 if len(test) else 0
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ConfigError(f"labels range over [{int(labels.min())}, {int(labels.max())}], outside num_classes="
                          f"{num_classes}; pass the number of classes of the test set ({test_classes})")
    if test_classes > num_classes:
        raise ConfigError(f"num_classes={num_classes} but the test set has labels up to {test_classes - 1}; "
                          f"pass num_classes={test_classes}")
    used = max(test_classes, int(labels.max()) + 1)
    if num_classes > used:  # no image and no test row of the top classes: a wrong count, not a subset
        raise ConfigError(f"num_classes={num_classes} but neither the labels nor the test set use a class above "
                          f"{used - 1}; pass num_classes={used}")
    c, h, w = (int(v) for v in images.shape[1:])
    tc, th, tw = (int(v) for v in test.images.shape[1:])
    if c != tc:
        raise ConfigError(f"images have {c} channel(s) but the test images {tc}: shape {(c, h, w)} vs {(tc, th, tw)}; "
                          "condense from the same dataset (or convert the channels)")
    if (h, w) != (th, tw):
        raise ConfigError(f"images of size {h}x{w} do not match the test images' {th}x{tw} (shape {(c, h, w)} vs "
                          f"{(tc, th, tw)}); resize one of them")
    mean = as_tensor(mean, "mean").float().reshape(-1)
    std = as_tensor(std, "std").float().reshape(-1)
    if mean.numel() != c or std.numel() != c:
        raise ConfigError(f"mean and std need one value per channel ({c}), got {mean.numel()} and {std.numel()}")
    if not bool(torch.isfinite(images).all()):
        bad = int((~torch.isfinite(images)).sum())
        raise NonFiniteError(f"images hold {bad} NaN/Inf value(s); a diverged condensation cannot be evaluated. "
                             "Re-condense (e.g. with a lower lr)")
    return images, labels.long(), mean, std
