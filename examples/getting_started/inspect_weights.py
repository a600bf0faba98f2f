"""
Inspect and plot what the clean set did: weight history, distribution, label issues
===================================================================================

Shows the figure (saves it to the path given as the first argument, if any).
Run: ``python examples/getting_started/inspect_weights.py``.
"""
import sys

import matplotlib.pyplot as plt
import numpy as np

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.cli import make_demo_data
from sk_reweight.plotting import plot_training_curves, plot_weight_distribution, plot_weight_history

data = make_demo_data(seed=0)  # digits: long-tailed, 30% flipped, 5 clean per class
# the defaults: Algorithm 1 (with the unlearning guard), steered by a clean set the network does not train on
net = ReweightedNeuralNetClassifier(module__hidden_units=(128,), lr=3e-3, max_epochs=40,
                                    batch_size=64, random_state=0)
net.fit(data["X_train"], data["y_train"], X_clean=data["X_clean"], y_clean=data["y_clean"])

print("per-epoch summaries:", {k: round(net.history[-1, k], 3)
                               for k in ("weight_zero_frac", "valid_acc", "skipped_batches")})
issues = net.suspicious_examples(data["X_train"], data["y_train"], last_epochs=20)
issues["truly_flipped"] = data["flipped"][issues.index]
print("five most suspicious training examples (a DataFrame indexed by row of X_train):")
print(issues.head(5).round(3).to_string())

fig, axes = plt.subplots(2, 2, figsize=(12, 8), layout="constrained")
plot_weight_history(net, corrupted=data["flipped"], ax=axes[0, 0])
plot_weight_distribution(net, labels=np.where(data["flipped"], "flipped", data["y_train"]), ax=axes[0, 1])
plot_training_curves(net, axes=axes[1])
if len(sys.argv) > 1:  # a path to save the figure to; else it is only shown
    fig.savefig(sys.argv[1], dpi=90)
    print(f"plot written to {sys.argv[1]}")
plt.show()
