"""Label diagnostics from a fitted model's weight history, and the type of that history."""
import numbers
import warnings

import numpy as np
import pandas as pd
from sklearn.utils.validation import _num_samples

from ._validation import encode_labels
from ._weight_history import WeightHistory

__all__ = ["suspicious_examples", "WeightHistory"]


def suspicious_examples(net, X, y, *, last_epochs=None):
    """Rank training examples by how often the clean set rejected them, and how little the model believes them.

    At each visit the clean set accepts an example when a step on it would
    lower the clean loss (its alignment is positive, ``sample_alignments_``)
    and rejects it otherwise. Mislabelled examples are rejected visit after
    visit, and a model trained with those verdicts gives their labels a low
    probability. The score adds the two: the share of visits in which the
    example was rejected, plus one minus the fitted model's probability of
    its given label. The share of rejections ranks far better than the mean
    weight, whose size also depends on the batch-mates of each visit; see
    ``benchmarks/label_issues.py`` for both against cleanlab.
    :meth:`ReweightedNeuralNetClassifier.suspicious_examples
    <sk_reweight.ReweightedNeuralNetClassifier.suspicious_examples>` calls this.

    Parameters
    ----------
    net : ReweightedNeuralNetClassifier
        A fitted model.
    X, y : array-like
        The training data ``fit`` was given (rows in the same order).
    last_epochs : int, default=None
        Count the visits of the last ``last_epochs`` epochs only.

    Returns
    -------
    pandas.DataFrame
        One row per training example, sorted from most to least suspicious,
        indexed by its row in ``X`` (index name ``row``), with the columns
        ``given_label``, ``predicted_label``, ``rejection_rate`` (share of
        visits with a non-positive alignment), ``mean_weight`` (1.0 is
        uniform), ``given_label_proba`` and ``score`` (higher is more
        suspicious: ``rejection_rate + 1 - given_label_proba``; examples
        never trained on come last). A model without recorded alignments
        (saved before they were recorded) uses ``1 - mean_weight``, clipped
        to [0, 1], in place of the rejection rate.

    Examples
    --------
    >>> from sk_reweight.diagnostics import suspicious_examples
    >>> issues = suspicious_examples(net, X_train, y_train)  # doctest: +SKIP
    >>> issues.index[:20]  # the 20 rows most worth relabelling  # doctest: +SKIP
    >>> issues.head(20)  # with their labels, predictions and scores  # doctest: +SKIP
    """
    net.check_is_fitted()
    weights, alignments = net.sample_weights_, net.sample_alignments_
    if last_epochs is not None:
        if not isinstance(last_epochs, numbers.Integral) or isinstance(last_epochs, bool) or last_epochs < 1:
            raise ValueError(f"last_epochs={last_epochs!r} must be an int >= 1 (or None for every epoch).")
        weights, alignments = weights[-last_epochs:], alignments[-last_epochs:]
    y = np.asarray(y)
    for name, rows in (("X", _num_samples(X)), ("y", len(y))):
        if rows != weights.shape[1]:
            raise ValueError(
                f"{name} has {rows} rows but the model was trained on {weights.shape[1]}; pass "
                "the training data given to fit (all of X when the clean set was a clean_mask)."
            )
    with warnings.catch_warnings():  # rows held out by train_split stay NaN, ranked last
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_weight = np.nanmean(weights, axis=0)
        visits = (~np.isnan(alignments)).sum(axis=0)
        rejection_rate = (alignments <= 0).sum(axis=0) / visits
    verdicts = rejection_rate if visits.any() else np.clip(1 - mean_weight, 0, 1)
    proba = net.predict_proba(X)
    given = encode_labels(net.classes_, y, "y")
    given_proba = proba[np.arange(len(y)), given]
    score = np.where(np.isnan(verdicts), -1.0, verdicts + 1 - given_proba)
    order = np.argsort(-score, kind="stable")
    return pd.DataFrame({
        "given_label": y[order],
        "predicted_label": net.classes_[proba.argmax(axis=1)][order],
        "rejection_rate": rejection_rate[order],
        "mean_weight": mean_weight[order],
        "given_label_proba": given_proba[order],
        "score": score[order],
    }, index=pd.Index(order, name="row"))
