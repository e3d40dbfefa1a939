"""ZCA whitening as the MTT-family code bases fit it, and a test for sets stored after it.

MTT (and DATM, HaBa, FRePo's PyTorch ports) run ``--zca`` for CIFAR: ``kornia.enhance.ZCAWhitening(eps=0.1)``
is fitted on the train split's pixels in [0, 1] (``ToTensor`` only, no mean/std normalisation), the
set is distilled in the whitened space and saved there, and the test split is whitened with the same
transform. Such a set can only be evaluated in that space: the transform is fitted here the same way
(per-feature mean over the flattened C*H*W pixels, unbiased covariance, ``U diag((S + eps)^-1/2) U^T``)
on the train split given, and applied to the test split and the random real baseline.

:func:`looks_whitened` is the ``auto`` test: a set normalised per channel has per-channel std near 1
and neighbouring pixels that are strongly correlated (natural images, and sets distilled from them);
ZCA (with eps 0.1 on [0, 1] pixels) weakens that correlation and leaves a much smaller std.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ZCA_EPS", "ZCATransform", "fit_zca", "looks_whitened", "whitening_stats"]

ZCA_EPS = 0.1  # MTT's (and kornia users') regularisation of the eigenvalues


@dataclass
class ZCATransform:
    mean: torch.Tensor  # (1, D) per-feature mean of the fitting pixels, D = C*H*W
    matrix: torch.Tensor  # (D, D) symmetric whitening matrix
    eps: float
    rows: int  # how many images it was fitted on

    @torch.no_grad()
    def __call__(self, x01: torch.Tensor) -> torch.Tensor:
        """(n, C, H, W) pixels in [0, 1] -> (n, C, H, W) whitened float32."""
        n = x01.shape[0]
        flat = x01.reshape(n, -1).float() - self.mean  # (n, D)
        return (flat @ self.matrix).reshape(x01.shape)

    def from_uint8(self, u8: torch.Tensor) -> torch.Tensor:
        return self(u8.float() / 255.0)


@torch.no_grad()
def fit_zca(u8: torch.Tensor, eps: float = ZCA_EPS, batch: int = 4096) -> ZCATransform:
    """Fit on real uint8 images (N, C, H, W) read as [0, 1] pixels (the covariance is summed in batches
    so the float copy of the whole split is never held)."""
    from ..errors import ConfigError

    if not eps > 0:
        raise ConfigError(f"the ZCA regularisation eps must be positive, got {eps}")
    n = u8.shape[0]
    if n < 2:
        raise ConfigError(f"ZCA needs at least 2 real train images to fit, got {n}")
    d = int(u8[0].numel())
    mean = torch.zeros(1, d)
    for s in range(0, n, batch):
        mean += u8[s:s + batch].reshape(-1, d).float().div(255.0).sum(0, keepdim=True)
    mean /= n
    cov = torch.zeros(d, d)
    for s in range(0, n, batch):
        xc = u8[s:s + batch].reshape(-1, d).float().div(255.0) - mean  # (b, D)
        cov += xc.T @ xc
    cov /= n - 1  # unbiased, as kornia's default
    # kornia takes the SVD of the covariance; for a symmetric PSD matrix eigh gives the same U and S
    # (the product below is invariant to their order and signs) several times faster
    s, u = torch.linalg.eigh(cov.double())
    s = s.clamp_min(0.0)
    matrix = (u @ (torch.rsqrt(s + eps).unsqueeze(1) * u.T)).float()  # (D, D)
    return ZCATransform(mean=mean, matrix=matrix, eps=float(eps), rows=n)


def whitening_stats(x: torch.Tensor) -> dict[str, float]:
    """Per-channel std (the mean over channels) and the correlation of horizontally neighbouring pixels
    (after removing each image's per-channel mean) of float images (N, C, H, W)."""
    xf = x.detach().float()
    std = float(xf.std(dim=(0, 2, 3)).mean()) if xf.numel() > 1 else 0.0
    xc = xf - xf.mean(dim=(2, 3), keepdim=True)
    a, b = xc[..., :, :-1].reshape(-1), xc[..., :, 1:].reshape(-1)
    den = float(a.norm() * b.norm())
    corr = float((a * b).sum()) / den if den > 0 else 0.0
    return {"channel_std": std, "neighbour_corr": corr}


def looks_whitened(x: torch.Tensor) -> tuple[bool, dict[str, float]]:
    """Whether float images look ZCA-whitened: per-channel std below 0.6 and neighbouring-pixel
    correlation below 0.8. Measured on real CIFAR-10 test images: normalised with the train statistics
    std 0.99, correlation 0.91; whitened (eps 0.1) std 0.26, correlation 0.63."""
    st = whitening_stats(x)
    return st["channel_std"] < 0.6 and st["neighbour_corr"] < 0.8, st
