"""Every example runs and shows what it claims."""
import runpy
from pathlib import Path

from sklearn.metrics import balanced_accuracy_score

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_beats_plain_training(capsys):
    ns = runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "balanced accuracy, reweighted" in out
    X_test, y_test = ns["X_test"], ns["y_test"]
    plain = balanced_accuracy_score(y_test, ns["plain"].predict(X_test))
    reweighted = balanced_accuracy_score(y_test, ns["net"].predict(X_test))
    assert reweighted > plain
    w, flipped = ns["w"], ns["flipped"]
    assert w[flipped].mean() < w[~flipped].mean()
