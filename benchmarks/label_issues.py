"""Finding mislabelled training examples: reweighting's ranking vs cleanlab.

Digits (1,797 images, 10 classes) with a 5-per-class clean set held out
before corruption, then a share of the training labels flipped uniformly to
another class. Rankings of the training examples:

- ``reweight``: ``ReweightedNeuralNetClassifier().suspicious_examples`` with
  the default options (Algorithm 1 with the unlearning guard and the
  cross-fitted trust, ``weighting='cross_fit'``): the share of
  visits in which the clean set rejected the example plus one minus the
  model's probability of its label, over the last half of training;
- ``reweight (mean weight)``: the same fit, ranked by the mean of
  ``sample_weights_`` alone (lowest first), the ranking before 0.2;
- ``reweight_paper`` and ``reweight_paper (mean weight)``: the same two
  rankings after a fit of Algorithm 1 as published (``weighting="paper"``);
- ``reweight_smooth_clean``: ``suspicious_examples`` after a fit with the
  options that were the default before 0.2 (the stages ``Smoothing(0.9)``
  and ``CleanLoss(1.0)``, 0.2's ``weight_smoothing=0.9, clean_weight=1``);
- ``cleanlab``: ``cleanlab.filter.find_label_issues`` ranked by self-confidence,
  from out-of-sample probabilities of the same network (5-fold
  ``cross_val_predict`` on the noisy training set; cleanlab needs no clean set);
- ``plain_loss``: the small-loss criterion (Arpit et al., 2017; Han et al.,
  2018): the same network trained plainly on the noisy labels for as long,
  ranked by its training loss on each label, highest first.

All fits use Adam at a constant lr (no schedule).

Reported: precision at k = the true number of flipped labels (there precision
equals recall), precision and recall of the m examples cleanlab flags by its
own threshold (and of reweighting's top m), and the ROC AUC of the ranking.
Per method, a paired table gives the default's wins, ties and losses over the
(noise, seed) cells with a two-sided sign test, for the ROC AUC and for the
precision at k. Run ``python benchmarks/label_issues.py`` (``--quick`` for a
smoke test; ``--default-params`` changes the default rows' options, ``--name``
the results file).
"""
import argparse
import json
import time

import numpy as np
import pandas as pd
import torch
from _harness import (
    DEFAULT,
    PAPER,
    add_default_params_argument,
    add_name_argument,
    default_params_note,
    paired_table,
    save,
)
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict
from skorch import NeuralNetClassifier

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.corruption import flip_labels_uniform, train_clean_split
from sk_reweight.modules import MLP
from sk_reweight.weighting import AlignmentWeighting, CleanLoss, CrossFitTrust, Smoothing, UnlearningGuard, Weighting


def recipe(epochs):
    return dict(module=MLP, module__n_features=64, module__n_classes=10, module__hidden_units=(128,),
                optimizer=torch.optim.Adam, lr=3e-3, max_epochs=epochs, batch_size=64,
                train_split=None, verbose=0)


def scores(ranking, flipped, m):
    k = int(flipped.sum())
    top_k, top_m = ranking[:k], ranking[:m]
    return dict(precision_at_k=flipped[top_k].mean(),
                precision_at_m=flipped[top_m].mean() if m else float("nan"),
                recall_at_m=flipped[top_m].sum() / k)


def run_one(noise, seed, epochs, default_params=None):
    from cleanlab.filter import find_label_issues

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_train, X_clean, y_train, y_clean = train_clean_split(X, y, 50, random_state=seed)
    y_noisy, flipped = flip_labels_uniform(y_train, noise, random_state=seed)

    def weights_ranking(params):
        t0 = time.perf_counter()
        net = ReweightedNeuralNetClassifier(random_state=seed, **params, **recipe(epochs))
        net.fit(X_train, y_noisy, X_clean=X_clean, y_clean=y_clean)
        last = max(1, epochs // 2)
        ranked = net.suspicious_examples(X_train, y_noisy, last_epochs=last)
        seconds = time.perf_counter() - t0
        score = np.empty(len(y_noisy))
        score[ranked.index] = ranked.score  # the Bunch is sorted by rank; back to row order
        low_weight = -np.nanmean(net.sample_weights_[-last:], axis=0)
        return (ranked.index, score, seconds), (np.argsort(-low_weight, kind="stable"), low_weight, seconds)

    ours = dict(zip([DEFAULT, f"{DEFAULT} (mean weight)"], weights_ranking(default_params or {})))
    ours.update(zip([PAPER, f"{PAPER} (mean weight)"], weights_ranking({"weighting": "paper"})))
    smooth_clean = Weighting(AlignmentWeighting(),
                             [Smoothing(0.9), UnlearningGuard(0.1), CleanLoss(1.0), CrossFitTrust()])
    ours["reweight_smooth_clean"] = weights_ranking({"weighting": smooth_clean})[0]

    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        plain = NeuralNetClassifier(criterion=torch.nn.CrossEntropyLoss, iterator_train__shuffle=True,
                                    **recipe(epochs))
        pred_probs = cross_val_predict(plain, X_train, y_noisy, cv=5, method="predict_proba")
    ranked = find_label_issues(y_noisy, pred_probs, return_indices_ranked_by="self_confidence")
    cleanlab_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        plain = NeuralNetClassifier(criterion=torch.nn.CrossEntropyLoss, iterator_train__shuffle=True,
                                    **recipe(epochs)).fit(X_train, y_noisy)
    train_probs = plain.predict_proba(X_train)
    plain_loss = -np.log(np.clip(train_probs[np.arange(len(y_noisy)), y_noisy], 1e-12, None))
    plain_s = time.perf_counter() - t0

    m = len(ranked)
    # cleanlab ranks only the examples it flags; the rest follow by self-confidence
    self_confidence = pred_probs[np.arange(len(y_noisy)), y_noisy]
    full_cleanlab = np.argsort(self_confidence, kind="stable")
    return {
        **{name: dict(**scores(index, flipped, m), roc_auc=roc_auc_score(flipped, score), seconds=seconds)
           for name, (index, score, seconds) in ours.items()},
        "cleanlab": dict(**scores(np.asarray(ranked), flipped, m),
                         roc_auc=roc_auc_score(flipped, -self_confidence), seconds=cleanlab_s,
                         flagged=m, full_ranking_precision_at_k=scores(full_cleanlab, flipped, m)["precision_at_k"]),
        "plain_loss": dict(**scores(np.argsort(-plain_loss, kind="stable"), flipped, m),
                           roc_auc=roc_auc_score(flipped, plain_loss), seconds=plain_s),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.2, 0.4])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="1 seed, 5 epochs, 40%% noise")
    add_name_argument(parser, "label_issues")
    add_default_params_argument(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    seeds, noises, epochs = (1, [0.4], 5) if args.quick else (args.seeds, args.noise, args.epochs)
    results, rows = {}, []
    for noise in noises:
        runs = [run_one(noise, seed, epochs, args.default_params) for seed in range(seeds)]
        results[noise] = {method: {key: (float(np.mean([r[method][key] for r in runs])),
                                         float(np.std([r[method][key] for r in runs])))
                                   for key in runs[0][method]} for method in runs[0]}
        rows += [dict(method=method, dataset=f"{noise:.0%}", seed=seed, roc_auc=scores["roc_auc"],
                      precision_at_k=scores["precision_at_k"])
                 for seed, r in enumerate(runs) for method, scores in r.items()
                 if method != f"{DEFAULT} (mean weight)"]  # the same fit as the default
        print(json.dumps({str(noise): results[noise]}), flush=True)

    def cell(stats):
        mean, std = stats
        return f"{mean:.3f} ± {std:.3f}"

    lines = [f"Digits, {len(range(seeds))} seeds, {epochs} epochs (Adam, constant lr), mean ± std. k = number "
             "of flipped labels; m = number cleanlab flags." + default_params_note(args), "",
             "| noise | method | precision@k (= recall@k) | precision@m | recall@m | ROC AUC | seconds |",
             "|---|---|---|---|---|---|---|"]
    for noise, methods in results.items():
        for method, s in methods.items():
            lines.append(f"| {noise:.0%} | {method} | {cell(s['precision_at_k'])} | {cell(s['precision_at_m'])} | "
                         f"{cell(s['recall_at_m'])} | {cell(s['roc_auc'])} | {s['seconds'][0]:.1f} |")
    cells = pd.DataFrame(rows)
    paired = [paired_table(cells, metric, cell="(noise, seed)")[0] for metric in ("roc_auc", "precision_at_k")]
    table = "\n".join(lines) + "\n" + "".join(paired)
    print(table)
    save(args.name, table, {"results": {str(k): v for k, v in results.items()}, "cells": rows}, args.quick)
    return results


if __name__ == "__main__":
    main()
