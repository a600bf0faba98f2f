"""
A CNN on MNIST with 40% of the training labels flipped, 10 clean images per class
=================================================================================

Reads the IDX files from ``$SK_REWEIGHT_MNIST`` (or ``../shared/data/mnist``
next to a checkout; else downloads from OpenML). Plain training against
learning to reweight, same LeNet and recipe. Run:
``python examples/images/noisy_images_cnn.py``.

What to expect: the clean set drives the flipped examples' weights far below
the correct ones'. On a run this short (3,000 images, 10 epochs) plain
training has not yet memorised the uniform noise, so the two test accuracies
are close, and which one is ahead depends on the learning rate: change
``lr`` below (e.g. to 0.01) to see.
"""
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from skorch import NeuralNetClassifier

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.corruption import flip_labels_uniform, train_clean_split
from sk_reweight.datasets import load_mnist
from sk_reweight.modules import LeNet
from sk_reweight.plotting import plot_weight_history

# the gallery runs examples from their folder, without __file__
here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
shared = here.parents[2] / "shared" / "data" / "mnist"
path = None if os.environ.get("SK_REWEIGHT_MNIST") or not shared.is_dir() else shared
X, y = load_mnist(path, split="train")
X_test, y_test = load_mnist(path, split="test")
rng = np.random.RandomState(0)
subset = rng.choice(len(y), 3000, replace=False)  # keep the example under a minute on a CPU
X_train, X_clean, y_train, y_clean = train_clean_split(X[subset], y[subset], 100, random_state=0)
y_noisy, flipped = flip_labels_uniform(y_train, 0.4, random_state=0)

recipe = dict(module=LeNet, module__n_classes=10, optimizer=torch.optim.SGD, lr=0.02,
              optimizer__momentum=0.9, max_epochs=10, batch_size=100, train_split=None, verbose=0)
torch.manual_seed(0)
plain = NeuralNetClassifier(criterion=torch.nn.CrossEntropyLoss, iterator_train__shuffle=True, **recipe)
plain.fit(X_train, y_noisy)
net = ReweightedNeuralNetClassifier(random_state=0, **recipe)
net.fit(X_train, y_noisy, X_clean=X_clean, y_clean=y_clean)

plain_accuracy = np.mean(plain.predict(X_test[:2000]) == y_test[:2000])
reweighted_accuracy = net.score(X_test[:2000], y_test[:2000])
print(f"test accuracy, plain training : {plain_accuracy:.3f}")
print(f"test accuracy, reweighted     : {reweighted_accuracy:.3f}")
w = np.nanmean(net.sample_weights_, axis=0)
print(f"mean weight of flipped / correct labels: {w[flipped].mean():.2f} / {w[~flipped].mean():.2f}")

ax = plot_weight_history(net, corrupted=flipped)
ax.set_title("LeNet on MNIST, 40% flipped labels: mean weight per epoch")
plt.show()
