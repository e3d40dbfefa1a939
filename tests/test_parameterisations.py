"""The parameterisation contract: exact storage, decoding order, gradients, init, contrast, sharding,
export columns; and IDC's objective lowering its loss on real MNIST."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from hf_lodc.data.augment import DSAugment
from hf_lodc.data.types import ImageClassificationData, LabeledImages
from hf_lodc.errors import BudgetError, ConfigError
from hf_lodc.objectives import MatchContext, RealSampler
from hf_lodc.objectives.idc import IDCGradientMatching, IDCOptions
from hf_lodc.synset.base import PARAMETERISATIONS
from hf_lodc.synset.budget import plan_budget
from hf_lodc.synset.contrast import CONTRASTS, class_image_std
from hf_lodc.synset.haba import HaBaSet, hallucinator_numel
from hf_lodc.synset.init import initialise, relative_error
from hf_lodc.synset.lowrank import LowRankSet
from hf_lodc.synset.multiformation import MultiFormationSet, tile_bounds

MNIST, CIFAR = (1, 28, 28), (3, 32, 32)

# (registry name, options) for every parameterisation and composition
KINDS = [
    ("pixel", {}), ("lowrank", {"rank": 2}),
    ("multiformation", {}), ("multiformation", {"rank": 2}), ("multiformation", {"factor": 3}),
    ("haba", {"rank": 2}), ("haba", {"rank": 2, "hallucinators": 2, "affine": "pixel"}),
    ("haba", {"hallucinators": 3}),
]


def _build(name, opts, k=2, n=2, shape=(3, 8, 8)):
    return PARAMETERISATIONS.get(name)(k, n, shape, **opts)


def test_registry_lists_every_parameterisation():
    assert PARAMETERISATIONS.names() == ["haba", "lowrank", "multiformation", "pixel"]


@pytest.mark.parametrize(
    "shape, kw, units, decoded, unit_numel, shared",
    [
        (CIFAR, dict(parameterisation="multiformation"), 1, 4, 3072, 0),  # IDC
        (MNIST, dict(parameterisation="multiformation"), 1, 4, 784, 0),
        (CIFAR, dict(parameterisation="multiformation", rank=2), 8, 32, 384, 0),  # LoIDC
        (MNIST, dict(parameterisation="multiformation", rank=2), 7, 28, 112, 0),
        (CIFAR, dict(parameterisation="multiformation", factor=3), 1, 9, 3072, 0),
        # LoHaBa: 5 hallucinators of 2*(9*3*3+3) + 2*3 = 174 numbers, paid from all 10 classes' budget
        (CIFAR, dict(parameterisation="haba", rank=2), 7, 35, 384, 870),  # (30720-870)//3840
        (MNIST, dict(parameterisation="haba", rank=2), 6, 30, 112, 110),  # (7840-110)//1120
        (CIFAR, dict(parameterisation="haba", rank=2, hallucinators=2), 7, 14, 384, 348),
    ],
)
def test_exact_counts_ipc1_ten_classes(shape, kw, units, decoded, unit_numel, shared):
    b = plan_budget(shape, ipc=1, num_classes=10, **kw)
    assert (b.images_per_class, b.decoded_per_class, b.numel_per_image, b.shared_numel) == (
        units, decoded, unit_numel, shared)
    rep = b.bytes(10)
    assert rep["stored_bytes"] == (10 * units * unit_numel + shared) * 4 <= rep["budget_bytes"]


def test_hallucinator_numel_matches_its_parameters():
    assert hallucinator_numel(CIFAR, "channel") == 2 * (81 + 3) + 2 * 3
    assert hallucinator_numel(CIFAR, "pixel") == 2 * (81 + 3) + 2 * 3 * 30 * 30  # HaBa's public code
    s = HaBaSet(3, 2, CIFAR, hallucinators=4, affine="pixel")
    hal = sum(getattr(s, k).numel() for k in s.shared_state_keys())
    assert hal == 4 * hallucinator_numel(CIFAR, "pixel") == s.numel_shared


def test_pixel_haba_at_ipc1_does_not_fit_and_says_why():
    # pixel bases fill an integer budget: the shared hallucinators cost one whole basis per class
    with pytest.raises(BudgetError, match=r"pays the 870 numbers .* use low-rank units"):
        plan_budget(CIFAR, ipc=1, num_classes=10, parameterisation="haba")
    assert plan_budget(CIFAR, ipc=2, num_classes=10, parameterisation="haba").images_per_class == 1
    with pytest.raises(BudgetError, match="give num_classes"):
        plan_budget(CIFAR, ipc=1, rank=2, parameterisation="haba")
    with pytest.raises(BudgetError, match=r"plus 870 shared numbers.*at most 7 fit"):
        plan_budget(CIFAR, ipc=1, rank=2, images_per_class=8, num_classes=10, parameterisation="haba")


def test_bad_options_are_refused():
    with pytest.raises(BudgetError, match="rank 16 is too high"):
        plan_budget(CIFAR, ipc=1, rank=16, parameterisation="multiformation")
    with pytest.raises(BudgetError, match="factor 40 is larger"):
        plan_budget(CIFAR, ipc=1, parameterisation="multiformation", factor=40)
    with pytest.raises(BudgetError, match="affine must be one of"):
        plan_budget(CIFAR, ipc=1, rank=2, num_classes=10, parameterisation="haba", affine="global")


def test_never_over_budget_and_maximal_with_shared_numbers():
    for shape, ipc, k, (name, opts) in itertools.product([MNIST, CIFAR, (3, 20, 36)], [1, 2, 3, 10], [2, 10, 100],
                                                         [kd for kd in KINDS if kd[0] != "pixel"]):
        try:
            b = plan_budget(shape, ipc=ipc, num_classes=k, parameterisation=name, **opts)
        except BudgetError:
            continue  # refused (checked above); never silently over budget
        total, unit, shared = k * ipc * math.prod(shape), b.numel_per_image, b.shared_numel
        n = b.images_per_class
        assert k * n * unit + shared <= total < k * (n + 1) * unit + shared
        s = PARAMETERISATIONS.get(name)(k, n, shape, **opts)
        assert s.stored_numel() == s.cost() == k * n * unit + shared  # the parameters ARE the count


@pytest.mark.parametrize("name, opts", KINDS)
def test_decoded_shapes_labels_and_gradients(name, opts):
    s = _build(name, opts, k=3, n=2)
    s.init_noise(torch.Generator().manual_seed(0))
    x = s()
    d = s.decoded_per_class
    assert x.shape == (3 * d, 3, 8, 8) and len(s) == 3 * d
    assert s.labels.tolist() == [c for c in range(3) for _ in range(d)]  # class-major
    (x.sin() ** 2).sum().backward()  # not scale-free, so no parameter is left without gradient
    for pname, p in s.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_multiformation_decodes_each_tile_upsampled_in_order():
    s = MultiFormationSet(2, 3, (1, 10, 10), factor=2)
    s.init_noise(torch.Generator().manual_seed(0))
    x, stored = s(), s.store.images
    assert tile_bounds(10, 2) == [(0, 5), (5, 5)] and tile_bounds(7, 3) == [(0, 3), (3, 2), (5, 2)]
    unit, (i, j) = 4, (1, 0)  # unit 4 = class 1, unit 1; tile (1, 0)
    tile = stored[unit:unit + 1, :, 5:10, 0:5]
    want = F.interpolate(tile, size=(10, 10), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(x[unit * 4 + i * 2 + j], want)
    assert s.labels[unit * 4 + i * 2 + j] == 1


def test_loidc_decodes_the_product_of_its_factors():
    s = MultiFormationSet(2, 2, (3, 8, 8), rank=2, factor=2)
    s.init_noise(torch.Generator().manual_seed(0))
    torch.testing.assert_close(s(), s.decode(s.store.A @ s.store.B))
    assert s.numel_per_unit == 3 * 2 * 16 and s.rank == 2


def test_haba_decodes_every_basis_hallucinator_pair():
    s = HaBaSet(2, 3, (3, 8, 8), rank=2, hallucinators=4)
    s.init_noise(torch.Generator().manual_seed(0))
    x, bases = s(), s.bases()
    k, j, m = 1, 2, 3
    torch.testing.assert_close(x[(k * 3 + j) * 4 + m], s.hallucinate(bases[k * 3 + j:k * 3 + j + 1], m)[0])
    assert s.labels[(k * 3 + j) * 4 + m] == k


def _smooth_images(n_per_class=8, k=2, shape=(1, 16, 16), seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand((n_per_class * k, shape[0], 4, 4), generator=g)
    imgs = F.interpolate(low, size=shape[1:], mode="bilinear", align_corners=False)
    return LabeledImages((imgs * 255).round().to(torch.uint8), torch.arange(k).repeat_interleave(n_per_class))


MEAN, STD = torch.tensor([0.5]), torch.tensor([0.25])


def test_multiformation_real_init_shrinks_real_images_into_tiles():
    data = _smooth_images()
    s = MultiFormationSet(2, 1, (1, 16, 16), factor=2)
    idx = initialise(s, "real", data, MEAN, STD, torch.Generator().manual_seed(1))
    assert len(idx) == 2 * 4 and (data.labels[idx] == s.labels).all()  # f^2 real images per unit, own class
    real = data.subset(idx).normalized(MEAN, STD)  # (8, 1, 16, 16)
    # the stored image is the four real images, each downsampled into its tile
    want_tile = F.interpolate(real[1:2], size=(8, 8), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(s.store.images[0:1, :, 0:8, 8:16], want_tile)
    err = relative_error(s().detach(), real)
    assert err < 0.3, err  # decoded = real images at half resolution
    other = relative_error(s().detach(), real.roll(1, 0))
    assert err < other / 2, (err, other)


def test_loidc_real_init_is_the_best_rank_r_fit_of_the_tiled_real_images():
    data = _smooth_images()
    s = MultiFormationSet(2, 2, (1, 16, 16), rank=2, factor=2)
    idx = initialise(s, "svd", data, MEAN, STD, torch.Generator().manual_seed(1))
    tiled = s.compose(data.subset(idx).normalized(MEAN, STD))  # (4, 1, 16, 16)
    err = torch.linalg.vector_norm(s.store().detach() - tiled, dim=(-2, -1)) ** 2  # (N, C)
    optimum = (torch.linalg.svdvals(tiled.double())[..., 2:] ** 2).sum(-1)  # Eckart-Young
    torch.testing.assert_close(err.double(), optimum, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("opts", [{"rank": 2}, {}])
def test_haba_real_init_bases_are_real_and_hallucinators_near_identity(opts):
    data = _smooth_images()
    s = HaBaSet(2, 2, (1, 16, 16), **opts)
    idx = initialise(s, "svd", data, MEAN, STD, torch.Generator().manual_seed(1))
    real = data.subset(idx).normalized(MEAN, STD)
    if not opts:
        torch.testing.assert_close(s.bases().detach(), real)
    bases = s.bases().detach().repeat_interleave(s.hallucinators, 0)  # (N*M, 1, 16, 16)
    x = s().detach()
    # every hallucinator starts near the identity on the interior (the unpadded encoder loses the border)
    assert relative_error(x[..., 1:-1, 1:-1], bases[..., 1:-1, 1:-1]) < 0.35
    assert not torch.allclose(x[0], x[1])  # but the hallucinators differ


@pytest.mark.parametrize("name, opts, exact", [("pixel", {}, True), ("lowrank", {"rank": 2}, True),
                                               ("multiformation", {}, True),
                                               ("multiformation", {"rank": 2}, False),
                                               ("haba", {"rank": 2}, False), ("haba", {}, False)])
def test_contrast_reaches_the_decoded_std_target(name, opts, exact):
    data = _smooth_images(n_per_class=12)
    s = PARAMETERISATIONS.get(name)(2, 2, (1, 16, 16), **opts)
    initialise(s, "noise", None, None, None, torch.Generator().manual_seed(0))
    classes = torch.arange(2)
    CONTRASTS.get("class_std")(s, classes, data, MEAN, STD, torch.Generator().manual_seed(5))
    target = class_image_std(data, classes, MEAN, STD, torch.Generator().manual_seed(5))  # (K,)
    got = s().detach().flatten(1).std(dim=1)  # (N,)
    if exact:
        torch.testing.assert_close(got, target[s.labels], rtol=1e-4, atol=1e-5)
    else:  # one scale per unit (factors) or per basis (shared hallucinators): right on average
        per_class = got.view(2, -1).mean(1)
        torch.testing.assert_close(per_class, target, rtol=0.1, atol=0.0)


def test_class_split_keys_and_haba_refusal():
    mf = MultiFormationSet(3, 2, (3, 8, 8), rank=2)
    mf.check_class_shardable()
    assert mf.class_state_keys() == ["store.A", "store.B"] and mf.shared_state_keys() == []
    st = mf.state_dict()
    assert all(st[k].shape[0] == 3 * 2 for k in mf.class_state_keys())
    h = HaBaSet(3, 2, (3, 8, 8), rank=2)
    assert h.class_state_keys() == ["bases.A", "bases.B"]
    assert set(h.shared_state_keys()) | set(h.class_state_keys()) | {"labels"} == set(h.state_dict())
    with pytest.raises(ConfigError, match=r"'haba' stores 870 numbers shared by all classes .* cannot be split by class"):
        h.check_class_shardable()


@pytest.mark.parametrize("name, opts", KINDS)
def test_export_columns_describe_export_tables_and_state_round_trips(name, opts):
    s = _build(name, opts)
    s.init_noise(torch.Generator().manual_seed(0))
    tables = s.export_tables()
    for col in s.export_columns():
        t = tables[col.table][col.name]
        rows = s.num_units if col.table == "units" else s.hallucinators
        assert tuple(t.shape) == (rows, *col.shape) and t.dtype == torch.float32, col
    assert "normalised with the source data" in s.how_to_decode()
    t = _build(name, opts)
    t.load_state_dict(s.state_dict())
    torch.testing.assert_close(t(), s())
    u = _build(name, opts)  # the exported columns alone rebuild the set
    u.load_export_tables({tab: {k: v.numpy() for k, v in cols.items()} for tab, cols in tables.items()})
    torch.testing.assert_close(u(), s())


# -- IDC on real MNIST ---------------------------------------------------------------------------

def _small(mnist, per_class=30):
    idx = torch.cat([torch.nonzero(mnist.train.labels == c).flatten()[:per_class] for c in range(10)])
    return ImageClassificationData(mnist.train.subset(idx), mnist.test, mnist.info)


def test_idc_step_lowers_its_loss_on_mnist(mnist):
    torch.manual_seed(0)
    data = _small(mnist)
    ctx = MatchContext(
        num_classes=10, classes=torch.arange(10), image_shape=data.image_shape, model="lodc_convnet_d1_w128",
        augment=DSAugment("none"), sampler=RealSampler(data.train, torch.arange(10), data.mean, data.std,
                                                       torch.device("cpu"), 10),
        batch_real=8, seed=0, device=torch.device("cpu"),
        options=IDCOptions(match_steps=2, n_data=40, metric="l1", batch_syn_max=4),
    )
    obj = IDCGradientMatching(ctx)
    s = MultiFormationSet(10, 1, data.image_shape, rank=2, factor=2)  # LoIDC, 4 decoded images per class
    initialise(s, "svd", data.train, data.mean, data.std, torch.Generator().manual_seed(0))
    probe = torch.optim.SGD(s.parameters(), lr=0.0)  # measures the loss without moving the set

    def measured():  # one matching round on network 0 and a fixed real batch
        obj.opt.match_steps = 1
        loss = obj.step(0, s, probe, torch.Generator().manual_seed(123))["loss"]
        obj.opt.match_steps = 2  # two rounds with a network update on real data between them
        return loss

    before = measured()
    opt = torch.optim.SGD(s.parameters(), lr=1e-3, momentum=0.5)
    for it in range(2):
        obj.step(it, s, opt, torch.Generator().manual_seed(it))
    after = measured()
    assert after < before, (before, after)
    assert all(torch.isfinite(p).all() for p in s.parameters())


def test_idc_options_are_checked():
    from hf_lodc.objectives.idc import IDCOptions
    with pytest.raises(ConfigError, match="'metric' must be one of"):  # checked when built (typed options)
        IDCOptions(metric="l3")


# -- HaBa's trajectory matching on real MNIST ---------------------------------------------------

def test_haba_objective_updates_bases_hallucinators_and_adversary(mnist, tmp_path):
    from hf_lodc.objectives.experts import ExpertConfig, train_experts
    from hf_lodc.objectives.haba import HaBaOptions, HaBaTrajectoryMatching, supervised_contrastive

    data = _small(mnist, per_class=10)
    data = ImageClassificationData(data.train, data.test.subset(torch.arange(50)), data.info)  # experts test fast
    model = "lodc_convnet_d1_w128"
    train_experts(data, ExpertConfig(model=model, num_experts=1, epochs=1, batch=50, seed=0), tmp_path,
                  progress=False)
    ctx = MatchContext(
        num_classes=10, classes=torch.arange(10), image_shape=data.image_shape, model=model,
        augment=DSAugment("none"), sampler=RealSampler(data.train, torch.arange(10), data.mean, data.std,
                                                       torch.device("cpu"), 10),
        batch_real=8, seed=0, device=torch.device("cpu"),
        options=HaBaOptions(expert_dir=str(tmp_path), syn_steps=2, expert_epochs=1, max_start_epoch=1,
                            batch_syn=10, lr_teacher=0.01),
    )
    obj = HaBaTrajectoryMatching(ctx)
    s = HaBaSet(10, 2, data.image_shape, rank=2, hallucinators=3)  # LoHaBa
    initialise(s, "svd", data.train, data.mean, data.std, torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in s.state_dict().items()}
    adv0 = [p.detach().clone() for p in obj.adversary.parameters()]
    opt = torch.optim.SGD(s.parameters(), lr=10.0, momentum=0.5)
    out = obj.step(0, s, opt, torch.Generator().manual_seed(0))
    assert math.isfinite(out["loss"]) and out["club_loss"] > 0 and out["adversary_loss"] > 0
    for k in s.class_state_keys() + s.shared_state_keys():
        assert not torch.equal(before[k], s.state_dict()[k]), k  # bases AND hallucinators moved
    assert any(not torch.equal(a, b.detach()) for a, b in zip(adv0, obj.adversary.parameters()))
    again = HaBaTrajectoryMatching(ctx)
    again.load_state_dict(obj.state_dict())  # resumable: learned lr and adversary
    for a, b in zip(again.adversary.parameters(), obj.adversary.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="needs the 'haba' parameterisation"):
        obj.step(1, LowRankSet(10, 1, data.image_shape, rank=2), opt, torch.Generator().manual_seed(1))
    # SupCon: two views that agree score lower than two unrelated views
    g = torch.Generator().manual_seed(0)
    a, c = (F.normalize(torch.randn(8, 16, generator=g), dim=-1) for _ in range(2))
    y = torch.arange(8)
    assert supervised_contrastive(torch.stack([a, a], 1), y) < supervised_contrastive(torch.stack([a, c], 1), y)


def test_method_rows_name_registered_parts_and_plan_at_cifar10_ipc1():
    import hf_lodc.objectives.haba  # noqa: F401  (registers "haba")
    import hf_lodc.objectives.idc  # noqa: F401  (registers "idc")
    from hf_lodc.methods import PARAM_METHODS
    from hf_lodc.objectives import OBJECTIVES

    planned = {}
    for spec in PARAM_METHODS:
        assert spec.objective in OBJECTIVES and spec.parameterisation in PARAMETERISATIONS
        try:
            b = plan_budget(CIFAR, ipc=1, rank=2 if spec.needs_rank else None, num_classes=10,
                            parameterisation=spec.parameterisation, **spec.param_options)
            planned[spec.name] = (b.images_per_class, b.decoded_per_class)
        except BudgetError:
            planned[spec.name] = None
    # equal storage at CIFAR-10 IPC 1: pixel HaBa cannot pay its hallucinators (see synset/haba.py)
    assert planned == {"idc": (1, 4), "idc-i": (1, 1), "loidc": (8, 32), "haba": None, "lohaba": (7, 35)}
