import numpy as np
import pytest

from sk_reweight._fit_state import make_fit_context
from sk_reweight._validation import FitData
from sk_reweight.callbacks import FineTuneOnClean, TrainingStage


class Polish(TrainingStage):
    name = "polish"


def fit_state(n_clean=6, **kwargs):
    data = FitData(np.zeros((20, 3), np.float32), np.zeros(20, np.int64), np.zeros((n_clean, 3), np.float32),
                   np.arange(n_clean) % 2, None)
    return make_fit_context(data, batch_size=8, clean_sampling="cycle", device="cpu", **kwargs)


def test_epochs_belong_to_reweighting_then_to_each_stage_in_order():
    state = fit_state(clean_batch_size=None)
    finetune, polish = FineTuneOnClean(2), Polish(1)
    state.epochs, state.stages = 3, [finetune, polish]
    assert [state.begin_epoch() for _ in range(6)] == [None, None, None, finetune, finetune, polish]


def test_clean_batch_size_defaults_to_the_clean_set_up_to_the_batch_size():
    assert fit_state(clean_batch_size=None).clean_batches.batch_size == 6
    assert fit_state(n_clean=30, clean_batch_size=None).clean_batches.batch_size == 8
    with pytest.raises(ValueError, match="clean_batch_size=7 must be an int between 1 and the clean set size"):
        fit_state(clean_batch_size=7)
