"""Plots of the learned weights and of training (needs matplotlib).

Each function draws on ``ax`` (a new figure when ``None``) and returns the
axes, so plots compose into figures of your own.
"""
import numpy as np

__all__ = ["plot_weight_history", "plot_weight_distribution", "plot_training_curves", "plot_comparison"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "sk_reweight.plotting needs matplotlib: pip install 'sk-reweight[plot]'."
        ) from exc
    return plt


def _axes(ax, figsize=(6.4, 4.0)):
    if ax is None:
        _, ax = _pyplot().subplots(figsize=figsize, layout="constrained")
    return ax


def _weights(net_or_weights):
    weights = getattr(net_or_weights, "sample_weights_", net_or_weights)
    return np.asarray(weights, dtype=float)


def _groups(n, corrupted, labels):
    if corrupted is not None:
        corrupted = np.asarray(corrupted, dtype=bool)
        if len(corrupted) != n:
            raise ValueError(f"corrupted has {len(corrupted)} entries for {n} training examples.")
        # "correct": the training rows whose label is right, not the trusted clean set
        return [("correct labels", ~corrupted), ("corrupted labels", corrupted)]
    if labels is not None:
        labels = np.asarray(labels)
        if len(labels) != n:
            raise ValueError(f"labels has {len(labels)} entries for {n} training examples.")
        return [(f"class {c}", labels == c) for c in np.unique(labels)]
    return [("all examples", np.ones(n, bool))]


def plot_weight_history(net_or_weights, *, corrupted=None, labels=None, ax=None):
    """Mean weight per epoch for groups of training examples, with spread bands.

    Parameters
    ----------
    net_or_weights : ReweightedNeuralNetClassifier or array of shape (n_epochs, n)
        A fitted net (its ``sample_weights_``) or the weights themselves.
    corrupted : array-like of bool, default=None
        Which training labels are known to be wrong: plots clean vs corrupted.
    labels : array-like, default=None
        Training labels: plots one line per class (when ``corrupted`` is None).
    ax : matplotlib.axes.Axes, default=None
        Where to draw; default: a new figure.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_reweight.plotting import plot_weight_history
    >>> weights = np.array([[1.5, 0.0, 1.5], [1.2, 0.3, 1.5]])  # 2 epochs, 3 examples
    >>> ax = plot_weight_history(weights, corrupted=[False, True, False])
    >>> [t.get_text() for t in ax.get_legend().get_texts()]
    ['correct labels (n=2)', 'corrupted labels (n=1)', 'uniform weight']
    """
    W = _weights(net_or_weights)
    ax = _axes(ax)
    epochs = np.arange(1, len(W) + 1)
    for name, mask in _groups(W.shape[1], corrupted, labels):
        group = W[:, mask]
        mean = np.nanmean(group, axis=1)
        low, high = np.nanpercentile(group, 25, axis=1), np.nanpercentile(group, 75, axis=1)
        line, = ax.plot(epochs, mean, marker="o", markersize=3, label=f"{name} (n={mask.sum()})")
        ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.axhline(1.0, color="grey", linestyle=":", linewidth=1, label="uniform weight")
    ax.set_xlabel("epoch")
    ax.set_ylabel("weight (1 = uniform)")
    ax.set_title("Learned example weights: mean and interquartile band")
    ax.legend(fontsize="small")
    return ax


def plot_weight_distribution(net_or_weights, *, corrupted=None, labels=None, last_epochs=None,
                             bins=40, ax=None):
    """Histogram of each example's mean weight, per group.

    Parameters
    ----------
    net_or_weights : ReweightedNeuralNetClassifier or array of shape (n_epochs, n)
        A fitted net (its ``sample_weights_``) or the weights themselves.
    corrupted : array-like of bool, default=None
        Which training labels are known to be wrong: one histogram each for clean and corrupted.
    labels : array-like, default=None
        Training labels: one histogram per class (when ``corrupted`` is None).
    last_epochs : int, default=None
        Average over the last ``last_epochs`` epochs only.
    bins : int, default=40
        The number of histogram bins.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; default: a new figure.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_reweight.plotting import plot_weight_distribution
    >>> weights = np.random.RandomState(0).rand(5, 50) * 2
    >>> plot_weight_distribution(weights, labels=np.arange(50) % 2).get_xlabel()
    'mean weight over epochs (1 = uniform)'
    """
    W = _weights(net_or_weights)
    if last_epochs is not None:
        W = W[-last_epochs:]
    mean = np.nanmean(W, axis=0)
    ax = _axes(ax)
    edges = np.linspace(0, np.nanmax(mean) if np.isfinite(mean).any() else 1, bins + 1)
    for name, mask in _groups(W.shape[1], corrupted, labels):
        ax.hist(mean[mask], bins=edges, alpha=0.6, label=f"{name} (n={mask.sum()})")
    ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("mean weight over epochs (1 = uniform)")
    ax.set_ylabel("number of examples")
    ax.set_title("Distribution of final weights")
    ax.legend(fontsize="small")
    return ax


def plot_training_curves(net, *, axes=None):
    """Training and clean-set loss and accuracy per epoch, from ``net.history``.

    Parameters
    ----------
    net : ReweightedNeuralNetClassifier or skorch.NeuralNet
        A fitted net.
    axes : pair of matplotlib.axes.Axes, default=None
        Where to draw the loss and the accuracy; default: a new figure.

    Returns
    -------
    tuple of matplotlib.axes.Axes
        The loss axes and the accuracy axes.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_reweight import ReweightedNeuralNetClassifier
    >>> from sk_reweight.plotting import plot_training_curves
    >>> X = np.random.RandomState(0).randn(60, 3).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(int)
    >>> net = ReweightedNeuralNetClassifier(max_epochs=2).fit(X[10:], y[10:], X_clean=X[:10], y_clean=y[:10])
    >>> loss_ax, acc_ax = plot_training_curves(net)
    >>> loss_ax.get_title(), acc_ax.get_title()
    ('Loss', 'Accuracy and zero weights')
    """
    history = net.history
    if axes is None:
        _, axes = _pyplot().subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    loss_ax, acc_ax = axes
    epochs = history[:, "epoch"]
    for key, label in (("train_loss", "training loss (unweighted)"), ("valid_loss", "clean-set loss")):
        _plot_series(loss_ax, history, epochs, key, label, marker="o", markersize=3)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("cross-entropy")
    loss_ax.set_title("Loss")
    loss_ax.legend(fontsize="small")
    for key, label in (("train_acc", "training accuracy"), ("valid_acc", "clean-set accuracy")):
        _plot_series(acc_ax, history, epochs, key, label, marker="o", markersize=3)
    _plot_series(acc_ax, history, epochs, "weight_zero_frac", "share of zero weights", linestyle="--")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylim(0, 1.02)
    acc_ax.set_title("Accuracy and zero weights")
    acc_ax.legend(fontsize="small")
    return loss_ax, acc_ax


def plot_comparison(results, *, metric="balanced_accuracy", reference="reweight", ax=None):
    """Each method's scores over the cells of a comparison, best mean on top.

    Parameters
    ----------
    results : DataFrame
        ``sk_reweight.comparison.compare(...).results`` (or several
        concatenated): columns ``method`` and ``metric``.
    metric : str, default='balanced_accuracy'
        The score plotted (a column of ``results``).
    reference : str or None, default='reweight'
        Drawn in a second colour, with its mean as a vertical line.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; default: a new figure.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Examples
    --------
    >>> import pandas as pd
    >>> from sk_reweight.plotting import plot_comparison
    >>> results = pd.DataFrame({"method": ["plain", "reweight"] * 2, "seed": [0, 0, 1, 1],
    ...                         "balanced_accuracy": [0.7, 0.8, 0.72, 0.79]})
    >>> plot_comparison(results).get_xlabel()
    'balanced_accuracy'
    """
    means = results.groupby("method", sort=False)[metric].mean().sort_values()
    ax = _axes(ax, figsize=(6.4, 0.9 + 0.32 * len(means)))
    jitter = np.random.RandomState(0)
    for rank, (method, mean) in enumerate(means.items()):
        scores = results.loc[results["method"] == method, metric].to_numpy(dtype=float)
        colour = "C1" if method == reference else "C0"
        ax.scatter(scores, rank + jitter.uniform(-0.12, 0.12, len(scores)), s=14, alpha=0.6, color=colour)
        ax.plot([mean, mean], [rank - 0.3, rank + 0.3], color=colour, linewidth=2.5)
        if method == reference:
            ax.axvline(mean, color=colour, linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(means)), list(means.index))
    ax.set_xlabel(metric)
    ax.set_title("Each dot one cell (data set, seed); bar: mean")
    return ax


def _plot_series(ax, history, epochs, key, label, **style):
    """Plot one per-epoch history entry, if any epoch recorded it (NaN where missing)."""
    values = [row.get(key) for row in history]
    if any(v is not None for v in values):
        ax.plot(epochs, [np.nan if v is None else v for v in values], label=label, **style)
