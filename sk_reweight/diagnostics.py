"""Label diagnostics from a fitted model's weight history."""
import warnings

import numpy as np
from sklearn.utils import Bunch

from ._validation import encode_labels

__all__ = ["suspicious_examples"]


def suspicious_examples(net, X, y, *, last_epochs=None):
    """Rank training examples by how strongly the clean set down-weighted them.

    See :meth:`ReweightedNeuralNetClassifier.suspicious_examples
    <sk_reweight.ReweightedNeuralNetClassifier.suspicious_examples>`, which
    calls this.

    Parameters
    ----------
    net : ReweightedNeuralNetClassifier
        A fitted model.
    X, y : array-like
        The training data ``fit`` was given (rows in the same order).
    last_epochs : int, default=None
        Average the weights of the last ``last_epochs`` epochs only.

    Returns
    -------
    sklearn.utils.Bunch
        Arrays sorted from most to least suspicious: ``index``,
        ``given_label``, ``predicted_label``, ``mean_weight``,
        ``given_label_proba`` and ``score``.

    Examples
    --------
    >>> from sk_reweight.diagnostics import suspicious_examples
    >>> issues = suspicious_examples(net, X_train, y_train)  # doctest: +SKIP
    """
    net.check_is_fitted()
    weights = net.sample_weights_
    if last_epochs is not None:
        weights = weights[-last_epochs:]
    y = np.asarray(y)
    if len(y) != weights.shape[1]:
        raise ValueError(
            f"y has {len(y)} rows but the model was trained on {weights.shape[1]}; pass "
            "the training data given to fit."
        )
    with warnings.catch_warnings():  # rows held out by train_split stay NaN, ranked last
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_weight = np.nanmean(weights, axis=0)
    proba = net.predict_proba(X)
    given = encode_labels(net.classes_, y, "y")
    given_proba = proba[np.arange(len(y)), given]
    score = np.clip(1 - mean_weight, 0, 1) + 1e-3 * (1 - given_proba)
    order = np.argsort(-score, kind="stable")
    return Bunch(
        index=order,
        given_label=y[order],
        predicted_label=net.classes_[proba.argmax(axis=1)][order],
        mean_weight=mean_weight[order],
        given_label_proba=given_proba[order],
        score=score[order],
    )
