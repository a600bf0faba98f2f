"""Fits for tests/test_distributed.py, run under torchrun or alone.

``torchrun --standalone --nproc_per_node=N tests/distributed_worker.py OUT``
trains every case data-parallel with ``batch_size=b`` per process;
``python tests/distributed_worker.py OUT --alone N`` trains the same cases in
one process with ``batch_size=N*b``. Each process writes ``OUT/<case>_<who>.pt``
with the parameters, the weight history, the training losses and, per step,
whether its share of the batch had all-zero weights.
"""
import argparse
import os
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback
from skorch.dataset import ValidSplit

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.modules import LeNet


class ImageNet(torch.nn.Module):
    """LeNet on 12x12 images, from flat rows."""

    def __init__(self):
        super().__init__()
        self.net = LeNet(2, in_channels=1, image_size=12)

    def forward(self, X):
        return self.net(X.reshape(-1, 1, 12, 12))


class BatchNormNet(torch.nn.Module):
    def __init__(self, n_features=144):
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Linear(n_features, 16), torch.nn.BatchNorm1d(16),
                                          torch.nn.ReLU(), torch.nn.Linear(16, 2))

    def forward(self, X):
        return self.layers(X)


class ShareRecorder(Callback):
    """Per step: was this rank's share of the weights all zero, was the step skipped."""

    def __init__(self, rank, world_size):
        self.rank, self.world_size, self.steps = rank, world_size, []

    def on_batch_end(self, net, training=False, weights=None, skipped=False, **kwargs):
        if training and weights is not None:
            share = weights[self.rank::self.world_size]
            self.steps.append((len(share), bool(share.any()), bool(skipped)))


class StartScale(Callback):
    """float16: start the loss scale where float16 overflows, so that the first steps skip."""

    def on_train_begin(self, net, **kwargs):
        net.loss_scale_.factor = 2.0**24


def data(n_rows, noise=0.3, seed=0):
    X, y = make_classification(n_samples=n_rows + 20, n_features=144, n_informative=10,
                               weights=[0.8, 0.2], random_state=seed)
    X = X.astype(np.float32)
    rng = np.random.default_rng(seed)
    y_noisy = y.copy()
    flip = rng.random(len(y)) < noise
    y_noisy[flip] = 1 - y_noisy[flip]
    clean = np.r_[np.flatnonzero(y == 0)[:10], np.flatnonzero(y == 1)[:10]]
    train = np.setdiff1d(np.arange(len(y)), clean)
    return X[train], y_noisy[train], X[clean], y[clean]


SGD = dict(optimizer=torch.optim.SGD, optimizer__momentum=0.9, lr=0.05)
# name: (rows, batch size per process, estimator parameters)
CASES = {
    "mlp_layerwise": (203, 16, dict(meta_engine="layerwise", **SGD)),
    "mlp_jvp": (203, 16, dict(meta_engine="jvp", train_split=ValidSplit(5), **SGD)),
    "cnn_layerwise": (101, 8, dict(module=ImageNet, meta_engine="layerwise", **SGD)),
    "cnn_jvp": (101, 8, dict(module=ImageNet, meta_engine="jvp", **SGD)),
    # batches of 2 per process and 41 rows: a last batch of one row leaves rank 1 none,
    # noisy labels leave some ranks' shares (and some whole batches) at weight 0
    "paper_exact_tiny_batches": (41, 2, dict(weighting="paper", **{**SGD, "lr": 0.01})),
    "options": (203, 16, dict(clean_weight=0.5, weight_smoothing=0.9, weight_shrinkage=0.1,
                              clean_sampling="stratified", clean_batch_size=8, finetune_epochs=1,
                              clean_trim=1, clean_cap=1.0, unlearning_tolerance=0.001, lr=0.01)),
    # SGD: the meta-net's weights agree across ranks to 1e-6, but Adam turns the float-order
    # differences of gradients near zero into steps of about lr (1.4e-4 apart after 3 epochs)
    "meta_net": (203, 16, dict(weighting="meta_net", **SGD)),
    "batch_norm": (203, 16, dict(module=BatchNormNet, lr=0.01)),
    "unseeded": (203, 16, dict(lr=0.01, random_state=None)),
    "float16": (203, 16, dict(autocast_dtype=torch.float16, lr=0.01)),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--alone", type=int, metavar="N", help="one process, batches of N * b")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.alone:  # the script's own group (examples/scale/distributed.py leaves it to the estimator)
        torch.distributed.init_process_group("gloo")
    scale = args.alone or 1
    for name, (n_rows, batch_size, params) in CASES.items():
        X, y, X_clean, y_clean = data(n_rows)
        params = {"random_state": 0, "max_epochs": 3, **params}
        net = ReweightedNeuralNetClassifier(batch_size=batch_size * scale, **params)
        rank = int(os.environ.get("RANK", 0))
        world_size = int(os.environ.get("WORLD_SIZE", 1))
        recorder = ShareRecorder(rank, world_size)
        start_scale = [("scale", StartScale())] if params.get("autocast_dtype") is torch.float16 else []
        net.set_params(callbacks=[("shares", recorder), *start_scale])
        net.fit(X, y, X_clean=X_clean, y_clean=y_clean)
        who = "alone" if args.alone else f"rank{rank}"
        torch.save({
            "params": {k: v.detach().cpu() for k, v in net.module_.state_dict().items()},
            "weights": net.sample_weights_,
            "alignments": net.sample_alignments_,
            "train_loss": [row["train_loss"] for row in net.history],
            "skipped": net.history[:, "skipped_batches"],
            "steps": recorder.steps,
            "engine": repr(net.meta_engine_),
            "proba": net.predict_proba(X),
            "overflows": [row.get("overflow_steps") for row in net.history],
        }, args.out / f"{name}_{who}.pt")
    # a search's workers inherit torchrun's environment but train alone; the refit, here, is
    # data parallel
    search = GridSearchCV(ReweightedNeuralNetClassifier(max_epochs=1, random_state=0), {"lr": [1e-3, 1e-2]},
                          cv=2, n_jobs=2).fit(X, y, X_clean=X_clean, y_clean=y_clean)
    torch.save({"best": search.best_params_, "scores": search.cv_results_["mean_test_score"],
                "engine": repr(search.best_estimator_.meta_engine_)}, args.out / f"search_{who}.pt")
    # every rank must be given the same data: here rank 1's clean labels are the others' flipped
    X, y, X_clean, y_clean = data(41)
    try:
        ReweightedNeuralNetClassifier(max_epochs=1, random_state=0).fit(
            X, y, X_clean=X_clean, y_clean=1 - y_clean if rank == 1 else y_clean)
        message = None
    except ValueError as exc:
        message = str(exc)
    torch.save({"message": message}, args.out / f"mismatch_{who}.pt")
    # a rank whose data fails validation (here rank 1's clean rows have a feature fewer) stops every rank
    try:
        ReweightedNeuralNetClassifier(max_epochs=1, random_state=0).fit(
            X, y, X_clean=X_clean[:, :-1] if rank == 1 else X_clean, y_clean=y_clean)
        message = None
    except ValueError as exc:
        message = str(exc)
    torch.save({"message": message}, args.out / f"invalid_{who}.pt")


if __name__ == "__main__":
    main()
