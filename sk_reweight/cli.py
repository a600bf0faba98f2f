"""Command line: ``sk-reweight demo`` and ``sk-reweight benchmark NAME``."""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


READ_MORE = ("Read more: the user guide, API reference and example gallery in the repository's docs/ "
             "(pip install -e '.[docs]' && sphinx-build docs docs/_build/html), the examples in "
             "examples/, and help(sk_reweight.ReweightedNeuralNetClassifier).")


def make_demo_data(seed=0, imbalance_factor=20, noise=0.3, clean_per_class=5):
    """Digits, long-tailed and noisy, with a trusted clean set held out first.

    Returns
    -------
    dict with X_train, y_train (noisy), flipped, X_clean, y_clean, X_test, y_test
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from .corruption import flip_labels_uniform, make_imbalanced, train_clean_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    X_train, X_clean, y_train, y_clean = train_clean_split(
        X_rest, y_rest, clean_per_class * 10, random_state=seed)
    X_train, y_train, _ = make_imbalanced(X_train, y_train, imbalance_factor=imbalance_factor,
                                          random_state=seed)
    y_noisy, flipped = flip_labels_uniform(y_train, noise, random_state=seed)
    return dict(X_train=X_train, y_train=y_noisy, flipped=flipped, X_clean=X_clean, y_clean=y_clean,
                X_test=X_test, y_test=y_test)


def make_demo_methods(seed=0, device="cpu", methods=None, max_epochs=60, reweight_params=None):
    """The demo's methods (``make_baselines`` names) with its network and recipe.

    An MLP with 128 hidden units, Adam at lr 3e-3, batches of 64,
    ``max_epochs`` epochs (fine-tuning: 20). ``methods``: default reweight
    and the strongest baselines (cleanlab only where installed);
    ``reweight_params``: options of ``reweight``.
    """
    from .baselines import make_baselines
    from .modules import MLP

    methods = methods or ["reweight", "plain", "class_weight", "smote", "finetune", "cleanlab"]
    return make_baselines(
        MLP, module_params=dict(n_features=64, n_classes=10, hidden_units=(128,)), lr=3e-3,
        optimizer=torch.optim.Adam, max_epochs=max_epochs, batch_size=64,
        finetune_epochs=20, reweight_params=reweight_params, random_state=seed, device=device,
        include=[m for m in methods if m != "cleanlab" or _has_cleanlab()],
    )


def run_demo(out, seed=0, device="cpu", methods=None, max_epochs=60, show=print):
    """Train reweighting and the strongest baselines on the demo data; write results."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
    from tqdm.auto import tqdm

    data = make_demo_data(seed)
    n_train = len(data["y_train"])
    show(f"Digits, long-tailed (imbalance factor 20) with 30% flipped labels: {n_train} training "
         f"examples, {int(data['flipped'].sum())} of them mislabelled; a trusted clean set of "
         f"{len(data['y_clean'])} (5 per class); {len(data['y_test'])} untouched test examples.")
    estimators = make_demo_methods(seed, device, methods, max_epochs)
    rows = []
    for name, est in tqdm(estimators.items(), desc="training", unit="method"):
        t0 = time.perf_counter()
        est.fit(data["X_train"], data["y_train"], X_clean=data["X_clean"], y_clean=data["y_clean"])
        pred = est.predict(data["X_test"])
        rows.append(dict(method=name, accuracy=accuracy_score(data["y_test"], pred),
                         balanced_accuracy=balanced_accuracy_score(data["y_test"], pred),
                         macro_f1=f1_score(data["y_test"], pred, average="macro"),
                         seconds=time.perf_counter() - t0))
    rows.sort(key=lambda r: -r["balanced_accuracy"])
    table = ["| method | accuracy | balanced accuracy | macro-F1 | seconds |", "|---|---|---|---|---|"]
    table += [f"| {r['method']} | {r['accuracy']:.3f} | {r['balanced_accuracy']:.3f} | "
              f"{r['macro_f1']:.3f} | {r['seconds']:.1f} |" for r in rows]
    show("\n".join(table))

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text("\n".join(table) + "\n")
    (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    written = [out / "results.md", out / "results.json"]
    net = estimators.get("reweight")
    if net is not None:
        issues = net.suspicious_examples(data["X_train"], data["y_train"])
        k = int(data["flipped"].sum())
        precision = data["flipped"][issues.index[:k]].mean()
        show(f"Label diagnostics: of the {k} examples ranked most suspicious (rejected by the clean "
             f"set most often, least believed by the model), {precision:.0%} are indeed mislabelled "
             "(net.suspicious_examples).")
        try:
            written.append(_plot_demo(net, data, out / "weights.png"))
        except ImportError as exc:
            show(f"(no plot: {exc})")
    show("Written: " + ", ".join(str(p) for p in written))
    return rows


def _plot_demo(net, data, path):
    from .plotting import _pyplot, plot_training_curves, plot_weight_distribution, plot_weight_history

    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), layout="constrained")
    plot_weight_history(net, corrupted=data["flipped"], ax=axes[0, 0])
    plot_weight_distribution(net, corrupted=data["flipped"], ax=axes[0, 1])
    plot_training_curves(net, axes=axes[1])
    fig.suptitle("sk-reweight demo: digits, long-tailed, 30% flipped labels")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _has_cleanlab():
    try:
        import cleanlab  # noqa: F401
    except ImportError:
        return False
    return True


def run_benchmark(name, args):
    """Run the shipped script ``benchmarks/NAME.py`` (by name only) in a new process."""
    available = sorted(p.stem for p in BENCHMARKS.glob("[!_]*.py")) if BENCHMARKS.is_dir() else []
    if name not in available:
        raise SystemExit(
            f"No benchmark {name!r}" + (f"; available: {', '.join(available)}" if available else
                                        ": the benchmark scripts ship with the source repository, "
                                        "not with the installed package. Clone the repository, "
                                        "install it with pip install -e . and run this (or python "
                                        "benchmarks/NAME.py) there.")
        )
    raise SystemExit(subprocess.call([sys.executable, str(BENCHMARKS / f"{name}.py"), *args]))


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="sk-reweight", epilog=READ_MORE,
        description="Learning to reweight examples (Ren et al., 2018) as a scikit-learn estimator.")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="train on imbalanced, noisy digits against baselines (default)",
                          description="Digits made long-tailed and 30% mislabelled, a clean set of 5 "
                                      "per class held out first: reweighting against plain training, "
                                      "class weights, SMOTE, fine-tuning and cleanlab. Prints a table; "
                                      "writes results.md, results.json and weights.png to --out.",
                          epilog=READ_MORE)
    demo.add_argument("--out", default=None,
                      help="output directory (default: a new temporary folder, printed at the end)")
    demo.add_argument("--threads", type=int, default=1,
                      help="torch threads; small networks are fastest on one, above all on a busy "
                           "machine (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: %(default)s)")
    demo.add_argument("--epochs", type=int, default=60, help="training epochs (default: %(default)s)")
    bench = sub.add_parser("benchmark", help="run a script from benchmarks/ (e.g. speed, load)",
                           description="Runs benchmarks/NAME.py with the remaining arguments "
                                       "(try: sk-reweight benchmark speed --help).")
    bench.add_argument("name")
    bench.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "benchmark":
        return run_benchmark(args.name, args.args)
    if args.command is None:
        args = parser.parse_args(["demo", *(argv or [])])
    torch.set_num_threads(args.threads)
    out = args.out or tempfile.mkdtemp(prefix="sk_reweight_demo_")  # not the current folder
    run_demo(out, seed=args.seed, device=args.device, max_epochs=args.epochs)
    print(READ_MORE)


if __name__ == "__main__":
    main()
