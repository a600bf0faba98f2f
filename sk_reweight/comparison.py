"""Head-to-head comparisons: every method fitted on the same data and seeds, then paired.

:func:`compare` fits each method once per seed with the same clean set and
scores it on a test set; :func:`paired_summary` pairs a reference method with
each other one over the (data set, seed) cells and gives the reference's
wins, ties and losses with a two-sided sign test. Both return pandas
DataFrames (pandas is needed here only).
"""
import time

import numpy as np
from scipy.stats import binomtest
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.pipeline import Pipeline
from sklearn.utils import Bunch

from ._clean_mask import BOTH_GIVEN, check_clean_mask
from ._stacking import stack_rows

__all__ = ["compare", "paired_summary"]

DEFAULT_SCORING = ("balanced_accuracy", "accuracy", "f1_macro")


def _pandas():
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError("sk_reweight.comparison needs pandas: pip install pandas.") from exc
    return pd


def _clean_mask_key(estimator):
    """The fit keyword that reaches the last step of (nested) Pipelines."""
    if isinstance(estimator, Pipeline):
        name, step = estimator.steps[-1]
        return f"{name}__{_clean_mask_key(step)}"
    return "clean_mask"


def _seeded(estimator, seed):
    """A clone with every ``random_state`` parameter, nested ones included, set to ``seed``."""
    estimator = clone(estimator)
    keys = [k for k in estimator.get_params(deep=True)
            if k == "random_state" or k.endswith("__random_state")]
    return estimator.set_params(**dict.fromkeys(keys, seed))


def compare(methods, X, y, *, X_clean=None, y_clean=None, clean_mask=None, X_test, y_test,
            seeds=(0,), scoring=DEFAULT_SCORING, reference="reweight", verbose=False):
    """Fit every method on the same data for every seed and score it on a test set.

    Each method is cloned, every ``random_state`` parameter in it (nested
    ones included) set to the seed, and fitted on ``X, y`` with the trusted
    rows marked by a ``clean_mask``: Pipelines (e.g. from
    :func:`~sk_reweight.baselines.make_baselines` with ``preprocessing``)
    transform the trusted rows with the rest. Every method must accept
    ``fit(X, y, clean_mask=...)``, as those of ``make_baselines`` and
    :class:`~sk_reweight.ReweightedNeuralNetClassifier` do; wrap others in
    :class:`~sk_reweight.baselines.CleanSetBaseline`.

    Parameters
    ----------
    methods : dict of str to estimator
        The methods by name, e.g. :func:`~sk_reweight.baselines.make_baselines`'s.
    X, y : array-like or DataFrame
        Training rows (possibly noisy or imbalanced), with the trusted rows
        inside when ``clean_mask`` is given.
    X_clean, y_clean : array-like or DataFrame, default=None
        The trusted set, appended to ``X, y`` for fitting (give these or
        ``clean_mask``).
    clean_mask : array-like of bool, default=None
        Trusted rows of ``X``.
    X_test, y_test : array-like or DataFrame
        Held-out rows with true labels.
    seeds : iterable of int, default=(0,)
        Each method is fitted once per seed (its ``random_state``).
    scoring : iterable of str, default=('balanced_accuracy', 'accuracy', 'f1_macro')
        Names of scikit-learn scorers; the first is the summary's metric.
    reference : str, default='reweight'
        Method the summary pairs the others with (skipped if absent).
    verbose : bool, default=False
        Print a line per fit.

    Returns
    -------
    sklearn.utils.Bunch
        ``results``: DataFrame with a row per (method, seed) and the columns
        ``method, seed``, one per scorer and ``fit_seconds``; ``summary``:
        :func:`paired_summary` of ``results`` for the first scorer (``None``
        without the reference method).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_reweight.baselines import make_baselines
    >>> from sk_reweight.comparison import compare
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(300, 3).astype(np.float32)
    >>> y = np.where(X[:, 0] > 0.8, "rare", "common")
    >>> mask = np.arange(300) < 40
    >>> methods = make_baselines(lr=0.1, max_epochs=3, include=["plain", "reweight"])
    >>> out = compare(methods, X[:200], y[:200], clean_mask=mask[:200], X_test=X[200:],
    ...               y_test=y[200:], seeds=[0, 1])
    >>> out.results[["method", "seed"]].values.tolist()
    [['plain', 0], ['reweight', 0], ['plain', 1], ['reweight', 1]]
    >>> out.summary.columns.tolist()[:4]
    ['method', 'n_cells', 'mean', 'reference_mean']
    """
    pd = _pandas()
    if not isinstance(methods, dict) or not methods:
        raise TypeError("methods must be a non-empty dict of name to estimator, e.g. make_baselines(...).")
    if clean_mask is None:
        if X_clean is None or y_clean is None:
            raise ValueError("Give the trusted set: X_clean and y_clean, or clean_mask.")
        n_train, n_clean = len(y), len(y_clean)
        X, y = stack_rows(X, X_clean), np.concatenate([np.asarray(y), np.asarray(y_clean)])
        clean_mask = np.r_[np.zeros(n_train, bool), np.ones(n_clean, bool)]
    elif X_clean is not None or y_clean is not None:
        raise ValueError(BOTH_GIVEN)
    clean_mask = check_clean_mask(clean_mask, len(y))
    scoring = list(scoring)
    scorers = {name: get_scorer(name) for name in scoring}
    rows = []
    for seed in seeds:
        for name, method in methods.items():
            estimator = _seeded(method, seed)
            start = time.perf_counter()
            estimator.fit(X, y, **{_clean_mask_key(estimator): clean_mask})
            seconds = time.perf_counter() - start
            row = {"method": name, "seed": seed}
            row.update({metric: scorer(estimator, X_test, y_test) for metric, scorer in scorers.items()})
            row["fit_seconds"] = seconds
            rows.append(row)
            if verbose:
                print(f"seed {seed} {name:16s} {scoring[0]} {row[scoring[0]]:.4f} ({seconds:.1f} s)",
                      flush=True)
    results = pd.DataFrame(rows)
    summary = paired_summary(results, reference, scoring[0]) if reference in methods else None
    return Bunch(results=results, summary=summary)


def paired_summary(results, reference="reweight", metric="balanced_accuracy", pair_on=None):
    """The reference method against each other method, cell by cell, with a sign test.

    Parameters
    ----------
    results : DataFrame
        A row per (method, cell), e.g. ``compare(...).results``, or several
        of them concatenated with a ``dataset`` column.
    reference : str, default='reweight'
        The method compared with each other one.
    metric : str, default='balanced_accuracy'
        Higher is better.
    pair_on : list of str, default=None
        Columns that identify a cell; default those of ``dataset`` and
        ``seed`` present.

    Returns
    -------
    DataFrame
        A row per other method: ``method``, ``n_cells`` (paired cells),
        ``mean`` and ``reference_mean`` over them, ``mean_difference``
        (reference minus method), ``wins``, ``ties`` and ``losses`` of the
        reference, and ``p_value`` of the two-sided sign test (ties dropped;
        1.0 without a decided cell).

    Examples
    --------
    >>> import pandas as pd
    >>> from sk_reweight.comparison import paired_summary
    >>> results = pd.DataFrame({"method": ["a", "b"] * 3, "seed": [0, 0, 1, 1, 2, 2],
    ...                         "accuracy": [0.9, 0.8, 0.7, 0.7, 0.9, 0.6]})
    >>> paired_summary(results, reference="a", metric="accuracy")[["method", "wins", "ties", "losses"]]
      method  wins  ties  losses
    0      b     2     1       0
    """
    pd = _pandas()
    if pair_on is None:
        pair_on = [c for c in ("dataset", "seed") if c in results.columns]
    missing = {reference} - set(results["method"])
    if missing:
        raise ValueError(f"reference {reference!r} is not among the methods {sorted(set(results['method']))}.")
    table = results.pivot(index=pair_on, columns="method", values=metric)
    rows = []
    for method in pd.unique(results["method"]):
        if method == reference:
            continue
        both = table[[reference, method]].dropna()
        diff = both[reference] - both[method]
        wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
        decided = wins + losses
        rows.append({
            "method": method, "n_cells": len(both), "mean": both[method].mean(),
            "reference_mean": both[reference].mean(), "mean_difference": diff.mean(),
            "wins": wins, "ties": len(both) - decided, "losses": losses,
            "p_value": binomtest(wins, decided).pvalue if decided else 1.0,
        })
    return pd.DataFrame(rows)
