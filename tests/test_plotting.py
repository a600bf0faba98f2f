"""The plots of weights and training."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from sk_reweight import ReweightedNeuralNetClassifier  # noqa: E402
from sk_reweight.plotting import plot_training_curves, plot_weight_distribution, plot_weight_history  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.RandomState(0)
    X = rng.randn(200, 3).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    flipped = rng.rand(200) < 0.2
    y_noisy = np.where(flipped, 1 - y, y)
    net = ReweightedNeuralNetClassifier(max_epochs=4, random_state=0, train_split=None)
    return net.fit(X, y_noisy, X_clean=X[:10], y_clean=y[:10]), flipped, y_noisy


def test_plots_have_labelled_axes_and_legends(fitted):
    net, flipped, y = fitted
    ax = plot_weight_history(net, corrupted=flipped)
    assert ax.get_xlabel() == "epoch" and "weight" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == [
        f"correct labels (n={(~flipped).sum()})", f"corrupted labels (n={flipped.sum()})"]
    ax = plot_weight_distribution(net.sample_weights_, labels=y)
    assert len(ax.get_legend().get_texts()) == 2
    loss_ax, acc_ax = plot_training_curves(net)
    assert {t.get_text() for t in loss_ax.get_legend().get_texts()} == {
        "training loss (unweighted)", "clean-set loss"}
    with pytest.raises(ValueError, match="corrupted has 3 entries for 200"):
        plot_weight_history(net, corrupted=[True, False, True])



def test_plotting_without_matplotlib_says_how_to_install(fitted, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match=r"pip install 'sk-reweight\[plot\]'"):
        plot_weight_history(fitted[0])



def test_verbose_2_shows_progress_bars_with_clean_loss_and_zero_share(fitted, capsys):
    _, _, y = fitted
    X = np.random.RandomState(1).randn(200, 3).astype(np.float32)
    net = ReweightedNeuralNetClassifier(max_epochs=2, verbose=2, random_state=0).fit(
        X, y, X_clean=X[:10], y_clean=y[:10])
    bar = dict(net.callbacks_)["progress_bar"]
    assert bar.postfix_keys == ["train_loss", "clean_loss", "zero_frac"]
    training_batches = [b for b in net.history[-1, "batches"] if "train_loss" in b]
    assert training_batches and all({"clean_loss", "zero_frac"} <= set(b) for b in training_batches)
    assert "weight_zero_frac" in capsys.readouterr().out  # verbose >= 1: the per-epoch table
    names = [n for n, _ in ReweightedNeuralNetClassifier(verbose=1)._default_callbacks]
    assert "progress_bar" not in names


def test_plot_comparison_orders_methods_by_mean():
    import pandas as pd

    from sk_reweight.plotting import plot_comparison

    results = pd.DataFrame({"method": ["plain", "reweight", "smote"] * 2, "seed": [0, 0, 0, 1, 1, 1],
                            "balanced_accuracy": [0.6, 0.9, 0.7, 0.62, 0.88, 0.72]})
    ax = plot_comparison(results)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["plain", "smote", "reweight"]
    assert len(ax.collections) == 3  # one scatter per method
