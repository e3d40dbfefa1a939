"""Bit-identity check across refactors: tiny condensations of every method + evaluation.

Run from the repo root:  HF_LODC_LOCAL_HUB=../shared/hub python benchmarks/bit_identity.py OUT.json
Compare: python benchmarks/bit_identity.py --compare benchmarks/results/bit_identity_base.json OUT.json
(the base file was written by this script on commit 37f64cd: before the issue-10 restructuring except the
pure move of the data types into data/types.py)
Uses only the public API hf_lodc.load_image_classification / condense / evaluate_synthetic / EvalConfig.
"""
import hashlib, json, sys
import torch

def h(t):
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]

def main(out):
    import hf_lodc
    torch.set_num_threads(1)
    data = hf_lodc.load_image_classification("ylecun/mnist", max_per_class=40)
    small_test = hf_lodc.LabeledImages(data.test.images[:300], data.test.labels[:300])
    rows = {}
    cases = [
        ("lodm", dict(ipc=1, rank=2, iterations=3, batch_real=8)),
        ("dm", dict(ipc=1, iterations=3, batch_real=8)),
        ("lodc", dict(ipc=1, rank=2, iterations=2, batch_real=8)),
        ("dc", dict(ipc=2, iterations=2, batch_real=8, outer_loop=2, inner_loop=1)),
        ("lodsa", dict(ipc=1, rank=2, iterations=2, batch_real=8)),
        ("random", dict(ipc=1)),
        ("herding", dict(ipc=1)),
        ("lorandom", dict(ipc=1, rank=2)),
    ]
    for method, kw in cases:
        res = hf_lodc.condense(data, method=method, progress=False, **kw)
        st = {k: h(v) for k, v in sorted(res.synset.state_dict().items())}
        ec = hf_lodc.EvalConfig(eval_runs=2, eval_epochs=2, eval_batch=64)
        recs = hf_lodc.evaluate_synthetic(res.images(), res.labels, small_test, data.mean, data.std,
                                          data.num_classes, ec, seed=0)
        rows[method] = {"state": st, "acc": recs["convnet"].accuracies,
                        "loss": [r["loss"] for r in res.history]}
        print(method, rows[method], flush=True)
    json.dump(rows, open(out, "w"), indent=1)

if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        a, b = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
        bad = 0
        for m in a:
            if m not in b: print("MISSING", m); bad += 1; continue
            for k in ("state", "acc", "loss"):
                if a[m][k] != b[m][k]:
                    print("DIFF", m, k, a[m][k], b[m][k]); bad += 1
        print("IDENTICAL" if not bad else f"{bad} differences"); sys.exit(1 if bad else 0)
    main(sys.argv[1])
