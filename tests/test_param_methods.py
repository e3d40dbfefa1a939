"""The parameterisation methods (issue 13) end to end on tiny MNIST: condense 1 iteration, evaluate,
save/load the local artefact (identical decoded images), the Hub round trip for LoIDC and LoHaBa
(plain ``datasets.load_dataset`` of the stored-units config, ``from_hub`` re-evaluating to the
card's number), the pixel-HaBa budget option, and HaBa's refusal to be split by class."""

from __future__ import annotations

import functools

import pytest
import torch

datasets = pytest.importorskip("datasets")

import hf_lodc  # noqa: E402
from hf_lodc import CondensedDataset  # noqa: E402
from hf_lodc.engine.condenser import build_synset, resolve_config  # noqa: E402
from hf_lodc.engine.config import CondenseConfig  # noqa: E402
from hf_lodc.errors import BudgetError, ConfigError  # noqa: E402

EVAL = dict(models=["convnet"], runs=1, epochs=2)
FAST = dict(retry_wait=0.01, log=None)
TINY = dict(ipc=1, rank=2, iterations=1, batch_real=8, seed=0)
PER_METHOD = {
    "idc": dict(match_steps=1, n_data=16),
    "idc-i": dict(match_steps=1, n_data=16),
    "loidc": dict(match_steps=1, n_data=16),
    "haba": dict(syn_steps=2, expert_epochs=1, max_start_epoch=1, shared_in_budget=False),
    "lohaba": dict(syn_steps=2, expert_epochs=1, max_start_epoch=1),
}


@functools.lru_cache(maxsize=None)
def _experts(root: str) -> str:
    from hf_lodc.objectives.experts import ExpertConfig, train_experts

    data = hf_lodc.load_image_classification("ylecun/mnist", max_per_class=20)
    train_experts(data, ExpertConfig(num_experts=1, epochs=2, batch=64), root, progress=False)
    return root


def _condensed(method: str, tmp_path_factory) -> CondensedDataset:
    kw = dict(PER_METHOD[method])
    if "haba" in method:
        kw["expert_dir"] = _experts(str(tmp_path_factory.getbasetemp() / "experts"))
    cd = CondensedDataset("ylecun/mnist", max_per_class=20, eval_max_per_class=10)
    cd.condense(method=method, **TINY, **kw)
    cd.evaluate(**EVAL)
    return cd


@pytest.mark.parametrize("method", list(PER_METHOD))
def test_condense_evaluate_save_and_load_back(method, tmp_path, tmp_path_factory):
    cd = _condensed(method, tmp_path_factory)
    s = cd.artifact.synset
    assert len(cd.images()) == s.num_classes * s.decoded_per_class
    assert cd.artifact.results["evaluations"]["convnet"]["accuracies"]
    st = cd.artifact.results["storage"]
    assert st["decoded_per_class"] == s.decoded_per_class and st["shared_numel"] == s.numel_shared
    assert st["shared_in_budget"] is (method != "haba")
    cd.save_to_disk(tmp_path / "a")
    back = CondensedDataset.from_disk(tmp_path / "a")
    assert torch.equal(back.images(), cd.images()) and torch.equal(back.labels, cd.labels)
    assert back.artifact.synset.options == s.options
    assert "images=" in repr(back)


def test_pixel_haba_at_ipc1_needs_the_uncounted_option():
    with pytest.raises(BudgetError, match="shared_in_budget=false"):
        resolve_config(CondenseConfig(method="haba", ipc=1, iterations=0), (3, 32, 32), 10)
    _, cfg, b = resolve_config(CondenseConfig(method="haba", ipc=1, iterations=0, shared_in_budget=False),
                               (3, 32, 32), 10)
    assert b.images_per_class == 1 and b.shared_numel > 0 and b.shared_in_budget is False
    assert cfg.shared_in_budget is False and cfg.hallucinators == 5
    _, _, lo = resolve_config(CondenseConfig(method="lohaba", ipc=1, rank=2, iterations=0), (3, 32, 32), 10)
    assert lo.shared_in_budget and 10 * lo.used_numel_per_class + lo.shared_numel <= 10 * 3 * 32 * 32


def test_haba_refuses_to_be_split_by_class():
    """What the Condenser runs first under several processes (``build_synset(...).check_class_shardable()``)."""
    spec, _, budget = resolve_config(CondenseConfig(method="lohaba", ipc=1, rank=2, iterations=0), (1, 28, 28), 10)
    with pytest.raises(ConfigError, match="cannot be split by class across processes; run it with one process"):
        build_synset(spec, 1, budget).check_class_shardable()
    spec, _, budget = resolve_config(CondenseConfig(method="loidc", ipc=1, rank=2, iterations=0), (1, 28, 28), 10)
    build_synset(spec, 1, budget).check_class_shardable()  # IDC units are per class


@pytest.mark.parametrize("method", ["loidc", "lohaba"])
def test_hub_round_trip(method, hub_server, tmp_path_factory):
    cd = _condensed(method, tmp_path_factory)
    repo = f"alice/mnist-{method}"
    res = cd.push_to_hub(repo, **FAST)
    name = res.config_name
    assert f"{name}-units" in res.configs
    units = datasets.load_dataset(repo, f"{name}-units", split="train").with_format("numpy")[:]
    want = cd.export_tables()["units"]
    for col, t in want.items():
        assert torch.equal(torch.from_numpy(units[col]), t)
    assert units["label"].tolist() == torch.arange(10).repeat_interleave(cd.artifact.synset.per_class).tolist()
    if method == "lohaba":
        shared = datasets.load_dataset(repo, f"{name}-shared", split="train").with_format("numpy")[:]
        assert len(shared["enc_weight"]) == cd.artifact.synset.hallucinators
    back = CondensedDataset.from_hub(repo)
    assert torch.equal(back.images(), cd.images())
    card_rec = cd.artifact.results["evaluations"]["convnet"]
    rec = back.evaluate(models=["convnet"], runs=card_rec["runs"], epochs=card_rec["epochs"], uint8=False)["convnet"]
    assert rec.accuracies == card_rec["accuracies"]


def test_lr_hallucinator_is_an_sgd_lr_on_the_hallucinators_only():
    import copy

    from hf_lodc.objectives.haba import HaBaOptions, HaBaTrajectoryMatching

    s1 = hf_lodc.HaBaSet(2, 1, (1, 8, 8), hallucinators=2)
    s1.init_noise(torch.Generator().manual_seed(0))
    s2, start = copy.deepcopy(s1), s1.hal_enc_weight.detach().clone()
    opt1 = torch.optim.SGD(s1.parameters(), lr=10.0, momentum=0.5)  # the engine's one optimiser
    hal, p2 = set(s2.shared_state_keys()), dict(s2.named_parameters())
    opt2 = torch.optim.SGD([{"params": [p for k, p in p2.items() if k not in hal]},
                            {"params": [p2[k] for k in sorted(hal)], "lr": 0.5}], lr=10.0, momentum=0.5)
    obj = HaBaTrajectoryMatching.__new__(HaBaTrajectoryMatching)  # only its options are used here
    obj.options = HaBaOptions(lr_hallucinator=0.5)
    for _ in range(3):
        for s, o in ((s1, opt1), (s2, opt2)):
            o.zero_grad()
            s().pow(2).mean().backward()
        obj._scale_hallucinator_grads(s1, opt1)
        opt1.step()
        opt2.step()
    for k, v in s1.state_dict().items():
        assert torch.allclose(v, s2.state_dict()[k], rtol=1e-5, atol=1e-6), k
    assert not torch.equal(s1.hal_enc_weight, start)  # the hallucinators did move
