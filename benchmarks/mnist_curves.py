"""MNIST 4-vs-9 over long runs: test accuracy after every epoch's worth of steps.

The protocol of ``mnist_imbalance.py`` (Figure 2 of Ren et al., 2018: 5,000
training images with a share p of nines, 10 clean images, LeNet, SGD with
momentum 0.9 at a constant lr 1e-3, batch 100), trained for ``--epochs``
(80 = 4,000 steps by default; the paper's ~8,000 steps are 160) while the
test accuracy is recorded after each epoch's worth of optimizer steps (50
for 5,000 images; a sampler's network, which sees another number of rows
per epoch, is measured at the same steps), so a method whose accuracy
decays late shows it. Per proportion and method the table gives the mean
over seeds of: the last 10 epochs' accuracy, the best 10-epoch window and
their difference (the decay), and the final accuracy. ``reweight`` is the
estimator's default (Algorithm 1 with the unlearning guard,
``UnlearningGuard(0.1)``, and since 2026-12-07 the cross-fitted trust,
``weighting='cross_fit'``), ``reweight_paper`` Algorithm 1 as published;
``reweight_smooth_clean`` the options that were the default before 0.2
(the stages ``Smoothing(0.9)`` and ``CleanLoss(1.0)``); ``reweight_trim`` the
default with trimmed alignments (``Weighting(..., clean_trim=1)``);
``reweight_cap`` with capped ones (``clean_cap=1.0``).

Run ``python benchmarks/mnist_curves.py --n-jobs 2`` (``--quick`` for a
smoke test). ``--pool FILE:METHOD=LABEL ...`` trains nothing: it pools the
last-10-epoch accuracy per seed of earlier result files (``FILE`` names
``results/FILE.json``) under labels, and compares each label with the first
one seed by seed at every proportion (mean difference, wins/ties/losses and a
two-sided sign test), so that runs over different seed sets, or a method that
ran under another name when it was the default, add up to one comparison.
"""
import argparse
import json
import re
import time
from functools import partial

import numpy as np
import torch
from _harness import (
    DEFAULT,
    RESULTS,
    add_common_arguments,
    add_method_arguments,
    default_params_note,
    map_cells,
    paper_and_default,
    publish,
    pyplot,
    where_it_ran,
)
from mnist_imbalance import PROPORTIONS, SHARED, make_split
from skorch.callbacks import Callback

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.baselines import make_baselines
from sk_reweight.datasets import load_mnist
from sk_reweight.modules import LeNet
from sk_reweight.weighting import AlignmentWeighting, CleanLoss, CrossFitTrust, Smoothing, UnlearningGuard, Weighting

WINDOW = 10
# reweighting with other options, run under their own names
VARIANTS = {
    "reweight_smooth_clean": {"weighting": Weighting(AlignmentWeighting(), [
        Smoothing(0.9), UnlearningGuard(0.1), CleanLoss(1.0), CrossFitTrust()])},
    "reweight_trim": {"weighting": Weighting(AlignmentWeighting(), [UnlearningGuard(0.1), CrossFitTrust()],
                                             clean_trim=1)},
    "reweight_cap": {"weighting": Weighting(AlignmentWeighting(), [UnlearningGuard(0.1), CrossFitTrust()],
                                            clean_cap=1.0)},
}


class TestAccuracy(Callback):
    """Records the test accuracy after every ``every`` optimizer steps (class order as in ``classes_``).

    Counting steps rather than epochs puts every method on one axis: a
    sampler's network sees more (or fewer) rows per epoch and so takes the
    same step budget in other epochs (``make_baselines``). The accuracies
    are in ``curve``, at most ``points`` of them.
    """

    def __init__(self, X, y, every, points):
        self.X, self.y, self.every, self.points = X, y, every, points

    def on_train_begin(self, net, **kwargs):
        self.steps, self.curve = 0, []

    def on_batch_end(self, net, training=False, **kwargs):
        if not training or net.history[-1].get("stage", "reweight") != "reweight":
            return
        self.steps += 1
        if self.steps % self.every == 0 and len(self.curve) < self.points:
            target = np.searchsorted(np.unique(self.y), self.y)
            self.curve.append(float((net.predict_proba(self.X).argmax(1) == target).mean()))


def _network(estimator, fitted=False):
    """The skorch net that trains: the estimator itself, or the one a baseline wraps."""
    if isinstance(estimator, ReweightedNeuralNetClassifier):
        return estimator
    net = estimator.estimator_ if fitted else estimator.estimator
    return net[-1] if hasattr(net, "steps") else net  # a sampler pipeline ends with the net


def build_methods(names, reweight_params, args, seed):
    """The protocol's methods (``make_baselines``): LeNet, SGD momentum 0.9, lr 1e-3, batch 100."""
    return make_baselines(LeNet, module_params=dict(n_classes=2), sample_shape=(1, 28, 28), lr=1e-3,
                          optimizer=torch.optim.SGD, optimizer_params=dict(momentum=0.9),
                          max_epochs=args.epochs, batch_size=100, random_state=seed,
                          device=args.device, include=names, reweight_params=reweight_params)


def load_split(proportion, seed, args, quick):
    """The run's split of MNIST 4-vs-9 (300 training images with ``quick``, else 5,000)."""
    X, y = load_mnist(args.data, split="train")
    X_test, y_test = load_mnist(args.data, split="test")
    return make_split(X, y, X_test, y_test, proportion, seed, n_train=300 if quick else 5000)


def run_cell(proportion, seed, args, quick):
    data = load_split(proportion, seed, args, quick)
    build = partial(build_methods, args=args, seed=seed)
    methods = paper_and_default(build, [m for m in args.methods if m not in VARIANTS], args.default_params)
    methods.update({m: build([DEFAULT], VARIANTS[m])[DEFAULT] for m in args.methods if m in VARIANTS})
    curves = {}
    steps_per_epoch = -(-len(data["y_train"]) // 100)  # batches of 100 over the training set
    for name, est in methods.items():
        recorder = TestAccuracy(data["X_test"], data["y_test"], every=steps_per_epoch, points=args.epochs)
        _network(est).set_params(callbacks=[("test_acc", recorder)])
        est.fit(data["X_train"], data["y_train"], X_clean=data["X_clean"], y_clean=data["y_clean"])
        curves[name] = dict(_network(est, fitted=True).callbacks_)["test_acc"].curve  # fit used a clone
        print(f"p={proportion} seed={seed} {name:15s} last {WINDOW}: {np.mean(curves[name][-WINDOW:]):.4f}",
              flush=True)
    return curves


def summarize(curves, window=WINDOW):
    """Per method: mean over seeds of last-window accuracy, best window, decay, final."""
    out = {}
    for name, per_seed in curves.items():
        mean_curve = np.mean(per_seed, axis=0)
        w = min(window, len(mean_curve))
        windows = np.convolve(mean_curve, np.ones(w) / w, mode="valid")
        out[name] = {"last_window": float(windows[-1]), "best_window": float(windows.max()),
                     "decay": float(windows.max() - windows[-1]), "final": float(mean_curve[-1]),
                     "last_window_per_seed": [float(np.mean(c[-w:])) for c in per_seed]}
    return out


def table(summary):
    lines = [f"| share of nines | method | last {WINDOW} epochs | best {WINDOW}-epoch window | decay | "
             "final | last 10 per seed |", "|---|---|---|---|---|---|---|"]
    for p, methods in summary.items():
        best = max(s["last_window"] for s in methods.values())
        for name, s in methods.items():
            last = f"{s['last_window']:.4f}"
            lines.append(f"| {p} | {name} | {'**' + last + '**' if s['last_window'] == best else last} | "
                         f"{s['best_window']:.4f} | {s['decay']:.4f} | {s['final']:.4f} | "
                         + " / ".join(f"{v:.3f}" for v in s["last_window_per_seed"]) + " |")
    return "\n".join(lines) + "\n"


def _seeds(stem, payload, n):
    """The seeds of a result file: recorded in it, or (older files) read from its table's header."""
    if "seeds" in payload:
        return payload["seeds"]
    found = re.search(r"seeds? (\d+)(?:-(\d+))?,", stem.with_suffix(".md").read_text())
    if found is None:
        raise ValueError(f"{stem}.json records no seeds and its table's header names none.")
    first = int(found.group(1))
    return list(range(first, first + n))


def pool(specs, results=RESULTS):
    """Rows (label, proportion, seed, last-window accuracy) from ``FILE:METHOD=LABEL`` specs."""
    rows = []
    for spec in specs:
        found = re.fullmatch(r"([^:]+):([^=]+)=(.+)", spec)
        if found is None:
            raise ValueError(f"--pool takes FILE:METHOD=LABEL, got {spec!r}.")
        name, method, label = found.groups()
        stem = results / name
        payload = json.loads(stem.with_suffix(".json").read_text())
        before = len(rows)
        for p, methods in payload["summary"].items():
            if method not in methods:
                continue
            per_seed = methods[method]["last_window_per_seed"]
            for seed, value in zip(_seeds(stem, payload, len(per_seed)), per_seed):
                rows.append({"method": label, "dataset": float(p), "seed": seed, "last_window": value})
        if len(rows) == before:
            raise ValueError(f"{name} has no method {method!r}.")
    if len({(r["method"], r["dataset"], r["seed"]) for r in rows}) < len(rows):
        raise ValueError("--pool gives one (label, proportion, seed) twice; each seed may come from one file only.")
    return rows


def pooled_table(rows):
    """Markdown: each label against the first one, per proportion, over the seeds both have."""
    import pandas as pd

    from sk_reweight.comparison import paired_summary

    results = pd.DataFrame(rows)
    reference = results["method"].iloc[0]
    lines = [f"| share of nines | label | seeds | mean last {WINDOW} | `{reference}` mean | `{reference}` minus it "
             "(points) | wins | ties | losses | p |", "|---|---|---|---|---|---|---|---|---|---|"]
    summaries = {}
    for p, cells in results.groupby("dataset", sort=True):
        if reference not in set(cells["method"]):
            continue
        summaries[p] = summary = paired_summary(cells, reference=reference, metric="last_window")
        for row in summary.itertuples():
            lines.append(f"| {p:g} | {row.method} | {row.n_cells} | {row.mean:.4f} | {row.reference_mean:.4f} | "
                         f"{100 * row.mean_difference:+.2f} | {row.wins} | {row.ties} | {row.losses} | "
                         f"{row.p_value:.3f} |")
    return "\n".join(lines) + "\n", summaries


def plot(curves, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(3.6 * len(curves), 3.4), layout="constrained",
                             squeeze=False)
    for ax, (p, methods) in zip(axes[0], curves.items()):
        for name, per_seed in methods.items():
            ax.plot(np.arange(1, len(per_seed[0]) + 1), np.mean(per_seed, axis=0), label=name,
                    linewidth=2.2 if name == DEFAULT else 1.2)
        ax.set_title(f"{p:g} nines")
        ax.set_xlabel("epoch")
        ax.set_ylim(0.5, 1.0)
    axes[0, 0].set_ylabel("test accuracy (mean over seeds)")
    axes[0, -1].legend(fontsize="small")
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed, first-seed + 1, ...")
    parser.add_argument("--proportions", type=float, nargs="+", default=list(PROPORTIONS))
    parser.add_argument("--data", default=str(SHARED) if SHARED.is_dir() else None,
                        help="directory with the MNIST IDX files (default: $SK_REWEIGHT_MNIST)")
    parser.add_argument("--pool", nargs="+", metavar="FILE:METHOD=LABEL",
                        help="train nothing: pool the last-10-epoch accuracies of earlier result files")
    add_method_arguments(parser, "mnist_curves")
    add_common_arguments(parser, quick_help="300 images, 3 epochs, 1 seed, 2 proportions")
    args = parser.parse_args(argv)
    if args.pool:
        rows = pool(args.pool)
        table_md, summaries = pooled_table(rows)
        header = (f"MNIST 4-vs-9, mean test accuracy of the last {WINDOW} epochs per seed, pooled from "
                  + ", ".join(f"`{spec}`" for spec in args.pool) + "; each label against the first, seed by "
                  "seed (two-sided sign test).\n\n")
        publish(args.name, header + table_md, {"rows": rows}, args)
        return rows, summaries
    # random_over: the best baseline at 15 epochs (mnist_imbalance.py)
    args.methods = args.methods or [DEFAULT, "random_over", *VARIANTS]
    if args.quick:
        args.proportions, args.seeds, args.epochs = args.proportions[:2], 1, 3
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    cells = [(p, seed) for p in args.proportions for seed in range(args.first_seed, args.first_seed + args.seeds)]
    results = map_cells(run_cell, [(p, seed, args, args.quick) for p, seed in cells], args.n_jobs)
    curves = {p: {} for p in args.proportions}
    for (p, _), cell in zip(cells, results):
        for name, curve in cell.items():
            curves[p].setdefault(name, []).append(curve)
    summary = {p: summarize(methods) for p, methods in curves.items()}
    minutes = (time.perf_counter() - start) / 60
    last = args.first_seed + args.seeds - 1
    seeds = f"seeds {args.first_seed}-{last}" if args.seeds > 1 else f"seed {args.first_seed}"
    header = (f"MNIST 4-vs-9, {seeds}, {args.epochs} epochs of 50 steps, SGD momentum 0.9, "
              f"constant lr 1e-3; test accuracy, mean over seeds (decay = best {WINDOW}-epoch window "
              f"minus the last). Wall time {minutes:.1f} min, {where_it_ran(args)}."
              + default_params_note(args) + "\n\n")
    seeds_run = list(range(args.first_seed, args.first_seed + args.seeds))
    publish(args.name, header + table(summary), {"curves": curves, "summary": summary, "seeds": seeds_run}, args,
            figure=lambda path: plot(curves, path))
    return curves, summary


if __name__ == "__main__":
    main()
