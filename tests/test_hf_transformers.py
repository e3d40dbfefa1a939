"""transformers image-classification networks as evaluation models (``hf:vit``, ``hf:resnet``, ...)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
import transformers

import hf_lodc.models as M
from hf_lodc import EvalConfig, evaluate_synthetic
from hf_lodc.data.types import LabeledImages
from hf_lodc.errors import ConfigError, UnknownNameError


ARCHS = ["hf:vit", "hf:resnet", "hf:convnext"]


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("chans,size", [(1, 28), (3, 32)])
def test_build_and_forward(name, chans, size):
    net = M.create_eval_model(name, num_classes=10, in_chans=chans, img_size=size)
    assert isinstance(net, M.HFImageClassifier) and isinstance(net.model, transformers.PreTrainedModel)
    x = torch.randn(3, chans, size, size)
    with torch.no_grad():
        assert net(x).shape == (3, 10)
        assert net.embed(x).shape == (3, net.num_features)
    assert net.num_classes == 10


def test_configs_are_sized_for_the_images():
    vit = M.create_eval_model("hf:vit", num_classes=10, in_chans=1, img_size=28).model
    assert isinstance(vit, transformers.ViTForImageClassification)
    assert vit.config.image_size == 28 and vit.config.num_channels == 1 and vit.config.patch_size == 4
    assert vit.vit.embeddings.position_embeddings.shape[1] == 7 * 7 + 1
    res = M.create_eval_model("hf:resnet", num_classes=10, in_chans=3, img_size=32).model
    assert isinstance(res, transformers.ResNetForImageClassification)
    stem = res.resnet.embedder.embedder.convolution
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)  # small-image stem, no max-pool
    assert isinstance(res.resnet.embedder.pooler, torch.nn.Identity)
    small = M.create_eval_model("hf:vit", num_classes=5, in_chans=3, img_size=32, hidden_size=64,
                                num_attention_heads=2, intermediate_size=128)
    assert small.num_features == 64 and small(torch.randn(1, 3, 32, 32)).shape == (1, 5)
    with pytest.raises(ConfigError, match="no field"):
        M.create_eval_model("hf:vit", num_classes=5, in_chans=3, img_size=32, not_a_field=1)


def test_same_seed_same_network():
    def make():
        torch.manual_seed(3)
        return M.create_eval_model("hf:vit", num_classes=10, in_chans=1, img_size=28)

    a, b = make(), make()
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("name", ["hf:vit", "hf:resnet"])
def test_a_few_sgd_steps_reduce_the_loss(name):
    torch.manual_seed(0)
    net = M.create_eval_model(name, num_classes=4, in_chans=1, img_size=28, **(
        dict(hidden_size=64, num_attention_heads=2, intermediate_size=128, num_hidden_layers=2)
        if name == "hf:vit" else dict(hidden_sizes=[8, 16, 16, 16], embedding_size=8, depths=[1, 1, 1, 1])))
    x, y = torch.randn(8, 1, 28, 28), torch.arange(8) % 4
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)  # the protocol's SGD
    net.train()
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.85 * losses[0] and min(losses[-5:]) < min(losses[:5])


def test_reset_classifier():
    net = M.create_eval_model("hf:resnet", num_classes=10, in_chans=1, img_size=28, embedding_size=8,
                              hidden_sizes=[8, 8, 8, 8], depths=[1, 1, 1, 1])
    net.reset_classifier(3)
    assert net.num_classes == 3 and net(torch.randn(2, 1, 28, 28)).shape == (2, 3)


def test_protocol_evaluation_vmap_or_clean_fallback():
    """hf: models train under the evaluation protocol; the vmap backend runs them or falls back cleanly."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 1, 28, 28, generator=g), torch.arange(8) % 4
    test = LabeledImages(torch.randint(0, 256, (12, 1, 28, 28), dtype=torch.uint8, generator=g), torch.arange(12) % 4)
    backend = "vmap"
    cfg = EvalConfig(eval_models=["hf:vit"], eval_runs=2, eval_epochs=1, eval_backend=backend)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = evaluate_synthetic(x, y, test, torch.tensor([0.5]), torch.tensor([0.25]), 4, cfg)["hf:vit"]
    assert rec.runs == 2 and all(0.0 <= a <= 100.0 for a in rec.accuracies)
    fallback = [w for w in caught if "cannot be trained under vmap" in str(w.message)]
    if not fallback:  # vectorised: same computation as the sequential runs
        seq = evaluate_synthetic(x, y, test, torch.tensor([0.5]), torch.tensor([0.25]), 4,
                                 EvalConfig(eval_models=["hf:vit"], eval_runs=2, eval_epochs=1,
                                            eval_backend="sequential"))["hf:vit"]
        assert rec.accuracies == pytest.approx(seq.accuracies, abs=100 / 12 + 1e-6)


def test_hub_config_from_a_local_folder(tmp_path):
    transformers.ViTConfig(image_size=224, patch_size=4, hidden_size=32, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=64).save_pretrained(tmp_path)
    net = M.create_eval_model(f"hf:{tmp_path}", num_classes=10, in_chans=1, img_size=28)
    assert net.model.config.image_size == 28 and net.model.config.num_channels == 1
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_hub_config_unavailable_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    import huggingface_hub.constants as C

    monkeypatch.setattr(C, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match="cannot read the config"):
        M.create_eval_model("hf:nobody/no-such-vit", num_classes=10, in_chans=1, img_size=28)


def test_unknown_hf_architecture():
    with pytest.raises(UnknownNameError, match="hf:vit"):
        M.create_eval_model("hf:perceiver_xl", num_classes=10, in_chans=1, img_size=28)
