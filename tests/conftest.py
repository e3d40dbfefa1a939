"""Shared fixtures: the offline Hub mirror beside the repo, and the real MNIST data once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

pytest_plugins = ["tests.conftest_hub"]

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_HUB = (REPO_ROOT / ".." / "shared" / "hub").resolve()

# Every test resolves Hub ids like "ylecun/mnist" to the mirror; nothing is downloaded.
os.environ["HF_LODC_LOCAL_HUB"] = str(SHARED_HUB)
# Runs that leave ``speed`` unset take the exact float32 eager path in tests, on machines with and
# without bf16 units alike, so bit comparisons hold on every CI machine; tests/test_speed.py sets
# speed explicitly to check what auto chooses.
os.environ["HF_LODC_SPEED"] = "exact"
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared_hub() -> Path:
    if not (SHARED_HUB / "datasets" / "ylecun" / "mnist").is_dir():
        pytest.fail(f"the offline Hub mirror is missing at {SHARED_HUB} (expected ../shared/hub beside the repo)")
    return SHARED_HUB


@pytest.fixture(scope="session")
def mnist(shared_hub):
    """The full real MNIST (train 60k / test 10k) as tensors."""
    import hf_lodc

    return hf_lodc.load_image_classification("ylecun/mnist")


@pytest.fixture(scope="module")
def rgb8_root(tmp_path_factory):
    """A 3-class 8x8 RGB dataset in the Hub layout: 12 train and 4 test images per class."""
    from tests.datasets_factory import make_dataset

    return make_dataset(tmp_path_factory.mktemp("rgb8") / "ds", num_classes=3, size=(8, 8),
                        per_class={"train": 12, "test": 4})


@pytest.fixture(scope="module")
def rgb8(rgb8_root):
    import hf_lodc

    return hf_lodc.load_image_classification(str(rgb8_root))
