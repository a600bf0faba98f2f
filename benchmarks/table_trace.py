"""Where the default loses to plain training on a noisy imbalanced table: the run, epoch by epoch.

On the held-out KEEL sets of ``imbalance_noise.py`` (same splits and recipe:
20% uniform label noise, 10 trusted rows per class, the default MLP, Adam,
40 epochs, batch 64) the default is behind plain training on vehicle0 and
segment0, and behind uniform weights plus the clean loss on most sets. This
script trains, on chosen (set, seed) cells, plain training, the default
(``reweight``), Algorithm 1 as published (``reweight_paper``) and the
uniform-weights-plus-clean-loss control (``uniform_clean``), and records
after every epoch, from public attributes:

- ``test BA``: the test balanced accuracy;
- ``trust after``: the default's trust in its learned weights at the end of the
  epoch (history ``weight_trust``; the next epoch trains with it, the first
  with 1);
- ``at 0``: the share of the epoch's rows with weight 0 (``sample_weights_``);
- ``flipped / correct``: the mean weight of the rows whose label was flipped,
  and of the others;
- ``minority share``: the rows labelled with the minority class, their
  share of the epoch's weight (their share of the rows under uniform weights);
- ``train loss``: the unweighted mean training loss (history ``train_loss``).

A second table, *coverage*, asks where the default's weights go wrong (two
classes). The training rows whose true class is the majority are split into
``--clusters`` k-means clusters (on the scaled features; every trusted row and
every majority test row goes to its nearest cluster), and for each cluster it
gives the trusted rows in it (majority / minority class), the mean weight over
the first ten epochs (all, when fewer) of its correctly labelled rows (and the
share of them at weight 0 in every one of those epochs that saw them) and of
its flipped ones (labelled minority), and the last epoch's recall of its test
rows under plain training and under the default.

Diagnosis only: no option is chosen on these sets (they are held out). The
reweighting rows repeat ``imbalance_noise.py``'s cells exactly; plain training
draws its shuffling from torch's global generator, which the per-epoch
predictions also advance, so its cells can differ a little from that table's.
Run ``python benchmarks/table_trace.py --n-jobs 2`` (``--quick`` for a smoke test).
"""
import argparse
import time
import warnings

import numpy as np
import torch
from _harness import PAPER, PAPER_PARAMS, add_common_arguments, add_name_argument, map_cells, publish, where_it_ran
from imbalance_noise import make_split, recipe
from sklearn.cluster import KMeans
from sklearn.metrics import balanced_accuracy_score
from skorch.callbacks import Callback

from sk_reweight.baselines import make_baselines
from sk_reweight.weighting import AlignmentWeighting, CleanLoss, Shrinkage, Smoothing, Weighting

UNIFORM_CLEAN = "uniform_clean"
METHODS = ("plain", "reweight", PAPER, UNIFORM_CLEAN)


class TestBalancedAccuracy(Callback):
    """The test balanced accuracy after every epoch, in ``curve`` (labels as class indices)."""

    def __init__(self, X, y):
        self.X, self.y = X, y

    def on_train_begin(self, net, **kwargs):
        self.curve = []

    def on_epoch_end(self, net, **kwargs):
        self.curve.append(float(balanced_accuracy_score(self.y, net.predict_proba(self.X).argmax(1))))


def _network(estimator):
    """The fitted skorch network of a method (a baseline wraps it)."""
    return getattr(estimator, "estimator_", estimator)


def trace(net, curve, corrupted, minority_label):
    """Per-epoch statistics of a fitted network (see the module docstring); weights where it has them."""
    out = {"test_ba": list(curve), "train_loss": [float(h["train_loss"]) for h in net.history]}
    weights = getattr(net, "sample_weights_", None)
    if weights is None:
        return out
    seen = ~np.isnan(weights)
    if "weight_trust" in net.history[-1]:  # the default's; Algorithm 1 and the control have no trust
        out["trust"] = [float(h["weight_trust"]) for h in net.history]
    out["zero_share"] = ((weights == 0).sum(1) / seen.sum(1)).tolist()
    out["flipped_weight"] = np.nanmean(weights[:, corrupted], 1).tolist()
    out["correct_weight"] = np.nanmean(weights[:, ~corrupted], 1).tolist()
    out["minority_share"] = (np.nansum(weights[:, minority_label], 1) / np.nansum(weights, 1)).tolist()
    return out


#: epochs whose mean weights the coverage table gives (the first ones: before training settles)
COVERAGE_EPOCHS = 10


def coverage(data, weights, predictions, minority, n_clusters, seed):
    """Per k-means cluster of the true-majority training rows: the trusted rows in it, the mean
    weight (first :data:`COVERAGE_EPOCHS` epochs) of its correct and flipped rows, and its test
    rows' recall per method (``predictions``: class indices). Two classes only."""
    classes = np.unique(data["y_train"])
    if len(classes) != 2:
        raise ValueError(f"the coverage table needs two classes, not {len(classes)}")
    corrupted = data["corrupted"]
    majority = np.flatnonzero(classes != minority)[0]
    labels = np.searchsorted(classes, data["y_train"])
    true_majority = np.where(corrupted, labels != majority, labels == majority)  # a flip changes the class
    km = KMeans(n_clusters, n_init=10, random_state=seed).fit(data["X_train"][true_majority])
    train_cluster = np.full(len(labels), -1)
    train_cluster[true_majority] = km.labels_
    clean_cluster, test_cluster = km.predict(data["X_clean"]), km.predict(data["X_test"])
    clean_majority, test_majority = data["y_clean"] != minority, data["y_test"] != minority
    with warnings.catch_warnings():  # rows no early epoch saw (train_split) and empty groups: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        early = np.nanmean(weights[:COVERAGE_EPOCHS], 0)
        seen = ~np.isnan(early)
        rows = []
        for k in range(n_clusters):
            correct, flipped = (train_cluster == k) & ~corrupted, (train_cluster == k) & corrupted
            test = test_majority & (test_cluster == k)
            rows.append({
                "rows": int((train_cluster == k).sum()),
                "trusted": [int((clean_majority & (clean_cluster == k)).sum()),
                            int((~clean_majority & (clean_cluster == k)).sum())],
                "correct_weight": float(np.nanmean(early[correct])) if correct.any() else float("nan"),
                "correct_at_0": float(np.mean(early[correct & seen] == 0)) if (correct & seen).any() else float("nan"),
                "flipped_weight": float(np.nanmean(early[flipped])) if flipped.any() else float("nan"),
                "test_rows": int(test.sum()),
                "recall": {m: float(np.mean(p[test] == majority)) if test.any() else float("nan")
                           for m, p in predictions.items()},
            })
    return rows


def run_cell(name, seed, args):
    data = make_split(name, seed, args)
    settings = recipe(name, data, seed, args)
    module = settings.pop("module")
    methods = make_baselines(module, include=["plain", "reweight"], **settings)
    methods[PAPER] = make_baselines(module, include=["reweight"], reweight_params=PAPER_PARAMS,
                                    **settings)["reweight"]
    control = Weighting(AlignmentWeighting(), [Shrinkage(1.0), Smoothing(0.9), CleanLoss(1.0)])
    methods[UNIFORM_CLEAN] = make_baselines(module, include=["reweight"], reweight_params={"weighting": control},
                                            **settings)["reweight"]
    classes = np.unique(data["y_train"])
    y_test = np.searchsorted(classes, data["y_test"])
    minority_label = data["y_train"] == data["minority"]
    out, predictions = {}, {}
    for method in METHODS:
        estimator = methods[method]
        inner = estimator.estimator if hasattr(estimator, "estimator") else estimator
        recorder = TestBalancedAccuracy(data["X_test"], y_test)
        inner.set_params(callbacks=[*(inner.callbacks or []), ("test_ba", recorder)])
        estimator.fit(data["X_train"], data["y_train"], X_clean=data["X_clean"], y_clean=data["y_clean"])
        net = _network(estimator)
        out[method] = trace(net, dict(net.callbacks_)["test_ba"].curve, data["corrupted"], minority_label)
        clean = np.searchsorted(classes, data["y_clean"])
        out[method]["clean_accuracy"] = float((net.predict_proba(data["X_clean"]).argmax(1) == clean).mean())
        predictions[method] = net.predict_proba(data["X_test"]).argmax(1)
        if method == "reweight":
            weights = net.sample_weights_
    out["uniform_minority_share"] = float(minority_label.mean())
    if len(classes) == 2:
        out["coverage"] = coverage(data, weights, {m: predictions[m] for m in ("plain", "reweight")},
                                   data["minority"], args.clusters, seed)
    print(f"{name}/{seed}: " + ", ".join(f"{m} {out[m]['test_ba'][-1]:.3f}" for m in METHODS), flush=True)
    return out


def _cell(values, key, epoch, fmt):
    return fmt.format(values[key][epoch]) if key in values else "-"


def table(traces, every):
    lines = ["| cell | method | epoch | test BA | trust after | at 0 | flipped / correct | minority share | "
             "train loss |",
             "|---|---|---|---|---|---|---|---|---|"]
    for cell, t in traces.items():
        for method in METHODS:
            v = t[method]
            n = len(v["test_ba"])
            for epoch in sorted({0, *range(every - 1, n, every), n - 1}):
                pair = (f"{v['flipped_weight'][epoch]:.2f} / {v['correct_weight'][epoch]:.2f}"
                        if "flipped_weight" in v else "-")
                lines.append(f"| {cell} | {method} | {epoch + 1} | {v['test_ba'][epoch]:.3f} | "
                             f"{_cell(v, 'trust', epoch, '{:.2f}')} | {_cell(v, 'zero_share', epoch, '{:.2f}')} | "
                             f"{pair} | {_cell(v, 'minority_share', epoch, '{:.2f}')} | "
                             f"{v['train_loss'][epoch]:.3f} |")
    return "\n".join(lines) + "\n"


def coverage_table(traces):
    lines = ["| cell | cluster | majority rows | trusted (majority / minority) | correct rows: weight (at 0) | "
             "flipped rows: weight | test rows | recall: plain / default |",
             "|---|---|---|---|---|---|---|---|"]
    for cell, t in traces.items():
        for k, c in enumerate(t.get("coverage", [])):
            lines.append(f"| {cell} | {k} | {c['rows']} | {c['trusted'][0]} / {c['trusted'][1]} | "
                         f"{c['correct_weight']:.2f} ({c['correct_at_0']:.2f}) | {c['flipped_weight']:.2f} | "
                         f"{c['test_rows']} | {c['recall']['plain']:.2f} / {c['recall']['reweight']:.2f} |")
    return "\n".join(lines) + "\n"


def _cell_arg(text):
    name, sep, seed = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not SET:SEED, e.g. segment0:0")
    return name, int(seed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=_cell_arg, nargs="+", metavar="SET:SEED",
                        default=[("segment0", 0), ("segment0", 1), ("vehicle0", 0), ("vehicle0", 1)],
                        help="the (set, seed) cells (default: seeds 0 and 1 of segment0 and vehicle0, the sets "
                             "where the default is behind plain training)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--clean-per-class", type=int, default=10)
    parser.add_argument("--every", type=int, default=10, help="table rows every this many epochs")
    parser.add_argument("--clusters", type=int, default=8,
                        help="k-means clusters of the true-majority training rows (coverage table)")
    add_name_argument(parser, "table_trace")
    add_common_arguments(parser, quick_help="the first cell, 3 epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.cells, args.epochs, args.every = args.cells[:1], 3, 1
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    results = map_cells(run_cell, [(name, seed, args) for name, seed in args.cells], args.n_jobs)
    traces = {f"{name}, seed {seed}": t for (name, seed), t in zip(args.cells, results)}
    minutes = (time.perf_counter() - start) / 60
    ends = "; ".join(f"{cell}: " + ", ".join(f"{m} {t[m]['test_ba'][-1]:.3f} (clean rows {t[m]['clean_accuracy']:.2f})"
                                             for m in METHODS) for cell, t in traces.items())
    header = (f"The recipe of `imbalance_noise.py` ({args.epochs} epochs, {args.noise:.0%} uniform label noise, "
              f"{args.clean_per_class} trusted rows per class). Last epoch's test balanced accuracy and accuracy "
              f"on the trusted rows: {ends}. Plain training's cells can differ a little from that script's (the "
              "per-epoch predictions advance torch's global generator, which its shuffling draws from). "
              f"Wall time {minutes:.1f} min, {where_it_ran(args)}.\n\n")
    publish(args.name, header + table(traces, args.every) + "\nCoverage: where the default's weights go, per "
            f"cluster of the true-majority rows ({args.clusters} k-means clusters; weights: mean over the "
            f"first {min(COVERAGE_EPOCHS, args.epochs)} epochs; recall: the cluster's majority test rows, "
            "last epoch; two-class sets only).\n\n"
            + coverage_table(traces), {"traces": traces}, args)
    return traces


if __name__ == "__main__":
    main()
