"""Weighting policies as objects: a name and its instance, a user's own policy, the base class's contract."""
import pickle

import numpy as np
import pytest
import torch
from conftest import make_noisy_problem
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.weighting import AlignmentWeighting, MetaNetWeighting, Smoothing, WeightingPolicy


class SmallLossFirst(WeightingPolicy):
    """A user's own policy: the examples the clean set agrees with, small losses first."""

    def weights(self, alignment, losses):
        return (alignment > 0) * torch.exp(-losses)


@pytest.mark.parametrize("name,policy", [("alignment", AlignmentWeighting()),
                                         ("meta_net", MetaNetWeighting(lr=1e-3))])
def test_a_policy_name_and_its_instance_fit_identically(small_data, name, policy):
    X, y, Xc, yc = small_data
    by_name, by_instance = (
        ReweightedNeuralNetClassifier(max_epochs=3, batch_size=64, weighting=w, random_state=0)
        .fit(X, y, X_clean=Xc, y_clean=yc) for w in (name, policy))
    np.testing.assert_array_equal(by_name.sample_weights_, by_instance.sample_weights_)
    np.testing.assert_array_equal(by_name.predict_proba(X), by_instance.predict_proba(X))
    assert getattr(policy, "net", None) is None  # the parameter itself is never fitted
    assert type(by_instance.weighting_.policy) is type(policy)


def test_a_users_own_policy_works_end_to_end():
    X, y, Xc, yc, flipped = make_noisy_problem(noise=0.4)
    net = ReweightedNeuralNetClassifier(max_epochs=6, lr=3e-3, batch_size=64, weighting=SmallLossFirst(),
                                        weight_smoothing=0.9, random_state=0)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    w = np.nanmean(net.sample_weights_, axis=0)
    assert w[flipped].mean() < 0.5 * w[~flipped].mean()
    assert isinstance(net.weighting_.policy, SmallLossFirst)
    assert isinstance(net.weighting_.stages[0], Smoothing)  # the options' stages follow it
    # it clones, pickles and searches like any parameter
    assert isinstance(clone(net).weighting, SmallLossFirst)
    assert pickle.loads(pickle.dumps(net)).predict(X[:5]).shape == (5,)
    search = GridSearchCV(ReweightedNeuralNetClassifier(max_epochs=2, random_state=0),
                          {"weighting": [SmallLossFirst(), "alignment"]}, cv=2)
    search.fit(X, y, X_clean=Xc, y_clean=yc)
    assert len(search.cv_results_["params"]) == 2


def test_a_policy_must_say_how_it_weighs():
    class Incomplete(WeightingPolicy):
        pass

    with pytest.raises(NotImplementedError, match="must implement weights"):
        Incomplete()(torch.ones(2), torch.ones(2))
