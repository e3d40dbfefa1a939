"""Distribution matching's synthetic pass in groups of classes (``syn_chunk``): the same bits as one pass,
chosen on its own when one pass would not fit in memory (hf_lodc/objectives/dm.py)."""

from __future__ import annotations

import pytest
import torch

import hf_lodc
from hf_lodc.objectives import dm
from tests.datasets_factory import make_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = make_dataset(tmp_path_factory.mktemp("synchunk") / "d", per_class={"train": 12, "test": 2})
    return hf_lodc.load_image_classification(str(path), cache=False)


def _factors(data, **kw):
    res = hf_lodc.condense(data, method="lodm", ipc=1, rank=2, iterations=3, batch_real=4, progress=False, **kw)
    return res.synset.state_dict(), [h["loss"] for h in res.history]


def test_classes_in_groups_give_the_bits_of_one_pass(tiny):
    whole, loss = _factors(tiny, syn_chunk=0)
    for per_pass in (1, 2):
        grouped, grouped_loss = _factors(tiny, syn_chunk=per_pass)
        assert sorted(grouped) == sorted(whole)
        assert all(torch.equal(grouped[k], whole[k]) for k in whole), per_pass
        assert grouped_loss == pytest.approx(loss, rel=1e-6)


def test_a_pass_that_would_not_fit_is_split_on_its_own(tiny, monkeypatch, capsys):
    whole, _ = _factors(tiny)  # unset: one pass fits easily here
    assert "classes per pass" not in capsys.readouterr().out
    per_image = {}
    real = dm._activation_bytes

    def measured(net, x, held=True):
        if not held:  # the real pass's estimate
            return real(net, x, held=False)
        per_image["bytes"] = real(net, x)
        return per_image["bytes"]

    monkeypatch.setattr(dm, "_activation_bytes", measured)
    # free memory for about one image's pass: the step must split (one class per pass), and say so once
    monkeypatch.setattr(dm, "_free_memory", lambda device: int(per_image["bytes"] / dm.SYN_PASS_SHARE) + 1
                        if per_image else None)
    grouped, _ = _factors(tiny, real_chunk=0)  # the real pass whole: only the synthetic one is grouped
    out = capsys.readouterr().out
    assert out.count("classes per pass (syn_chunk)") == 1 and "[dm] one synthetic pass of" in out
    assert "1 classes per pass" in out
    assert all(torch.equal(grouped[k], whole[k]) for k in whole)


def test_activation_estimate_leaves_the_network_as_it_was():
    from hf_lodc.models import create_eval_model

    net = create_eval_model("convnet", num_classes=3, in_chans=1, img_size=(8, 8))
    net.train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(1, 1, 8, 8)
    rng = torch.get_rng_state()
    n = dm._activation_bytes(net, x)
    assert n > 0 and net.training
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())


def test_a_real_pass_that_would_not_fit_is_chunked_on_its_own_with_the_same_bits(tiny, monkeypatch, capsys):
    whole, loss = _factors(tiny)  # unset: one real pass fits easily here
    assert "images per pass (real_chunk)" not in capsys.readouterr().out
    sizes = []
    real = dm._activation_bytes

    def measured(net, x, held=True):
        n = real(net, x, held=held)
        if not held:
            sizes.append(n)
        return n

    monkeypatch.setattr(dm, "_activation_bytes", measured)
    # free memory for about 3 real images at once (and the synthetic pass in groups): chunks of 3
    monkeypatch.setattr(dm, "_free_memory", lambda device: int(3.5 * sizes[0] / dm.REAL_PASS_SHARE) if sizes else None)
    chunked, chunked_loss = _factors(tiny)
    out = capsys.readouterr().out
    assert out.count("images per pass (real_chunk)") == 1 and ": 3 images per pass" in out, out
    # the same sums in chunks: equal here, but a chunk's size may pick other kernels, so not promised bit for bit
    assert all(torch.allclose(chunked[k], whole[k], rtol=1e-5, atol=1e-6) for k in whole)
    assert chunked_loss == pytest.approx(loss, rel=1e-5)
    # set by hand, the option wins: one pass (0) says nothing
    _factors(tiny, real_chunk=0)
    assert "real_chunk" not in capsys.readouterr().out


def test_compiled_passes_in_groups_match_one_compiled_pass(tiny):
    """With ``compile`` the groups' backward runs through a compiled graph, which frees its buffers and
    refuses ``retain_graph``: the groups backpropagate into the decoded images, and the decoding once."""
    if not hasattr(torch, "compile"):
        pytest.skip("this torch has no torch.compile")
    kw = dict(compile=True, matching_model="lodc_convnet_d1_w128")  # ConvNet-1 keeps the compile short
    whole, loss = _factors(tiny, syn_chunk=0, **kw)
    grouped, grouped_loss = _factors(tiny, syn_chunk=1, **kw)
    assert grouped_loss == pytest.approx(loss, rel=1e-5)
    for k in whole:  # another batch size may pick other fused kernels: equal to float tolerance
        torch.testing.assert_close(grouped[k], whole[k], rtol=1e-4, atol=1e-6)
