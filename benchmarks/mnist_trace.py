"""Why a long MNIST 4-vs-9 run decays: the steering signal, epoch by epoch.

Trains the estimator's default (``reweight``; ``--default-params`` changes
its options) on chosen runs of ``mnist_curves.py``'s protocol (proportion of
nines and seed; same splits, network and recipe) and records after every
epoch, from the public attributes of the fitted estimator:

- ``test acc``: the test accuracy (as in ``mnist_curves.py``);
- ``accepted per step``: the sum of the positive alignments
  ``<grad L_clean, grad f_i>`` of a step's batch, averaged over the epoch's
  steps (``sample_alignments_``): the first-order drop of the clean loss that
  Algorithm 1 rescales to a full step;
- ``accepted share``: the positive alignments' share of all alignments'
  absolute values over the epoch (1: the clean set accepts every example;
  near 0: nearly every example would raise the clean loss, and the few it
  accepts barely lower it);
- ``clean loss``: the clean batch's mean loss (history ``clean_loss``);
- ``train loss``: the unweighted mean training loss (history ``train_loss``);
- ``fours' weight``: the minority's share of the epoch's weight
  (``sample_weights_``), and ``nines at 0``: the share of the nines' visits
  with weight 0;
- ``trust`` and ``won``: with the cross-fitted trust (the default), the trust
  after the epoch and the share of the epoch's held-out comparisons the
  learned weights won (history ``weight_trust``, ``weight_trust_win_rate``;
  ``-`` for a weighting without the trust).

Run ``python benchmarks/mnist_trace.py --n-jobs 2``
(``--quick`` for a smoke test).
"""
import argparse
import time

import numpy as np
import torch
from _harness import (
    DEFAULT,
    add_common_arguments,
    add_default_params_argument,
    add_name_argument,
    default_params_note,
    map_cells,
    publish,
    where_it_ran,
)
from mnist_curves import WINDOW, TestAccuracy, build_methods, load_split
from mnist_imbalance import SHARED


def _run(text):
    proportion, sep, seed = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not PROPORTION:SEED, e.g. 0.98:2")
    return float(proportion), int(seed)


def trace(net, curve, minority):
    """Per-epoch steering statistics of a fitted estimator (see the module docstring)."""
    alignments, weights = net.sample_alignments_, net.sample_weights_
    steps = np.array([len(h["batches"]) for h in net.history])
    accepted = np.nansum(np.clip(alignments, 0, None), axis=1)
    majority = weights[:, ~minority]
    # a stage's epochs (e.g. fine-tuning) record no trust: NaN there
    trust = {key: [float(h.get(name, np.nan)) for h in net.history] for key, name in
             (("trust", "weight_trust"), ("trust_win_rate", "weight_trust_win_rate"))
             if any(name in h for h in net.history)}
    return {
        "test_acc": list(curve),
        "accepted_per_step": (accepted / steps).tolist(),
        "accepted_share": (accepted / np.nansum(np.abs(alignments), axis=1)).tolist(),
        "clean_loss": [float(np.mean([b["clean_loss"] for b in h["batches"] if "clean_loss" in b]))
                       for h in net.history],
        "train_loss": [float(h["train_loss"]) for h in net.history],
        "minority_weight_share": (np.nansum(weights[:, minority], 1) / np.nansum(weights, 1)).tolist(),
        # among the visits: an example not trained in an epoch has NaN, not 0
        "majority_zero_share": ((majority == 0).sum(1) / (~np.isnan(majority)).sum(1)).tolist(),
        **trust,
    }


def run_cell(proportion, seed, args, quick):
    data = load_split(proportion, seed, args, quick)
    net = build_methods([DEFAULT], args.default_params, args, seed)[DEFAULT]
    steps_per_epoch = -(-len(data["y_train"]) // 100)
    recorder = TestAccuracy(data["X_test"], data["y_test"], every=steps_per_epoch, points=args.epochs)
    net.set_params(callbacks=[("test_acc", recorder)])
    net.fit(data["X_train"], data["y_train"], X_clean=data["X_clean"], y_clean=data["y_clean"])
    labels = np.searchsorted(net.classes_, data["y_train"])
    minority = labels == np.argmin(np.bincount(labels))
    return trace(net, dict(net.callbacks_)["test_acc"].curve, minority)


COLUMNS = [("test_acc", "test acc", "{:.3f}"), ("accepted_per_step", "accepted per step", "{:.1e}"),
           ("accepted_share", "accepted share", "{:.1e}"), ("clean_loss", "clean loss", "{:.4f}"),
           ("train_loss", "train loss", "{:.3f}"), ("minority_weight_share", "fours' weight", "{:.2f}"),
           ("majority_zero_share", "nines at 0", "{:.2f}"), ("trust", "trust", "{:.2f}"),
           ("trust_win_rate", "won", "{:.2f}")]


def table(traces, every):
    lines = ["| run | epoch | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for run, t in traces.items():
        n = len(t["test_acc"])
        for epoch in sorted({0, *range(every - 1, n, every), n - 1}):
            cells = [fmt.format(t[key][epoch]) if key in t else "-" for key, _, fmt in COLUMNS]
            lines.append(f"| {run} | {epoch + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def windows(traces):
    """Per run: the last and the best window of the test accuracy (as in ``mnist_curves.py``)."""
    out = {}
    for run, t in traces.items():
        w = min(WINDOW, len(t["test_acc"]))
        means = np.convolve(t["test_acc"], np.ones(w) / w, mode="valid")
        out[run] = {"last_window": float(means[-1]), "best_window": float(means.max())}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=_run, nargs="+", default=[(0.98, 2), (0.9, 0), (0.95, 1), (0.995, 0)],
                        metavar="PROPORTION:SEED",
                        help="share of nines and seed of each run (default: 0.98:2 0.9:0, the runs where "
                             "the default decays most on seeds 0-2 of mnist_curves.py, and 0.95:1 0.995:0, "
                             "two where it does not)")
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--every", type=int, default=5, help="table rows every this many epochs")
    parser.add_argument("--data", default=str(SHARED) if SHARED.is_dir() else None,
                        help="directory with the MNIST IDX files (default: $SK_REWEIGHT_MNIST)")
    add_name_argument(parser, "mnist_trace")
    add_default_params_argument(parser)
    add_common_arguments(parser, quick_help="300 images, 3 epochs, the first run only")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.epochs, args.every = args.runs[:1], 3, 1
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    results = map_cells(run_cell, [(p, seed, args, args.quick) for p, seed in args.runs], args.n_jobs)
    traces = {f"{p} nines, seed {seed}": t for (p, seed), t in zip(args.runs, results)}
    summary = windows(traces)
    minutes = (time.perf_counter() - start) / 60
    header = (f"MNIST 4-vs-9, the protocol of `mnist_curves.py` ({args.epochs} epochs of 50 steps, constant lr "
              "1e-3), the estimator's default options. Last / best 10-epoch window of the test accuracy: "
              + "; ".join(f"{run} {s['last_window']:.3f} / {s['best_window']:.3f}" for run, s in summary.items())
              + f". Wall time {minutes:.1f} min, {where_it_ran(args)}." + default_params_note(args) + "\n\n")
    publish(args.name, header + table(traces, args.every), {"traces": traces, "summary": summary}, args)
    return traces, summary


if __name__ == "__main__":
    main()
