"""Loading real datasets from the offline Hub mirror (same code path as a Hub id)."""

import pytest
import torch

import hf_lodc


def test_mnist_from_hub_id_resolves_to_mirror(mnist, shared_hub):
    assert mnist.train.images.shape == (60000, 1, 28, 28) and mnist.train.images.dtype == torch.uint8
    assert mnist.test.images.shape == (10000, 1, 28, 28)
    assert mnist.info.class_names == [str(i) for i in range(10)]
    assert (mnist.info.image_column, mnist.info.label_column) == ("image", "label")
    assert mnist.info.mean[0] == pytest.approx(0.1307, abs=1e-3)
    assert mnist.info.std[0] == pytest.approx(0.3081, abs=1e-3)
    assert mnist.info.hub_id == "ylecun/mnist"
    assert torch.bincount(mnist.train.labels).tolist()[:2] == [5923, 6742]  # the canonical MNIST counts


def test_cifar10_local_path_columns_and_license(shared_hub):
    path = shared_hub / "datasets" / "uoft-cs" / "cifar10"
    d = hf_lodc.load_image_classification(str(path), max_per_class=5, cache=False)
    assert d.train.images.shape == (50, 3, 32, 32)
    assert d.info.image_column == "img"
    assert d.info.class_names[:3] == ["airplane", "automobile", "bird"]
    assert torch.bincount(d.train.labels).tolist() == [5] * 10
    assert d.info.hub_id is None and d.info.resolved_path == str(path)


def test_cifar100_needs_a_label_column_choice(shared_hub):
    with pytest.raises(hf_lodc.ColumnError, match=r"several label columns \['fine_label', 'coarse_label'\]"):
        hf_lodc.load_image_classification("uoft-cs/cifar100", max_per_class=1, cache=False)
    d = hf_lodc.load_image_classification("uoft-cs/cifar100", label_column="fine_label", max_per_class=1,
                                          eval_split=None, cache=False)
    assert d.num_classes == 100 and len(d.train) == 100


def test_holdout_split_is_stratified_and_seeded(shared_hub):
    kw = dict(eval_split="validation", holdout_fraction=0.2, max_per_class=10, cache=False)
    a = hf_lodc.load_image_classification("ylecun/mnist", **kw)
    b = hf_lodc.load_image_classification("ylecun/mnist", **kw)
    assert len(a.test) == 20 and len(a.train) == 80
    assert torch.bincount(a.test.labels).tolist() == [2] * 10
    assert torch.equal(a.test.images, b.test.images)
