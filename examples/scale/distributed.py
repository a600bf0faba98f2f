"""
Data-parallel training with torchrun: the same script on one process or many
============================================================================

Launch two processes on this machine (CPU, Gloo; on a machine with GPUs each
process takes the GPU of its local rank)::

    torchrun --standalone --nproc_per_node=2 examples/scale/distributed.py

or several hosts (run on each, with its ``--node_rank``)::

    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=4 \\
        --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 examples/scale/distributed.py

``python examples/scale/distributed.py`` runs it in one process. Every process
calls ``fit`` with the same data: the estimator sees the process group that
torchrun's environment describes (or the one your script initialised with
``torch.distributed.init_process_group``), gives each process every
``world_size``-th row of each global batch, weighs the global batch and sums
the gradients, so N processes with ``batch_size=b`` train as one process
with ``batch_size=N*b``. Every process ends with the same model and the
whole ``sample_weights_``; rank 0 reports and saves.
"""
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import make_classification
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.plotting import plot_weight_history

rank = int(os.environ.get("RANK", 0))
world_size = int(os.environ.get("WORLD_SIZE", 1))
# several processes on few cores: one thread each, or they slow one another down
torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))

# 5% minority class; 20% of the training labels flipped; 40 trusted rows
X, y = make_classification(n_samples=6000, n_features=20, n_informative=8, weights=[0.95, 0.05],
                           class_sep=1.5, random_state=0)
X = X.astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
clean = np.r_[np.flatnonzero(y_train == 0)[:20], np.flatnonzero(y_train == 1)[:20]]
rest = np.setdiff1d(np.arange(len(y_train)), clean)
noisy = y_train[rest].copy()
flip = np.random.default_rng(0).random(len(noisy)) < 0.2
noisy[flip] = 1 - noisy[flip]

net = ReweightedNeuralNetClassifier(max_epochs=10, batch_size=128 // world_size, lr=1e-2, random_state=0)
net.fit(X_train[rest], noisy, X_clean=X_train[clean], y_clean=y_train[clean])

if rank == 0:
    score = balanced_accuracy_score(y_test, net.predict(X_test))
    weights = np.nanmean(net.sample_weights_, axis=0)
    print(f"{world_size} process(es), engine {net.meta_engine_}")
    print(f"balanced accuracy on the test split: {score:.3f}")
    print(f"mean weight of flipped rows {weights[flip].mean():.2f}, of the others {weights[~flip].mean():.2f}")
    ax = plot_weight_history(net, corrupted=flip)
    ax.set_title(f"{world_size} process(es): mean weight per epoch")
    plt.show()
