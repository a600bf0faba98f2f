"""The demo's task over seeds: long-tailed digits with 30% flipped labels.

``sk-reweight demo`` trains on one draw of this task; here every seed draws
its own (``sk_reweight.cli.make_demo_data``: digits, a 5-per-class clean set
held out first, the rest long-tailed with imbalance factor 20, then 30% of
the labels flipped uniformly; 10 classes, the smallest with a handful of
examples, many of them flipped in from the large classes) and trains the
demo's methods with its recipe (``make_demo_methods``: an MLP, Adam, 60
epochs at a constant lr). This is where an option that keeps a whole class
in training can bring the flipped labels back, so besides accuracy it
reports, for the reweighting rows, how well the weights still tell the
flipped labels: the ROC AUC of the mean weight over the run and over the
last 10 epochs, and the flipped examples' mean weight in the first and the
last 10 epochs (1 is uniform; a climb is the weights fading). A paired table
gives the default's wins, ties and losses over the seeds.

Run ``python benchmarks/long_tail_noise.py`` (``--seeds``, ``--epochs``,
``--methods``, ``--n-jobs``; ``--default-params`` changes the default rows'
options, ``--name`` the results file; ``--quick`` for a smoke test).
"""
import argparse

import numpy as np
import pandas as pd
import torch
from _harness import (
    DEFAULT,
    PAPER,
    add_common_arguments,
    add_method_arguments,
    default_params_note,
    map_cells,
    paired_table,
    paper_and_default,
    publish,
    run_methods,
)
from sklearn.metrics import roc_auc_score

from sk_reweight.cli import make_demo_data, make_demo_methods

WEIGHT_COLUMNS = ("weight_auc", "late_weight_auc", "flipped_weight_early", "flipped_weight_late")


def weight_signal(net, flipped, window=10):
    """How the recorded weights rank the flipped labels, over the run and late in it."""
    weights = net.sample_weights_
    early, late = np.nanmean(weights[:window], axis=0), np.nanmean(weights[-window:], axis=0)
    return dict(weight_auc=roc_auc_score(flipped, -np.nanmean(weights, axis=0)),
                late_weight_auc=roc_auc_score(flipped, -late),
                flipped_weight_early=float(np.nanmean(early[flipped])),
                flipped_weight_late=float(np.nanmean(late[flipped])))


def run_seed(seed, args):
    data = make_demo_data(seed)
    methods = paper_and_default(
        lambda names, params: make_demo_methods(seed, args.device, names, args.epochs, params),
        args.methods, args.default_params)
    minority = int(np.argmin(np.bincount(data["y_train"], minlength=10)))
    results = run_methods(methods, data, minority, log=lambda line: print(f"seed {seed}{line}", flush=True))
    for name in (DEFAULT, PAPER):
        if name in methods:
            results[name].update(weight_signal(methods[name], data["flipped"]))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, quick_help="2 seeds, 4 epochs: a smoke test")
    parser.add_argument("--epochs", type=int, default=60)
    add_method_arguments(parser, "long_tail_noise")
    parser.set_defaults(seeds=10)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = 2, 4
    torch.set_num_threads(args.threads)
    per_seed = map_cells(run_seed, [(seed, args) for seed in range(args.seeds)], args.n_jobs)
    rows = pd.DataFrame([{"method": m, "dataset": "long_tail_noise", "seed": seed, **metrics}
                         for seed, result in enumerate(per_seed) for m, metrics in result.items()])
    columns = ["accuracy", "balanced_accuracy", "macro_f1", *WEIGHT_COLUMNS]
    means = rows.groupby("method", sort=False)[[c for c in columns if c in rows]].mean()
    means = means.sort_values("balanced_accuracy", ascending=False)
    lines = ["| method | " + " | ".join(c.replace("_", " ") for c in means.columns) + " |",
             "|---|" + "---|" * len(means.columns)]
    lines += [f"| {method} | " + " | ".join("-" if np.isnan(v) else f"{v:.3f}" for v in row) + " |"
              for method, row in means.iterrows()]
    header = (f"Long-tailed digits, 30% flipped labels (the demo's task), {args.seeds} seeds, "
              f"{args.epochs} epochs; mean over seeds, {args.n_jobs} worker(s) with one torch thread "
              f"each.{default_params_note(args)}\n\n")
    paired, _ = paired_table(rows, "balanced_accuracy", cell="(task, seed)")
    table = header + "\n".join(lines) + "\n" + paired
    publish(args.name, table, {"rows": rows.to_dict(orient="records")}, args)
    return rows


if __name__ == "__main__":
    main()
