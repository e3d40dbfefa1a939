"""The evaluation protocol in an input space that is not a per-channel normalisation, or with a soft loss.

``engine.evaluate.evaluate_synthetic`` tests on uint8 images normalised with a mean and std, and trains
with cross-entropy on class ids. A ZCA-space set needs its test split whitened, and a soft-label set a
soft loss; :func:`evaluate_in_space` runs the same protocol (the same networks, seeds, schedule, DSA,
last-epoch accuracy; ``training.loop.train_network`` does the training) with the test images mapped by
the space and the loss given. Where neither is needed it hands over to ``evaluate_synthetic`` (its
vmap backend included), so a plain hard-label set is evaluated exactly as before.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from ..data.types import LabeledImages
from ..engine.config import EvalConfig
from ..engine.evaluate import (EvalRecord, augment_of, autocast_of, evaluate_synthetic, forward_of, protocol_of,
                               schedule_of)
from ..training.loop import seeded_net, train_network
from ..seeding import generator
from .normalization import InputSpace

__all__ = ["evaluate_in_space", "space_accuracy"]

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def space_accuracy(net, test: LabeledImages, space: InputSpace, device, batch: int = 500, forward=None,
                   autocast=None) -> float:
    """Top-1 accuracy (%) on ``test`` (uint8), each batch mapped into ``space`` on the way in."""
    import contextlib

    net.eval()
    run = net if forward is None else (lambda x: forward(net, x))
    ctx = autocast or contextlib.nullcontext
    correct = 0
    for s in range(0, len(test), batch):
        x = space.real(test.images[s:s + batch]).to(device)  # (b, C, H, W)
        with ctx():
            pred = run(x).argmax(1)  # (b,)
        correct += int((pred.cpu() == test.labels[s:s + batch]).sum())
    return 100.0 * correct / max(len(test), 1)


def evaluate_in_space(images: torch.Tensor, targets: torch.Tensor, test: LabeledImages, space: InputSpace,
                      num_classes: int, cfg: EvalConfig, *, seed: int = 0, device: torch.device | str = "cpu",
                      criterion: Criterion | None = None, progress: bool = False,
                      wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
                      decode: Callable[[torch.Generator], Callable[[torch.Tensor], torch.Tensor]] | None = None,
                      image_shape: tuple[int, int, int] | None = None) -> dict[str, EvalRecord]:
    """Train ``cfg.eval_runs`` networks per model on (images (N, C, H, W) in ``space``, targets: class ids
    (N,) or soft targets (N, K) with ``criterion``) and test them on ``test`` mapped into ``space``.

    Run r of a model uses the seeds ``evaluate_synthetic``'s sequential backend uses (``"eval-net"`` and
    ``"eval-data"`` with (model, r)), so a per-channel space with class ids gives the same accuracies.
    ``wrap(net)`` replaces each fresh network for training (e.g. ``teacher.TeacherLabelled``); the test runs
    the wrapper in eval mode. ``decode(generator)`` returns the ``prepare`` of each training (a batch of
    stored rows -> network input, e.g. HaBa's bases through random hallucinators), drawing from its own
    generator (``"eval-decode"`` with (model, r)) so the protocol's draws are unchanged; ``image_shape``
    is then the networks' input (C, H, W) when the stored rows have another shape.
    """
    if criterion is None and space.mean is not None and wrap is None and decode is None:
        return evaluate_synthetic(images, targets, test, space.mean, space.std, num_classes, cfg, seed=seed,
                                  device=device, progress=progress)
    from ..errors import ConfigError
    from ..preflight import check_eval_models, check_strategy

    if cfg.eval_runs <= 0 or cfg.eval_epochs <= 0:
        raise ConfigError(f"eval_runs and eval_epochs must be positive, got {cfg.eval_runs}, {cfg.eval_epochs}")
    if targets.dim() == 2 and criterion is None:
        raise ConfigError("soft targets (N, K) need a soft-label criterion")
    check_strategy(cfg.eval_dsa_strategy, "eval_dsa_strategy")
    shape = tuple(image_shape) if image_shape is not None else tuple(images.shape[1:])
    check_eval_models(cfg.eval_models, shape, num_classes)
    from ..training import device as device_settings

    device = torch.device(device)
    device_settings.ensure(device)  # the same TF32 / cudnn settings evaluate_synthetic sets
    x = images.detach().float().to(device)
    y = targets.detach().to(device)
    y = y.float() if y.dim() == 2 else y.long()
    sched, aug, forward = schedule_of(cfg), augment_of(cfg), forward_of(cfg)
    autocast = autocast_of(cfg, device)
    out = {}
    for model in cfg.eval_models:
        t0 = time.perf_counter()
        accs = []
        for r in range(cfg.eval_runs):
            net = seeded_net(model, num_classes, shape, seed, "eval-net", model, r, device=device)
            if cfg.eval_channels_last:  # the same values in another layout, as evaluate_synthetic does
                net = net.to(memory_format=torch.channels_last)
            g = generator(seed, "eval-data", model, r)
            if wrap is not None:
                net = wrap(net)
            prepare = None if decode is None else decode(generator(seed, "eval-decode", model, r))
            train_network(net, x, y, sched, g, aug, forward=forward, autocast=autocast, criterion=criterion,
                          prepare=prepare)
            accs.append(space_accuracy(net, test, space, device, forward=forward, autocast=autocast))
        proto = dict(protocol_of(cfg))
        out[model] = EvalRecord(model=model, accuracies=accs, epochs=cfg.eval_epochs, protocol=proto,
                                wall_time_s=time.perf_counter() - t0)
        if progress:
            print(out[model].summary(), flush=True)
    return out
