"""weighting='meta_net' learns a map that is decreasing in the loss under label noise."""
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.corruption import flip_labels_uniform, train_clean_split
from sk_reweight.weighting import LossWeightNet, MetaNetWeighting


@pytest.fixture(scope="module")
def noisy_digits():
    """Digits, 10 trusted examples per class drawn before 40% of the other labels are flipped."""
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    X_train, X_clean, y_train, y_clean = train_clean_split(X, y, 100, random_state=0)
    y_noisy, flipped = flip_labels_uniform(y_train, 0.4, random_state=0)
    return X_train, y_noisy, X_clean, y_clean, flipped


# batch_size=32 and meta_net_lr=1e-4 inverted the ranking before the fix (AUC 0.04 and 0.01):
# a random initial map increasing in the loss, frozen by a sigmoid saturated at 1
@pytest.mark.parametrize("params", [{}, {"batch_size": 32}, {"meta_net_lr": 1e-4}, {"meta_net_lr": 1e-2}])
def test_meta_net_weights_detect_flipped_labels_on_digits(noisy_digits, params):
    X, y, X_clean, y_clean, flipped = noisy_digits
    net = ReweightedNeuralNetClassifier(weighting="meta_net", max_epochs=20, random_state=0, **params)
    net.fit(X, y, X_clean=X_clean, y_clean=y_clean)

    w = np.nanmean(net.sample_weights_, axis=0)
    assert roc_auc_score(flipped, -w) >= 0.8
    assert w[flipped].mean() < 0.9 * w[~flipped].mean()

    # the learned map itself decreases over the losses the training examples have
    proba = net.predict_proba(X)
    losses = -np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None))
    grid = torch.tensor(np.percentile(losses, [10, 50, 90]), dtype=torch.float32)
    with torch.no_grad():
        low, mid, high = net.weighting_.policy.net(grid)
    assert low > mid > high
    assert high < 0.8 * low


def test_the_initial_map_is_constant_and_draws_what_torch_draws():
    torch.manual_seed(0)
    net = LossWeightNet(hidden_units=7)
    after = torch.rand(1)
    torch.manual_seed(0)
    hidden = torch.nn.Linear(1, 7)
    torch.nn.Linear(7, 1)
    torch.testing.assert_close(net.layers[0].weight, hidden.weight)
    torch.testing.assert_close(torch.rand(1), after)  # the same random numbers drawn as before
    with torch.no_grad():
        torch.testing.assert_close(net(torch.tensor([0.0, 1.0, 10.0])), torch.full((3,), 0.5))
    policy = MetaNetWeighting()
    policy.start(n_train=3, device="cpu")
    # the first step's weights: whatever one Adam step learnt, near uniform
    w = policy(torch.tensor([1.0, -1.0, 1.0]), torch.tensor([0.1, 3.0, 0.2]))
    torch.testing.assert_close(w, torch.full((3,), 1 / 3), atol=0.05, rtol=0)


def test_a_map_saturated_the_wrong_way_recovers():
    """Saturated at 1 and increasing in the loss, while the clean set prefers the small losses."""
    torch.manual_seed(0)
    policy = MetaNetWeighting(lr=1e-2)
    policy.start(n_train=8, device="cpu")
    with torch.no_grad():
        hidden, out = policy.net.layers[0], policy.net.layers[-1]
        hidden.weight.fill_(1.0)
        hidden.bias.zero_()
        out.weight.fill_(0.05)  # logit 8 + 5 * loss: every weight about 1
        out.bias.fill_(8.0)
    losses = torch.tensor([0.1, 0.3, 0.5, 0.8, 2.0, 2.5, 3.0, 4.0])
    alignment = torch.tensor([1.0, 0.8, 0.5, 0.3, -0.5, -1.0, -1.0, -2.0])
    for _ in range(300):
        w = policy(alignment, losses)
    assert w[:4].min() > 10 * w[4:].max()
    with torch.no_grad():
        v = policy.net(losses)
    assert (v[:4] > 0.5).all() and (v[4:] < 0.5).all()  # the sign of the alignments, as weights in (0, 1)


def test_sample_weight_scales_the_meta_objective():
    """An example whose sample weight is 0 neither gets weight nor teaches the net."""
    torch.manual_seed(0)
    policy = MetaNetWeighting(lr=1e-2)
    policy.start(n_train=4, device="cpu")
    before = {k: v.clone() for k, v in policy.net.state_dict().items()}
    for _ in range(5):
        w = policy(torch.tensor([1.0, -1.0]), torch.tensor([0.2, 2.0]), sample_weight=torch.tensor([0.0, 0.0]))
    assert torch.all(w == 0)
    for k, v in policy.net.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_the_meta_net_learns_in_float32_under_float16_autocast():
    # the engines call the weighting inside the step's autocast; a float16 surrogate rounded
    # its 1e-30 floor to 0, and a batch with no weight (sample_weight 0) made the net NaN
    policy = MetaNetWeighting(lr=0.01)
    policy.start(n_train=3, device="cpu")
    with torch.autocast("cpu", dtype=torch.float16):
        w = policy(torch.tensor([1e-9, -1e-9, 2e-9]), torch.tensor([0.1, 3.0, 0.2]), sample_weight=torch.zeros(3))
    assert torch.equal(w, torch.zeros(3))
    assert all(torch.isfinite(p).all() for p in policy.net.parameters())
