"""Shared machinery of the method-comparison benchmarks: run, score, tabulate, plot."""
import json
import time
from pathlib import Path

import numpy as np
from imblearn.metrics import geometric_mean_score
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score, roc_auc_score

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "g_mean", "minority_recall", "seconds")


def add_common_arguments(parser, quick_help):
    """--seeds, --device, --quick and --update-readme, shared by the comparison scripts."""
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--update-readme", action="store_true")


def score(y_true, y_pred, minority):
    """Accuracy, balanced accuracy, macro-F1, G-mean and the recall of ``minority``."""
    return {
        "accuracy": accuracy_score(y_true, y_pred),
        "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
        "macro_f1": f1_score(y_true, y_pred, average="macro"),
        "g_mean": geometric_mean_score(y_true, y_pred),
        "minority_recall": recall_score(y_true, y_pred, labels=[minority], average="macro"),
    }


def weight_auc(estimator, corrupted):
    """ROC AUC of low mean weight as a detector of the corrupted examples (reweight only)."""
    weights = getattr(estimator, "sample_weights_", None)
    if weights is None or corrupted is None or corrupted.all() or not corrupted.any():
        return None
    return roc_auc_score(corrupted, -np.nanmean(weights, axis=0))


def run_methods(methods, data, minority, log=print):
    """Fit each method on one data split; return {method: metrics}."""
    results = {}
    for name, estimator in methods.items():
        t0 = time.perf_counter()
        estimator.fit(data["X_train"], data["y_train"], X_clean=data["X_clean"], y_clean=data["y_clean"])
        seconds = time.perf_counter() - t0
        metrics = score(data["y_test"], estimator.predict(data["X_test"]), minority)
        metrics["seconds"] = seconds
        auc = weight_auc(estimator, data.get("corrupted"))
        if auc is not None:
            metrics["weight_auc"] = auc
        results[name] = metrics
        log(f"  {name:13s} " + " ".join(f"{k}={v:.3f}" for k, v in metrics.items()))
    return results


def aggregate(per_seed):
    """[{method: metrics}] over seeds -> {method: {metric: (mean, std)}}."""
    out = {}
    for method in per_seed[0]:
        keys = per_seed[0][method]
        out[method] = {k: (float(np.mean([r[method][k] for r in per_seed])),
                           float(np.std([r[method][k] for r in per_seed]))) for k in keys}
    return out


def markdown_table(rows, columns, row_label="setting", lower_is_better=("error",),
                   not_ranked=("seconds", "weight_auc")):
    """rows: [(setting, method, {metric: (mean, std)})] -> markdown, best per setting in bold.

    A column is ranked highest-first unless it is in ``lower_is_better``;
    columns in ``not_ranked`` (time, or a metric only one method has) are not.
    """
    lines = [f"| {row_label} | method | " + " | ".join(c.replace("_", " ") for c in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    best = {}
    for setting, _, stats in rows:
        for c in columns:
            if c in not_ranked or c not in stats:
                continue
            value = stats[c][0]
            better = min if c in lower_is_better else max
            best[(setting, c)] = better(best.get((setting, c), value), value)
    for setting, method, stats in rows:
        cells = []
        for c in columns:
            if c not in stats:
                cells.append("-")
                continue
            mean, std = stats[c]
            text = f"{mean:.1f}" if c == "seconds" else f"{mean:.3f} ± {std:.3f}"
            is_best = (setting, c) in best and np.isclose(mean, best[(setting, c)])
            cells.append(f"**{text}**" if is_best else text)
        lines.append(f"| {setting} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def save(name, table, payload, quick):
    """Write benchmarks/results/NAME.md and .json (quick runs go to NAME_quick.*)."""
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / (f"{name}_quick" if quick else name)
    stem.with_suffix(".md").write_text(table)
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return stem
