"""The command line and the demo."""
import json
import subprocess
import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from sk_reweight.cli import main, make_demo_data  # noqa: E402


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
    # only the scripts that ship, by name: no path reaches the interpreter
    with pytest.raises(SystemExit, match="No benchmark '../tests/conftest'"):
        main(["benchmark", "../tests/conftest"])




def test_demo_help_prints_a_plain_percent_sign():
    out = subprocess.run([sys.executable, "-m", "sk_reweight", "demo", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "30% mislabelled" in out.stdout and "%%" not in out.stdout


def test_demo_writes_into_a_temporary_folder_and_says_where_to_read_more(tmp_path, monkeypatch, capsys):
    import torch

    threads = torch.get_num_threads()
    monkeypatch.chdir(tmp_path)
    try:
        main(["demo", "--epochs", "1"])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # nothing in the current folder
    written = out.split("Written: ", 1)[1].split(",", 1)[0]
    assert "sk_reweight_demo_" in written and json.loads(open(written.replace("results.md", "results.json")).read())
    assert out.rstrip().endswith("help(sk_reweight.ReweightedNeuralNetClassifier).")
    help_text = subprocess.run([sys.executable, "-m", "sk_reweight", "--help"], capture_output=True, text=True).stdout
    assert "Read more" in help_text and "--threads" in subprocess.run(
        [sys.executable, "-m", "sk_reweight", "demo", "--help"], capture_output=True, text=True).stdout


def test_benchmark_outside_a_checkout_says_how_to_get_the_scripts(monkeypatch, tmp_path):
    import sk_reweight.cli as cli

    monkeypatch.setattr(cli, "BENCHMARKS", tmp_path / "no_benchmarks_here")  # an installed package
    with pytest.raises(SystemExit, match="ship with the source repository.*Clone the repository"):
        main(["benchmark", "speed"])
