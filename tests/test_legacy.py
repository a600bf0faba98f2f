"""The deprecated weight parameters of 0.2: a FutureWarning at fit naming the replacement, the same fit bit for bit."""
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.callbacks import FineTuneOnClean
from sk_reweight.weighting import (
    AlignmentWeighting,
    CleanLoss,
    CrossFitTrust,
    MetaNetWeighting,
    Shrinkage,
    Smoothing,
    UniformIfAllZero,
    UnlearningGuard,
    Weighting,
    default_weighting,
)

GUARD = UnlearningGuard(0.1)

# each deprecated spelling (on top of the default weighting='cross_fit') and its replacement
CASES = {
    "weight_shrinkage": (dict(weight_shrinkage=0.5),
                         dict(weighting=Weighting(AlignmentWeighting(), [Shrinkage(0.5), GUARD, CrossFitTrust()]))),
    "weight_smoothing": (dict(weight_smoothing=0.5),
                         dict(weighting=Weighting(AlignmentWeighting(), [Smoothing(0.5), GUARD, CrossFitTrust()]))),
    "clean_trim": (dict(clean_trim=1),
                   dict(weighting=Weighting(AlignmentWeighting(), [GUARD, CrossFitTrust()], clean_trim=1))),
    "clean_cap": (dict(clean_cap=1.0),
                  dict(weighting=Weighting(AlignmentWeighting(), [GUARD, CrossFitTrust()], clean_cap=1.0))),
    "unlearning_tolerance": (dict(weighting="alignment", unlearning_tolerance=None), dict(weighting="paper")),
    "zero_weights": (dict(zero_weights="uniform"),
                     dict(weighting=Weighting(AlignmentWeighting(), [GUARD, UniformIfAllZero(), CrossFitTrust()]))),
    "clean_weight": (dict(clean_weight=1.0),
                     dict(weighting=Weighting(AlignmentWeighting(), [GUARD, CleanLoss(1.0), CrossFitTrust()]))),
    "meta_net_lr": (dict(weighting="meta_net", meta_net_lr=0.01),
                    dict(weighting=Weighting(MetaNetWeighting(lr=0.01), [GUARD]))),
    "finetune_epochs": (dict(finetune_epochs=1), dict(callbacks=[FineTuneOnClean(1)])),
}


def fit(data, **params):
    X, y, Xc, yc = data
    net = ReweightedNeuralNetClassifier(max_epochs=2, batch_size=50, random_state=0, **params)
    return net.fit(X, y, X_clean=Xc, y_clean=yc)


def assert_same_fit(a, b):
    np.testing.assert_array_equal(a.sample_weights_, b.sample_weights_)
    for (name, p), (_, q) in zip(a.module_.state_dict().items(), b.module_.state_dict().items()):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("name", list(CASES))
def test_a_deprecated_parameter_warns_and_fits_as_its_replacement(small_data, name):
    old, new = CASES[name]
    with pytest.warns(FutureWarning, match=f"{name} is deprecated .* use"):
        before = fit(small_data, **old)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        after = fit(small_data, **new)
    assert_same_fit(before, after)


def test_the_defaults_warn_nothing(small_data):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        fit(small_data)
        fit(small_data, weighting="paper")


def test_meta_net_lr_is_not_silently_ignored(small_data):
    with pytest.warns(UserWarning, match="meta_net_lr=0.01 has no effect"):
        fit(small_data, meta_net_lr=0.01)
    net = ReweightedNeuralNetClassifier(weighting=MetaNetWeighting(), meta_net_lr=0.05)
    with pytest.warns(FutureWarning):
        assert net._make_weighting().policy.lr == 0.05


def test_bad_deprecated_values_keep_their_errors():
    with pytest.raises(ValueError, match="weight_smoothing=1.5"):
        ReweightedNeuralNetClassifier(weight_smoothing=1.5).initialize()
    with pytest.raises(ValueError, match=r"Smoothing\(momentum=1.5\)"):
        ReweightedNeuralNetClassifier(weighting=Weighting(AlignmentWeighting(), [Smoothing(1.5)])).fit(
            np.zeros((4, 2), np.float32), [0, 1, 0, 1], X_clean=np.zeros((2, 2), np.float32), y_clean=[0, 1])


def test_paper_exact_is_deprecated_and_still_algorithm_1():
    import sk_reweight
    with pytest.warns(FutureWarning, match="PAPER_EXACT is deprecated"):
        paper = sk_reweight.PAPER_EXACT
    with pytest.warns(FutureWarning):
        assert ReweightedNeuralNetClassifier(**paper)._make_weighting().stages == []


def test_fit_state_is_a_deprecated_alias_of_the_fit_context(small_data):
    seen = {}

    class Probe(FineTuneOnClean):
        def get_iterator(self, net, context):
            with pytest.warns(FutureWarning, match="fit_context_"):
                seen["alias"] = net.fit_state_ is context
            return super().get_iterator(net, context)

    fit(small_data, callbacks=[Probe(1)])
    assert seen == {"alias": True}


def test_nested_weighting_params_reach_the_stages():
    net = ReweightedNeuralNetClassifier(weighting=default_weighting())
    params = net.get_params()
    assert params["weighting__trust__memory"] == 0.8 and params["weighting__guard__tolerance"] == 0.1
    net.set_params(weighting__trust__memory=0.5, weighting__clean_trim=1, max_epochs=3)
    assert net.weighting.stages[1].memory == 0.5 and net.weighting.clean_trim == 1 and net.max_epochs == 3
    copy = clone(net)
    assert copy.weighting is not net.weighting and copy.get_params()["weighting__trust__memory"] == 0.5
    with pytest.raises(ValueError, match="no parameters to set"):
        ReweightedNeuralNetClassifier().set_params(weighting__trust__memory=0.5)
    with pytest.raises(ValueError, match="Invalid parameter"):
        net.set_params(weighting__nothing__x=1)


def test_grid_search_over_a_stage_argument(small_data):
    X, y, Xc, yc = small_data
    X, y = np.r_[X, Xc], np.r_[y, yc]
    mask = np.arange(len(X)) % 9 == 0
    net = ReweightedNeuralNetClassifier(max_epochs=1, batch_size=50, random_state=0,
                                        weighting=Weighting(AlignmentWeighting(), [Shrinkage(0.0)]))
    search = GridSearchCV(net, {"weighting__shrinkage__amount": [0.0, 1.0]}, cv=2)
    search.fit(X, y, clean_mask=mask)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert {p["weighting__shrinkage__amount"] for p in search.cv_results_["params"]} == {0.0, 1.0}
    assert search.best_estimator_.weighting_.stages[0].amount == search.best_params_["weighting__shrinkage__amount"]
    assert net.weighting.stages[0].amount == 0.0  # the search's clones were set, not the given estimator


def test_a_weighting_pickles_and_its_state_saves_and_loads(small_data, tmp_path):
    X = small_data[0]
    net = fit(small_data, weighting=Weighting(AlignmentWeighting(), [Smoothing(0.5), CrossFitTrust()]))
    loaded = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    assert loaded.weighting_.get_params()["smoothing__momentum"] == 0.5
    net.save_params(f_params=tmp_path / "p.pt", f_weighting=tmp_path / "w.pt")
    other = ReweightedNeuralNetClassifier(weighting=Weighting(AlignmentWeighting(), [Smoothing(0.5), CrossFitTrust()]))
    other.load_params(f_params=tmp_path / "p.pt", f_weighting=tmp_path / "w.pt")
    torch.testing.assert_close(other.weighting_.stages[0].averages, net.weighting_.stages[0].averages)
    assert other.weighting_.stages[1].history == net.weighting_.stages[1].history
    np.testing.assert_array_equal(other.predict_proba(X), net.predict_proba(X))


def test_a_training_stage_of_0_2_still_runs(small_data):
    class OldStage(FineTuneOnClean):
        name = "old"

        def get_iterator(self, net):  # 0.2's signature, reading the deprecated alias
            return [net.fit_state_.clean_batch()]

    with pytest.warns(FutureWarning, match="get_iterator"):
        net = fit(small_data, callbacks=[OldStage(1)])
    assert list(net.history[:, "stage"]) == ["reweight", "reweight", "old"]
