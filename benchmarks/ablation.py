"""Ablation of the reweighting options on the imbalance-plus-noise benchmark.

Every variant below is ``ReweightedNeuralNetClassifier`` with one option
changed from Algorithm 1 as published (``weighting='paper'``), trained
on exactly the (set, seed) cells of ``benchmarks/imbalance_noise.py`` (same
splits, same recipe). Reported per variant: balanced accuracy per set (mean
over seeds), the number of cells where the variant beats every baseline of
that benchmark (read from ``benchmarks/results/imbalance_noise.json``; run
that script first with the same options), the ROC AUC of its weights as a
detector of the flipped labels, and its training time relative to the
paper-exact variant on the same cells. A last row takes the best variant of
each cell with hindsight: how many cells any choice among the variants could
win at most.

Run ``python benchmarks/ablation.py`` (``--quick``, ``--seeds``, ``--n-jobs``,
``--datasets``; ``--render-only`` rebuilds the table from
the saved runs, e.g. after ``imbalance_noise.py`` was run again). On other
sets: ``--reference imbalance_noise_heldout --name ablation_heldout
--datasets ...`` compares with that run of ``imbalance_noise.py --name
imbalance_noise_heldout`` instead.
"""
import argparse
import json
import time

import numpy as np
from _harness import (
    DEFAULT,
    PAPER,
    PAPER_PARAMS,
    RESULTS,
    add_name_argument,
    map_cells,
    publish,
    run_methods,
    where_it_ran,
)
from imbalance_noise import make_split, parse_arguments, recipe, reweighting, warm_up

from sk_reweight.callbacks import FineTuneOnClean
from sk_reweight.weighting import (
    AlignmentWeighting,
    CleanLoss,
    CrossFitTrust,
    MetaNetWeighting,
    Shrinkage,
    Smoothing,
    UniformIfAllZero,
    UnlearningGuard,
    Weighting,
)


def variant(*stages, policy=None, finetune_epochs=0, **weighting):
    """Algorithm 1 as published with ``stages`` (and a policy, trimmed or capped alignments, fine-tuning)."""
    params = {"weighting": Weighting(policy or AlignmentWeighting(), list(stages), **weighting)}
    return {**params, "callbacks": [FineTuneOnClean(finetune_epochs)]} if finetune_epochs else params


# the names are 0.2's parameters, which the results files keep
VARIANTS = {
    "paper": dict(PAPER_PARAMS),
    "zero_weights='uniform'": variant(UniformIfAllZero()),
    "weight_smoothing=0.5": variant(Smoothing(0.5)),
    "weight_smoothing=0.9": variant(Smoothing(0.9)),
    "weight_smoothing=0.97": variant(Smoothing(0.97)),
    "clean_weight=1": variant(CleanLoss(1.0)),
    "finetune_epochs=10": variant(finetune_epochs=10),
    "clean_weight=1, finetune_epochs=10": variant(CleanLoss(1.0), finetune_epochs=10),
    "weighting='meta_net'": variant(policy=MetaNetWeighting()),
    "weight_smoothing=0.9, clean_weight=0.3": variant(Smoothing(0.9), CleanLoss(0.3)),
    "weight_smoothing=0.9, clean_weight=1": variant(Smoothing(0.9), CleanLoss(1.0)),
    "weight_smoothing=0.9, clean_weight=3": variant(Smoothing(0.9), CleanLoss(3.0)),
    "weight_shrinkage=0.5": variant(Shrinkage(0.5)),
    "weight_smoothing=0.9, clean_weight=1, weight_shrinkage=0.25":
        variant(Shrinkage(0.25), Smoothing(0.9), CleanLoss(1.0)),
    "weight_smoothing=0.9, clean_weight=1, weight_shrinkage=0.5":
        variant(Shrinkage(0.5), Smoothing(0.9), CleanLoss(1.0)),
    "weight_smoothing=0.9, clean_weight=1, weight_shrinkage=0.75":
        variant(Shrinkage(0.75), Smoothing(0.9), CleanLoss(1.0)),
    # the default with uniform weights: what the learned weights add to it
    "weight_smoothing=0.9, clean_weight=1, weight_shrinkage=1": variant(Shrinkage(1.0), Smoothing(0.9), CleanLoss(1.0)),
    "weight_smoothing=0.9, clean_weight=1, finetune_epochs=40":
        variant(Smoothing(0.9), CleanLoss(1.0), finetune_epochs=40),
    "clean_trim=1": variant(clean_trim=1),
    "clean_cap=1": variant(clean_cap=1.0),
    "unlearning_tolerance=0.1": variant(UnlearningGuard(0.1)),
    # the default since 2026-12-07: the guard, then the trust that cross-fitting measures
    "weighting='cross_fit'": {"weighting": "cross_fit"},
    "cross_fit, balance_classes=True": variant(UnlearningGuard(0.1), CrossFitTrust(balance_classes=True)),
    "cross_fit, clean_weight=0": variant(UnlearningGuard(0.1), CrossFitTrust(clean_weight=0.0)),
    "cross_fit, memory=0.5, full_trust_win_rate=1":
        variant(UnlearningGuard(0.1), CrossFitTrust(memory=0.5, full_trust_win_rate=1.0)),
    # more, smaller held-out folds: each fold's steering from more of the clean batch
    "cross_fit, folds=3": variant(UnlearningGuard(0.1), CrossFitTrust(folds=3)),
    "cross_fit, folds=5": variant(UnlearningGuard(0.1), CrossFitTrust(folds=5)),
    # more pseudo-comparisons of a coin flip: a few steps' evidence buys less trust
    "cross_fit, prior=40": variant(UnlearningGuard(0.1), CrossFitTrust(prior=40.0)),
    "cross_fit, prior=100": variant(UnlearningGuard(0.1), CrossFitTrust(prior=100.0)),
    # the fallback's training until the first epoch's evidence
    "cross_fit, initial=0": variant(UnlearningGuard(0.1), CrossFitTrust(initial=0.0)),
}


def run_cell(name, seed, args, variants):
    data = make_split(name, seed, args)
    settings = recipe(name, data, seed, args)
    module = settings.pop("module")
    warm_up(module, settings, data, PAPER_PARAMS)
    out = {}
    # the paper-exact run comes first: each variant's time is compared with it, in this process
    for variant in ["paper", *[v for v in variants if v != "paper"]]:
        methods = {DEFAULT: reweighting(module, settings, VARIANTS[variant])}
        out[variant] = run_methods(methods, data, minority=data["minority"],
                                   log=lambda line: print(f"{name}/{seed} {variant}{line}",  # noqa: B023 (called now)
                                                          flush=True))[DEFAULT]
        out[variant]["paper_seconds"] = out["paper"]["seconds"]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None,
                        help="run only these and merge them into the saved runs of the others")
    parser.add_argument("--render-only", action="store_true",
                        help="no training: rebuild the table from results/NAME.json")
    parser.add_argument("--reference", default="imbalance_noise",
                        help="results stem of the imbalance_noise.py run whose cells and baselines "
                             "to use (e.g. imbalance_noise_heldout)")
    add_name_argument(parser, "ablation")
    args = parse_arguments(parser, argv, quick_sets=1)
    cells = [(name, seed) for name in args.datasets for seed in range(args.seeds)]
    saved_path = RESULTS / (f"{args.name}_quick.json" if args.quick else f"{args.name}.json")
    saved = json.loads(saved_path.read_text()) if saved_path.exists() else None
    if args.render_only:  # re-rank saved runs against a newer imbalance_noise.json
        results = {c: saved["cells"][f"{c[0]}/{c[1]}"] for c in cells}
        minutes = saved["minutes"]
    else:
        start = time.perf_counter()
        variants = args.variants or list(VARIANTS)
        results = dict(zip(cells, map_cells(run_cell, [(n, s, args, variants) for n, s in cells], args.n_jobs)))
        minutes = (time.perf_counter() - start) / 60
        if args.variants and saved:  # add the new variants to the saved runs of the others
            for c in cells:
                old = saved["cells"][f"{c[0]}/{c[1]}"]
                for runs in old.values():  # their time stays relative to their own paper run
                    runs.setdefault("paper_seconds", old["paper"]["seconds"])
                results[c] = {**old, **results[c]}
            minutes += saved["minutes"]
    shown = [v for v in VARIANTS if all(v in results[c] for c in cells)]

    reference = RESULTS / (f"{args.reference}_quick.json" if args.quick else f"{args.reference}.json")
    baselines = json.loads(reference.read_text()).get("cells", {}) if reference.exists() else {}
    baseline_best = {}
    for cell in cells:
        others = baselines.get(f"{cell[0]}/{cell[1]}", {})
        scores = [m["balanced_accuracy"] for method, m in others.items()
                  if method not in (DEFAULT, PAPER)]
        if scores:
            baseline_best[cell] = max(scores)

    lines = ["| variant | " + " | ".join(args.datasets) + " | mean | cells won | weight AUC | time vs paper |",
             "|---|" + "---|" * (len(args.datasets) + 4)]
    payload = {}

    def summarise(label, per_cell, extra_columns=("-", "-")):
        """One table row and payload entry from a balanced accuracy per cell."""
        per_set = [np.mean([per_cell[(n, s)] for s in range(args.seeds)]) for n in args.datasets]
        won = sum(per_cell[c] >= best - 1e-12 for c, best in baseline_best.items())
        won_text = f"{won}/{len(baseline_best)}" if baseline_best else "-"
        lines.append(f"| {label} | " + " | ".join(f"{v:.3f}" for v in per_set)
                     + f" | {np.mean(per_set):.3f} | {won_text} | " + " | ".join(extra_columns) + " |")
        return {"balanced_accuracy": dict(zip(args.datasets, per_set)), "cells_won": won,
                "cells_compared": len(baseline_best)}

    for variant in shown:
        auc = np.mean([results[c][variant].get("weight_auc", np.nan) for c in cells])
        runs = [results[c][variant] for c in cells]
        time_ratio = (sum(r["seconds"] for r in runs)
                      / sum(r.get("paper_seconds", results[c]["paper"]["seconds"]) for c, r in zip(cells, runs)))
        per_cell = {c: results[c][variant]["balanced_accuracy"] for c in cells}
        payload[variant] = {**summarise(variant, per_cell, (f"{auc:.3f}", f"{time_ratio:.2f}")),
                            "weight_auc": auc, "time_ratio": time_ratio}
    if len(shown) > 1:  # an upper bound for any one setting of these options, not a method
        per_cell = {c: max(results[c][v]["balanced_accuracy"] for v in shown) for c in cells}
        payload["hindsight"] = summarise("*best variant of each cell, chosen with hindsight*", per_cell)
    header = (f"Balanced accuracy (mean over {args.seeds} seed(s)) of each reweighting variant on the "
              f"cells of `{reference.name}`; 'cells won': (set, seed) cells where the variant beats "
              f"every baseline there; the last row "
              f"takes, in each cell, the best of the variants above: no choice among them, even "
              f"one made per cell, wins more cells. Wall time of the runs behind it: "
              f"{minutes:.1f} min, {where_it_ran(args)}.\n\n")
    table = header + "\n".join(lines) + "\n"
    publish(args.name, table, {"variants": payload, "minutes": minutes,
                                "cells": {f"{n}/{s}": r for (n, s), r in results.items()}}, args)
    return payload


if __name__ == "__main__":
    main()
