"""Train the N evaluation networks of one architecture together (the ``vmap`` evaluation backend).

The protocol trains N independently initialised networks on the same synthetic set. Run one
after another they cost N times one small training; stacked with
``torch.func.stack_module_state`` and called through ``vmap(functional_call)``, each training step
is one batched forward/backward over all N models (convolutions become one grouped convolution),
which keeps the device busy where a single network on 10-500 images cannot.

It is *the same computation* as N independent runs, not an approximation:

* model ``r`` is initialised with ``derive_seed(seed, "eval-net", model, r)`` and draws its data
  order and DSA parameters from its own ``generator(seed, "eval-data", model, r)``, in exactly the
  order the ``sequential`` backend does (one ``randperm`` per epoch, one DSA draw per batch);
* the loss is the sum over models of each model's mean cross-entropy, so each model's gradient is
  its own (the others' terms do not depend on its parameters);
* SGD with momentum and weight decay is element-wise, so one optimiser over the stacked tensors
  updates every slice exactly like N optimisers would.

Results agree with the sequential backend to float tolerance (batched and single convolutions
round differently); ``tests/test_vmap_eval.py`` checks weights and accuracies.

BatchNorm: running statistics are stacked buffers (N, C) updated in place per model, which vmap
supports, so ConvNet-BN / AlexNet-BN / VGG11-BN / ResNet18-BN train vectorised too. A model that
vmap cannot run (e.g. data-dependent Python control flow, in-place updates of unstacked state) is
detected by one trial step and evaluated with the sequential backend, with a warning that names
the reason. Dropout draws under vmap are independent per model but not the sequential backend's
draws (models with active dropout are equal in distribution only; a warning says so).

Speed: on GPUs one batched step replaces N small ones. On a CPU there is nothing to gain (the
convolutions are already compute-bound and oneDNN's grouped convolutions are slower than N plain
ones; measured in docs/speed.md), so
``eval_backend="auto"`` picks ``vmap`` only off the CPU; ask for it by name to use it anyway.
``eval_compile`` (torch.compile of the forward), ``eval_channels_last`` and ``eval_mixed_precision``
are the sequential backend's only (torch applies no autocast inside ``vmap``: the stacked passes would
silently stay float32): ``auto`` then picks sequential, and asking for ``vmap`` by name with any of
them is a ConfigError.

Memory: a step holds N x batch images of activations; models are processed in groups of at most
``max(1, MAX_IMAGES_PER_STEP // batch)`` so N = 20 on 500-image sets stays within CPU memory.
Grouping does not change any result (runs are independent).
"""

from __future__ import annotations

import contextlib
import warnings
import torch
import torch.nn as nn
from torch.func import functional_call, stack_module_state, vmap

from ..data.augment import DSAugment
from ..data.types import LabeledImages, normalize
from ..seeding import generator
from .config import EvalConfig
from .eval_protocols import EVAL_BACKENDS
from .evaluate import augment_of, schedule_of
from ..training.loop import seeded_net
from ..training.loop import train_stacked as train_models_stacked

__all__ = ["StackedNets", "train_stacked", "stacked_accuracies", "MAX_IMAGES_PER_STEP"]

MAX_IMAGES_PER_STEP = 4096  # images (summed over models) per vectorised step; bounds activation memory


class StackedNets:
    """N networks of one architecture as stacked parameters/buffers (leading dim N) and one forward.

    ``forward(x)`` maps per-model batches (B, N, C, H, W) to logits (N, B, classes);
    ``forward_shared(x)`` maps one batch (B, C, H, W) to every model's logits (N, B, classes).
    """

    def __init__(self, nets: list[nn.Module]):
        self.n = len(nets)
        self.base = nets[0]  # the module functional_call runs; its own tensors are swapped out
        self.params, self.buffers = stack_module_state(nets)  # name -> (N, *shape); params are leaves
        # per-model inputs arrive batch-major (B, N, C, H, W): vmap then folds N into the channels
        # without a copy, and oneDNN's grouped convolution gets a contiguous input (the model-major
        # layout made the first layer's weight gradient far slower on CPU)
        self._per_model = vmap(self._call, in_dims=(0, 0, 1), randomness="different")
        self._shared = vmap(self._call, in_dims=(0, 0, None), randomness="different")

    def _call(self, params, buffers, x):
        return functional_call(self.base, (params, buffers), (x,))

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def train(self, mode: bool = True) -> "StackedNets":
        self.base.train(mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._per_model(self.params, self.buffers, x)  # (B, N, C, H, W) -> (N, B, classes)

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        return self._shared(self.params, self.buffers, x)  # (N, B, classes)

    def unstack(self, i: int) -> dict[str, torch.Tensor]:
        """Model ``i``'s state (parameters and buffers), detached: for checks and export."""
        out = {k: v[i].detach() for k, v in self.params.items()}
        out.update({k: v[i].detach() for k, v in self.buffers.items()})
        return out


def train_stacked(stack: StackedNets, images: torch.Tensor, labels: torch.Tensor, cfg: EvalConfig,
                  gens: list[torch.Generator], augment: DSAugment) -> StackedNets:
    """The protocol of ``evaluate.train_one`` for all stacked models at once (model i uses gens[i])."""
    return train_models_stacked(stack, images, labels, schedule_of(cfg), gens, augment)


@torch.no_grad()
def stacked_accuracies(stack: StackedNets, test: LabeledImages, mean, std, device,
                       batch: int = 500) -> list[float]:
    """Test accuracy (%) of every stacked model on ``test``; ``batch`` images x N models per call."""
    stack.train(False)
    b = max(1, 2 * batch // stack.n)  # about 2*batch images of activations per call, whatever N
    correct = torch.zeros(stack.n, dtype=torch.long)
    for s in range(0, len(test), b):
        x = normalize(test.images[s : s + b], mean, std).to(device)  # (b, C, H, W)
        pred = stack.forward_shared(x).argmax(-1).cpu()  # (N, b)
        correct += (pred == test.labels[s : s + b].view(1, -1)).sum(1)
    return [100.0 * int(c) / max(len(test), 1) for c in correct]


def _unsupported(stack: StackedNets, images: torch.Tensor) -> str | None:
    """Why vmap cannot train this architecture (one trial step on a copy of the state), or None."""
    params = {k: v.detach().clone().requires_grad_(True) for k, v in stack.params.items()}
    buffers = {k: v.clone() for k, v in stack.buffers.items()}
    x = images[: min(2, images.shape[0])]  # (2, C, H, W)
    try:
        stack.train(True)
        stack._per_model(params, buffers, x.unsqueeze(1).expand(-1, stack.n, -1, -1, -1)).float().sum().backward()
        stack.train(False)
        stack._shared(params, buffers, x)
    except Exception as e:  # any failure means "cannot vectorise", never a wrong result
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no message'}"
    return None


def _has_active_dropout(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in net.modules())


_NO_BATCHING_RULE = "There is a performance drop because we have not yet implemented the batching rule for"


@contextlib.contextmanager
def _one_fallback_warning(model: str):
    """vmap warns at every call of an op it has no batching rule for (e.g. CPU flash attention),
    which it then runs as a loop over models (correct, slower): say so once per model."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    ops = set()
    for w in caught:
        text = str(w.message)
        if text.startswith(_NO_BATCHING_RULE):
            ops.add(text[len(_NO_BATCHING_RULE):].split(".")[0].strip())
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if ops:
        warnings.warn(f"eval model {model!r}: vmap has no batching rule for {', '.join(sorted(ops))}; those ops run "
                      "as a loop over the models (same results, less speed-up)", stacklevel=3)


@EVAL_BACKENDS.register("vmap")
def _vmap_backend(model, images, labels, test, mean, std, num_classes, cfg, seed, device, runs,
                  keep_state=None) -> list[float]:
    """The runs trained together; ``keep_state(model, run, accuracy, net)`` (see evaluate_synthetic) gets
    each run's trained weights loaded into its own network, after the test."""
    runs = list(runs)
    if not runs:
        return []
    shape = tuple(images.shape[1:])
    aug = augment_of(cfg)
    group = max(1, MAX_IMAGES_PER_STEP // max(1, min(schedule_of(cfg).batch, images.shape[0])))
    accs: list[float] = []
    for start in range(0, len(runs), group):
        chunk = runs[start : start + group]
        nets = [seeded_net(model, num_classes, shape, seed, "eval-net", model, r, device=device) for r in chunk]
        stack = StackedNets(nets)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_NO_BATCHING_RULE)
            reason = _unsupported(stack, images) if start == 0 else None
        if reason is not None:
            warnings.warn(f"eval model {model!r} cannot be trained under vmap ({reason}); "
                          f"evaluating its {len(runs)} runs sequentially instead", stacklevel=2)
            return EVAL_BACKENDS.get("sequential")(model, images, labels, test, mean, std, num_classes, cfg,
                                                   seed, device, runs, keep_state=keep_state)
        if _has_active_dropout(nets[0]):
            warnings.warn(f"eval model {model!r} uses dropout: under vmap its masks are drawn per model but "
                          "differ from the sequential backend's (same distribution, not the same draws)",
                          stacklevel=2)
        gens = [generator(seed, "eval-data", model, r) for r in chunk]
        with _one_fallback_warning(model):
            train_stacked(stack, images, labels, cfg, gens, aug)
            chunk_accs = stacked_accuracies(stack, test, mean, std, device)
        accs.extend(chunk_accs)
        if keep_state is not None:  # after the test: nothing the callback does can change an accuracy
            for i, (r, acc) in enumerate(zip(chunk, chunk_accs)):
                nets[i].load_state_dict(stack.unstack(i))  # the stack trained copies of these networks
                keep_state(model, r, acc, nets[i])
    return accs

