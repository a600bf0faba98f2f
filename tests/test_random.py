import torch

from sk_reweight._random import RandomStream, seeded_torch


def test_a_seeded_fit_leaves_torch_alone_and_can_resume():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    with seeded_torch(0, None, epochs_done=0) as state:
        first = torch.rand(3)
        saved = state()
        second = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), before)
    with seeded_torch(0, saved, epochs_done=1):  # continued: where the last fit stood
        assert torch.equal(torch.rand(3), second)
    with seeded_torch(0, None, epochs_done=0):
        assert torch.equal(torch.rand(3), first)


def test_unseeded_fits_use_the_global_stream():
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    with seeded_torch(None, None, 0) as state:
        assert torch.equal(torch.rand(2), expected) and state() is None


def test_random_stream_round_trips_its_state():
    stream = RandomStream()
    stream.torch_state = torch.get_rng_state()
    stream.clean_batches = {"n_samples": 3, "queue": torch.tensor([2, 0])}
    copy = RandomStream()
    copy.load_state_dict(stream.state_dict())
    assert torch.equal(copy.torch_state, stream.torch_state)
    assert torch.equal(copy.clean_batches["queue"], torch.tensor([2, 0]))
