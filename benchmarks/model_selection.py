"""Model selection on trusted folds against selection on noisy folds.

A user with noisy labels and a few trusted rows tunes a model by
cross-validation. Scored on held-out *noisy* rows (``StratifiedKFold``), a
search rewards agreement with the noise; scored on held-out *trusted* rows
(``sk_reweight.model_selection.CleanSetKFold``) it measures what the user
wants. Both searches run ``GridSearchCV`` over the same candidates on the
same data (the mixed tables of ``mixed_tables.py``: ``--trusted`` trusted
rows per class, ``--noise`` of the other labels flipped (``--noise-kind
missed``: that share of the minority labelled as the majority), the same
preprocessing), with balanced accuracy as the score; each refits its choice
on all rows and is scored on the untouched test split. The candidates: the
networks of ``make_baselines`` (``plain``, ``class_weight``, ``smote``,
``reweight``) at learning rates 1e-3 and 1e-2 (Adam, ``--epochs``), i.e. the
search picks both a method and a setting.

Run ``python benchmarks/model_selection.py --n-jobs 2`` (``--quick`` for a
smoke test).
"""
import argparse
from collections import Counter

import numpy as np
import sklearn
import torch
from _harness import add_common_arguments, map_cells, publish
from mixed_tables import add_noise_arguments, make_cell, noise_note, preprocessing, results_name
from scipy.stats import binomtest
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

from sk_reweight.baselines import make_baselines
from sk_reweight.datasets import MIXED_TABLES
from sk_reweight.model_selection import CleanSetKFold, request_clean_mask

METHODS = ("plain", "class_weight", "smote", "reweight")
LEARNING_RATES = (1e-3, 1e-2)
SCHEMES = ("noisy folds", "trusted folds")


def candidates(args):
    """{label: estimator}: every method at every learning rate, each requesting clean_mask."""
    out = {}
    for lr in LEARNING_RATES:
        methods = make_baselines(optimizer=torch.optim.Adam, lr=lr, max_epochs=args.epochs, batch_size=64,
                                 include=args.methods)
        out.update({f"{name} lr={lr:g}": request_clean_mask(m) for name, m in methods.items()})
    return out


def run_cell(table, seed, args):
    X, y, mask, X_test, y_test = make_cell(table, seed, args)
    folds = {"noisy folds": StratifiedKFold(args.folds, shuffle=True, random_state=seed),
             "trusted folds": CleanSetKFold(args.folds, shuffle=True, random_state=seed)}
    cell = {"table": table, "seed": seed}
    with sklearn.config_context(enable_metadata_routing=True):
        options = candidates(args)
        labels = {id(est): label for label, est in options.items()}
        for scheme, cv in folds.items():
            pipe = Pipeline([("preprocessing", preprocessing()), ("method", next(iter(options.values())))])
            search = GridSearchCV(pipe, {"method": list(options.values())}, cv=cv,
                                  scoring="balanced_accuracy").fit(X, y, clean_mask=mask)
            chosen = labels[id(search.best_params_["method"])]
            cell[scheme] = {"chosen": chosen, "cv_score": float(search.best_score_),
                            "test": float(balanced_accuracy_score(y_test, search.predict(X_test)))}
    print(f"{table} seed {seed}: " + "; ".join(f"{s}: {cell[s]['chosen']} cv {cell[s]['cv_score']:.3f} "
                                               f"test {cell[s]['test']:.3f}" for s in SCHEMES), flush=True)
    return cell


def report(cells):
    lines = ["| table | seed | noisy folds: choice | cv score | test | trusted folds: choice | cv score | test |",
             "|---|---|---|---|---|---|---|---|"]
    for c in cells:
        row = [c["table"], str(c["seed"])]
        for scheme in SCHEMES:
            r = c[scheme]
            row += [r["chosen"], f"{r['cv_score']:.3f}", f"{r['test']:.3f}"]
        lines.append("| " + " | ".join(row) + " |")
    diff = np.array([c["trusted folds"]["test"] - c["noisy folds"]["test"] for c in cells])
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    p = binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
    gap = np.array([c["noisy folds"]["cv_score"] - c["noisy folds"]["test"] for c in cells])
    trusted_gap = np.mean([c['trusted folds']['cv_score'] - c['trusted folds']['test'] for c in cells])
    lines += ["", f"Test balanced accuracy of the chosen model, mean over {len(cells)} cells: noisy folds "
              f"{np.mean([c['noisy folds']['test'] for c in cells]):.3f}, trusted folds "
              f"{np.mean([c['trusted folds']['test'] for c in cells]):.3f} (difference {diff.mean():+.3f}; "
              f"trusted folds better in {wins}, equal in {len(cells) - wins - losses}, worse in {losses} "
              f"cells, two-sided sign test p = {p:.3f}). The noisy folds' cross-validation score "
              f"misjudged the chosen model's test score by {gap.mean():+.3f} on average; the trusted "
              f"folds' by {trusted_gap:+.3f}.",
              "", "Choices: " + "; ".join(f"{s}: " + ", ".join(f"{k} x{v}" for k, v in
                                                                Counter(c[s]["chosen"] for c in cells).most_common())
                                          for s in SCHEMES)]
    return "\n".join(lines) + "\n", {"wins": wins, "losses": losses, "p_value": p, "mean_difference": diff.mean()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser, "600 rows of two tables, 2 epochs, 1 seed, 2 methods, 2 folds")
    parser.add_argument("--tables", nargs="+", default=list(MIXED_TABLES))
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--trusted", type=int, default=25, help="trusted rows per class")
    add_noise_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.trusted, args.folds = 1, 2, 6, 2
        args.tables, args.methods = ["credit_data", "attrition"], ["plain", "reweight"]
    torch.set_num_threads(args.threads)
    cells = map_cells(run_cell, [(t, s, args) for t in args.tables for s in range(args.seeds)], args.n_jobs)
    table, summary = report(cells)
    threads = f"1 per worker ({args.n_jobs} workers)" if args.n_jobs > 1 else str(args.threads)
    note = (f"\n{args.folds}-fold searches over {len(args.methods) * len(LEARNING_RATES)} candidates, "
            f"{args.trusted} trusted rows per class, {noise_note(args)}, "
            f"{args.epochs} epochs; torch threads: {threads}.\n")
    publish(results_name("model_selection", args), table + note,
            {"config": vars(args), "cells": cells, "summary": summary}, args)
    return cells, summary


if __name__ == "__main__":
    main()
