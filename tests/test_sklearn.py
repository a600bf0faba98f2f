"""scikit-learn integration: estimator checks, clone, Pipeline, GridSearchCV, routing."""
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.modules import MLP


class TrainingSetAsCleanSet(ReweightedNeuralNetClassifier):
    """The estimator refuses to fit without a clean set; scikit-learn's
    checks call fit(X, y), so this test-only subclass trusts X itself."""

    def fit(self, X, y, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X_clean has as many rows")
            return super().fit(X, y, X_clean=X, y_clean=y, **kwargs)

    def partial_fit(self, X, y, classes=None, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X_clean has as many rows")
            return super().partial_fit(X, y, X_clean=X, y_clean=y, **kwargs)


EXPECTED_FAILED_CHECKS = {
    "check_no_attributes_set_in_init": (
        "skorch's NeuralNet.__init__ creates history_, initialized_ and virtual_params_; "
        "inherited from skorch by design"
    ),
}


# the default and Algorithm 1 as published
@parametrize_with_checks(
    [TrainingSetAsCleanSet(max_epochs=20, lr=0.01, random_state=0),
     TrainingSetAsCleanSet(max_epochs=20, lr=0.01, random_state=0, weighting="paper")],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_clone_and_nested_params():
    net = ReweightedNeuralNetClassifier(
        module=MLP, module__hidden_units=(5,), optimizer=torch.optim.SGD,
        optimizer__momentum=0.9, clean_batch_size=8, random_state=3,
    )
    cloned = clone(net)
    params = cloned.get_params()
    assert params["module__hidden_units"] == (5,)
    assert params["optimizer__momentum"] == 0.9
    assert params["clean_batch_size"] == 8 and params["random_state"] == 3
    cloned.set_params(module__hidden_units=(7,), optimizer__momentum=0.5, meta_engine="jvp")
    assert cloned.get_params()["module__hidden_units"] == (7,)
    assert net.get_params()["module__hidden_units"] == (5,)


def test_clone_of_fitted_estimator_is_unfitted(small_data):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(max_epochs=1).fit(X, y, X_clean=Xc, y_clean=yc)
    cloned = clone(net)
    assert not hasattr(cloned, "sample_weights_")
    assert pickle.loads(pickle.dumps(cloned)).get_params()["max_epochs"] == 1


class CleanSetSpy(ReweightedNeuralNetClassifier):
    """Records the clean set that reached fit (to see the preprocessing)."""

    def fit(self, X, y, *, X_clean=None, y_clean=None, sample_weight=None, **fit_params):
        self.received_clean_ = np.asarray(X_clean)
        return super().fit(X, y, X_clean=X_clean, y_clean=y_clean,
                           sample_weight=sample_weight, **fit_params)


def shifted(small_data):
    X, y, Xc, yc = small_data
    return X * 10 + 100, y, Xc * 10 + 100, yc


def test_pipeline_with_routing_transforms_the_clean_set(small_data):
    X, y, Xc, yc = shifted(small_data)
    with sklearn.config_context(enable_metadata_routing=True):
        net = CleanSetSpy(max_epochs=10, lr=0.01, random_state=0).set_fit_request(X_clean=True, y_clean=True)
        pipe = Pipeline([("scale", StandardScaler()), ("net", net)], transform_input=["X_clean"])
        pipe.fit(X, y, X_clean=Xc, y_clean=yc)
    np.testing.assert_allclose(pipe["net"].received_clean_, pipe["scale"].transform(Xc), rtol=1e-5)
    assert pipe.score(X, y) > 0.7


def test_grid_search_over_pipeline_with_routed_and_transformed_clean_set(small_data):
    X, y, Xc, yc = shifted(small_data)
    with sklearn.config_context(enable_metadata_routing=True):
        net = ReweightedNeuralNetClassifier(max_epochs=10, batch_size=32, random_state=0)
        net.set_fit_request(X_clean=True, y_clean=True)
        pipe = Pipeline([("scale", StandardScaler()), ("net", net)], transform_input=["X_clean"])
        search = GridSearchCV(pipe, {"net__lr": [3e-3, 1e-2], "net__module__hidden_units": [(8,), (32,)]},
                              cv=3)
        search.fit(X, y, X_clean=Xc, y_clean=yc)
    assert set(search.best_params_) == {"net__lr", "net__module__hidden_units"}
    assert search.best_score_ > 0.7
    assert search.predict(X[:5]).shape == (5,)


def test_cross_validate_with_routing(small_data):
    X, y, Xc, yc = small_data
    with sklearn.config_context(enable_metadata_routing=True):
        net = ReweightedNeuralNetClassifier(max_epochs=10, lr=0.01, random_state=0)
        net.set_fit_request(X_clean=True, y_clean=True)
        scores = cross_validate(net, X, y, cv=3, params={"X_clean": Xc, "y_clean": yc})
    assert len(scores["test_score"]) == 3 and np.all(scores["test_score"] > 0.6)


def test_routing_without_request_is_rejected(small_data):
    X, y, Xc, yc = small_data
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = Pipeline([("scale", StandardScaler()), ("net", ReweightedNeuralNetClassifier())])
        with pytest.raises(Exception, match="X_clean"):
            pipe.fit(X, y, X_clean=Xc, y_clean=yc)


def test_non_routing_paths(small_data):
    X, y, Xc, yc = small_data
    pipe = Pipeline([("net", ReweightedNeuralNetClassifier(max_epochs=10, lr=0.01, random_state=0))])
    pipe.fit(X, y, net__X_clean=Xc, net__y_clean=yc)
    assert pipe.score(X, y) > 0.6
    search = GridSearchCV(ReweightedNeuralNetClassifier(max_epochs=2, random_state=0),
                          {"lr": [1e-3, 1e-2]}, cv=2)
    search.fit(X, y, X_clean=Xc, y_clean=yc)
    assert search.best_estimator_.sample_weights_.shape == (2, len(X))


def test_missing_clean_set_error_reaches_the_user_through_meta_estimators(small_data):
    X, y, _, _ = small_data
    with pytest.raises(ValueError, match=r"X_clean and y_clean not given.*fit\(X, y, X_clean="):
        ReweightedNeuralNetClassifier().fit(X, y)
    with pytest.raises(ValueError, match="trusted clean set"):
        Pipeline([("s", StandardScaler()), ("net", ReweightedNeuralNetClassifier())]).fit(X, y)
    search = GridSearchCV(ReweightedNeuralNetClassifier(), {"lr": [0.1]}, cv=2, error_score="raise")
    with pytest.raises(ValueError, match="trusted clean set"):
        search.fit(X, y)


def test_labels_of_any_type_and_pandas_input(small_data):
    X, y, Xc, yc = small_data
    for labels in (np.array([3, 7]), np.array(["spam", "ham"]), np.array([True, False])):
        net = ReweightedNeuralNetClassifier(max_epochs=2, random_state=0)
        net.fit(X, labels[y], X_clean=Xc, y_clean=labels[yc])
        assert set(net.predict(X)) <= set(labels)
        np.testing.assert_array_equal(net.classes_, np.sort(labels))
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    clean = pd.DataFrame(Xc, columns=frame.columns)
    net = ReweightedNeuralNetClassifier(max_epochs=2, random_state=0)
    net.fit(frame.astype("float64"), pd.Series(np.array(["a", "b"])[y]),
            X_clean=clean, y_clean=pd.Series(np.array(["a", "b"])[yc]))
    assert list(net.feature_names_in_) == list(frame.columns)
    assert net.n_features_in_ == X.shape[1]
    assert net.predict(frame).dtype == object
