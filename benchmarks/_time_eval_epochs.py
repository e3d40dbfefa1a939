#!/usr/bin/env python
"""Child of ``bench_speed.py epoch``: time evaluation training epochs of whatever hf_lodc is on PYTHONPATH
(this tree, or a worktree of an older commit), printing one JSON line.

The set is the LoDM IPC 1 rank-2 set size (CIFAR-10: 8 images/class, MNIST: 7), here real training
images (timing does not depend on the pixels), trained with the protocol (batch 256, DSA, SGD) by
``evaluate_synthetic`` with one ConvNet-3, sequential backend, tested on 500 real test images. It runs
1 epoch (warm-up and any one-off compile), then 1 epoch and ``1 + E`` epochs timed: the difference is E
training epochs exactly (both timed calls pay the same set-up and test pass).

    python benchmarks/_time_eval_epochs.py uoft-cs/cifar10 8 30 '{"eval_mixed_precision": "bf16"}'

Uses only APIs every version since the base commit (cc32760) has; the optional JSON object adds
``EvalConfig`` fields (this tree only).
"""

import json
import sys
import time

import torch


def main() -> int:
    dataset, per_class, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    extra = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    from hf_lodc.data.types import LabeledImages, normalize
    from hf_lodc.engine.config import EvalConfig, RunConfig
    from hf_lodc.engine.evaluate import evaluate_synthetic
    from hf_lodc.pipeline import load_data

    data = load_data(RunConfig.from_flat({"dataset": dataset, "max_per_class": 300}).data)
    idx = torch.cat([torch.nonzero(data.train.labels == c).flatten()[:per_class] for c in range(data.num_classes)])
    images = normalize(data.train.images[idx], data.mean, data.std)  # (K * per_class, C, H, W)
    labels = data.train.labels[idx]
    test = LabeledImages(data.test.images[:500], data.test.labels[:500])

    def run(e: int) -> tuple[float, float, float]:
        cfg = EvalConfig(eval_models=["convnet"], eval_runs=1, eval_epochs=e, eval_backend="sequential", **extra)
        t0, c0 = time.perf_counter(), time.process_time()
        rec = evaluate_synthetic(images, labels, test, data.mean, data.std, data.num_classes, cfg, seed=0)["convnet"]
        return time.perf_counter() - t0, time.process_time() - c0, rec.accuracies[0]

    warm = run(1)
    one, more = run(1), run(1 + epochs)
    print(json.dumps({"seconds_per_epoch": (more[0] - one[0]) / epochs, "cpu_seconds_per_epoch": (more[1] - one[1]) / epochs,
                      "epochs": epochs, "images": int(images.shape[0]), "image_shape": list(images.shape[1:]),
                      "num_classes": data.num_classes, "first_call_s": warm[0], "threads": torch.get_num_threads(),
                      "extra": extra, "hf_lodc": sys.modules["hf_lodc"].__file__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
