"""Does it work on a GPU, and how fast: one command for a lent GPU, budgeted to 7 minutes (not yet run on one).

Sections, each with its own time budget (a section out of time skips its
remaining work and says so; one that fails is reported and the next runs):

1. ``engines``: every meta-gradient engine against the reference engine
   (Algorithm 1 by double backprop, float64) on one batch, for an MLP, a
   CNN (LeNet) and a batch-norm net, in float32, bfloat16 autocast and
   float16 autocast with loss scaling (``loss_scale=2**16``): the
   alignments' largest and median error as a share of the largest
   alignment, the signs of the clear alignments, the weighted gradient's
   relative error;
2. ``repeat``: seeded fits (``random_state=0``) run twice, float32,
   bfloat16 and float16, once more under ``torch.use_deterministic_algorithms``:
   which of weights, parameters and probabilities are bitwise equal;
3. ``torchrun``: data-parallel fits launched with torchrun, checked against
   one process with the global batch: NCCL with one process per GPU where
   there are several; a single-rank run, and two ranks sharing the GPU over
   Gloo, where there is one;
4. ``speed``: ours/plain step (CUDA events), FLOPs, epoch and whole ``fit``
   times and peak GPU memory (``torch.cuda.max_memory_allocated``) for
   ``benchmarks/speed.py``'s workloads (MLP, LeNet, ResNet-32) and
   WRN-16-4 on 32x32 images;
5. ``mnist``: MNIST 4-vs-9 at 99.5% nines, the paper's protocol
   (``weighting="paper"``, LeNet, 5,000 images, 10 clean, batch 100, SGD lr 1e-3
   with momentum 0.9) for 3 seeds; the paper's 160 epochs (8,000 steps) are
   cut to what the section's budget allows, and the table says how many ran.

Writes ``benchmarks/results/gpu_check.md`` (the table the docs include) and
``benchmarks/results/gpu_check/gpu_check.json``. Without CUDA it says so,
runs the engine comparisons on the CPU at tiny sizes and writes
``gpu_check_cpu.*`` instead; ``--device cpu --sections ...`` runs any
section on the CPU at tiny sizes (the test suite does, to exercise the code
the GPU will run). The MNIST files are looked for in ``--data``,
``../shared/data/mnist``, ``shared/data/mnist`` and ``$SK_REWEIGHT_MNIST``
(nothing is downloaded).

Run ``python benchmarks/gpu_check.py`` or ``sk-reweight benchmark gpu_check``
(``--device``, ``--quick``, ``--sections``, ``--budget-scale``, ``--data``).
The exit status is 1 when a section failed or ran out of time, else 0 (also
on a machine without CUDA, after the CPU-side checks).
"""
import argparse
import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import speed
import torch
from _harness import RESULTS
from _sections import Section, compare, compare_all, status_table
from torch import nn

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.engines import ReferenceEngine
from sk_reweight.modules import MLP, LeNet, ResNet32
from sk_reweight.weighting import normalize_weights

SECTIONS = ("engines", "repeat", "torchrun", "speed", "mnist")
BUDGETS = {"engines": 40, "repeat": 50, "torchrun": 80, "speed": 130, "mnist": 110}  # seconds, on CUDA
ROOT = Path(__file__).resolve().parents[1]
loss_fn = nn.CrossEntropyLoss(reduction="none")


# ----------------------------------------------------------------------------------------------
# networks

class _WideBlock(nn.Module):
    """Pre-activation basic block of a wide ResNet."""

    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(in_planes), nn.BatchNorm2d(planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.shortcut = (None if stride == 1 and in_planes == planes
                         else nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False))

    def forward(self, x):
        pre = torch.relu(self.bn1(x))
        out = self.conv2(torch.relu(self.bn2(self.conv1(pre))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    """WRN-depth-k (Zagoruyko and Komodakis, 2016) for 32x32 images; WRN-16-4 by default."""

    def __init__(self, n_classes=10, depth=16, k=4, in_channels=3):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        blocks, planes = [], 16
        for stage, stride in enumerate((1, 2, 2)):
            for i in range((depth - 4) // 6):
                blocks.append(_WideBlock(planes, 16 * k * 2**stage, stride if i == 0 else 1))
                planes = 16 * k * 2**stage
        self.blocks = nn.Sequential(*blocks)
        self.bn, self.head = nn.BatchNorm2d(planes), nn.Linear(planes, n_classes)

    def forward(self, X):
        return self.head(torch.relu(self.bn(self.blocks(self.stem(X)))).mean(dim=(2, 3)))


def batchnorm_net(n_classes=3, in_channels=1, image_size=14):
    """A small CNN with batch norm (the examples of a batch are coupled)."""
    side = image_size - 2
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * side * side, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, n_classes))


# name: (module factory, example shape); batch and clean batch per size
ENGINE_NETS = {
    "MLP": (lambda: MLP(20, 3, hidden_units=(64, 64)), (20,)),
    "CNN (LeNet)": (lambda: LeNet(3, in_channels=1, image_size=14), (1, 14, 14)),
    "batch norm": (batchnorm_net, (1, 14, 14)),
}
WIDE = {"WRN-16-4 (3x32x32, batch norm)": (lambda: WideResNet(10), (3, 32, 32), 10, 128, 100, 1024)}
WIDE_QUICK = {"WRN-16-4 (3x32x32, batch norm)": (lambda: WideResNet(10, k=1), (3, 32, 32), 10, 8, 4, 16)}
# measured tolerances of the CPU tests (tests/test_engines.py), as a share of the largest alignment;
# float32 leaves room for TF32 convolutions (cuDNN's default on Ampere and later)
TOLERANCE = {"float32": 0.01, "bfloat16": 0.06, "float16": 0.03}
DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def autocast(device, dtype):
    """The autocast context of ``dtype`` (``None``: full precision) on ``device``."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# 1. engines against the reference engine

def engine_batch(shape, n, n_clean, device, even=False):
    """A training and a clean batch of 3 classes; ``even``: the clean classes in turn (each splits evenly
    into 2 folds when ``n_clean`` divides by 6), else drawn at random (an odd ``n_clean``: one class odd)."""
    g = torch.Generator().manual_seed(0)
    X, Xc = torch.randn(n, *shape, generator=g), torch.randn(n_clean, *shape, generator=g)
    y, yc = torch.randint(0, 3, (n,), generator=g), torch.randint(0, 3, (n_clean,), generator=g)
    if even:
        yc = torch.arange(n_clean) % 3
    return [t.to(device) for t in (X, y, Xc, yc)]


def meta_step(engine, module, batch, dtype, device, folds=0):
    """One reweighted backward: (alignment, flat weighted gradient, loss scale, fold alignments or
    ``None``), on the host in float64; ``folds``: the default weighting's cross-fitting folds too.

    float16 starts at the estimator's loss scale, 2**16, and halves it while
    the step overflows, as the fit's :class:`~sk_reweight._loss_scale.LossScale`
    does over its first steps (at most 16 times).
    """
    X, y, Xc, yc = batch
    scale = 2.0**16 if dtype is torch.float16 else None
    seen = {}

    def weigh(alignment, losses, fold_alignment=None):
        seen["folds"] = None if fold_alignment is None else fold_alignment.detach().double().cpu()
        return normalize_weights(alignment)

    for _ in range(17):
        module.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            step = engine.reweighted_backward(module, loss_fn, X, y, Xc, yc, loss_scale=scale, weigh=weigh,
                                              clean_folds=folds)
        grads = torch.cat([p.grad.flatten() for p in module.parameters() if p.grad is not None])
        alignment = step.alignment.detach().double().cpu()
        finite = bool(torch.isfinite(alignment).all() and torch.isfinite(grads).all())
        if finite or scale is None or scale <= 1:
            break
        scale /= 2
    return alignment, grads.detach().double().cpu(), scale, seen.get("folds")


def check_engines(section, device, quick):
    n, n_clean = (12, 6) if quick else (128, 30)
    odd = n_clean + 1
    # the default's cross-fitting too: an odd clean batch drawn at random (a class that does not split evenly:
    # the forward-mode engine takes a JVP of the whole batch's and of each fold's) and, in float32, classes that
    # split evenly into the 2 folds (it averages the folds'). Folds are judged in float32 only: the tolerances
    # come from Algorithm 1's alignment on the random batch (low precision on other batches exceeds them, the
    # reference engine's too), and the float16 loss-scale search looks at the alignment, as a fit's does.
    for net, even in [(net, even) for net in ENGINE_NETS for even in (False, True)]:
        factory, shape = ENGINE_NETS[net]
        torch.manual_seed(0)
        module = factory()
        batch = engine_batch(shape, n, n_clean if even else odd, device, even)
        split = "even" if bool((torch.unique(batch[3], return_counts=True)[1] % 2 == 0).all()) else "uneven"
        want_a, want_g, _, want_f = meta_step(ReferenceEngine(), copy.deepcopy(module).double().to(device),
                                              [t.double() if t.is_floating_point() else t for t in batch], None,
                                              device, folds=2)
        scale = want_a.abs().max()
        fold_scale = want_f.abs().max().clamp(min=torch.finfo(torch.float64).tiny)
        for dtype_name, dtype in DTYPES.items():
            if even and dtype is not None:
                continue
            if section.out_of_time(f"{net}, {dtype_name}"):
                return
            for name, engine_class in speed.ENGINES.items():
                row = {"net": net, "dtype": dtype_name, "engine": name, "clean": split}
                engine = engine_class()
                if not engine.supports(module):
                    section.rows.append({**row, "supported": False})
                    continue
                a, g, loss_scale, f = meta_step(engine, copy.deepcopy(module).to(device), batch, dtype, device,
                                                folds=2)
                error = (a - want_a).abs() / scale
                fold_error = (f - want_f).abs() / fold_scale
                clear = want_a.abs() > 0.1 * scale
                coupled = net == "batch norm" and dtype is not None  # single examples may be far off
                judged = float(error.median() if coupled else error.max())
                judged_folds = float(fold_error.median() if coupled else fold_error.max())
                row.update(supported=True, max_error=float(error.max()), median_error=float(error.median()),
                           signs_agree=float((torch.sign(a[clear]) == torch.sign(want_a[clear])).double().mean()),
                           grad_error=float((g - want_g).norm() / want_g.norm()),
                           fold_max_error=float(fold_error.max()), fold_median_error=float(fold_error.median()),
                           finite=bool(torch.isfinite(a).all() and torch.isfinite(g).all() and torch.isfinite(f).all()),
                           judged_on="median" if coupled else "max", loss_scale=loss_scale)
                tolerance = TOLERANCE[dtype_name] / (6 if coupled else 1)
                row["ok"] = (row["finite"] and judged <= tolerance and row["grad_error"] <= 2 * TOLERANCE[dtype_name]
                             and (dtype is not None or judged_folds <= tolerance))
                section.rows.append(row)


# ----------------------------------------------------------------------------------------------
# 2. seeded fits, twice

@contextmanager
def deterministic_algorithms():
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` and no cuDNN autotuning."""
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield caught
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]


def repeat_cases(quick):
    """name: (factory, shape, classes, rows, batch, autocast dtype name, deterministic)."""
    mlp = lambda: MLP(20, 3, hidden_units=(16,) if quick else (256, 256))  # noqa: E731
    lenet = lambda: LeNet(3, in_channels=1, image_size=14)  # noqa: E731
    resnet = lambda: ResNet32(3, width=4 if quick else 8)  # noqa: E731
    rows = 64 if quick else 2048
    return {
        "MLP": (mlp, (20,), 3, rows, 32 if quick else 128, "float32", False),
        "MLP bfloat16": (mlp, (20,), 3, rows, 32 if quick else 128, "bfloat16", False),
        "MLP float16": (mlp, (20,), 3, rows, 32 if quick else 128, "float16", False),
        "LeNet": (lenet, (1, 14, 14), 3, rows, 32 if quick else 100, "float32", False),
        "ResNet-32 (batch norm)": (resnet, (3, 32, 32), 3, 16 if quick else 512, 8 if quick else 64, "float32", False),
        "LeNet, deterministic algorithms": (lenet, (1, 14, 14), 3, rows, 32 if quick else 100, "float32", True),
        "ResNet-32, deterministic algorithms": (resnet, (3, 32, 32), 3, 16 if quick else 512, 8 if quick else 64,
                                                "float32", True),
    }


def seeded_fit(factory, data, batch, dtype, device, epochs=2):
    X, y, Xc, yc = data
    net = ReweightedNeuralNetClassifier(factory, max_epochs=epochs, batch_size=batch, random_state=0,
                                        train_split=None, verbose=0, device=device, autocast_dtype=dtype,
                                        optimizer=torch.optim.SGD, optimizer__momentum=0.9, lr=0.01)
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    return net


def check_repeat(section, device, quick):
    for name, (factory, shape, n_classes, rows, batch, dtype_name, exact) in repeat_cases(quick).items():
        if section.out_of_time(name):
            return
        data = speed.fit_problem(shape, n_classes, max(8, batch // 4), rows)
        with deterministic_algorithms() if exact else nullcontext() as caught:
            first, second = (seeded_fit(factory, data, batch, DTYPES[dtype_name], device) for _ in range(2))
        state = [{k: v for k, v in net.module_.state_dict().items()} for net in (first, second)]
        parts = {"weights": (first.sample_weights_, second.sample_weights_),
                 "parameters": (torch.cat([v.double().flatten().cpu() for v in state[0].values()]),
                                torch.cat([v.double().flatten().cpu() for v in state[1].values()])),
                 "train loss": (first.history[:, "train_loss"], second.history[:, "train_loss"]),
                 "probabilities": (first.predict_proba(data[0]), second.predict_proba(data[0]))}
        found = {part: compare(*pair) for part, pair in parts.items()}
        row = {"case": name, "dtype": dtype_name, "engine": first.meta_engine_.name,
               "bitwise": {part: r["bitwise"] for part, r in found.items()},
               "max_abs": compare_all(parts)["max_abs"],
               "finite": bool(np.isfinite(first.history[:, "train_loss"]).all())}
        if caught:
            row["nondeterministic_ops"] = sorted({str(w.message).split(" does not have")[0][:80] for w in caught})[:4]
        row["ok"] = row["finite"]  # differing is reported, not failed: the table says which
        section.rows.append(row)


# ----------------------------------------------------------------------------------------------
# 3. torchrun

DP_CASES = {  # name: (factory, shape, rows, batch per process, engine)
    "MLP": (lambda: MLP(20, 2, hidden_units=(32,)), (20,), 203, 16, "layerwise"),
    "LeNet": (lambda: LeNet(2, in_channels=1, image_size=14), (1, 14, 14), 101, 8, "jvp"),
}


def dp_fits(out, device, who, batch_scale=1, quick=False):
    """The data-parallel cases' fits (alone or as this torchrun rank); saves ``OUT/<case>_<who>.pt``."""
    for name, (factory, shape, rows, batch, engine) in DP_CASES.items():
        if quick and name != "MLP":
            continue
        X, y, Xc, yc = speed.fit_problem(shape, 2, 10, rows)
        net = ReweightedNeuralNetClassifier(factory, batch_size=batch * batch_scale, meta_engine=engine,
                                            max_epochs=2, random_state=0, device=device, verbose=0,
                                            train_split=None, optimizer=torch.optim.SGD,
                                            optimizer__momentum=0.9, lr=0.05)
        net.fit(X, y, X_clean=Xc, y_clean=yc)
        torch.save({"params": {k: v.detach().cpu() for k, v in net.module_.state_dict().items()},
                    "weights": net.sample_weights_, "proba": net.predict_proba(X),
                    "engine": repr(net.meta_engine_)}, Path(out) / f"{name}_{who}.pt")


def dp_worker(out, device, backend, quick):
    """One torchrun rank: fit and save. NCCL: ``device='auto'`` and the estimator's own group (the
    GPU of ``LOCAL_RANK``, as a user's script gets); Gloo: the script's own group."""
    if speed.is_cuda(device) and backend == "nccl":
        device = "auto"
    if backend == "gloo" and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        torch.distributed.init_process_group("gloo")
    dp_fits(out, device, f"rank{os.environ.get('RANK', 0)}", quick=quick)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def dp_runs(device):
    """(description, processes, backend) of the torchrun launches for this machine."""
    if not speed.is_cuda(device):
        return [("single rank", 1, "gloo"), ("2 ranks, Gloo, CPU", 2, "gloo")]
    n_gpus = torch.cuda.device_count()
    if n_gpus > 1:
        return [(f"{n_gpus} ranks, NCCL, one GPU each", n_gpus, "nccl"), ("single rank", 1, "nccl")]
    return [("single rank", 1, "nccl"), ("2 ranks sharing the GPU, Gloo", 2, "gloo")]


def run_group(command, env, timeout):
    """Run ``command`` in a process group of its own: (return code, output); on a timeout or an
    interruption the whole group (torchrun and its workers) is killed."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    return process.returncode, output


def check_torchrun(section, device, quick):
    for title, n_proc, backend in dp_runs(device):
        if section.out_of_time(title):
            return
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n_proc}",
                       str(Path(__file__).resolve()), "--_dp-worker", out, "--_backend", backend, "--device",
                       "cuda" if speed.is_cuda(device) else "cpu"] + (["--quick"] if quick else [])
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            t0 = time.monotonic()
            returncode, output = run_group(command, env, timeout=max(section.left(), 30))
            seconds = time.monotonic() - t0
            if returncode != 0:
                section.rows.append({"run": title, "ok": False, "seconds": seconds, "error": output[-1500:]})
                continue
            dp_fits(out, device, "alone", batch_scale=n_proc, quick=quick)
            for case in DP_CASES:
                if quick and case != "MLP":
                    continue
                def load(who, case=case):
                    return torch.load(Path(out) / f"{case}_{who}.pt", weights_only=False)

                alone, ranks = load("alone"), [load(f"rank{r}") for r in range(n_proc)]
                versus = {"parameters": (torch.cat([v.double().flatten() for v in ranks[0]["params"].values()]),
                                         torch.cat([v.double().flatten() for v in alone["params"].values()])),
                          "weights": (ranks[0]["weights"], alone["weights"]),
                          "probabilities": (ranks[0]["proba"], alone["proba"])}
                found = {part: compare(*pair) for part, pair in versus.items()}
                same_ranks = all(compare_all({k: (r[k], ranks[0][k]) for k in ("weights", "proba")})["bitwise"]
                                 and all(torch.equal(r["params"][k], v) for k, v in ranks[0]["params"].items())
                                 for r in ranks[1:])
                row = {"run": title, "case": case, "processes": n_proc, "backend": backend,
                       "engine": ranks[0]["engine"], "seconds": seconds,
                       "max_abs": {part: r["max_abs"] for part, r in found.items()},
                       "bitwise": all(r["bitwise"] for r in found.values()), "ranks_identical": same_ranks}
                # the test suite's tolerances (tests/test_distributed.py), ten times looser for TF32
                row["ok"] = (same_ranks and found["parameters"]["max_abs"] <= 1e-4
                             and found["weights"]["max_abs"] <= 1e-3 and found["probabilities"]["max_abs"] <= 1e-4)
                section.rows.append(row)


# ----------------------------------------------------------------------------------------------
# 4. speed

def check_speed(section, device, quick):
    cuda = speed.is_cuda(device)
    workloads = {**(speed.QUICK if quick else speed.WORKLOADS), **(WIDE_QUICK if quick else WIDE)}
    rounds, per_round = (1, 1) if quick else (5, 5)
    for name, (factory, shape, n_classes, batch, clean, n_train) in workloads.items():
        if section.out_of_time(name):
            return
        torch.manual_seed(0)
        module = factory().to(device)
        steps = speed.step_functions(module, speed.make_batch(shape, n_classes, batch, clean, device))
        steps = {k: v for k, v in steps.items() if k in ("plain", "layerwise", "jvp", "reference")}
        step_s = speed.time_steps(steps, device, rounds, per_round)
        epoch_s, engine = speed.time_epochs(factory, shape, n_classes, batch, clean, n_train, device,
                                            rounds=1 if quick else 3)
        fit_s, _ = speed.time_fits(factory, shape, n_classes, batch, clean, n_train, device, epochs=2,
                                   rounds=1 if quick else 2, methods=("plain", "ours"))
        flops = speed.count_flops(steps, ["plain", engine])
        memory = ({m: speed.step_memory(factory, shape, n_classes, batch, clean, m, device) for m in ("plain", engine)}
                  if cuda else None)
        section.rows.append({"workload": name, "batch": batch, "clean_batch": clean, "engine": engine,
                             "step_ms": {k: v * 1e3 for k, v in step_s.items()}, "step_flops": flops,
                             "epoch_s": epoch_s, "fit_s": fit_s, "memory_bytes": memory})
        del module, steps
        if cuda:
            torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------
# 5. MNIST 4-vs-9

def mnist_dir(data):
    """The first directory with MNIST's IDX files: ``data``, then the usual places."""
    candidates = [data, ROOT.parent / "shared" / "data" / "mnist", ROOT / "shared" / "data" / "mnist",
                  os.environ.get("SK_REWEIGHT_MNIST")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "train-images-idx3-ubyte.gz").exists():
            return Path(candidate)
    raise FileNotFoundError(f"no MNIST IDX files in any of {[str(c) for c in candidates if c]} "
                            "(pass --data DIR, or set SK_REWEIGHT_MNIST)")


def check_mnist(section, device, quick, data, seeds=3, proportion=0.995, paper_epochs=160):
    from mnist_imbalance import PAPER_LR, fit_and_score, make_split

    from sk_reweight.baselines import make_baselines
    from sk_reweight.datasets import load_mnist

    where = mnist_dir(data)
    X, y = load_mnist(where, split="train", download_if_missing=False)
    X_test, y_test = load_mnist(where, split="test", download_if_missing=False)

    def paper(seed, epochs):
        return make_baselines(LeNet, module_params=dict(n_classes=2), sample_shape=(1, 28, 28), lr=PAPER_LR,
                              optimizer=torch.optim.SGD, optimizer_params=dict(momentum=0.9), max_epochs=epochs,
                              batch_size=100, random_state=seed, device=device, include=["reweight"],
                              reweight_params={"weighting": "paper"})["reweight"]

    splits = [make_split(X, y, X_test, y_test, proportion, seed, n_train=300 if quick else 5000)
              for seed in range(seeds)]
    if quick:
        epochs = 1
    else:  # a probe of two epochs (also the warm-up) sets how many epochs the budget allows
        t0 = time.monotonic()
        paper(0, 2).fit(splits[0]["X_train"], splits[0]["y_train"], X_clean=splits[0]["X_clean"],
                        y_clean=splits[0]["y_clean"])
        per_epoch = (time.monotonic() - t0) / 2
        epochs = int(max(1, min(paper_epochs, 0.9 * section.left() / (seeds * per_epoch))))
        section.notes.append(f"{epochs} of the paper's {paper_epochs} epochs ({per_epoch:.2f} s an epoch "
                             "in a 2-epoch probe)")
    for seed, split in enumerate(splits):
        if section.out_of_time(f"seed {seed}"):
            return
        result = fit_and_score(paper(seed, epochs), split)
        section.rows.append({"seed": seed, "proportion": proportion, "epochs": epochs,
                             "steps": epochs * -(-len(split["y_train"]) // 100), **result,
                             "ok": bool(np.isfinite(result["error"]))})


# ----------------------------------------------------------------------------------------------
# report

def _fmt(x, digits=3):
    return "-" if x is None else f"{x:.{digits}g}" if abs(x) < 1e-3 and x else f"{x:.{digits}f}"


def _power_of_two(scale):
    return "-" if scale is None else f"2^{int(np.log2(scale))}"


def markdown(sections, device, quick, wall):
    where = (f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s))"
             if speed.is_cuda(device) else f"CPU, {torch.get_num_threads()} threads")
    out = [f"Device: {where}; torch {torch.__version__}; wall time {wall / 60:.1f} min"
           + (" (tiny --quick sizes)" if quick else ""), "", status_table(sections.values())]
    s = sections.get("engines")
    if s and s.rows:
        out += ["**Engines against the reference engine** (float64, same device): alignment error as a share of "
                "the largest alignment, gradient error relative to its norm; batch norm in low precision is "
                "judged on the median error (single examples of a coupled batch may be far off); the fold "
                "columns: the default's cross-fitting, 2 folds of a clean batch drawn at random, whose classes do "
                "not all split evenly, or (float32 only) of one whose classes do, judged in float32", "",
                "| net | clean classes | dtype | engine | max error | median error | clear signs agree | "
                "gradient error | fold max error | fold median error | loss scale | ok |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in s.rows:
            if not r["supported"]:
                out.append(f"| {r['net']} | {r['clean']} | {r['dtype']} | {r['engine']} | unsupported | - | - | - | "
                           "- | - | - | - |")
                continue
            out.append(f"| {r['net']} | {r['clean']} | {r['dtype']} | {r['engine']} | {_fmt(r['max_error'])} | "
                       f"{_fmt(r['median_error'])} | {r['signs_agree']:.0%} | {_fmt(r['grad_error'])} | "
                       f"{_fmt(r['fold_max_error'])} | {_fmt(r['fold_median_error'])} | "
                       f"{_power_of_two(r['loss_scale'])} | "
                       f"{'yes' if r['ok'] else '**no**'} |")
        out.append("")
    s = sections.get("repeat")
    if s and s.rows:
        parts = list(s.rows[0]["bitwise"])
        out += ["**Seeded fits run twice** (`random_state=0`): bitwise equal or not, and the largest difference", "",
                "| case | engine | " + " | ".join(parts) + " | largest difference |",
                "|---|---|" + "---|" * len(parts) + "---|"]
        for r in s.rows:
            cells = " | ".join("bitwise" if r["bitwise"][p] else "differ" for p in parts)
            out.append(f"| {r['case']} | {r['engine']} | {cells} | {_fmt(r['max_abs'])} |")
        out.append("")
    s = sections.get("torchrun")
    if s and s.rows:
        out += ["**torchrun** against one process with the global batch", "",
                "| run | case | parameters max diff | weights max diff | probabilities max diff | bitwise | "
                "ranks identical | ok |", "|---|---|---|---|---|---|---|---|"]
        for r in s.rows:
            if "error" in r:
                out.append(f"| {r['run']} | - | failed: {r['error'].splitlines()[-1][:120]} | | | | | **no** |")
                continue
            m = r["max_abs"]
            out.append(f"| {r['run']} | {r['case']} | {_fmt(m['parameters'])} | {_fmt(m['weights'])} | "
                       f"{_fmt(m['probabilities'])} | {'yes' if r['bitwise'] else 'no'} | "
                       f"{'yes' if r['ranks_identical'] else '**no**'} | {'yes' if r['ok'] else '**no**'} |")
        out.append("")
    s = sections.get("speed")
    if s and s.rows:
        out += ["**Speed**, ours (default options) against plain skorch: steps timed with "
                + ("CUDA events" if speed.is_cuda(device) else "perf_counter")
                + ", whole `fit` calls of 2 epochs, peak memory of a step above the set-up", "",
                "| workload | batch / clean | engine | ours/plain step | ours/plain FLOPs | reference/ours step | "
                "ours/plain epoch | ours/plain fit | plain step ms | ours step ms | memory ours/plain | "
                "plain / ours MiB |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in s.rows:
            st, e, mem = r["step_ms"], r["engine"], r["memory_bytes"]
            memory = ("-", "-") if not mem else (f"{mem[e] / max(mem['plain'], 1):.2f}",
                                                  f"{mem['plain'] / 2**20:.0f} / {mem[e] / 2**20:.0f}")
            out.append(f"| {r['workload']} | {r['batch']} / {r['clean_batch']} | {e} | {st[e] / st['plain']:.2f} | "
                       f"{r['step_flops'][e] / r['step_flops']['plain']:.2f} | {st['reference'] / st[e]:.2f} | "
                       f"{r['epoch_s']['ours'] / r['epoch_s']['plain']:.2f} | "
                       f"{r['fit_s']['ours'] / r['fit_s']['plain']:.2f} | {st['plain']:.2f} | {st[e]:.2f} | "
                       f"{memory[0]} | {memory[1]} |")
        out.append("")
    s = sections.get("mnist")
    if s and s.rows:
        errors = [r["error"] for r in s.rows]
        out += ["**MNIST 4-vs-9, 99.5% nines**, Algorithm 1 as published (`weighting='paper'`); public reproductions "
                "report about 4.5% test error after the paper's 8,000 steps, plain training about 50%", "",
                "| seed | epochs | steps | test error | skipped steps | seconds |", "|---|---|---|---|---|---|"]
        for r in s.rows:
            out.append(f"| {r['seed']} | {r['epochs']} | {r['steps']} | {r['error']:.3f} | "
                       f"{r.get('skipped', float('nan')):.2f} | {r['seconds']:.1f} |")
        out.append(f"| mean ± std | | | {np.mean(errors):.3f} ± {np.std(errors):.3f} | | |")
        out.append("")
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"],
                        help="auto: CUDA when available, else the CPU-side checks")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (always so on the CPU)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=None,
                        help="default: all on CUDA, engines on the CPU")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiplies every section's time budget")
    parser.add_argument("--data", default=None, help="directory with MNIST's IDX files")
    parser.add_argument("--name", default=None,
                        help="results stem (default gpu_check; gpu_check_quick with --quick; gpu_check_cpu on the CPU)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where NAME.md and gpu_check/NAME.json go")
    parser.add_argument("--_dp-worker", dest="dp_worker", help=argparse.SUPPRESS)
    parser.add_argument("--_backend", dest="backend", default="nccl", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dp_worker:
        torch.set_num_threads(1)
        return dp_worker(args.dp_worker, args.device, args.backend, args.quick)

    start = time.monotonic()
    cuda = torch.cuda.is_available() and args.device != "cpu"
    if not cuda:
        if args.device != "cpu":
            print(f"CUDA is not available (torch {torch.__version__}, CUDA build {torch.version.cuda}): the GPU "
                  "checks are pending; running the CPU-side checks at tiny sizes.", flush=True)
        threads = torch.get_num_threads()  # restored at the end: a caller's process keeps its setting
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    else:  # deterministic cuBLAS for the repeat section's deterministic runs (before cuBLAS starts)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    device = "cuda" if cuda else "cpu"
    quick = args.quick or not cuda
    chosen = args.sections or (SECTIONS if cuda else ("engines",))
    scale = args.budget_scale
    functions = {"engines": (check_engines,), "repeat": (check_repeat,), "torchrun": (check_torchrun,),
                 "speed": (check_speed,), "mnist": (check_mnist,)}
    sections = {}
    for name in SECTIONS:
        if name not in chosen:
            continue
        function, *extra = functions[name] + ((args.data,) if name == "mnist" else ())
        section = Section(name, BUDGETS[name] * scale).run(function, device, quick, *extra)
        sections[name] = section
        if cuda:  # what a failed section left allocated
            torch.cuda.empty_cache()
        print(f"{name}: {section.status} in {section.seconds:.1f} s"
              + (f" - {section.error.splitlines()[0]}" if section.error else ""), flush=True)
    wall = time.monotonic() - start
    table = markdown(sections, device, quick, wall)
    name = args.name or ("gpu_check_cpu" if not cuda else "gpu_check_quick" if args.quick else "gpu_check")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "gpu_check").mkdir(exist_ok=True)
    (args.out_dir / f"{name}.md").write_text(table)
    payload = {"device": device, "quick": quick, "torch": torch.__version__, "cuda": torch.version.cuda,
               "gpu": torch.cuda.get_device_name() if cuda else None, "wall_s": wall,
               "sections": {k: s.as_dict() for k, s in sections.items()}}
    (args.out_dir / "gpu_check" / f"{name}.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    print(table)
    failed = [k for k, s in sections.items() if s.status != "ok"]
    print(("all sections ok" if not failed else f"not ok: {', '.join(failed)}")
          + f"; {wall:.0f} s; written to {args.out_dir / name}.md and {args.out_dir / 'gpu_check' / name}.json")
    if not cuda:
        torch.set_num_threads(threads)
    return payload


if __name__ == "__main__":
    # exit status 1 when a section failed or ran out of time; 0 otherwise (also without CUDA); a
    # torchrun worker of the torchrun section (--_dp-worker) returns nothing and exits 0
    result = main()
    sys.exit(0 if result is None or all(s["status"] == "ok" for s in result["sections"].values()) else 1)
