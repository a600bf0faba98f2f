"""Bad input gets an error that names the problem and the fix."""
import numpy as np
import pytest
import torch

from sk_reweight import ReweightedNeuralNetClassifier


def fit(data, **overrides):
    X, y, Xc, yc = data
    kwargs = dict(X_clean=Xc, y_clean=yc)
    params = {k: overrides.pop(k) for k in list(overrides) if k not in ("X", "y", "X_clean", "y_clean", "sample_weight")}
    kwargs.update({k: v for k, v in overrides.items() if k in ("X_clean", "y_clean", "sample_weight")})
    net = ReweightedNeuralNetClassifier(max_epochs=1, random_state=0, **params)
    return net.fit(overrides.get("X", X), overrides.get("y", y), **kwargs)


def test_missing_y_clean_names_it(small_data):
    X, y, Xc, _ = small_data
    with pytest.raises(ValueError, match="^y_clean not given"):
        ReweightedNeuralNetClassifier().fit(X, y, X_clean=Xc)


def test_clean_set_with_other_features(small_data):
    with pytest.raises(ValueError, match=r"X_clean has per-example shape \(5,\) but X has \(6,\)"):
        fit(small_data, X_clean=small_data[2][:, :5])


def test_clean_labels_not_in_training_labels(small_data):
    yc = small_data[3].copy()
    yc[0] = 9
    with pytest.raises(ValueError, match=r"y_clean contains labels \[9\] that do not occur in y"):
        fit(small_data, y_clean=yc)


def test_clean_set_missing_a_class_warns(small_data):
    X, y, Xc, yc = small_data
    with pytest.warns(UserWarning, match=r"no example of classes \[1\]"):
        fit(small_data, X_clean=Xc[yc == 0], y_clean=yc[yc == 0])


def test_clean_set_as_long_as_training_set_warns(small_data):
    X, y, _, _ = small_data
    with pytest.warns(UserWarning, match="slice every fit parameter"):
        fit(small_data, X_clean=X, y_clean=y)


def test_mismatched_lengths(small_data):
    X, y, Xc, yc = small_data
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        fit(small_data, y=y[:-1])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        fit(small_data, y_clean=yc[:-1])
    with pytest.raises(ValueError, match="sample_weight.shape"):
        fit(small_data, sample_weight=np.ones(len(X) - 1))


def test_nan_in_inputs(small_data):
    X, y, Xc, yc = small_data
    for name, value in (("X", X), ("X_clean", Xc)):
        bad = value.copy()
        bad[0, 0] = np.nan
        with pytest.raises(ValueError, match=f"Input {name} contains NaN"):
            fit(small_data, **{name: bad})


def test_single_class(small_data):
    X, y, Xc, yc = small_data
    with pytest.raises(ValueError, match="y has only one class"):
        fit(small_data, y=np.zeros_like(y), y_clean=np.zeros_like(yc))


def test_sample_weight_negative_or_all_zero(small_data):
    X = small_data[0]
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        fit(small_data, sample_weight=-np.ones(len(X)))
    with pytest.raises(ValueError, match="Sample weights must contain at least one non-zero number"):
        fit(small_data, sample_weight=np.zeros(len(X)))


def test_sparse_input_is_refused_with_the_fix(small_data):
    scipy_sparse = pytest.importorskip("scipy.sparse")
    X = small_data[0]
    with pytest.raises(TypeError, match=r"dense data is required. Use '.toarray\(\)'"):
        fit(small_data, X=scipy_sparse.csr_matrix(X))


def test_clean_batch_size_out_of_range(small_data):
    with pytest.raises(ValueError, match=r"clean_batch_size=31 must be an int between 1 and the clean set size \(30\)"):
        fit(small_data, clean_batch_size=31)


def test_criterion_must_give_per_example_losses(small_data):
    with pytest.raises(ValueError, match="one loss per example; leave criterion__reduction unset"):
        fit(small_data, criterion__reduction="mean")
    with pytest.raises(ValueError, match="Pass the class"):
        fit(small_data, criterion=torch.nn.CrossEntropyLoss())

    class ScalarLoss(torch.nn.Module):
        def forward(self, y_pred, y_true):
            return torch.nn.functional.cross_entropy(y_pred, y_true)

    with pytest.raises(ValueError, match=r"returned a loss of shape \(\) for a batch"):
        fit(small_data, criterion=ScalarLoss)


def test_unexpected_fit_keyword(small_data):
    X, y, Xc, yc = small_data
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['X_valid'\]"):
        ReweightedNeuralNetClassifier().fit(X, y, X_clean=Xc, y_clean=yc, X_valid=Xc)


def test_own_sampler_is_refused(small_data):
    with pytest.raises(ValueError, match="iterator_train__sampler is not supported"):
        fit(small_data, iterator_train__sampler=torch.utils.data.SequentialSampler(range(3)))


def test_predict_with_other_feature_count(small_data):
    net = fit(small_data)
    with pytest.raises(ValueError, match="X has 5 features, but ReweightedNeuralNetClassifier is expecting 6"):
        net.predict(small_data[0][:, :5])


def test_divergence_stops_with_epoch_and_batch(small_data):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(max_epochs=5, lr=1e12, optimizer=torch.optim.SGD,
                                        batch_size=16, random_state=0)
    with pytest.raises(FloatingPointError, match=r"Training diverged in epoch \d+, batch \d+"):
        net.fit(X * 1e3, y, X_clean=Xc * 1e3, y_clean=yc)
    assert all(torch.isfinite(p).all() for p in net.module_.parameters())


def test_infinity_and_nan_labels(small_data):
    X, y, Xc, yc = small_data
    bad = X.copy()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        fit(small_data, X=bad)
    y_nan = y.astype(float)
    y_nan[0] = np.nan
    with pytest.raises(ValueError, match="Input y contains NaN"):
        fit(small_data, y=y_nan)
    yc_nan = yc.astype(float)
    yc_nan[0] = np.nan
    with pytest.raises(ValueError, match="Input y_clean contains NaN"):
        fit(small_data, y_clean=yc_nan)


def test_empty_inputs(small_data):
    X, y, Xc, yc = small_data
    with pytest.raises(ValueError, match="The clean set is empty"):
        fit(small_data, X_clean=Xc[:0], y_clean=yc[:0])
    with pytest.raises(ValueError, match="Found array with 0 sample"):
        fit(small_data, X=X[:0], y=y[:0])


def test_string_features_are_explained(small_data):
    X, y, Xc, yc = small_data
    Xs = X.astype(object)
    Xs[0, 0] = "red"
    with pytest.raises(ValueError, match="X must be numeric.*OneHotEncoder"):
        fit(small_data, X=Xs)
    with pytest.raises(ValueError, match="X_clean must be numeric"):
        fit(small_data, X_clean=np.where(np.ones_like(Xc, bool), "a", "b"))


def test_flat_features_into_a_cnn():
    from sk_reweight.modules import LeNet

    rng = np.random.RandomState(0)
    X, y = rng.rand(40, 784).astype(np.float32), np.arange(40) % 2
    net = ReweightedNeuralNetClassifier(module=LeNet, module__n_classes=2, max_epochs=1)
    with pytest.raises(ValueError, match=r"cannot process X.*X.reshape\(len\(X\), C, H, W\)"):
        net.fit(X, y, X_clean=X[:6], y_clean=y[:6])
    net.fit(X.reshape(-1, 1, 28, 28), y, X_clean=X[:6].reshape(-1, 1, 28, 28), y_clean=y[:6])


def test_module_with_wrong_number_of_outputs(small_data):
    from sk_reweight.modules import MLP

    with pytest.raises(ValueError, match=r"returns outputs of shape \(2, 3\).*y has 2 classes.*module__n_classes=2"):
        fit(small_data, module=MLP, module__n_features=6, module__n_classes=3)
    with pytest.raises(ValueError, match="module__n_classes cannot be set with module=None"):
        fit(small_data, module__n_classes=2)
