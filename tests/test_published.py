"""The field's published layouts, built small here in their exact saved structures: normalisation presets,
ZCA sets, DC/DSA/DM results files, IDC mosaics, MTT/DATM soft labels and learned lr, DD-Ranking's scores."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import hf_lodc
from hf_lodc.data.types import normalize
from hf_lodc.engine.config import EvalConfig
from hf_lodc.engine.evaluate import evaluate_synthetic
from hf_lodc.errors import ConfigError, DatasetError, UnknownNameError
from hf_lodc.foreign import evaluate_condensed_set, infer_normalization, load_condensed_set
from hf_lodc.published.evaluation import evaluate_in_space
from hf_lodc.published.layouts import idc_decode
from hf_lodc.published.normalization import NORMALIZATION_PRESETS, InputSpace, preset_space
from hf_lodc.published.scores import augmentation_robust_score, label_robust_score, squash
from hf_lodc.published.soft_labels import SOFT_LOSSES, as_soft_labels, soft_criterion
from hf_lodc.published.zca import fit_zca, looks_whitened

FAST = dict(models=["convnet"], runs=1, epochs=1)


def _ipc(data, k=2):
    idx = torch.cat([torch.nonzero(data.train.labels == c).flatten()[:k] for c in range(data.num_classes)])
    return data.train.images[idx], data.train.labels[idx]


# -- normalisation presets --------------------------------------------------------------------


def test_presets_carry_the_code_bases_constants():
    p = NORMALIZATION_PRESETS.get
    assert p("dc-cifar10").std == (0.2023, 0.1994, 0.2010) and p("mtt-cifar10").mean == (0.4914, 0.4822, 0.4465)
    assert p("dc-cifar100").std == (0.2673, 0.2564, 0.2762)  # DC: CIFAR-100's own
    assert p("mtt-cifar100") .std == p("mtt-cifar10").std == p("idc-cifar100").std  # MTT, IDC: CIFAR-10's
    assert p("mnist").mean == (0.1307,) and p("fashion-mnist").std == (0.3530,)
    assert p("svhn").mean == (0.4377, 0.4438, 0.4728) and p("imagenet").std == (0.229, 0.224, 0.225)
    with pytest.raises(ConfigError, match="has 1 channel"):
        preset_space("mnist", 3)
    with pytest.raises(UnknownNameError, match="dc-cifar10"):
        NORMALIZATION_PRESETS.get("cifar")


def test_preset_set_is_trained_and_tested_with_the_preset_constants(rgb8, tmp_path):
    u8, y = _ipc(rgb8)
    pre = NORMALIZATION_PRESETS.get("dc-cifar10")
    m, s = torch.tensor(pre.mean), torch.tensor(pre.std)
    x = normalize(u8, m, s)  # what DC's code saves
    torch.save({"images": x, "labels": y}, tmp_path / "set.pt")
    r = evaluate_condensed_set(str(tmp_path / "set.pt"), rgb8, input_normalization="dc-cifar10", **FAST)
    assert r.input_normalization == "dc-cifar10" and r.normalization["mean"] == list(pre.mean)
    assert "VICO-UoE/DatasetCondensation" in r.normalization["from"] and "preset 'dc-cifar10'" in r.summary()
    assert r.evaluations["convnet"]["protocol"]["input"] == "dc-cifar10"
    # the same numbers as the engine given the preset's mean/std for the test split
    direct = evaluate_synthetic(x, y, rgb8.test, m, s, 3, EvalConfig(eval_models=["convnet"], eval_runs=1,
                                                                   eval_epochs=1))
    assert r.evaluations["convnet"]["accuracies"] == pytest.approx(direct["convnet"].accuracies, abs=1e-3)
    base = r.baseline["evaluations"]["convnet"]
    assert base["protocol"]["input"] == "dc-cifar10"
    with pytest.raises(ConfigError, match="input_normalization must be one of"):
        evaluate_condensed_set(str(tmp_path / "set.pt"), rgb8, input_normalization="dc", **FAST)


def test_own_loop_matches_the_engine(rgb8):
    """evaluate_in_space's loop (used for ZCA and soft labels) reproduces evaluate_synthetic's sequential runs."""
    u8, y = _ipc(rgb8, 4)
    m, s = rgb8.mean, rgb8.std
    x = normalize(u8, m, s)
    cfg = EvalConfig(eval_models=["convnet"], eval_runs=2, eval_epochs=1, eval_backend="sequential")
    ref = evaluate_synthetic(x, y, rgb8.test, m, s, 3, cfg)
    space = InputSpace(name="source", describe={}, real=lambda b: normalize(b, m, s))  # no mean: own loop
    own = evaluate_in_space(x, y, rgb8.test, space, 3, cfg)
    assert own["convnet"].accuracies == ref["convnet"].accuracies


# -- ZCA ----------------------------------------------------------------------------------------


def test_zca_is_kornias_transform(rgb8):
    z = fit_zca(rgb8.train.images, eps=0.1)
    x = rgb8.train.images.reshape(len(rgb8.train), -1).double() / 255.0
    mean = x.mean(0, keepdim=True)
    cov = (x - mean).T @ (x - mean) / (len(x) - 1)
    u, sv, _ = torch.linalg.svd(cov)
    ref = u @ (torch.rsqrt(sv + 0.1).unsqueeze(1) * u.T)
    assert torch.allclose(z.matrix.double(), ref, atol=1e-4) and z.eps == 0.1 and z.rows == len(rgb8.train)
    w = z.from_uint8(rgb8.test.images)
    expect = ((rgb8.test.images.reshape(len(rgb8.test), -1).double() / 255 - mean) @ ref).reshape(w.shape)
    assert torch.allclose(w.double(), expect, atol=1e-4)
    with pytest.raises(ConfigError, match="eps must be positive"):
        fit_zca(rgb8.train.images, eps=0.0)


def test_whitened_sets_are_detected_on_real_images(shared_hub):
    mnist = hf_lodc.load_image_classification("ylecun/mnist", max_per_class=30)
    small = F.avg_pool2d(mnist.train.images.float(), 2).round().to(torch.uint8)  # (300, 1, 14, 14) real pixels
    z = fit_zca(small)
    whitened, st = looks_whitened(z.from_uint8(small[:100]))
    assert whitened, st
    normalised, st2 = looks_whitened(normalize(small[:100], mnist.mean, mnist.std))
    assert not normalised, st2
    mode, reason = infer_normalization(z.from_uint8(small[:100]))
    assert mode == "zca" and "ZCA-whitened" in reason
    assert infer_normalization(normalize(small[:100], mnist.mean, mnist.std))[0] == "source"


def test_mtt_zca_set_is_evaluated_in_zca_space(rgb8, tmp_path):
    """MTT --zca: images_best.pt in ZCA space + labels_best.pt; the test split and baseline whitened too."""
    u8, y = _ipc(rgb8)
    z = fit_zca(rgb8.train.images, eps=0.1)
    torch.save(z.from_uint8(u8), tmp_path / "images_best.pt")
    torch.save(y, tmp_path / "labels_best.pt")
    r = evaluate_condensed_set(str(tmp_path / "images_best.pt"), rgb8, labels_file=str(tmp_path / "labels_best.pt"),
                               input_normalization="zca", **FAST)
    assert r.input_normalization == "zca" and r.normalization["kind"] == "zca" and r.normalization["eps"] == 0.1
    assert "ZCA whitening, eps 0.1" in r.summary() and r.evaluations["convnet"]["protocol"]["input"] == "zca"
    space = InputSpace(name="zca", describe={}, real=z.from_uint8)
    cfg = EvalConfig(eval_models=["convnet"], eval_runs=1, eval_epochs=1)
    direct = evaluate_in_space(z.from_uint8(u8), y, rgb8.test, space, 3, cfg)
    assert r.evaluations["convnet"]["accuracies"] == pytest.approx(direct["convnet"].accuracies, abs=1e-3)
    r2 = evaluate_condensed_set(str(tmp_path / "images_best.pt"), rgb8, labels_file=str(tmp_path / "labels_best.pt"),
                                input_normalization="zca", zca_eps=0.01, baseline=False, **FAST)
    assert r2.normalization["eps"] == 0.01


# -- DC / DSA / DM results files -------------------------------------------------------------


def test_dc_results_file_with_numpy_accuracies(rgb8, tmp_path):
    u8, y = _ipc(rgb8)
    x = normalize(u8, rgb8.mean, rgb8.std)
    first = (x + 1.0, y)
    res = {"data": [[first[0].clone(), first[1].clone()], [x.clone(), y.clone()]],
           "accs_all_exps": {"ConvNet": [np.float64(0.5125), np.float64(0.4875)]}}
    torch.save(res, tmp_path / "res_DC_CIFAR10_ConvNet_2ipc.pt")
    cs, _ = load_condensed_set(str(tmp_path / "res_DC_CIFAR10_ConvNet_2ipc.pt"), rgb8)
    assert torch.equal(cs.images, x) and torch.equal(cs.labels, y)  # the last experiment
    assert "experiment 2 of 2 (the last)" in cs.layout
    assert any("ConvNet: 2 value(s), mean 50.00 %" in n for n in cs.notes)
    r = evaluate_condensed_set(str(tmp_path / "res_DC_CIFAR10_ConvNet_2ipc.pt"), rgb8, baseline=False, **FAST)
    assert r.num_images == 6 and r.storage_bytes == x.numel() * 4
    # numpy values pass; other objects are still refused, nothing of theirs runs
    res["args"] = argparse.Namespace(ipc=2)
    torch.save(res, tmp_path / "res_bad.pt")
    with pytest.raises(DatasetError, match="Python objects other than tensors, numpy values"):
        load_condensed_set(str(tmp_path / "res_bad.pt"), rgb8)


# -- IDC ----------------------------------------------------------------------------------------


def test_idc_decode_tiles_and_padding():
    a = torch.zeros(2, 1, 4, 4)
    for i, v in enumerate((0.1, 0.2, 0.3, 0.4)):  # quadrants row by row
        a[:, :, (i // 2) * 2:(i // 2) * 2 + 2, (i % 2) * 2:(i % 2) * 2 + 2] = v
    a[1] += 0.5
    x, y = idc_decode(a, torch.tensor([0, 1]), 2)
    assert x.shape == (8, 1, 4, 4) and y.tolist() == [0, 1] * 4  # tile-major: tile 0 of both, tile 1 of both...
    assert torch.allclose(x[:, 0, 0, 0], torch.tensor([0.1, 0.6, 0.2, 0.7, 0.3, 0.8, 0.4, 0.9]))
    assert torch.allclose(x[2], torch.full((1, 4, 4), 0.2))  # a constant tile upsamples to a constant image
    odd, _ = idc_decode(torch.ones(1, 1, 5, 5), torch.tensor([0]), 2)  # padded with 0.5 to 6x6, 3x3 tiles
    assert odd.shape == (4, 1, 5, 5) and float(odd[3].min()) < 1.0  # the last tile holds padding


def test_idc_data_pt_decoded_with_factor_or_stated(rgb8, tmp_path):
    u8, y = _ipc(rgb8)
    torch.save([u8.float() / 255.0, y], tmp_path / "data.pt")  # IDC: [images in [0, 1], targets]
    plain = evaluate_condensed_set(str(tmp_path / "data.pt"), rgb8, baseline=False, **FAST)
    assert plain.num_images == 6 and any("looks like IDC's data.pt" in n and "--factor 2" in n for n in plain.notes)
    r = evaluate_condensed_set(str(tmp_path / "data.pt"), rgb8, factor=2, **FAST)
    assert r.num_images == 24 and r.images_per_class == {f"class_{c}": 8 for c in range(3)}
    assert r.storage_bytes == 6 * 3 * 8 * 8 * 4 and r.input_normalization == "zero-one"
    assert any("decoded 6 stored images into 24 with factor 2" in n for n in r.notes)
    with pytest.raises(ConfigError, match="factor 9 is larger"):
        evaluate_condensed_set(str(tmp_path / "data.pt"), rgb8, factor=9, **FAST)


# -- soft labels and learned lr (MTT / DATM) --------------------------------------------------


def test_soft_losses_formulas():
    z = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    t = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    for temp in (1.0, 4.0):
        q = F.softmax(t / temp, 1)
        lq = as_soft_labels(t).log_targets(temp)
        sce = soft_criterion("sce", temp)(z, lq)
        assert torch.allclose(sce, -(q * F.log_softmax(z / temp, 1)).sum(1).mean())
        kl = soft_criterion("kl", temp)(z, lq)
        ref = (q * (q.log() - F.log_softmax(z / temp, 1))).sum(1).mean() * temp ** 2
        assert torch.allclose(kl, ref, atol=1e-6)
    p = as_soft_labels(F.softmax(t, 1))
    assert p.kind == "probabilities" and torch.allclose(p.log_targets(1.0).exp(), F.softmax(t, 1), atol=1e-6)
    assert as_soft_labels(t).kind == "logits" and SOFT_LOSSES.names() == ["kl", "sce"]
    with pytest.raises(ConfigError, match="temperature must be positive"):
        soft_criterion("sce", 0.0)


def test_datm_soft_logits_and_learned_lr(rgb8, tmp_path):
    """DATM: images_best.pt + labels_best.pt (learned logits (N, K)) + lr_best.pt (a learned scalar)."""
    u8, y = _ipc(rgb8)
    x = normalize(u8, rgb8.mean, rgb8.std)
    logits = F.one_hot(y, 3).float() * 3.0 + 0.1 * torch.randn(len(y), 3, generator=torch.Generator().manual_seed(0))
    torch.save(x, tmp_path / "images_best.pt")
    torch.save(logits, tmp_path / "labels_best.pt")
    torch.save(torch.tensor(0.02, requires_grad=True), tmp_path / "lr_best.pt")
    kw = dict(labels_file=str(tmp_path / "labels_best.pt"), **FAST)
    r = evaluate_condensed_set(str(tmp_path / "images_best.pt"), rgb8, **kw)
    assert r.labels_kind.startswith("soft (logits; loss sce, temperature 1")
    assert r.eval_lr == {"lr": pytest.approx(0.02), "from": "learned, read from lr_best.pt beside images_best.pt"}
    assert r.evaluations["convnet"]["protocol"]["lr"] == pytest.approx(0.02)
    assert r.label_bytes == 6 * 3 * 4 and r.storage_bytes == x.numel() * 4 + 6 * 3 * 4
    assert r.evaluations["convnet"]["protocol"]["loss"] == "sce (T=1)"
    assert r.baseline["evaluations"]["convnet"]["protocol"]["loss"] == "cross-entropy"
    assert any("storage_bytes counts the soft labels" in n for n in r.notes)
    kl = evaluate_condensed_set(str(tmp_path / "images_best.pt"), rgb8, soft_loss="kl", temperature=2.0,
                                eval_lr=0.05, baseline=False, **kw)
    assert kl.eval_lr == {"lr": 0.05, "from": "given"} and kl.evaluations["convnet"]["protocol"]["loss"] == "kl (T=2)"
    with pytest.raises(UnknownNameError, match="soft-label loss"):
        evaluate_condensed_set(str(tmp_path / "images_best.pt"), rgb8, soft_loss="mse", **kw)
    torch.save(torch.tensor(-1.0), tmp_path / "bad_lr.pt")
    with pytest.raises(DatasetError, match="not a positive number"):
        evaluate_condensed_set(str(tmp_path / "images_best.pt"), rgb8, lr_file=str(tmp_path / "bad_lr.pt"), **kw)


def test_recipe_accepts_zca_presets_and_soft_options(rgb8, rgb8_root, tmp_path):
    import recipes.evaluate as rec

    u8, y = _ipc(rgb8)
    z = fit_zca(rgb8.train.images)
    torch.save((z.from_uint8(u8), y), tmp_path / "set.pt")
    out = tmp_path / "out.json"
    code = rec.main([str(tmp_path / "set.pt"), "--test-dataset", str(rgb8_root), "--models", "convnet", "--runs", "1",
                     "--epochs", "1", "--input-normalization", "zca", "--zca-eps", "0.1", "--cpu", "--no-baseline",
                     "--output", str(out)])
    assert code == 0
    rep = json.loads(out.read_text())["foreign_report"]
    assert rep["input_normalization"] == "zca" and rep["normalization"]["eps"] == 0.1
    choices = next(a.choices for a in rec.build_parser()._actions if "--input-normalization" in a.option_strings)
    assert "dc-cifar10" in choices and "zca" in choices


# -- DD-Ranking scores --------------------------------------------------------------------------


def test_lrs_and_ars_formulas():
    assert squash(-1.0) == pytest.approx(0.0) and squash(1.0) == pytest.approx(1.0)
    s = label_robust_score(acc_real_hard=0.85, acc_syn_hard=0.45, acc_syn_soft=0.60, acc_random_soft=0.50)
    assert s["hlr"] == pytest.approx(0.40) and s["ior"] == pytest.approx(0.10)
    alpha = 0.5 * 0.10 - 0.5 * 0.40
    assert s["alpha"] == pytest.approx(alpha)
    assert s["lrs"] == pytest.approx((math.exp(alpha) - math.exp(-1)) / (math.e - math.exp(-1)))
    a = augmentation_robust_score(acc_syn_aug=0.7, acc_random_aug=0.4, acc_syn_noaug=0.6, acc_random_noaug=0.5,
                                  lam=0.25)
    beta = 0.25 * 0.3 + 0.75 * 0.1
    assert a["beta"] == pytest.approx(beta)
    assert a["ars"] == pytest.approx((math.exp(beta) - math.exp(-1)) / (math.e - math.exp(-1)))
    with pytest.raises(ConfigError, match="fraction in"):
        label_robust_score(85.0, 0.45, 0.6, 0.5)  # percentages are refused, not silently scored


def test_haba_bases_with_hallucinators_are_refused(rgb8, tmp_path):
    """A weights_best.pt that is not a whole StyleTranslator state dict is refused, naming HaBa's layout
    (a complete one is rendered: test_haba_folder_is_evaluated_through_its_hallucinators)."""
    u8, y = _ipc(rgb8)
    torch.save(normalize(u8, rgb8.mean, rgb8.std), tmp_path / "images_best.pt")  # HaBa's bases
    torch.save(y, tmp_path / "labels_best.pt")
    torch.save({"0.enc.weight": torch.zeros(3, 3, 1, 1)}, tmp_path / "weights_best.pt")  # hallucinators' state dict
    with pytest.raises(DatasetError, match="HaBa's layout"):
        evaluate_condensed_set(str(tmp_path / "images_best.pt"), rgb8, labels_file=str(tmp_path / "labels_best.pt"),
                               **FAST)


def test_auto_source_says_the_code_bases_use_constants(rgb8, tmp_path):
    u8, y = _ipc(rgb8)
    torch.save((normalize(u8, rgb8.mean, rgb8.std), y), tmp_path / "set.pt")
    r = evaluate_condensed_set(str(tmp_path / "set.pt"), rgb8, baseline=False, **FAST)
    assert r.input_normalization == "source"
    assert any("fixed constants" in n and "dc-cifar10" in n and "mnist," not in n for n in r.notes)


def test_ars_in_the_report_follows_its_accuracies(rgb8, tmp_path):
    u8, y = _ipc(rgb8, 3)
    torch.save((u8.float() / 255.0, y), tmp_path / "set.pt")
    r = evaluate_condensed_set(str(tmp_path / "set.pt"), rgb8, ars=True, real_itemsize=4, **FAST)
    per = r.scores["convnet"]
    assert set(per) == {"same_bytes", "same_count"} and per["same_count"]["random_images_per_class"] == 3
    sb = per["same_bytes"]
    assert sb["syn_aug"] == pytest.approx(r.evaluations["convnet"]["accuracy_mean"] / 100, abs=1e-4)
    assert sb["random_aug"] == pytest.approx(r.baseline["evaluations"]["convnet"]["accuracy_mean"] / 100, abs=1e-4)
    ref = augmentation_robust_score(sb["syn_aug"], sb["random_aug"], sb["syn_noaug"], sb["random_noaug"])
    assert sb["ars"] == pytest.approx(ref["ars"], abs=1e-4) and "DD-Ranking ARS" in r.summary()
    with pytest.raises(ConfigError, match="ars needs the random real baseline"):
        evaluate_condensed_set(str(tmp_path / "set.pt"), rgb8, ars=True, baseline=False, **FAST)


def test_lrs_in_the_report_follows_its_accuracies(rgb8, tmp_path):
    """A soft-label (DATM) set: HLR from a given real accuracy and the set's hard-label run, IOR against the
    random baselines; the score is the formula of those fractions, computed by hand."""
    u8, y = _ipc(rgb8)
    logits = F.one_hot(y, 3).float() * 3.0
    torch.save(normalize(u8, rgb8.mean, rgb8.std), tmp_path / "images_best.pt")
    torch.save(logits, tmp_path / "labels_best.pt")
    kw = dict(labels_file=str(tmp_path / "labels_best.pt"), **FAST)
    r = evaluate_condensed_set(str(tmp_path / "images_best.pt"), rgb8, lrs=True, real_accuracy=80.0,
                               real_accuracy_from="a paper's table", **kw)
    lr = r.label_robust
    assert lr["real_hard"] == {"convnet": 80.0} and lr["real_hard_from"] == "given (a paper's table)"
    assert "hard (argmax) labels" in lr["syn_hard_from"] and "no counterpart" in lr["random_soft_from"]
    per = lr["models"]["convnet"]
    assert set(per) == {"same_bytes", "same_count"}
    v = per["same_bytes"]
    assert v["syn_soft"] == pytest.approx(r.evaluations["convnet"]["accuracy_mean"] / 100, abs=1e-4)
    assert v["random_soft"] == pytest.approx(r.baseline["evaluations"]["convnet"]["accuracy_mean"] / 100, abs=1e-4)
    hlr, ior = 0.80 - v["syn_hard"], v["syn_soft"] - v["random_soft"]
    alpha = 0.5 * ior - 0.5 * hlr
    assert v["hlr"] == pytest.approx(hlr, abs=1e-4) and v["ior"] == pytest.approx(ior, abs=1e-4)
    assert v["lrs"] == pytest.approx((math.exp(alpha) - math.exp(-1)) / (math.e - math.exp(-1)), abs=1e-4)
    assert "DD-Ranking LRS" in r.summary() and r.to_dict()["label_robust"] == lr

    torch.save((u8.float() / 255.0, y), tmp_path / "set.pt")  # a hard-label set: no extra hard run
    h = evaluate_condensed_set(str(tmp_path / "set.pt"), rgb8, lrs=True, real_accuracy={"convnet": 90.0},
                               real_itemsize=4, **FAST)
    hv = h.label_robust["models"]["convnet"]["same_count"]
    assert hv["syn_hard"] == hv["syn_soft"] == pytest.approx(h.evaluations["convnet"]["accuracy_mean"] / 100, abs=1e-4)
    assert "hard-label set" in h.label_robust["syn_hard_from"]
    for bad, match in [(dict(real_accuracy=None), "needs the full real data"), (dict(real_accuracy=0.8), "fraction"),
                       (dict(real_accuracy={"resnet": 80.0}), "no full real data accuracy"),
                       (dict(real_accuracy=80.0, baseline=False), "lrs needs the random real baseline")]:
        with pytest.raises(ConfigError, match=match):
            evaluate_condensed_set(str(tmp_path / "set.pt"), rgb8, lrs=True, **{**FAST, **bad})
    with pytest.raises(ConfigError, match="only read by the Label-Robust Score"):
        evaluate_condensed_set(str(tmp_path / "set.pt"), rgb8, real_accuracy=80.0, **FAST)


def test_lrs_with_the_real_accuracy_trained_here(rgb8, rgb8_root, tmp_path):
    import recipes.evaluate as rec

    u8, y = _ipc(rgb8)
    torch.save((u8, y), tmp_path / "set.pt")
    out = tmp_path / "out.json"
    code = rec.main([str(tmp_path / "set.pt"), "--test-dataset", str(rgb8_root), "--models", "convnet", "--runs", "1",
                     "--epochs", "1", "--cpu", "--lrs", "--real-accuracy", "train", "--output", str(out)])
    assert code == 0
    lr = json.loads(out.read_text())["foreign_report"]["label_robust"]
    assert lr["real_hard_from"].startswith("trained here on the real train split read (36 images")
    assert 0 <= lr["models"]["convnet"]["same_count"]["lrs"] <= 1
    from hf_lodc.foreign.options import real_accuracy_arg  # the type of --real-accuracy

    assert real_accuracy_arg("convnet=84.8,resnet18_bn=93") == {"convnet": 84.8, "resnet18_bn": 93.0}
    assert real_accuracy_arg("61.5") == 61.5


def test_dataset_with_a_soft_label_column_in_its_own_class_order(rgb8, tmp_path):
    import datasets

    from tests.datasets_factory import write_dataset

    u8, y = _ipc(rgb8)
    x = normalize(u8, rgb8.mean, rgb8.std)
    own = ["class_2", "class_0", "class_1"]  # the set's ClassLabel order differs from the source's
    y_own = torch.tensor([own.index(f"class_{int(c)}") for c in y])
    probs = F.softmax(F.one_hot(y_own, 3).float() * 4.0, 1)  # (6, 3) in the set's own class order
    feats = datasets.Features({"pixel_values": datasets.Array3D(shape=(3, 8, 8), dtype="float32"),
                               "label": datasets.ClassLabel(names=own),
                               "soft": datasets.Sequence(datasets.Value("float32"))})
    repo = write_dataset(tmp_path / "repo", {"train": {"pixel_values": x.numpy(), "label": y_own.tolist(),
                                                       "soft": probs.tolist()}}, feats)
    cs, matching = load_condensed_set(str(repo), rgb8, soft_label_column="soft")
    assert matching == "by-name" and torch.equal(cs.labels, y) and cs.soft.kind == "probabilities"
    assert torch.equal(cs.soft.values.argmax(1), y)  # columns moved to the source's class order
    r = evaluate_condensed_set(str(repo), rgb8, soft_label_column="soft", baseline=False, **FAST)
    assert r.label_bytes == 6 * 3 * 4 and r.storage_bytes == x.numel() * 4 + 6 * 3 * 4
    assert r.labels_kind.startswith("soft (probabilities")


def test_teacher_relabels_each_augmented_batch(rgb8, tmp_path):
    """SRe2L / RDED style: images only, a teacher trained on the source labels every augmented batch."""
    from hf_lodc.data.augment import DSAugment
    from hf_lodc.training.loop import TrainSchedule, seeded_net, train_network
    from hf_lodc.published.teacher import TeacherLabelled, teacher_criterion

    teacher = seeded_net("convnet", 3, (3, 8, 8), 0)
    train_network(teacher, rgb8.train.normalized(rgb8.mean, rgb8.std), rgb8.train.labels,
                  TrainSchedule(lr=0.01, epochs=1, batch=36), torch.Generator().manual_seed(0), DSAugment("none"))
    torch.save(teacher.state_dict(), tmp_path / "teacher.pt")
    student = seeded_net("convnet", 3, (3, 8, 8), 1)
    wrapped = TeacherLabelled(student, teacher.eval())
    assert [id(p) for p in wrapped.parameters()] == [id(p) for p in student.parameters()]  # teacher never optimised
    xb = rgb8.test.normalized(rgb8.mean, rgb8.std)[:5]
    both = wrapped.train()(xb)
    assert both.shape == (5, 6) and torch.allclose(both[:, 3:], teacher(xb))
    loss = teacher_criterion("kl", 2.0)(both, None)
    ref = F.kl_div(F.log_softmax(both[:, :3] / 2, 1), F.softmax(both[:, 3:] / 2, 1), reduction="batchmean") * 4
    assert torch.allclose(loss, ref, atol=1e-6) and wrapped.eval()(xb).shape == (5, 3)

    u8, y = _ipc(rgb8)
    torch.save((u8, y), tmp_path / "sre2l.pt")
    r = evaluate_condensed_set(str(tmp_path / "sre2l.pt"), rgb8, teacher=str(tmp_path / "teacher.pt"),
                               soft_loss="kl", temperature=4.0, **FAST)
    assert r.labels_kind.startswith("teacher convnet (teacher.pt) relabels each augmented batch; loss kl")
    assert r.evaluations["convnet"]["protocol"]["loss"] == "teacher kl (T=4)"
    assert r.baseline["evaluations"]["convnet"]["protocol"]["loss"] == "teacher kl (T=4)"
    with pytest.raises(DatasetError, match="does not fit model 'resnet18_bn'"):
        evaluate_condensed_set(str(tmp_path / "sre2l.pt"), rgb8, teacher=str(tmp_path / "teacher.pt"),
                               teacher_model="resnet18_bn", **FAST)


def test_idc_factor_on_uint8_mosaics_keeps_them_uint8(rgb8, tmp_path):
    u8, y = _ipc(rgb8)
    torch.save((u8, y), tmp_path / "mosaics.pt")
    cs, _ = load_condensed_set(str(tmp_path / "mosaics.pt"), rgb8)
    from hf_lodc.foreign.conventions import decode_factor

    note = decode_factor(cs, str(tmp_path / "mosaics.pt"), 2)
    assert cs.images.dtype == torch.uint8 and cs.images.shape == (24, 3, 8, 8) and "factor 2" in note
    ref, _ = idc_decode(u8.float() / 255, y, 2)
    assert torch.equal(cs.images, (ref * 255).round().to(torch.uint8))
    assert infer_normalization(cs.images)[0] == "uint8"


# -- HaBa: bases + hallucinators -----------------------------------------------------------------


class _StyleTranslatorLike(torch.nn.Module):
    """The module HaBa's utils.py defines (an unpadded conv, a per-pixel scale and shift sized for the
    image, a transposed conv back), so its ModuleList state dict has HaBa's keys and shapes."""

    def __init__(self, in_channel, channel, size, k=3):
        super().__init__()
        self.enc = torch.nn.Conv2d(in_channel, channel, k)
        self.scale = torch.nn.Parameter(1. + 0.1 * torch.randn(1, channel, size - k + 1, size - k + 1))
        self.shift = torch.nn.Parameter(0.1 * torch.randn(1, channel, size - k + 1, size - k + 1))
        self.dec = torch.nn.ConvTranspose2d(channel, channel, k)

    def forward(self, x):
        return self.dec(self.scale * self.enc(x) + self.shift)


def _haba_folder(tmp_path, data, n_style=3, in_channel=3, ipc=2, name=("images_best.pt", "weights_best.pt")):
    """A run folder as HaBa's distill_fac.py saves it: image_syn.flatten(0, 1) and
    nn.ModuleList([StyleTranslator(in_channel, mid=C, out=C, kernel_size=3)] * n_style).state_dict();
    no labels, no lr. Returns the bases and the ModuleList."""
    torch.manual_seed(0)
    c, h, w = data.image_shape
    bases = torch.randn(data.num_classes, ipc, in_channel, h, w).flatten(0, 1)  # (K * ipc, C_in, H, W) class-major
    styles = torch.nn.ModuleList([_StyleTranslatorLike(in_channel, c, h) for _ in range(n_style)])
    torch.save(bases, tmp_path / name[0])
    torch.save(styles.state_dict(), tmp_path / name[1])
    return bases, styles


def test_haba_hallucinators_render_as_their_style_translator(rgb8, tmp_path):
    from hf_lodc.published.haba import read_hallucinators

    for in_channel in (3, 1):  # --single_channel bases have one channel
        bases, styles = _haba_folder(tmp_path, rgb8, in_channel=in_channel)
        state = styles.state_dict()
        assert sorted(state)[:6] == ["0.dec.bias", "0.dec.weight", "0.enc.bias", "0.enc.weight", "0.scale", "0.shift"]
        hal = read_hallucinators(tmp_path / "weights_best.pt", tuple(bases.shape), 3)
        assert hal.count == 3 and hal.nbytes == sum(v.numel() * 4 for v in state.values())
        out = hal.render_all(bases)  # (N * M, C, H, W), basis-major
        assert out.shape == (len(bases) * 3, 3, 8, 8)
        with torch.no_grad():
            for m in range(3):
                assert torch.allclose(out[m::3], styles[m](bases), atol=1e-5)
        if in_channel == 3:  # hf_lodc's own HaBa parameterisation (affine="pixel") is the same function
            from hf_lodc.synset.haba import HaBaSet

            own = HaBaSet(3, 2, (3, 8, 8), hallucinators=3, affine="pixel")
            with torch.no_grad():
                for k in ("enc_weight", "enc_bias", "scale", "shift", "dec_weight", "dec_bias"):
                    getattr(own, f"hal_{k}").copy_(getattr(hal, k))
                assert torch.allclose(own.hallucinate(bases, 1), out[1::3], atol=1e-5)
        render = hal.batch_renderer(torch.Generator().manual_seed(0))
        batch = render(bases)  # each basis through one random hallucinator
        for i in range(len(bases)):  # row i is one of basis i's three renderings
            assert any(torch.allclose(batch[i], out[i * 3 + m], atol=1e-5) for m in range(3))
    state = dict(state, **{"0.scale": torch.ones(1, 3, 30, 30)})  # StyleTranslator's default image_size=32, 8x8 set
    torch.save(state, tmp_path / "weights_best.pt")
    with pytest.raises(DatasetError, match=r"0.scale \(1, 3, 30, 30\) \(expected \(1, 3, 6, 6\)\)"):
        read_hallucinators(tmp_path / "weights_best.pt", tuple(bases.shape), 3)


def test_haba_folder_is_evaluated_through_its_hallucinators(rgb8, tmp_path):
    bases, styles = _haba_folder(tmp_path, rgb8)
    state = styles.state_dict()
    r = evaluate_condensed_set(str(tmp_path / "images_best.pt"), rgb8, input_normalization="source", **FAST)
    assert r.layout.startswith("HaBa bases images_best.pt (6, 3, 8, 8) + 3 hallucinators weights_best.pt")
    assert r.num_images == 6 and r.images_per_class == {n: 2 for n in rgb8.info.class_names}  # class-major
    assert r.storage_bytes == bases.numel() * 4 + sum(v.numel() * 4 for v in state.values())
    assert any("syn_lr" in n for n in r.notes) and any("6 bases x 3 hallucinators" in n for n in r.notes)
    assert r.evaluations["convnet"]["runs"] == 1 and r.baseline["images_per_class"] >= 1
    # images_<it>.pt beside styles_<it>.pt is the same layout; a labels file overrides the class-major labels
    _haba_folder(tmp_path, rgb8, name=("images_5000.pt", "styles_5000.pt"))
    torch.save(torch.tensor([2, 2, 1, 1, 0, 0]), tmp_path / "labels.pt")
    r2 = evaluate_condensed_set(str(tmp_path / "images_5000.pt"), rgb8, labels_file=str(tmp_path / "labels.pt"),
                                input_normalization="source", baseline=False, eval_lr=0.01, **FAST)
    assert "labels from labels.pt" in r2.layout and not any("syn_lr" in n for n in r2.notes)
    with pytest.raises(ConfigError, match="ars is not implemented for a HaBa set"):
        evaluate_condensed_set(str(tmp_path / "images_best.pt"), rgb8, ars=True, **FAST)
    torch.save(bases[:5], tmp_path / "images_best.pt")
    with pytest.raises(DatasetError, match="do not split into the test dataset's 3 classes"):
        evaluate_condensed_set(str(tmp_path / "images_best.pt"), rgb8, **FAST)


def test_haba_run_folder_through_the_recipe(rgb8, rgb8_root, tmp_path, monkeypatch):
    import recipes.evaluate as rec
    from hf_lodc.published.haba import Hallucinators

    bases, _ = _haba_folder(tmp_path, rgb8)
    drawn = []
    real = Hallucinators.batch_renderer

    def counting(self, g, after=None):
        render = real(self, g, after)
        return lambda x: drawn.append(x.shape) or render(x)

    monkeypatch.setattr(Hallucinators, "batch_renderer", counting)
    out = tmp_path / "out.json"
    code = rec.main([str(tmp_path), "--test-dataset", str(rgb8_root), "--models", "convnet", "--runs", "1", "--epochs",
                     "2", "--cpu", "--no-baseline", "--input-normalization", "source", "--output", str(out)])
    assert code == 0
    rep = json.loads(out.read_text())["foreign_report"]
    assert rep["layout"].startswith("HaBa bases images_best.pt") and rep["num_images"] == 6
    assert drawn == [torch.Size([6, 3, 8, 8])] * 2  # one rendered batch of all 6 bases per epoch, as HaBa's loader


# -- SRe2L / RDED: image folders and FKD soft labels ----------------------------------------------


def _image_folder(root, data, k=2):
    """An ImageFolder as SRe2L / RDED save their sets: <root>/<class>/<n>.png."""
    from PIL import Image

    u8, y = _ipc(data, k)
    for i, (img, c) in enumerate(zip(u8, y.tolist())):
        d = root / data.info.class_names[c]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(d / f"{i:05d}.png")
    return root


def test_image_folder_without_teacher_warns_it_is_not_the_methods_protocol(rgb8, tmp_path):
    folder = _image_folder(tmp_path / "syn", rgb8)
    r = evaluate_condensed_set(str(folder), rgb8, baseline=False, **FAST)
    assert r.num_images == 6 and r.labels_kind == "hard"
    assert len(r.warnings) == 1 and "NOT these methods' protocol" in r.warnings[0]
    assert "WARNING: an image folder (the layout SRe2L" in r.summary() and r.to_dict()["warnings"] == r.warnings
    teacher = tmp_path / "teacher.pt"
    from hf_lodc.training.loop import seeded_net

    torch.save(seeded_net("convnet", 3, (3, 8, 8), 0).state_dict(), teacher)
    r2 = evaluate_condensed_set(str(folder), rgb8, baseline=False, teacher=str(teacher), **FAST)
    assert r2.warnings == [] and r2.labels_kind.startswith("teacher convnet")
    assert any("the closest protocol here, not theirs" in n for n in r2.notes)


def test_fkd_soft_label_files_are_refused_naming_what_is_missing(rgb8, tmp_path):
    """SRe2L's relabel output: <fkd_path>/epoch_<e>/batch_<b>.tar = [coords, flips, mix index, lam, box, logits]."""
    fkd = tmp_path / "FKD_soft_label"
    (fkd / "epoch_0").mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    batch = [torch.rand(4, 4, generator=g), torch.rand(4, generator=g) < 0.5, None, None, None,
             torch.randn(4, 3, generator=g).half()]
    torch.save(batch, fkd / "epoch_0" / "batch_0.tar")
    mixed = [batch[0], batch[1], torch.randperm(4), np.float64(0.7), [np.int64(1), np.int64(2), np.int64(5),
                                                                         np.int64(6)], batch[5]]  # --mix-type cutmix
    torch.save(mixed, fkd / "epoch_0" / "batch_1.tar")
    u8, y = _ipc(rgb8)
    torch.save(u8, tmp_path / "images.pt")
    for kw in ({"source": str(fkd)}, {"source": str(fkd / "epoch_0" / "batch_1.tar")},
               {"source": str(tmp_path / "images.pt"), "labels_file": str(fkd / "epoch_0" / "batch_0.tar")},
               {"source": str(tmp_path / "images.pt"), "labels_file": str(fkd)}):
        src = kw.pop("source")
        with pytest.raises(DatasetError, match="holds FKD soft labels .* what is missing here is that replay"):
            evaluate_condensed_set(src, rgb8, **kw, **FAST)
