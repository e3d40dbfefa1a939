"""Differentiable Siamese Augmentation (DSA, Zhao & Bilen 2021).

Six differentiable augmentation families (color, crop, cutout, flip, scale, rotate) whose random
parameters are drawn *once per group* and then applied to any number of batches. Condensation code
draws one parameter set per class and applies it to the real and the synthetic batch with the class
labels as groups, so every image of a class, real or synthetic, sees the same transform (the
"siamese" property), while gradients flow through the transform into the synthetic images.

All randomness comes from an explicit ``torch.Generator``; parameters live on the CPU (or the
generator's device, then moved to the CPU) and are only moved to the data's device in ``apply``,
so the same seed gives the same parameters on every device.

Coordinate conventions: two-component values (``shift``, ``cutout_center``, ``scale``) are stored
as ``(x, y)``, i.e. horizontal (width) first; ``angle`` is in radians.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..errors import UnknownNameError

__all__ = ["FAMILIES", "MODES", "DSAParams", "DSAugment", "identity_augment", "cutmix"]

FAMILIES: tuple[str, ...] = ("color", "crop", "cutout", "flip", "scale", "rotate")
MODES: tuple[str, ...] = ("single", "all")


@dataclass
class DSAParams:
    """Augmentation parameters for ``G`` groups.

    ``family`` indexes into the augmenter's enabled families (unused, all zeros, in "all" mode).
    ``values`` maps parameter names to tensors whose first dim is ``G``: "brightness" (G,) additive
    offset, "saturation" (G,) and "contrast" (G,) factors, "shift" (G, 2) long pixel shifts,
    "cutout_center" (G, 2) long pixel centres, "flip" (G,) bool, "scale" (G, 2) factors,
    "angle" (G,) radians. Only the enabled families' keys are present.
    """

    family: torch.Tensor  # (G,) long
    values: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_groups(self) -> int:
        return int(self.family.shape[0])

    def to(self, device: str | torch.device) -> "DSAParams":
        return DSAParams(self.family.to(device), {k: v.to(device) for k, v in self.values.items()})

    def select(self, index: torch.Tensor) -> "DSAParams":
        """Parameters for rows ``index`` (e.g. per-sample parameters from group ids)."""
        return DSAParams(self.family[index], {k: v[index] for k, v in self.values.items()})


def identity_augment(x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
    """The no-op augmentation: returns ``x`` itself."""
    return x


def _side(ratio: float, size: int) -> int:
    return int(ratio * size + 0.5)  # round half up, as in the reference DSA code


@dataclass
class DSAugment:
    """Draws and applies DSA parameters; ``strategy`` is an underscore-separated family subset."""

    strategy: str = "color_crop_cutout_flip_scale_rotate"
    mode: str = "single"
    crop_ratio: float = 0.125
    cutout_ratio: float = 0.5
    scale_ratio: float = 1.2
    rotate_degrees: float = 15.0
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5
    families: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = [] if self.strategy.strip() in ("", "none") else self.strategy.strip().split("_")
        unknown = [n for n in names if n not in FAMILIES]
        if unknown:
            raise UnknownNameError(
                f"unknown DSA augmentation family {unknown[0]!r} in strategy {self.strategy!r}; "
                f"valid families: {', '.join(FAMILIES)} (or 'none')"
            )
        if self.mode not in MODES:
            raise UnknownNameError(
                f"unknown DSA mode {self.mode!r}; valid modes: {', '.join(MODES)}"
            )
        self.families = tuple(f for f in FAMILIES if f in names)  # canonical order, deduplicated

    @property
    def enabled(self) -> bool:
        return len(self.families) > 0

    # ------------------------------------------------------------------ drawing
    def draw(
        self,
        num_groups: int,
        image_size: tuple[int, int],
        generator: torch.Generator,
        shared_family: bool = False,
    ) -> DSAParams:
        """Parameters for ``num_groups`` groups of ``image_size = (H, W)`` images."""
        G, (H, W) = int(num_groups), image_size
        dev, g = generator.device, generator

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(shape, generator=g, device=dev)

        def randint(low: int, high: int, n: int) -> torch.Tensor:
            return torch.randint(low, high, (n,), generator=g, device=dev)

        if self.mode == "single" and self.enabled:
            k = len(self.families)
            family = randint(0, k, 1).expand(G).clone() if shared_family else randint(0, k, G)
        else:
            family = torch.zeros(G, dtype=torch.long, device=dev)
        v: dict[str, torch.Tensor] = {}
        for fam in self.families:  # the draw order is fixed, so a seed gives the same values
            if fam == "color":
                v["brightness"] = (rand(G) - 0.5) * self.brightness  # (G,)
                v["saturation"] = rand(G) * self.saturation  # (G,)
                v["contrast"] = rand(G) + self.contrast  # (G,)
            elif fam == "crop":
                sx, sy = _side(self.crop_ratio, W), _side(self.crop_ratio, H)
                dx, dy = randint(-sx, sx + 1, G), randint(-sy, sy + 1, G)  # (G,), (G,)
                v["shift"] = torch.stack([dx, dy], 1)  # (G, 2)
            elif fam == "cutout":
                v["cutout_center"] = torch.stack([randint(0, W, G), randint(0, H, G)], 1)  # (G, 2)
            elif fam == "flip":
                v["flip"] = rand(G) < 0.5  # (G,)
            elif fam == "scale":
                lo = 1.0 / self.scale_ratio
                v["scale"] = rand(G, 2) * (self.scale_ratio - lo) + lo  # (G, 2)
            elif fam == "rotate":
                v["angle"] = (rand(G) * 2.0 - 1.0) * math.radians(self.rotate_degrees)  # (G,)
        return DSAParams(family, v).to("cpu")

    # ----------------------------------------------------------------- applying
    def apply(self, x: torch.Tensor, groups: torch.Tensor, params: DSAParams) -> torch.Tensor:
        """Transform sample ``i`` of ``x`` (N, C, H, W) with group ``groups[i]``'s parameters."""
        if x.dim() != 4:
            raise ValueError(f"DSA expects images of shape (N, C, H, W), got {tuple(x.shape)}")
        if groups.shape != (x.shape[0],):
            raise ValueError(f"groups must have shape ({x.shape[0]},), got {tuple(groups.shape)}")
        if not self.enabled or x.shape[0] == 0:
            return x
        if groups.device.type == "cpu" and params.family.device.type == "cpu":
            # the per-sample selection happens on the host, where the parameters were drawn: no
            # device-to-host read (sync) to find which samples get which family
            p = params.select(groups.long())  # per-sample, first dim N, on the CPU
        else:
            p = params.to(x.device).select(groups.to(x.device, torch.long))
        if self.mode == "all":
            p = p.to(x.device)
            for fam in self.families:
                x = _APPLY[fam](self, x, p)
            return x
        out = x
        for k, fam in enumerate(self.families):
            idx = (p.family == k).nonzero().squeeze(1)  # (n,)
            if idx.numel() == 0:
                continue
            sub = p.select(idx).to(x.device)
            idx = idx.to(x.device, non_blocking=True)
            xs = _APPLY[fam](self, x.index_select(0, idx), sub)  # (n, C, H, W)
            out = out.index_copy(0, idx, xs)  # out of place: differentiable w.r.t. x
        return out

    def __call__(
        self,
        x: torch.Tensor,
        generator: torch.Generator,
        groups: torch.Tensor | None = None,
        num_groups: int | None = None,
        shared_family: bool = False,
    ) -> torch.Tensor:
        """Draw and apply; ``groups=None`` gives every sample its own group."""
        if not self.enabled:
            return x
        if groups is None:
            groups = torch.arange(x.shape[0], device=x.device)
            num_groups = x.shape[0]
        elif num_groups is None:
            num_groups = int(groups.max()) + 1 if groups.numel() else 0
        params = self.draw(num_groups, (x.shape[-2], x.shape[-1]), generator, shared_family)
        return self.apply(x, groups, params)

    # ------------------------------------------------------------- the families
    def _color(self, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
        b, s, c = (
            p.values[k].to(x.dtype).view(-1, 1, 1, 1)  # (n, 1, 1, 1)
            for k in ("brightness", "saturation", "contrast")
        )
        x = x + b  # (n, C, H, W)
        m = x.mean(dim=1, keepdim=True)  # (n, 1, H, W)
        x = m + (x - m) * s
        m = x.mean(dim=(1, 2, 3), keepdim=True)  # (n, 1, 1, 1)
        return m + (x - m) * c

    def _crop(self, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
        n, C, H, W = x.shape
        shift = p.values["shift"]  # (n, 2) as (dx, dy)
        rows = torch.arange(H, device=x.device) - shift[:, 1:2]  # (n, H) source row of each row
        cols = torch.arange(W, device=x.device) - shift[:, 0:1]  # (n, W)
        keep_r = ((rows >= 0) & (rows < H))[:, None, :, None]  # (n, 1, H, 1)
        keep_c = ((cols >= 0) & (cols < W))[:, None, None, :]  # (n, 1, 1, W)
        rows = rows.clamp(0, H - 1)[:, None, :, None].expand(n, C, H, W)
        cols = cols.clamp(0, W - 1)[:, None, None, :].expand(n, C, H, W)
        y = x.gather(2, rows).gather(3, cols)  # (n, C, H, W)
        return y * (keep_r & keep_c).to(x.dtype)  # zero fill outside the source image

    def _cutout(self, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
        H, W = x.shape[-2:]
        sh, sw = _side(self.cutout_ratio, H), _side(self.cutout_ratio, W)
        top = p.values["cutout_center"][:, 1:2] - sh // 2  # (n, 1)
        left = p.values["cutout_center"][:, 0:1] - sw // 2  # (n, 1)
        r = torch.arange(H, device=x.device)
        c = torch.arange(W, device=x.device)
        in_r = (r >= top) & (r < top + sh)  # (n, H)
        in_c = (c >= left) & (c < left + sw)  # (n, W)
        hole = in_r[:, None, :, None] & in_c[:, None, None, :]  # (n, 1, H, W)
        return x * (~hole).to(x.dtype)

    def _flip(self, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
        return torch.where(p.values["flip"].view(-1, 1, 1, 1), x.flip(-1), x)  # (n, C, H, W)

    def _affine(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=True)  # (n, H, W, 2)
        return F.grid_sample(x, grid, align_corners=True)  # (n, C, H, W), zero padding

    def _scale(self, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
        s = p.values["scale"]  # (n, 2) as (sx, sy)
        z = torch.zeros_like(s[:, 0])
        row0, row1 = torch.stack([s[:, 0], z, z], 1), torch.stack([z, s[:, 1], z], 1)  # (n, 3)
        theta = torch.stack([row0, row1], 1)  # (n, 2, 3)
        return self._affine(x, theta)

    def _rotate(self, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
        a = p.values["angle"]  # (n,)
        cos, sin, z = a.cos(), a.sin(), torch.zeros_like(a)
        row0, row1 = torch.stack([cos, -sin, z], 1), torch.stack([sin, cos, z], 1)  # (n, 3)
        theta = torch.stack([row0, row1], 1)  # (n, 2, 3)
        return self._affine(x, theta)


_APPLY = {
    "color": DSAugment._color,
    "crop": DSAugment._crop,
    "cutout": DSAugment._cutout,
    "flip": DSAugment._flip,
    "scale": DSAugment._scale,
    "rotate": DSAugment._rotate,
}


def cutmix(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """CutMix (Yun et al., 2019) of one batch x (n, C, H, W), labels y (n,): a box of area about (1 - lam),
    lam ~ Beta(1, 1) = U(0, 1), pasted from a random partner (a permutation of the batch).

    Returns the mixed copy, the partner labels (n,) and the kept-area ratio; the loss is
    ``ratio * CE(out, y) + (1 - ratio) * CE(out, y_partner)``. Draws, in order: lam, the box centre
    (row, column), the permutation, all from ``generator``.
    """
    n, _, h, w = x.shape
    lam = float(torch.rand((), generator=generator))
    cut = (1.0 - lam) ** 0.5
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(torch.randint(h, (), generator=generator)), int(torch.randint(w, (), generator=generator))
    y1, y2 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x1, x2 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    perm = torch.randperm(n, generator=generator).to(x.device)
    x = x.clone()
    x[:, :, y1:y2, x1:x2] = x[perm, :, y1:y2, x1:x2]
    ratio = 1.0 - (y2 - y1) * (x2 - x1) / (h * w)
    return x, y[perm], ratio
