"""Shared machinery of the method-comparison benchmarks: run, score, tabulate, plot."""
import argparse
import ast
import json
import os
import time
from pathlib import Path

import numpy as np
from imblearn.metrics import geometric_mean_score
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score, roc_auc_score

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "g_mean", "minority_recall", "seconds")
# The method names of every benchmark: the estimator's default options, and Algorithm 1
DEFAULT = "reweight"
PAPER = "reweight_paper"
#: Algorithm 1 as published: the estimator's parameters of the ``reweight_paper`` rows
PAPER_PARAMS = {"weighting": "paper"}


def paper_and_default(build, include=None, default_params=None):
    """The methods ``build(names, reweight_params)`` makes, with reweighting twice.

    ``reweight`` (:data:`DEFAULT`) has the estimator's default options,
    changed by ``default_params`` (``--default-params``); ``reweight_paper``
    (:data:`PAPER`) is Algorithm 1 as published (``weighting="paper"``, what the
    paper-reproduction tables show). ``include``: the method names to run
    (``None``: all).
    """
    others = None if include is None else [m for m in include if m not in (DEFAULT, PAPER)]
    methods = build(others, PAPER_PARAMS)
    methods.pop(DEFAULT, None)  # make_baselines' own reweighting row
    for name, params in ((PAPER, PAPER_PARAMS), (DEFAULT, default_params)):
        if include is None or name in include:
            methods[name] = build([DEFAULT], params)[DEFAULT]
    return methods


def _option(text):
    """``NAME=VALUE`` from the command line: the value as a Python literal, else a call of the public
    weighting objects (``weighting=Weighting(AlignmentWeighting(), [Shrinkage(0.5)])``), else a string."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE, e.g. weighting=alignment")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        pass
    try:
        tree = ast.parse(value, mode="eval")
    except SyntaxError:
        return name, value
    if not isinstance(tree.body, ast.Call):
        return name, value
    import sk_reweight.weighting as weighting

    names = {n: getattr(weighting, n) for n in weighting.__all__}
    # calls of those names with literal arguments, nothing else: no attribute (no way out through
    # __globals__ and the like), no other name, no builtins
    allowed = (ast.Expression, ast.Call, ast.keyword, ast.Name, ast.Load, ast.Constant, ast.List, ast.Tuple,
               ast.UnaryOp, ast.USub)
    odd = [type(node).__name__ for node in ast.walk(tree) if not isinstance(node, allowed)]
    odd += [node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id not in names]
    if odd:
        raise argparse.ArgumentTypeError(f"{text!r}: only calls of sk_reweight.weighting's names with literal "
                                         f"arguments are allowed, not {', '.join(map(str, odd))}")
    try:
        return name, eval(compile(tree, "--default-params", "eval"), {"__builtins__": {}}, names)
    except Exception as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc} (the names are sk_reweight.weighting's)") from exc


def default_params_note(args):
    """A sentence for a table's header when ``--default-params`` changed the default."""
    if not args.default_params:
        return ""
    options = ", ".join(f"{k}={v!r}" for k, v in args.default_params.items())
    return f" This run changed the estimator's default options: `reweight` has {options}."


def add_common_arguments(parser, quick_help):
    """--seeds, --device, --n-jobs, --threads and --quick, shared by the comparison scripts."""
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n-jobs", type=int, default=1,
                        help="worker processes, one torch thread each (--n-jobs 1 --threads 1 gives "
                             "the same results; another thread count rounds differently)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the main process")
    parser.add_argument("--quick", action="store_true", help=quick_help)


class _OptionsAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, dict(values))


def add_name_argument(parser, name):
    """--name: the results file stem (default ``name``)."""
    parser.add_argument("--name", default=name,
                        help="results file stem (benchmarks/results/NAME.*)")


def add_method_arguments(parser, name):
    """--methods, --name (default ``name``) and --default-params, for the scripts with default rows."""
    parser.add_argument("--methods", nargs="+", default=None,
                        help=f"baseline names and {PAPER!r} (default: all)")
    add_name_argument(parser, name)
    add_default_params_argument(parser)


def add_default_params_argument(parser):
    """--default-params NAME=VALUE ...: options of the ``reweight`` (default) rows."""
    parser.add_argument("--default-params", nargs="+", type=_option, action=_OptionsAction,
                        default={}, metavar="NAME=VALUE",
                        help="change the estimator's default options in its default rows, e.g. "
                             "--default-params weighting=alignment, or a weighting built from "
                             "sk_reweight.weighting's names: \"weighting=Weighting(AlignmentWeighting(), "
                             "[Shrinkage(0.5), UnlearningGuard(0.1), CrossFitTrust()])\" (with --name, to "
                             "keep the default's own results)")


def map_cells(function, cells, n_jobs=1):
    """``[function(*cell) for cell in cells]``, in worker processes when ``n_jobs > 1``.

    Each cell seeds its own estimators, so the results do not depend on the
    number of workers; workers use one torch thread each (for LeNet at batch
    100 one thread was measured about as fast as two here, so two workers
    nearly double the throughput). The thread count does change the rounding,
    and long runs amplify it: ``n_jobs=1`` runs in the calling process with
    its threads (noisy labels, MNIST, 100 clean, seed 0, 30 epochs:
    Algorithm 1 at 0.939 with two threads, 0.925 in a worker and 0.925 with
    ``--n-jobs 1 --threads 1``).
    """
    if n_jobs == 1:
        return [function(*cell) for cell in cells]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=n_jobs)(delayed(_single_threaded)(function, *cell) for cell in cells)


def where_it_ran(args):
    """How :func:`map_cells` ran a script's cells, for its table's header: worker processes of one
    torch thread, or the calling process with ``--threads``; and on how many CPU cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if args.n_jobs == 1:
        return f"1 process of {args.threads} torch thread(s) on {cores} CPU cores"
    n_jobs = args.n_jobs if args.n_jobs > 0 else max(1, cores + 1 + args.n_jobs)  # joblib's -1: every core
    return f"{n_jobs} process(es) of one torch thread on {cores} CPU cores"


def _single_threaded(function, *args):
    import torch

    torch.set_num_threads(1)
    return function(*args)


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


def paired_table(results, metric, cell="(table, seed)"):
    """Markdown: :data:`DEFAULT` against each other method over the cells of ``results``.

    ``results`` has a row per (method, cell) with ``dataset`` and ``seed``
    columns; the table gives each method's mean, the default's wins, ties and
    losses and a two-sided sign test (``sk_reweight.comparison.paired_summary``).
    Returns the markdown and the summary DataFrame.
    """
    from sk_reweight.comparison import paired_summary

    summary = paired_summary(results, reference=DEFAULT, metric=metric)
    if summary.empty:  # the default alone (--methods reweight): nothing to pair it with
        return "", summary
    n_cells = results.groupby(["dataset", "seed"]).ngroups
    lines = [f"\nPaired over {n_cells} {cell} cells, {metric.replace('_', ' ')}: `{DEFAULT}` against each "
             f"method (wins/ties/losses of `{DEFAULT}`, two-sided sign test):\n",
             f"| method | mean | {DEFAULT} mean | difference | wins | ties | losses | p |",
             "|---|---|---|---|---|---|---|---|"]
    for row in summary.sort_values("mean", ascending=False).itertuples():
        p = "<0.001" if row.p_value < 0.001 else f"{row.p_value:.3f}"
        lines.append(f"| {row.method} | {row.mean:.3f} | {row.reference_mean:.3f} | {row.mean_difference:+.3f} | "
                     f"{row.wins} | {row.ties} | {row.losses} | {p} |")
    return "\n".join(lines) + "\n", summary


def publish(name, table, payload, args, figure=None):
    """Print ``table`` and save it (see :func:`save`); the docs include ``results/NAME.md``.

    ``figure(path)`` draws a PNG at ``results/NAME.png``, which the docs show
    under the table.
    """
    print(table)
    stem = save(name, table, payload, args.quick)
    if figure is not None:
        figure(stem.with_suffix(".png"))
    print(f"written to {stem}.*")
    return stem


def pyplot():
    """matplotlib's pyplot, drawing to files only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(stats, metric, path, title):
    """Grouped bars: ``stats[setting][method][metric] = (mean, std)``, one group per setting."""
    plt = pyplot()
    settings = list(stats)
    methods = list(dict.fromkeys(m for s in settings for m in stats[s]))
    fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(settings) + 2), 4.5), layout="constrained")
    width = 0.8 / len(methods)
    colors = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20").colors
    for i, method in enumerate(methods):
        means, stds = zip(*(stats[s].get(method, {}).get(metric, (np.nan, 0)) for s in settings))
        bold = method.startswith("reweight")
        ax.bar(np.arange(len(settings)) + (i - (len(methods) - 1) / 2) * width, means, width, yerr=stds,
               label=method, color=colors[i % len(colors)], edgecolor="black" if bold else "none",
               linewidth=1.2 if bold else 0)
    ax.set_xticks(np.arange(len(settings)), [s.replace(", ", "\n") for s in settings], fontsize="small")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title)
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def save(name, table, payload, quick):
    """Write benchmarks/results/NAME.md and .json (quick runs go to NAME_quick.*)."""
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / (f"{name}_quick" if quick else name)
    stem.with_suffix(".md").write_text(table)
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return stem
