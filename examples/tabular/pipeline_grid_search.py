"""
Pipeline + GridSearchCV with the clean set routed and preprocessed
==================================================================

The scaler is fitted on the training data and, thanks to metadata routing
and ``transform_input``, applied to the clean set too; the search tunes the
learning rate and the width of the network. Run:
``python examples/tabular/pipeline_grid_search.py``.
"""
import matplotlib.pyplot as plt
import numpy as np
import sklearn
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.corruption import flip_labels_uniform, train_clean_split

sklearn.set_config(enable_metadata_routing=True)

X, y = load_breast_cancer(return_X_y=True)  # raw features on very different scales
X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
X_train, X_clean, y_train, y_clean = train_clean_split(X_rest, y_rest, 20, random_state=0)
y_train, flipped = flip_labels_uniform(y_train, 0.3, random_state=0)

net = ReweightedNeuralNetClassifier(max_epochs=30, batch_size=32, random_state=0)
net.set_fit_request(X_clean=True, y_clean=True)
pipe = Pipeline([("scale", StandardScaler()), ("net", net)], transform_input=["X_clean"])
search = GridSearchCV(
    pipe, {"net__lr": [1e-3, 3e-3], "net__module__hidden_units": [(32,), (128,)]}, cv=3)
search.fit(X_train, y_train, X_clean=X_clean, y_clean=y_clean)

print("best parameters:", search.best_params_)
print(f"cross-validated accuracy on the noisy labels: {search.best_score_:.3f}")
test_accuracy = search.score(X_test, y_test)
print(f"test accuracy (true labels): {test_accuracy:.3f}")
weights = np.nanmean(search.best_estimator_["net"].sample_weights_, axis=0)
print(f"mean weight, flipped vs correct labels: {weights[flipped].mean():.2f} vs {weights[~flipped].mean():.2f}")

# every candidate's cross-validated accuracy (on the noisy labels), best on top
results = search.cv_results_
order = np.argsort(results["mean_test_score"])
names = [", ".join(f"{k.split('__')[-1]}={v}" for k, v in params.items()) for params in results["params"]]
fig, ax = plt.subplots(figsize=(7, 2.8), layout="constrained")
ax.barh([names[i] for i in order], results["mean_test_score"][order], xerr=results["std_test_score"][order],
        color="tab:blue")
ax.set_xlabel("cross-validated accuracy on the noisy labels")
ax.set_xlim(0.5, 1)
plt.show()
