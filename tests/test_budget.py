"""Storage arithmetic: exact counts, never over budget, clear refusals."""

import itertools

import pytest

from hf_lodc.errors import BudgetError
from hf_lodc.synset.budget import numel_per_image, plan_budget

MNIST, CIFAR, TINY = (1, 28, 28), (3, 32, 32), (3, 64, 64)


@pytest.mark.parametrize(
    "shape, ipc, rank, expected",
    [
        (CIFAR, 1, 2, 8), (CIFAR, 10, 2, 80), (CIFAR, 50, 4, 200),  # the paper's CIFAR-10 rows
        (MNIST, 1, 2, 7), (MNIST, 10, 8, 17), (MNIST, 50, 8, 87),  # exact: 17.5 -> 17, 87.5 -> 87
        (TINY, 1, 4, 8), (TINY, 10, 4, 80),
        (CIFAR, 1, None, 1), (MNIST, 10, None, 10),
    ],
)
def test_exact_counts(shape, ipc, rank, expected):
    b = plan_budget(shape, ipc=ipc, rank=rank)
    assert b.images_per_class == expected
    assert b.used_numel_per_class <= b.budget_numel_per_class


def test_reference_truncation_bug_is_avoided():
    # the reference computed ipc * int(H*W / (r*(H+W))) = 10 * int(1.75) = 10 for MNIST r=8
    assert plan_budget(MNIST, ipc=10, rank=8).images_per_class == 17


def test_never_over_budget_and_maximal():
    for (c, h, w), ipc, rank in itertools.product([(1, 28, 28), (3, 32, 32), (3, 64, 64), (3, 20, 36)],
                                                  [1, 2, 3, 10, 50], [1, 2, 3, 4, 8]):
        if rank * (h + w) >= h * w:
            continue
        b = plan_budget((c, h, w), ipc=ipc, rank=rank)
        per = c * rank * (h + w)
        assert b.numel_per_image == per == numel_per_image((c, h, w), rank)
        assert b.images_per_class * per <= ipc * c * h * w < (b.images_per_class + 1) * per


def test_storage_bytes_report():
    b = plan_budget(CIFAR, ipc=10, rank=2)
    rep = b.bytes(num_classes=10)
    assert rep["budget_bytes"] == 10 * 10 * 3 * 32 * 32 * 4
    assert rep["stored_bytes"] == 10 * 80 * 3 * 2 * 64 * 4
    assert rep["stored_bytes"] <= rep["budget_bytes"]


def test_images_per_class_set_directly_reports_equivalent_budget():
    b = plan_budget(MNIST, rank=2, images_per_class=14)
    assert b.images_per_class == 14
    assert b.ipc == pytest.approx(14 * 112 / 784)


def test_rank_that_costs_a_pixel_image_is_refused():
    with pytest.raises(BudgetError, match=r"rank 16 is too high for 32x32 images.*Use rank < 16"):
        plan_budget(CIFAR, ipc=1, rank=16)
    with pytest.raises(BudgetError, match=r"rank 14 is too high for 28x28"):
        plan_budget(MNIST, ipc=1, rank=14)


@pytest.mark.parametrize("ipc", [0, -1, 1.5, True])
def test_bad_ipc(ipc):
    with pytest.raises(BudgetError, match="ipc .* must be a positive integer"):
        plan_budget(CIFAR, ipc=ipc, rank=2)


def test_budget_buying_less_than_one_image_names_both_costs():
    # with an integer pixel budget, < 1 factor image per class happens exactly when a factor image
    # costs at least a pixel image; the error says both costs
    assert plan_budget(MNIST, ipc=1, rank=13).images_per_class == 1
    with pytest.raises(BudgetError, match="a factor image costs 784 numbers, a pixel image 784"):
        plan_budget(MNIST, ipc=1, rank=14)


def test_legacy_arguments_are_the_pixel_and_lowrank_parameterisations():
    for shape, ipc, rank in itertools.product([MNIST, CIFAR, TINY], [1, 10, 50], [None, 1, 2, 4, 8]):
        name = "pixel" if rank is None else "lowrank"
        old = plan_budget(shape, ipc=ipc, rank=rank)
        new = plan_budget(shape, ipc=ipc, rank=rank, parameterisation=name, num_classes=10)
        assert (old.images_per_class, old.used_numel_per_class, old.numel_per_image) == (
            new.images_per_class, new.used_numel_per_class, new.numel_per_image)
        assert old.parameterisation == name and old.shared_numel == 0
        assert old.decoded_per_class == old.images_per_class  # one image per stored unit


def test_shared_numbers_are_paid_from_all_classes_and_reported():
    b = plan_budget(CIFAR, ipc=1, rank=2, parameterisation="haba", num_classes=10)  # 5 hallucinators x 174
    assert (b.images_per_class, b.shared_numel, b.decoded_per_class) == (7, 870, 35)
    rep = b.bytes(num_classes=10)
    assert rep["stored_bytes"] == (10 * 7 * 384 + 870) * 4 <= rep["budget_bytes"] == 10 * 3072 * 4
    d = b.to_dict()
    assert d["parameterisation"] == "haba" and d["shared_numel"] == 870 and d["image_shape"] == [3, 32, 32]


def test_images_per_class_with_shared_numbers_reports_the_implied_budget():
    b = plan_budget(CIFAR, rank=2, images_per_class=8, parameterisation="haba", num_classes=10)
    assert b.ipc == pytest.approx((10 * 8 * 384 + 870) / (10 * 3072), abs=1e-4)
