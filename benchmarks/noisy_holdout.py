"""Can held-out *noisy* training rows tell when the learned weights hurt? A probe, not a method.

The default's trust is cross-fitted on the trusted rows, and on held-out
KEEL sets (segment0, vehicle0) it stays high while the default ends far
below plain training: the harm lies where no trusted row is. Rows with noisy
labels are plentiful, and under class-conditional label noise the balanced
accuracy measured on noisy labels is an affine function of the clean one
with a positive slope (``1 - rho_0 - rho_1`` for two classes; Menon et al.,
ICML 2015), so it ranks two models as the clean labels would, in
expectation. This script asks whether that works at these sizes. On each
(set, seed) cell of ``imbalance_noise.py`` (same splits and recipe) it holds
out a stratified share of the noisy training rows (``H``), trains on the rest
plain training, the default (``reweight``) and the uniform-weights-plus-
clean-loss control (``uniform_clean``, the fallback the trust moves to), and
records after every epoch each model's balanced accuracy on ``H`` (noisy
labels) and on the test set.

The table gives, per set, means over its seeds of the last epoch's balanced
accuracies. The switch rule was fixed before any held-out cell was run with
it: take the control where its lead over the default on ``H`` is significant
at 5% (one-sided; a stratified, paired bootstrap over ``H``'s rows,
``--resamples``), else the default; ``switched`` counts the cells where it
did, the caption lists them. The rule trains two networks and withholds
``H`` from both: its cost, were it built. Run
``python benchmarks/noisy_holdout.py --n-jobs 2`` (the five development
sets, three seeds), ``--datasets ...`` for others, ``--quick`` for a smoke
test.
"""
import argparse
import time

import numpy as np
import torch
from _harness import add_common_arguments, add_name_argument, map_cells, publish, where_it_ran
from imbalance_noise import TABULAR, add_data_arguments, make_split, recipe, reweighting
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split
from table_trace import TestBalancedAccuracy

from sk_reweight.baselines import make_baselines
from sk_reweight.weighting import AlignmentWeighting, CleanLoss, Shrinkage, Smoothing, Weighting

METHODS = ("plain", "reweight", "uniform_clean")
LEVEL = 0.05  # the switch rule's one-sided level: fixed, not tuned


def paired_lead(y, pred_a, pred_b, resamples, seed):
    """Model a's lead over model b in balanced accuracy, and its one-sided bootstrap p-value.

    The rows are resampled within each class, the same rows for both models:
    the p-value is conditional on the two trained models (it leaves out the
    randomness of training them).

    Parameters
    ----------
    y : ndarray of shape (n_rows,)
        The (noisy) labels.
    pred_a, pred_b : ndarray of shape (n_rows,)
        The two models' predicted labels.
    resamples : int
        Bootstrap resamples.
    seed : int
        Seeds the resampling.

    Returns
    -------
    lead : float
        ``BA(a) - BA(b)``.
    p : float
        The share of resamples (one added to both counts) where a does not lead.
    """
    lead = balanced_accuracy_score(y, pred_a) - balanced_accuracy_score(y, pred_b)
    rng = np.random.RandomState(seed)
    by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    leads = np.empty(resamples)
    for r in range(resamples):
        idx = np.concatenate([rng.choice(rows, len(rows)) for rows in by_class])
        leads[r] = (balanced_accuracy_score(y[idx], pred_a[idx]) - balanced_accuracy_score(y[idx], pred_b[idx]))
    return float(lead), float((np.sum(leads <= 0) + 1) / (resamples + 1))


def run_cell(name, seed, args):
    data = make_split(name, seed, args)
    classes = np.unique(data["y_train"])
    X_fit, X_held, y_fit, y_held = train_test_split(data["X_train"], data["y_train"], test_size=args.holdout,
                                                    stratify=data["y_train"], random_state=seed)
    sets = {"H": (X_held, np.searchsorted(classes, y_held)),
            "test": (data["X_test"], np.searchsorted(classes, data["y_test"]))}
    settings = recipe(name, data, seed, args)
    module = settings.pop("module")
    control = Weighting(AlignmentWeighting(), [Shrinkage(1.0), Smoothing(0.9), CleanLoss(1.0)])
    methods = {"plain": make_baselines(module, include=["plain"], **settings)["plain"],
               "reweight": reweighting(module, settings),
               "uniform_clean": reweighting(module, settings, {"weighting": control})}
    out, last = {"n_held": len(y_held)}, {}
    for method, estimator in methods.items():
        inner = estimator.estimator if hasattr(estimator, "estimator") else estimator
        inner.set_params(callbacks=[*(inner.callbacks or []),
                                    *((f"ba_{key}", TestBalancedAccuracy(X, y)) for key, (X, y) in sets.items())])
        estimator.fit(X_fit, y_fit, X_clean=data["X_clean"], y_clean=data["y_clean"])
        recorders = dict(getattr(estimator, "estimator_", estimator).callbacks_)
        out[method] = {key: recorders[f"ba_{key}"].curve for key in sets}
        last[method] = {"H": estimator.predict_proba(X_held).argmax(1)}  # the last epoch's model
    out["lead"], out["p"] = paired_lead(sets["H"][1], last["uniform_clean"]["H"], last["reweight"]["H"],
                                        args.resamples, seed)
    out["switch"] = out["p"] < LEVEL
    print(f"{name}/{seed}: " + ", ".join(f"{m} H {out[m]['H'][-1]:.3f} test {out[m]['test'][-1]:.3f}"
                                         for m in METHODS) + f", switch {out['switch']}", flush=True)
    return out


def _rule(r):
    """The test balanced accuracy of the switch rule's choice in one cell."""
    return r["uniform_clean" if r["switch"] else "reweight"]["test"][-1]


def table(results):
    """One row per set: means over its seeds of the last epoch's balanced accuracies."""
    by_set = {}
    for cell, r in results.items():
        by_set.setdefault(cell.rsplit("/", 1)[0], []).append(r)
    lines = ["| set | seeds | held-out rows | H: plain | H: default | H: control | test: plain | test: default | "
             "test: control | switched | test: rule |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, rs in by_set.items():
        lines.append(f"| {name} | {len(rs)} | {rs[0]['n_held']} | "
                     + " | ".join(f"{np.mean([r[m]['H'][-1] for r in rs]):.3f}" for m in METHODS) + " | "
                     + " | ".join(f"{np.mean([r[m]['test'][-1] for r in rs]):.3f}" for m in METHODS)
                     + f" | {sum(r['switch'] for r in rs)} | {np.mean([_rule(r) for r in rs]):.3f} |")
    return "\n".join(lines) + "\n"


def _p(p):
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def summary(results):
    """Means over the cells, how often ``H`` orders default and control as the test set does, the rule."""
    test = {m: np.mean([r[m]["test"][-1] for r in results.values()]) for m in METHODS}
    rule = np.mean([_rule(r) for r in results.values()])
    same = sum(np.sign(r["uniform_clean"]["H"][-1] - r["reweight"]["H"][-1])
               == np.sign(r["uniform_clean"]["test"][-1] - r["reweight"]["test"][-1]) for r in results.values())
    switched = [f"{cell} ({_rule(r) - r['reweight']['test'][-1]:+.3f}, p {_p(r['p'])})"
                for cell, r in results.items() if r["switch"]]
    return (f"Mean test balanced accuracy over {len(results)} cells: plain {test['plain']:.3f}, default "
            f"{test['reweight']:.3f}, control {test['uniform_clean']:.3f}, the switch rule {rule:.3f}. `H` orders "
            f"the default and the control as the test set does in {same} of {len(results)} cells. The rule "
            f"switched in {len(switched)} cell(s)" + (f" (test change): {', '.join(switched)}" if switched else "")
            + ".")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.set_defaults(datasets=list(TABULAR))
    parser.add_argument("--holdout", type=float, default=0.2, help="share of the noisy training rows held out")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples of the held-out rows")
    add_name_argument(parser, "noisy_holdout")
    add_common_arguments(parser, quick_help="one cell of the first set, 3 epochs, 200 resamples")
    args = parser.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds, args.epochs, args.resamples = args.datasets[:1], 1, 3, 200
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    cells = [(name, seed) for name in args.datasets for seed in range(args.seeds)]
    outputs = map_cells(run_cell, [(name, seed, args) for name, seed in cells], args.n_jobs)
    results = {f"{name}/{seed}": out for (name, seed), out in zip(cells, outputs)}
    minutes = (time.perf_counter() - start) / 60
    header = (f"The recipe of `imbalance_noise.py` ({args.epochs} epochs, {args.noise:.0%} uniform label noise, "
              f"{args.clean_per_class} trusted rows per class), {args.holdout:.0%} of the noisy training rows held "
              f"out (`H`, their noisy labels); balanced accuracy after the last epoch. {summary(results)} Wall "
              f"time {minutes:.1f} min, {where_it_ran(args)}.\n\n")
    publish(args.name, header + table(results), {"results": results}, args)
    return results


if __name__ == "__main__":
    main()
