import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss
from skorch.callbacks import Callback, GradientNormClipping

from sk_reweight import ReweightedNeuralNetClassifier, TrainingDivergedError
from sk_reweight.callbacks import FineTuneOnClean, WeightRecorder


class Tally(Callback):
    """Counts what skorch's loop shows callbacks, per stage."""

    def initialize(self):
        self.batches, self.grads, self.epochs = {}, {}, []
        return self

    def on_epoch_begin(self, net, **kwargs):
        self.epochs.append(net.history[-1, "stage"])

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            stage = net.history[-1, "stage"]
            self.batches[stage] = self.batches.get(stage, 0) + 1

    def on_grad_computed(self, net, named_parameters, **kwargs):
        stage = net.history[-1, "stage"]
        self.grads[stage] = self.grads.get(stage, 0) + 1


def test_fine_tuning_runs_through_the_fit_loop(small_data):
    X, y, Xc, yc = small_data  # 30 clean examples: 3 batches of 10 per fine-tuning epoch
    tally = Tally()
    net = ReweightedNeuralNetClassifier(max_epochs=2, batch_size=90, clean_batch_size=10, finetune_epochs=3,
                                        callbacks=[("tally", tally), GradientNormClipping(1.0)],
                                        random_state=0)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    assert tally.epochs == ["reweight"] * 2 + ["finetune"] * 3
    assert tally.batches == {"reweight": 2 * 3, "finetune": 3 * 3}
    assert tally.grads == tally.batches  # GradientNormClipping & co. see fine-tuning steps too
    assert list(net.history[:, "stage"]) == tally.epochs
    # weight summaries belong to reweighted epochs only
    assert "weight_mean" in net.history[1] and "weight_mean" not in net.history[2]
    assert net.sample_weights_.shape == (2, len(X))


def test_finetune_epochs_trains_on_the_clean_set_after_the_reweighted_epochs(small_data):
    X, y, Xc, yc = small_data
    params = dict(max_epochs=2, lr=0.01, random_state=0)
    before = ReweightedNeuralNetClassifier(**params).fit(X, y, X_clean=Xc, y_clean=yc)
    after = ReweightedNeuralNetClassifier(finetune_epochs=30, **params).fit(X, y, X_clean=Xc, y_clean=yc)
    # the same reweighted epochs, then 30 passes over the clean set lower its loss
    np.testing.assert_array_equal(before.sample_weights_, after.sample_weights_)
    assert log_loss(yc, after.predict_proba(Xc)) < 0.8 * log_loss(yc, before.predict_proba(Xc))
    assert list(after.history[:, "stage"]) == ["reweight"] * 2 + ["finetune"] * 30
    assert after.history[-1, "train_loss"] > 0


def test_finetune_divergence_is_named(small_data):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(max_epochs=0, finetune_epochs=50, lr=1e12,
                                        optimizer=torch.optim.SGD, random_state=0)
    with pytest.raises(TrainingDivergedError,
                       match=r"Fine-tuning on the clean set diverged in epoch \d+: the loss is nan"):
        net.fit(X, y, X_clean=Xc, y_clean=yc)


class InterruptAfterFirstEpoch(Callback):
    def on_epoch_end(self, net, **kwargs):
        raise KeyboardInterrupt


def test_ctrl_c_skips_the_fine_tuning_stage(small_data):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(max_epochs=3, finetune_epochs=2, random_state=0,
                                        callbacks=[InterruptAfterFirstEpoch()])
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    assert list(net.history[:, "stage"]) == ["reweight"]


def test_the_estimator_adds_its_callbacks_by_itself():
    names = dict(ReweightedNeuralNetClassifier(finetune_epochs=2)._default_callbacks)
    assert isinstance(names["weight_recorder"], WeightRecorder)
    assert isinstance(names["finetune"], FineTuneOnClean) and names["finetune"].epochs == 2
    assert "finetune" not in dict(ReweightedNeuralNetClassifier()._default_callbacks)
    # the recorder writes before print_log prints the epoch's row
    order = [name for name, _ in ReweightedNeuralNetClassifier()._default_callbacks]
    assert order.index("weight_recorder") < order.index("print_log")


def test_the_epoch_table_shows_the_effective_share_not_the_constant_mean(small_data, capsys):
    X, y, Xc, yc = small_data
    net = ReweightedNeuralNetClassifier(max_epochs=2, random_state=0, verbose=1)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    header = capsys.readouterr().out.splitlines()[0]
    assert "weight_ess" in header and "weight_mean" not in header
    row = net.weight_history_.current
    trained = row[~np.isnan(row)].astype(np.float64)
    assert net.history[-1, "weight_ess"] == pytest.approx(trained.sum() ** 2 / (len(trained) * (trained ** 2).sum()))
    assert net.history[-1, "weight_mean"] == pytest.approx(1.0, abs=1e-5)  # why the table leaves it out
    assert 0 < net.history[-1, "weight_ess"] < 1  # the clean set rejected some examples
    uniform = ReweightedNeuralNetClassifier(max_epochs=1, weight_shrinkage=1.0, random_state=0)
    assert uniform.fit(X, y, X_clean=Xc, y_clean=yc).history[-1, "weight_ess"] == pytest.approx(1.0, abs=1e-5)
