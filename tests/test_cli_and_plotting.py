"""The command line, the demo and the plots."""
import json
import subprocess
import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from sk_reweight import ReweightedNeuralNetClassifier  # noqa: E402
from sk_reweight.cli import main, make_demo_data  # noqa: E402
from sk_reweight.plotting import (  # noqa: E402
    plot_training_curves, plot_weight_distribution, plot_weight_history)


def test_demo_writes_table_results_and_plot(tmp_path, capsys):
    main(["demo", "--out", str(tmp_path), "--epochs", "3"])
    out = capsys.readouterr().out
    assert "| method | accuracy | balanced accuracy | macro-F1 | seconds |" in out
    assert f"Written: {tmp_path}" in out
    rows = json.loads((tmp_path / "results.json").read_text())
    assert {"reweight", "plain", "class_weight", "smote", "finetune"} <= {r["method"] for r in rows}
    assert all(0 <= r["balanced_accuracy"] <= 1 for r in rows)
    assert (tmp_path / "weights.png").stat().st_size > 10_000


def test_demo_data_holds_the_clean_set_out_before_corruption():
    data = make_demo_data(seed=0)
    assert len(data["y_clean"]) == 50 and sorted(np.bincount(data["y_clean"])) == [5] * 10
    assert data["flipped"].mean() == pytest.approx(0.3, abs=0.01)
    counts = np.bincount(data["y_train"][~data["flipped"]], minlength=10)
    assert counts.max() > 10 * counts.min()  # long-tailed


def test_cli_help_and_unknown_benchmark(capsys):
    out = subprocess.run([sys.executable, "-m", "sk_reweight", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout and "benchmark" in out.stdout
    with pytest.raises(SystemExit, match="No benchmark 'nope'; available: .*speed"):
        main(["benchmark", "nope"])


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
        f"clean labels (n={(~flipped).sum()})", f"corrupted labels (n={flipped.sum()})"]
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
