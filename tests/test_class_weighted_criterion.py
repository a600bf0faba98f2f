"""A class-weighted criterion: its weights define the clean loss, once, and never collapse a fit."""
import copy

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score
from sklearn.utils.class_weight import compute_class_weight
from test_engines import CASES, case_batch
from torch import nn

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.cli import make_demo_data, make_demo_methods
from sk_reweight.engines._reference import _lookahead_eps_gradients
from sk_reweight.engines._selection import ENGINES
from sk_reweight.modules import MLP
from sk_reweight.weighting import normalize_weights

loss_fn = nn.CrossEntropyLoss(reduction="none")


@pytest.mark.parametrize("engine_name,net", CASES)
def test_the_clean_loss_carries_the_class_weights_and_the_training_losses_do_not(engine_name, net):
    module, (X, y, Xc, yc) = case_batch(net)
    reference = copy.deepcopy(module)
    class_weight = torch.tensor([1.0, 4.0, 0.5], dtype=torch.float64)

    def weighted_clean(output, target):
        return loss_fn(output, target) * class_weight[target]

    expected = -_lookahead_eps_gradients(reference, loss_fn, X, y, Xc, yc, alpha=0.1,
                                         clean_loss_fn=weighted_clean)[:, 0] / 0.1
    seen = {}

    def weigh(alignment, losses):
        seen["alignment"] = alignment
        return normalize_weights(alignment)

    step = ENGINES[engine_name]().reweighted_backward(module, loss_fn, X, y, Xc, yc, weigh, clean_weight=0.5,
                                                      clean_class_weight=class_weight)
    torch.testing.assert_close(seen["alignment"], expected, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(step.clean_loss, weighted_clean(reference(Xc), yc).mean().detach())
    # the step: unweighted training losses times the learned weights, plus the weighted clean loss
    w = normalize_weights(expected)
    ((loss_fn(reference(X), y) * w).sum() + 0.5 * weighted_clean(reference(Xc), yc).mean()).backward()
    for name, p in reference.named_parameters():
        torch.testing.assert_close(module.get_parameter(name).grad, p.grad, rtol=1e-6, atol=1e-9)


def test_the_criterion_loses_its_class_weights_and_the_users_instance_is_untouched():
    X = np.random.RandomState(0).randn(60, 4).astype(np.float32)
    y = np.arange(60) % 3
    weight = torch.tensor([1.0, 2.0, 3.0])
    net = ReweightedNeuralNetClassifier(max_epochs=1, criterion__weight=weight, random_state=0)
    net.fit(X[9:], y[9:], X_clean=X[:9], y_clean=y[:9])
    assert net.criterion_.weight is None
    torch.testing.assert_close(net.class_weight_, weight)
    instance = nn.CrossEntropyLoss(weight=weight, reduction="none")
    net = ReweightedNeuralNetClassifier(max_epochs=1, criterion=instance, random_state=0)
    net.fit(X[9:], y[9:], X_clean=X[:9], y_clean=y[:9])
    assert instance.weight is weight and net.criterion_ is not instance
    plain = ReweightedNeuralNetClassifier(max_epochs=1, random_state=0).fit(X[9:], y[9:], X_clean=X[:9],
                                                                             y_clean=y[:9])
    assert plain.class_weight_ is None


def test_reweighting_with_a_class_weighted_criterion_does_not_collapse():
    # long-tailed digits with 30% flipped labels (the demo's task): with the class weights
    # counted at every place they enter, the fit predicted a single class
    scores = {"reweight": [], "class_weight": []}  # balanced accuracy per seed
    for seed in (0, 1):
        data = make_demo_data(seed)
        weight = torch.tensor(compute_class_weight("balanced", classes=np.arange(10), y=data["y_train"]),
                              dtype=torch.float32)
        recipe = dict(module=MLP, module__n_features=64, module__n_classes=10, module__hidden_units=(128,),
                      lr=3e-3, batch_size=64, max_epochs=30, criterion__weight=weight, random_state=seed)
        net = ReweightedNeuralNetClassifier(**recipe).fit(data["X_train"], data["y_train"],
                                                          X_clean=data["X_clean"], y_clean=data["y_clean"])
        # the class-weighted criterion alone: the demo's class_weight baseline, same recipe
        alone = make_demo_methods(seed, methods=["class_weight"], max_epochs=30)["class_weight"]
        alone.fit(data["X_train"], data["y_train"], X_clean=data["X_clean"], y_clean=data["y_clean"])
        predicted = net.predict(data["X_test"])
        assert len(np.unique(predicted)) == 10
        scores["reweight"].append(balanced_accuracy_score(data["y_test"], predicted))
        scores["class_weight"].append(balanced_accuracy_score(data["y_test"], alone.predict(data["X_test"])))
    assert np.mean(scores["reweight"]) >= np.mean(scores["class_weight"]) - 0.01, scores
