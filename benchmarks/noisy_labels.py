"""Noisy labels on MNIST and Fashion-MNIST: every method, uniform and background flips.

Per dataset, noise type (40% uniform flip to another class, or 40% flipped to
one background class, class 0), clean-set size (100 or 1,000, balanced) and
seed: ``--n-train`` training images drawn from the training split, the clean
set drawn from the rest *before* corruption, the full test split untouched.
Every method of ``sk_reweight.baselines`` trains LeNet with SGD (momentum
0.9, lr ``--lr``) under a cosine learning-rate schedule that ends at zero
(``--schedule constant``: the same lr throughout, so that a long run cannot
hide a late decay behind a vanishing learning rate);
``reweight`` runs with the estimator's default options, ``reweight_paper``
in the paper-exact setting (``weighting="paper"``).
Reported: test accuracy (mean ± std over seeds) and, for reweighting, the
ROC AUC of its weights as a detector of the flipped examples; then the
default against each method over the (setting, seed) cells, with a sign test.

Run ``python benchmarks/noisy_labels.py`` (``--quick``, ``--seeds``,
``--epochs``, ``--schedule``, ``--n-train``, ``--n-jobs``, ``--device``, ``--methods``,
``--name``, ``--default-params``).
The defaults (3,000 training images, 8 epochs) are sized so that the full
grid (2 sets x 2 noises x 2 clean sizes x 3 seeds x 11 methods) fits a
developer session on 2 CPU cores; the wall time is in the table's header.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _harness import (
    DEFAULT,
    PAPER,
    add_common_arguments,
    add_method_arguments,
    aggregate,
    bar_chart,
    default_params_note,
    map_cells,
    markdown_table,
    paired_table,
    paper_and_default,
    publish,
    run_methods,
)
from skorch.callbacks import LRScheduler

from sk_reweight.baselines import make_baselines
from sk_reweight.corruption import flip_labels_background, flip_labels_uniform, train_clean_split
from sk_reweight.datasets import load_fashion_mnist, load_mnist
from sk_reweight.modules import LeNet

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LOADERS = {"mnist": load_mnist, "fashion-mnist": load_fashion_mnist}


def make_split(name, noise_kind, clean_size, seed, n_train, rate=0.4):
    path = SHARED / name if (SHARED / name).is_dir() else None
    X, y = LOADERS[name](path, split="train")
    X_test, y_test = LOADERS[name](path, split="test")
    rng = np.random.RandomState(seed)
    pool = rng.choice(len(y), n_train + clean_size, replace=False)
    X_train, X_clean, y_train, y_clean = train_clean_split(X[pool], y[pool], clean_size, random_state=seed)
    if noise_kind == "uniform":
        y_noisy, corrupted = flip_labels_uniform(y_train, rate, random_state=seed)
    else:
        y_noisy, corrupted = flip_labels_background(y_train, rate, target_class=0, random_state=seed)
    return dict(X_train=X_train, y_train=y_noisy, corrupted=corrupted, X_clean=X_clean,
                y_clean=y_clean, X_test=X_test, y_test=y_test)


def run_cell(name, noise, clean_size, seed, args, include):
    """Every method on one (data set, noise, clean size, seed) split."""
    data = make_split(name, noise, clean_size, seed, args.n_train)

    def build(names, reweight_params):
        return make_baselines(
            LeNet, module_params=dict(n_classes=10), sample_shape=(1, 28, 28), lr=args.lr,
            optimizer=torch.optim.SGD, optimizer_params=dict(momentum=0.9),
            max_epochs=args.epochs, batch_size=100, random_state=seed, device=args.device,
            include=names, reweight_params=reweight_params)

    methods = paper_and_default(build, include, args.default_params)
    if args.schedule == "cosine":
        schedule = LRScheduler(policy="CosineAnnealingLR", T_max=args.epochs)
        for est in methods.values():  # every method gets the same schedule
            _add_callback(est, schedule)
    tag = f"{name}/{noise}/{clean_size}/{seed}"
    return run_methods(methods, data, minority=0, log=lambda line: print(tag + line, flush=True))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(LOADERS))
    parser.add_argument("--noise", nargs="+", default=["uniform", "background"])
    parser.add_argument("--clean-sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--schedule", choices=["cosine", "constant"], default="cosine")
    add_method_arguments(parser, "noisy_labels")
    add_common_arguments(parser, quick_help="1 seed, 1 epoch, 500 images, 4 methods")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.datasets, args.noise, args.clean_sizes = args.datasets[:1], args.noise, args.clean_sizes[:1]
        args.seeds, args.epochs, args.n_train = 1, 1, 500
    include = ["plain", "finetune", PAPER, DEFAULT] if args.quick else args.methods
    start = time.perf_counter()
    cells = [(name, noise, clean_size, seed) for name in args.datasets for noise in args.noise
             for clean_size in args.clean_sizes for seed in range(args.seeds)]
    results = map_cells(run_cell, [(*cell, args, include) for cell in cells], args.n_jobs)
    rows, payload, cell_rows = [], {}, []
    for name in args.datasets:
        for noise in args.noise:
            for clean_size in args.clean_sizes:
                setting = f"{name}, 40% {noise}, {clean_size} clean"
                per_seed = [r for cell, r in zip(cells, results) if cell[:3] == (name, noise, clean_size)]
                payload[setting] = stats = aggregate(per_seed)
                rows += [(setting, m, s) for m, s in stats.items()]
                cell_rows += [{"dataset": setting, "seed": seed, "method": m, "accuracy": r["accuracy"]}
                              for seed, result in enumerate(per_seed) for m, r in result.items()]
    minutes = (time.perf_counter() - start) / 60
    schedule = f"cosine schedule from lr {args.lr}" if args.schedule == "cosine" else f"constant lr {args.lr}"
    header = (f"{args.seeds} seed(s), {args.n_train} training images, {args.epochs} epochs ({schedule}), "
              f"accuracy on the full test split, mean ± std. Wall time: "
              f"{minutes:.1f} min on {args.device} ({args.n_jobs} process(es))."
              f"{default_params_note(args)}\n\n")
    table = header + markdown_table(rows, ["accuracy", "weight_auc", "seconds"], row_label="setting")
    if include is None or DEFAULT in include:
        paired, summary = paired_table(pd.DataFrame(cell_rows), "accuracy", cell="(setting, seed)")
        table += paired
        payload["paired"] = summary.to_dict(orient="records")
    publish(args.name, table, payload, args, figure=lambda path: plot(payload, path))
    return payload


def plot(payload, path):
    settings = {k: v for k, v in payload.items() if k != "paired"}
    bar_chart(settings, "accuracy", path, "Noisy labels (40%): test accuracy")


def _add_callback(estimator, callback):
    """Give a baseline's network (wherever it sits) one more callback."""
    from sklearn.base import clone

    params = estimator.get_params()
    for key in params:
        if key == "callbacks" or key.endswith("__callbacks"):
            current = params[key] or []
            estimator.set_params(**{key: [*current, clone(callback)]})
            return
    raise ValueError(f"No network with callbacks in {type(estimator).__name__}.")


if __name__ == "__main__":
    main()
