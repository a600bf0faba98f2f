"""
What a reweighted step costs: whole fits against plain skorch, side by side
===========================================================================

Times whole one-epoch ``fit`` calls of plain skorch and of the reweighted
estimator with each exact engine, on the same MLP and data, in this process,
alternating, and reports the ratio to plain training (medians of the
repeats). Algorithm 1 needs the clean gradient, every example's alignment with
it and the weighted gradient; the layer-wise engine gets the alignments from
the same forward and backward pass as the update, the forward-mode engine
(any module, batch norm included) adds a Jacobian-vector product.

Timings are ratios measured here, on your machine; the project's figures
(``benchmarks/speed.py``) are in the user guide's "Threads and speed". Run:
``python examples/scale/speed.py``.
"""
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import make_classification
from skorch import NeuralNetClassifier

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.modules import MLP

torch.set_num_threads(1)  # one thread: the fairest comparison on a shared machine

n_rows, repeats = 5000, 3
X, y = make_classification(n_samples=n_rows + 100, n_features=50, n_informative=10, random_state=0)
X = X.astype(np.float32)
X_clean, y_clean, X, y = X[:100], y[:100], X[100:], y[100:]
common = dict(max_epochs=1, batch_size=256, lr=1e-3, optimizer=torch.optim.Adam)
module = dict(n_features=50, n_classes=2, hidden_units=(256, 256))


def fit_plain():
    NeuralNetClassifier(MLP, **{f"module__{k}": v for k, v in module.items()}, criterion=torch.nn.CrossEntropyLoss,
                        train_split=None, verbose=0, **common).fit(X, y)


def fit_reweighted(engine):
    net = ReweightedNeuralNetClassifier(MLP, **{f"module__{k}": v for k, v in module.items()},
                                        meta_engine=engine, random_state=0, **common)
    net.fit(X, y, X_clean=X_clean, y_clean=y_clean)


runs = {"plain skorch": fit_plain, "reweighted, layer-wise engine": lambda: fit_reweighted("layerwise"),
        "reweighted, forward-mode engine": lambda: fit_reweighted("jvp")}
seconds = {name: [] for name in runs}
for _ in range(repeats):  # alternating, so a busy moment hits every method alike
    for name, run in runs.items():
        start = time.perf_counter()
        run()
        seconds[name].append(time.perf_counter() - start)
plain = np.median(seconds["plain skorch"])
ratios = {name: np.median(times) / plain for name, times in seconds.items()}
for name, ratio in ratios.items():
    print(f"{name:34s} {ratio:.2f}x plain skorch's epoch")

fig, ax = plt.subplots(figsize=(7, 2.8), layout="constrained")
ax.barh(list(ratios), list(ratios.values()), color=["tab:gray", "tab:blue", "tab:orange"])
ax.axvline(1, color="black", lw=0.8)
ax.set_xlabel("epoch time / plain skorch's (median of repeats, 1 thread)")
ax.invert_yaxis()
plt.show()
