"""
Quickstart: robust training on noisy, imbalanced tabular data
=============================================================

A training set with 30% flipped labels and a 10:1 class imbalance, plus 40
trusted examples. Plain training (a skorch net, same network and settings)
against learning to reweight. The reweighted estimator needs no torch code:
its network is sized from the data; only the plain skorch net names its loss
and optimizer. Run: ``python examples/getting_started/quickstart.py``.
"""
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import make_classification
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.modules import MLP

rng = np.random.RandomState(0)
X, y = make_classification(n_samples=6000, n_features=20, n_informative=8,
                           weights=[0.9, 0.1], flip_y=0, random_state=0)
X = StandardScaler().fit_transform(X).astype(np.float32)
X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=2000, stratify=y, random_state=0)
# trusted clean set: 20 examples per class, never corrupted
clean = np.concatenate([np.flatnonzero(y_rest == c)[:20] for c in (0, 1)])
X_clean, y_clean = X_rest[clean], y_rest[clean]
train = np.setdiff1d(np.arange(len(y_rest)), clean)
X_train, y_train = X_rest[train], y_rest[train].copy()
flipped = rng.rand(len(y_train)) < 0.3
y_train[flipped] = 1 - y_train[flipped]

settings = dict(max_epochs=30, lr=1e-3, batch_size=128)

# plain training: the same network (the estimator's default MLP) and recipe
torch.manual_seed(0)
plain = NeuralNetClassifier(MLP, module__n_features=20, module__n_classes=2,
                            criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam,
                            train_split=None, verbose=0, **settings)
plain.fit(X_train, y_train)

# learning to reweight: Adam and a cross-entropy loss are its defaults
net = ReweightedNeuralNetClassifier(random_state=0, **settings)
net.fit(X_train, y_train, X_clean=X_clean, y_clean=y_clean)

print(f"balanced accuracy, plain training : {balanced_accuracy_score(y_test, plain.predict(X_test)):.3f}")
print(f"balanced accuracy, reweighted     : {balanced_accuracy_score(y_test, net.predict(X_test)):.3f}")
w = np.nanmean(net.sample_weights_, axis=0)
print(f"mean weight of flipped examples   : {w[flipped].mean():.3f}")
print(f"mean weight of correct examples   : {w[~flipped].mean():.3f}")
print(f"mean weight of minority examples  : {w[(y_train == 1) & ~flipped].mean():.3f}")

fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
bins = np.linspace(0, np.nanmax(w), 30)
ax.hist(w[~flipped], bins, alpha=0.7, label="correct labels")
ax.hist(w[flipped], bins, alpha=0.7, label="flipped labels")
ax.set_xlabel("mean weight over the epochs")
ax.set_ylabel("training rows")
ax.set_yscale("log")
ax.legend()
plt.show()
