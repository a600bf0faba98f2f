"""
A weighting policy of your own, in one method
=============================================

Algorithm 1 keeps the examples whose gradient agrees with the clean set's
and weights them by how much they agree. Here a policy keeps the same
examples but weights them by their loss instead (small losses first), a
mix of learning to reweight and small-loss selection. Subclass
``WeightingPolicy``, implement ``weights(alignment, losses)``, and pass an
instance as ``weighting=``: smoothing, shrinkage and persistence work as
for the built-in policies.

On this run (40% flipped labels) the own policy pushes the flipped
examples' weights further down than Algorithm 1 but ends less accurate on
the test set: it shows how to write a policy, not a better one.
"""
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import make_classification

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.corruption import flip_labels_uniform, train_clean_split
from sk_reweight.weighting import Weighting, WeightingPolicy


class AgreeingSmallLoss(WeightingPolicy):
    """Examples the clean set agrees with, weighted by ``exp(-loss)``."""

    def weights(self, alignment, losses):
        return (alignment > 0) * torch.exp(-losses)


X, y = make_classification(n_samples=3000, n_features=20, n_informative=10, n_classes=4,
                           n_clusters_per_class=1, class_sep=1.5, random_state=0)
X = X.astype(np.float32)
X_train, X_clean, y_train, y_clean = train_clean_split(X[:2000], y[:2000], 40, random_state=0)
y_noisy, flipped = flip_labels_uniform(y_train, 0.4, random_state=0)
X_test, y_test = X[2000:], y[2000:]

fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
# Weighting(policy): the policy without stages, as Algorithm 1 as published ('paper') runs
for name, weighting in [("Algorithm 1", "paper"), ("own policy", Weighting(AgreeingSmallLoss()))]:
    net = ReweightedNeuralNetClassifier(max_epochs=15, lr=3e-3, random_state=0, weighting=weighting)
    net.fit(X_train, y_noisy, X_clean=X_clean, y_clean=y_clean)
    mean_weight = np.nanmean(net.sample_weights_, axis=0)
    print(f"{name:12s} test accuracy {net.score(X_test, y_test):.3f}; mean weight of "
          f"flipped examples {mean_weight[flipped].mean():.2f}, of correct ones "
          f"{mean_weight[~flipped].mean():.2f}")
    epochs = np.arange(1, len(net.sample_weights_) + 1)
    line, = ax.plot(epochs, np.nanmean(net.sample_weights_[:, ~flipped], axis=1), label=f"{name}, correct")
    ax.plot(epochs, np.nanmean(net.sample_weights_[:, flipped], axis=1), ls="--", color=line.get_color(),
            label=f"{name}, flipped")
ax.set_xlabel("epoch")
ax.set_ylabel("mean weight")
ax.legend()
plt.show()
