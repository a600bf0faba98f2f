"""Inspect and plot what the clean set did: weight history, distribution, label issues.

Writes ``inspect_weights.png`` (or the path given as the first argument).
Run: ``python examples/inspect_weights.py``.
"""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sk_reweight import ReweightedNeuralNetClassifier  # noqa: E402
from sk_reweight.cli import make_demo_data  # noqa: E402
from sk_reweight.plotting import (  # noqa: E402
    plot_training_curves, plot_weight_distribution, plot_weight_history)

data = make_demo_data(seed=0)  # digits: long-tailed, 30% flipped, 5 clean per class
# the defaults: Algorithm 1, steered by a clean set the network does not train on
net = ReweightedNeuralNetClassifier(module__hidden_units=(128,), lr=3e-3, max_epochs=40,
                                    batch_size=64, random_state=0)
net.fit(data["X_train"], data["y_train"], X_clean=data["X_clean"], y_clean=data["y_clean"])

print("per-epoch summaries:", {k: round(net.history[-1, k], 3)
                               for k in ("weight_zero_frac", "valid_acc", "skipped_batches")})
issues = net.suspicious_examples(data["X_train"], data["y_train"], last_epochs=20)
print("five most suspicious training examples:")
for i in range(5):
    print(f"  row {issues.index[i]}: labelled {issues.given_label[i]}, predicted "
          f"{issues.predicted_label[i]}, rejected in {issues.rejection_rate[i]:.0%} of its visits, "
          f"truly flipped: "
          f"{bool(data['flipped'][issues.index[i]])}")

fig, axes = plt.subplots(2, 2, figsize=(12, 8), layout="constrained")
plot_weight_history(net, corrupted=data["flipped"], ax=axes[0, 0])
plot_weight_distribution(net, labels=np.where(data["flipped"], "flipped", data["y_train"]), ax=axes[0, 1])
plot_training_curves(net, axes=axes[1])
out = sys.argv[1] if len(sys.argv) > 1 else "inspect_weights.png"
fig.savefig(out, dpi=90)
print(f"plot written to {out}")
