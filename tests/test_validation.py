"""Bad input gets an error that names the problem and the fix."""
import warnings

import numpy as np
import pytest
import torch

from sk_reweight import ReweightedNeuralNetClassifier


def fit(data, **overrides):
    X, y, Xc, yc = data
    kwargs = dict(X_clean=Xc, y_clean=yc)
    data = ("X", "y", "X_clean", "y_clean", "sample_weight")
    params = {k: overrides.pop(k) for k in list(overrides) if k not in data}
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


def test_clean_dataframe_columns_must_match_the_training_columns(small_data):
    pd = pytest.importorskip("pandas")
    X, y, Xc, yc = small_data
    columns = [f"f{i}" for i in range(X.shape[1])]
    X_df, Xc_df = pd.DataFrame(X, columns=columns), pd.DataFrame(Xc, columns=columns)
    with pytest.raises(ValueError, match=r"X_clean has X's columns in another order.*X_clean\[X.columns\]"):
        fit(small_data, X=X_df, X_clean=Xc_df[columns[::-1]])
    with pytest.raises(ValueError, match=r"X_clean lacks columns \['f0'\]"):
        fit(small_data, X=X_df, X_clean=Xc_df.rename(columns={"f0": "g0"}))
    # same columns, or a plain array (no names to compare), are taken as they are
    assert fit(small_data, X=X_df, X_clean=Xc_df).score(X_df, y) == fit(small_data, X=X_df).score(X_df, y)


def test_clean_set_left_unscaled_in_a_pipeline_warns(small_data):
    import sklearn
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, Xc, yc = small_data
    X_raw, Xc_raw = 10 * X + 100, 10 * Xc + 100

    def pipeline(**kwargs):
        net = ReweightedNeuralNetClassifier(max_epochs=1, random_state=0)
        return Pipeline([("scale", StandardScaler()), ("net", net)], **kwargs), net

    pipe, _ = pipeline()
    with pytest.warns(UserWarning, match="X_clean looks preprocessed differently from X.*transform_input"):
        pipe.fit(X_raw, y, net__X_clean=Xc_raw, net__y_clean=yc)
    # the fix the warning names: routing transforms the clean set too, and it is quiet
    with sklearn.config_context(enable_metadata_routing=True), warnings.catch_warnings():
        warnings.filterwarnings("error", message="X_clean looks preprocessed differently")
        pipe, net = pipeline(transform_input=["X_clean"])
        net.set_fit_request(X_clean=True, y_clean=True)
        pipe.fit(X_raw, y, X_clean=Xc_raw, y_clean=yc)


def test_nll_loss_needs_a_module_that_returns_probabilities(small_data):
    def module(last):
        return torch.nn.Sequential(torch.nn.Linear(6, 2), last)

    with pytest.raises(ValueError, match="criterion=NLLLoss the module must return class probabilities"):
        fit(small_data, module=module(torch.nn.LogSoftmax(dim=1)), criterion=torch.nn.NLLLoss)
    net = fit(small_data, module=module(torch.nn.Softmax(dim=1)), criterion=torch.nn.NLLLoss)
    assert np.isfinite(net.history[-1, "train_loss"])


def test_optimizer_that_needs_a_closure_is_refused(small_data):
    with pytest.raises(ValueError, match="optimizer=LBFGS needs a closure.*SGD, Adam"):
        fit(small_data, optimizer=torch.optim.LBFGS)


def test_float64_module_is_explained(small_data):
    with pytest.raises(ValueError, match=r"parameters are \['torch.float64'\].*module.float\(\)"):
        fit(small_data, module=torch.nn.Linear(6, 2).double())


def test_inputs_of_huge_scale_stop_training_without_blaming_the_engine(small_data):
    X, y, Xc, yc = small_data
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*disagrees with the exact generic one")
        with pytest.raises(FloatingPointError, match=r"Training diverged in epoch 1, batch 1"):
            fit(small_data, X=X * 1e30, X_clean=Xc * 1e30)


def test_read_only_clean_set_is_copied_for_torch(small_data):
    # pandas' copy-on-write gives read-only arrays; torch warns on those
    from sk_reweight._validation import validate_fit_data

    X, y, Xc, yc = small_data
    read_only = Xc.copy()
    read_only.flags.writeable = False
    net = ReweightedNeuralNetClassifier()
    data = validate_fit_data(net, X, y, read_only, yc, None, reset=True)
    assert data.X_clean.flags.writeable
    np.testing.assert_array_equal(data.X_clean, Xc)


def test_read_only_inputs_fit_without_torch_warnings():
    # torch warns once per process about non-writable arrays, so check in a fresh one
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from sklearn.datasets import make_classification\n"
        "from sk_reweight import ReweightedNeuralNetClassifier\n"
        "X, y = make_classification(200, 5, random_state=0)\n"
        "X = X.astype(np.float32)\n"
        "for a in (X, y):\n"
        "    a.flags.writeable = False\n"
        "w = np.ones(170, np.float32); w.flags.writeable = False\n"
        "net = ReweightedNeuralNetClassifier(max_epochs=1, random_state=0)\n"
        "net.fit(X[30:], y[30:], X_clean=X[:30], y_clean=y[:30], sample_weight=w)\n"
        "net.predict(X)\n"
    )
    result = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", script],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_balanced_clean_set_from_imbalanced_data_does_not_warn():
    # a balanced clean set shifts the feature means by about the class separation: no warning
    from sklearn.datasets import make_classification

    from sk_reweight._validation import warn_if_clean_set_scaled_differently

    # every feature informative and the classes far apart: the largest honest shift
    X, y = make_classification(n_samples=4000, n_features=8, n_informative=8, n_redundant=0,
                               weights=[0.97], class_sep=3.0, random_state=0)
    clean = np.concatenate([np.flatnonzero(y == 0)[:10], np.flatnonzero(y == 1)[:10]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_clean_set_scaled_differently(X.astype(np.float32), X[clean].astype(np.float32))
    with pytest.warns(UserWarning, match="preprocessed differently"):
        warn_if_clean_set_scaled_differently(X.astype(np.float32), 100 * X[clean].astype(np.float32) + 50)


def test_mixed_label_types_and_zero_size_examples_are_explained():
    import numpy as np

    from sk_reweight import ReweightedNeuralNetClassifier

    rng = np.random.RandomState(0)
    X = rng.randn(60, 3).astype(np.float32)
    mixed = np.array([1, "a"] * 30, dtype=object)
    net = ReweightedNeuralNetClassifier(max_epochs=1)
    with pytest.raises(ValueError, match=r"y mixes label types \(number, string\).*astype\(str\)"):
        net.fit(X[10:], mixed[10:], X_clean=X[:10], y_clean=mixed[:10])
    y = np.array(["a", "b"] * 30)
    with pytest.raises(ValueError, match="y_clean mixes label types"):
        net.fit(X[10:], y[10:], X_clean=X[:10], y_clean=mixed[:10])
    Z = np.zeros((60, 3, 0), np.float32)
    with pytest.raises(ValueError, match=r"shape \(3, 0\), with a dimension of size 0"):
        net.fit(Z[10:], y[10:], X_clean=Z[:10], y_clean=y[:10])
