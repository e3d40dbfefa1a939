import torch

from hf_lodc.data.sampler import ClassIndex


def test_balanced_distinct_class_major():
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 0, 1])
    idx = ClassIndex(labels, 3)
    g = torch.Generator().manual_seed(0)
    out = idx.sample(3, g).view(3, 3)  # (K, b)
    for c in range(3):
        assert (labels[out[c]] == c).all()
        assert len(set(out[c].tolist())) == 3  # without replacement when enough images
    again = idx.sample(3, torch.Generator().manual_seed(0)).view(3, 3)
    assert torch.equal(out, again)


def test_small_class_wraps_with_replacement():
    labels = torch.tensor([0] * 10 + [1] * 2)
    idx = ClassIndex(labels, 2)
    out = idx.sample(5, torch.Generator().manual_seed(0)).view(2, 5)
    assert (labels[out[1]] == 1).all()
    assert (labels[out[0]] == 0).all() and len(set(out[0].tolist())) == 5
