"""Cost of a reweighted training step against plain training, side by side.

For each workload, in one process and interleaved over rounds (this machine's
noise hits every method alike), times:

- ``plain``: a plain training step (forward, mean loss, backward, optimizer step);
- ``layerwise`` / ``jvp``: the reweighted step with each meta-gradient engine
  (meta-gradient, weighted backward, optimizer step);
- ``reference``: Algorithm 1 the classic way (lookahead with create_graph,
  double backprop; ``sk_reweight.engines.ReferenceEngine``), then the weighted step;
- ``layerwise_trim`` / ``jvp_trim``: the reweighted step with trimmed
  alignments (``clean_trim=1``: one alignment per group of the clean batch);
- ``layerwise_cap`` / ``jvp_cap``: the same with capped alignments
  (``clean_cap=1``: the groups' gradient norms too);

the floating-point operations of the plain step, of Algorithm 1's step with the default engine
(``ours/plain FLOPs``: matrix products and convolutions, counted by
``torch.utils.flop_counter``; the arithmetic floor of the step ratio, which
per-operation overhead can only raise) and of the default weighting's step, which also forms
each example's alignment with two folds of the clean batch where it asks for them (not for the
ten-class LeNet, whose clean batch holds one row per class; ``default/plain FLOPs``; its time,
the weighting's stages left out: ``default/plain step``); and whole
``fit`` calls of skorch's ``NeuralNetClassifier`` against
``ReweightedNeuralNetClassifier`` with its default options (data loading,
history, weight recording, the checks of each fit included; ``FIT_EPOCHS`` epochs; ``fit / default
FLOPs``: that fit ratio over the default step's FLOP ratio, what the fit costs above its
arithmetic), and those fits against the paper-exact setting (``weighting="paper"``), i.e. the
cost of the default options. Peak memory of the step above the set-up: CUDA allocator peak on a
GPU; on CPU the growth of the process's peak RSS, each method in a fresh
subprocess (median of 3).

Run ``python benchmarks/speed.py`` (``--device cuda`` on a GPU, ``--quick`` for
a smoke test); ``--profile`` prints instead where one epoch of the estimator
spends its time, per workload (cProfile: the functions with the most time of
their own, then the package's functions by cumulative time).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _harness import RESULTS
from _memory import reset_peak, status_mib
from torch import nn

from sk_reweight import ReweightedNeuralNetClassifier
from sk_reweight.engines import ForwardModeEngine, LayerwiseEngine, ReferenceEngine
from sk_reweight.modules import MLP, LeNet, ResNet32
from sk_reweight.weighting import default_weighting, normalize_weights

# name: (module factory, example shape, classes, batch, clean batch, examples per epoch)
WORKLOADS = {
    "MLP (tabular, 50 features)": (lambda: MLP(50, 2, hidden_units=(256, 256)), (50,), 2, 256, 32, 20480),
    "LeNet (1x28x28)": (lambda: LeNet(10), (1, 28, 28), 10, 100, 10, 5000),
    # the paper's MNIST 4-vs-9 shapes: its 10 clean images (5 + 5) can be cross-fitted, ten classes' cannot
    "LeNet, 2 classes (1x28x28)": (lambda: LeNet(2), (1, 28, 28), 2, 100, 10, 5000),
    "ResNet-32 (3x32x32, batch norm)": (lambda: ResNet32(10), (3, 32, 32), 10, 128, 100, 1024),
}
QUICK = {  # same code paths, tiny sizes
    "MLP (tabular, 50 features)": (lambda: MLP(50, 2, hidden_units=(16,)), (50,), 2, 32, 8, 128),
    "LeNet (1x28x28)": (lambda: LeNet(10), (1, 28, 28), 10, 16, 4, 64),
    "LeNet, 2 classes (1x28x28)": (lambda: LeNet(2), (1, 28, 28), 2, 16, 4, 64),
    "ResNet-32 (3x32x32, batch norm)": (lambda: ResNet32(10, width=4), (3, 32, 32), 10, 8, 4, 16),
}
loss_fn = nn.CrossEntropyLoss(reduction="none")
#: epochs of each timed ``fit``
FIT_EPOCHS = 3
#: interleaved rounds of whole fits behind each median (ResNet-32 on CPU too, on a quarter of its
#: images); on a shared 2-core machine single ratios moved by 0.1-0.25 between runs with 5, and
#: ResNet-32's by 0.1 between runs with 3
FIT_ROUNDS = 9
# 'reference' is the literal lookahead definition by double backprop
ENGINES = {engine.name: engine for engine in (LayerwiseEngine, ForwardModeEngine, ReferenceEngine)}


def make_batch(shape, n_classes, batch, clean, device):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(batch, *shape, generator=g).to(device)
    Xc = torch.randn(clean, *shape, generator=g).to(device)
    y = torch.randint(0, n_classes, (batch,), generator=g).to(device)
    yc = (torch.arange(clean) % n_classes).to(device)  # as in the timed fits: every class, in turn
    return X, y, Xc, yc


def step_functions(module, data):
    """One training step per method, all with the same optimizer scaffolding."""
    X, y, Xc, yc = data
    opt = torch.optim.SGD(module.parameters(), lr=1e-3, momentum=0.9)
    module.train()

    def plain():
        opt.zero_grad()
        loss_fn(module(X), y).mean().backward()
        opt.step()

    def algorithm1(alignment, losses, fold_alignment=None):
        return normalize_weights(alignment)

    def engine_step(engine, **options):
        def step():
            opt.zero_grad()
            engine.reweighted_backward(module, loss_fn, X, y, Xc, yc, algorithm1, **options)
            opt.step()
        return step

    steps = {"plain": plain}
    for name, engine_cls in ENGINES.items():
        if engine_cls().supports(module):
            steps[name] = engine_step(engine_cls())
    for name in ("layerwise", "jvp"):
        if name in steps:
            steps[f"{name}_trim"] = engine_step(ENGINES[name](), clean_trim=1)
            steps[f"{name}_cap"] = engine_step(ENGINES[name](), clean_cap=1.0)
            # the default weighting's cross-fitting: the alignments with the folds it asks for too (none
            # where no class of the clean batch has a row for every fold, as in the ten-class LeNet's fit)
            steps[f"{name}_folds"] = engine_step(ENGINES[name](), clean_folds=default_folds(y, yc))
    return steps


def default_folds(y, y_clean):
    """The clean folds the default weighting asks the engines for, on this training and clean set."""
    weighting = default_weighting()
    weighting.start(len(y), y.device, targets=y, clean_targets=y_clean)
    return weighting.clean_folds


def is_cuda(device):
    return torch.device(device).type == "cuda"


def sync(device):
    if is_cuda(device):
        torch.cuda.synchronize()


class Stopwatch:
    """Seconds from :meth:`start` to :meth:`stop`: CUDA events on a GPU, ``perf_counter`` on the CPU.

    On CUDA the device is synchronised first, so the start event runs at once
    and the interval is the wall time of the work in between, host overhead
    included, read from the GPU's own clock.
    """

    def __init__(self, device):
        self.cuda = is_cuda(device)

    def start(self):
        if self.cuda:
            torch.cuda.synchronize()
            self._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            self._events[0].record()
        else:
            self._t0 = time.perf_counter()
        return self

    def stop(self):
        if self.cuda:
            begin, end = self._events
            end.record()
            end.synchronize()
            return begin.elapsed_time(end) / 1e3
        return time.perf_counter() - self._t0


def interleaved_medians(calls, device, rounds, per_round=1, warm_up=1):
    """Median seconds of each of ``calls`` ({name: function}), rounds interleaved across them (this
    machine's noise hits every one alike), after ``warm_up`` untimed calls each."""
    for fn in calls.values():
        for _ in range(warm_up):
            fn()
    samples = {name: [] for name in calls}
    watch = Stopwatch(device)
    for _ in range(rounds):
        for name, fn in calls.items():
            watch.start()
            for _ in range(per_round):
                fn()
            samples[name].append(watch.stop() / per_round)
    return {name: statistics.median(v) for name, v in samples.items()}


def time_steps(steps, device, rounds, per_round):
    """Median seconds per step, rounds interleaved across methods."""
    return interleaved_medians(steps, device, rounds, per_round, warm_up=2)


def count_flops(steps, names):
    """Floating-point operations of one step per method (matrix products and convolutions,
    ``torch.utils.flop_counter``): the arithmetic floor of each method's time."""
    from torch.utils.flop_counter import FlopCounterMode

    flops = {}
    for name in names:
        with FlopCounterMode(display=False) as counter:
            steps[name]()
        flops[name] = counter.get_total_flops()
    return flops


def fit_problem(shape, n_classes, clean, n_train):
    """Random training rows and a clean set with every class: ``X, y, X_clean, y_clean``."""
    rng = np.random.RandomState(0)
    X = rng.randn(n_train, *shape).astype(np.float32)
    y = rng.randint(0, n_classes, n_train)
    Xc = rng.randn(max(clean, n_classes), *shape).astype(np.float32)
    yc = np.arange(len(Xc)) % n_classes
    return X, y, Xc, yc


def estimators(factory, batch, clean, device, max_epochs=1):
    """skorch's plain ``NeuralNetClassifier``, ours with its default options and ours
    paper-exact, with the same module, optimizer and settings: ``{"plain", "ours", "paper"}``."""
    from skorch import NeuralNetClassifier

    common = dict(criterion=nn.CrossEntropyLoss, optimizer=torch.optim.SGD, optimizer__momentum=0.9,
                  lr=1e-3, batch_size=batch, max_epochs=max_epochs, train_split=None, verbose=0,
                  device=device)
    return {"plain": NeuralNetClassifier(factory(), iterator_train__shuffle=True, **common),
            "ours": ReweightedNeuralNetClassifier(factory(), clean_batch_size=clean, random_state=0, **common),
            "paper": ReweightedNeuralNetClassifier(factory(), clean_batch_size=clean, random_state=0,
                                                   weighting="paper", **common)}


def time_fits(factory, shape, n_classes, batch, clean, n_train, device, epochs, rounds,
              methods=("plain", "ours", "paper")):
    """Median seconds of whole ``fit`` calls of ``epochs`` epochs, rounds interleaved across
    ``methods`` (of :func:`estimators`), after one warm-up fit each; and the default engine's name."""
    X, y, Xc, yc = fit_problem(shape, n_classes, clean, n_train)
    nets = {k: v for k, v in estimators(factory, batch, clean, device, max_epochs=epochs).items() if k in methods}
    fits = {k: (lambda net=net: net.fit(X, y)) if k == "plain" else
            (lambda net=net: net.fit(X, y, X_clean=Xc, y_clean=yc)) for k, net in nets.items()}
    seconds = interleaved_medians(fits, device, rounds)
    return seconds, nets["ours"].meta_engine_.name if "ours" in nets else None


def time_epochs(factory, shape, n_classes, batch, clean, n_train, device, rounds):
    """Seconds per epoch of the two estimators (same module, data and settings)."""
    X, y, Xc, yc = fit_problem(shape, n_classes, clean, n_train)
    nets = {k: net.initialize() for k, net in estimators(factory, batch, clean, device).items()}
    fits = {"plain": lambda: nets["plain"].partial_fit(X, y),
            "ours": lambda: nets["ours"].partial_fit(X, y, X_clean=Xc, y_clean=yc),
            "paper": lambda: nets["paper"].partial_fit(X, y, X_clean=Xc, y_clean=yc)}
    return interleaved_medians(fits, device, rounds), nets["ours"].meta_engine_.name


def peak_memory(workload, methods, device, quick, repeats=3):
    """Bytes each method's step needs above the set-up, {method: bytes}.

    On CPU, in a fresh process where glibc maps every block of 64 KiB or more
    with mmap (so a freed tensor leaves the resident set at once), the peak
    RSS counter is reset before each method and read after its steps. A small
    network's figure is a difference of a few hundred KiB of pages, so it is the
    median over ``repeats`` fresh processes.
    """
    if is_cuda(device):
        return {m: _measure_memory(workload, m, device, quick) for m in methods}
    cmd = [sys.executable, __file__, "--_memory", workload, ",".join(methods), "--device", device]
    if quick:
        cmd.append("--quick")
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    runs = [json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
                       .stdout.strip().splitlines()[-1]) for _ in range(1 if quick else repeats)]
    return {m: int(statistics.median(run[m] for run in runs)) for m in methods}


def _measure_memory(workload, method, device, quick):
    factory, shape, n_classes, batch, clean, _ = (QUICK if quick else WORKLOADS)[workload]
    return step_memory(factory, shape, n_classes, batch, clean, method, device)


def step_memory(factory, shape, n_classes, batch, clean, method, device):
    """Bytes of memory ``method``'s step needs above the set-up (in this process)."""
    torch.manual_seed(0)
    module = factory().to(device)
    step = step_functions(module, make_batch(shape, n_classes, batch, clean, device))[method]
    step()  # lazy initialisations (optimizer state, library workspaces) are set-up
    if is_cuda(device):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        for _ in range(3):
            step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    reset_peak()
    base = status_mib("VmRSS")
    for _ in range(3):
        step()
    return int((status_mib("VmHWM") - base) * 2**20)


def profile_epoch(device, quick, top=14):
    """Print, per workload, the functions one ``partial_fit`` epoch of the estimator spends its time in."""
    import cProfile
    import pstats

    for name, (factory, shape, n_classes, batch, clean, n_train) in (QUICK if quick else WORKLOADS).items():
        rng = np.random.RandomState(0)
        X = rng.randn(n_train, *shape).astype(np.float32)
        y = rng.randint(0, n_classes, n_train)
        Xc = rng.randn(max(clean, n_classes), *shape).astype(np.float32)
        yc = np.arange(len(Xc)) % n_classes
        net = ReweightedNeuralNetClassifier(module=factory(), criterion=nn.CrossEntropyLoss,
                                            optimizer=torch.optim.SGD, optimizer__momentum=0.9, lr=1e-3,
                                            batch_size=batch, clean_batch_size=clean, max_epochs=1,
                                            train_split=None, verbose=0, device=device, random_state=0)
        net.partial_fit(X, y, X_clean=Xc, y_clean=yc)  # warm-up epoch
        profiler = cProfile.Profile()
        profiler.enable()
        net.partial_fit(X, y, X_clean=Xc, y_clean=yc)
        profiler.disable()
        print(f"\n## {name}: one epoch, {torch.get_num_threads()} threads")
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(top)  # the kernels and Python the time is spent in
        stats.sort_stats("cumulative").print_stats("sk_reweight", top)  # and the package's stages


def run(device, quick, rounds, per_round):
    workloads = QUICK if quick else WORKLOADS
    rows = []
    for name, (factory, shape, n_classes, batch, clean, n_train) in workloads.items():
        torch.manual_seed(0)
        module = factory().to(device)
        steps = step_functions(module, make_batch(shape, n_classes, batch, clean, device))
        heavy = "ResNet" in name and device == "cpu" and not quick
        t = time_steps(steps, device, rounds=3 if heavy else rounds, per_round=1 if heavy else per_round)
        fit_rounds = 1 if quick else FIT_ROUNDS
        fits, engine = time_fits(factory, shape, n_classes, batch, clean, n_train // 4 if heavy else n_train,
                                 device, epochs=1 if quick else FIT_EPOCHS, rounds=fit_rounds)
        mem = peak_memory(name, ["plain", engine], device, quick)
        rows.append({
            "workload": name, "batch": batch, "clean_batch": clean, "engine": engine,
            "step_ms": {k: v * 1e3 for k, v in t.items()},
            "step_flops": count_flops(steps, ["plain", engine, f"{engine}_folds"]),
            "fit_s": fits, "fit_epochs": 1 if quick else FIT_EPOCHS, "memory_bytes": mem,
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(rows, device, quick):
    torch_threads = torch.get_num_threads()
    where = (torch.cuda.get_device_name() if device == "cuda"
             else f"CPU, {torch_threads} threads")
    lines = [
        f"Device: {where}; torch {torch.__version__}" + (" (--quick sizes)" if quick else "")
        + (f"; fits of {rows[0]['fit_epochs']} epoch(s)" if rows else ""),
        "",
        "| workload | batch / clean | default engine | ours/plain step | ours/plain FLOPs | default/plain step | "
        "default/plain FLOPs | jvp/plain step | reference/ours step | trimmed/ours step | capped/ours step | "
        "ours/plain fit | fit / default FLOPs | default/paper fit | memory ours/plain |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s, e, flops = r["step_ms"], r["engine"], r["step_flops"]
        mem = r["memory_bytes"]
        mem_ratio = mem[e] / mem["plain"] if mem["plain"] > 0 else float("nan")
        jvp = f"{s['jvp'] / s['plain']:.2f}" if "jvp" in s else "-"
        fit = r["fit_s"]["ours"] / r["fit_s"]["plain"]  # whole default fits; divided below by the step's FLOP ratio
        lines.append(
            f"| {r['workload']} | {r['batch']} / {r['clean_batch']} | {e} | "
            f"{s[e] / s['plain']:.2f} | {flops[e] / flops['plain']:.2f} | {s[e + '_folds'] / s['plain']:.2f} | "
            f"{flops[e + '_folds'] / flops['plain']:.2f} | "
            f"{jvp} | {s['reference'] / s[e]:.2f} | {s[e + '_trim'] / s[e]:.2f} | {s[e + '_cap'] / s[e]:.2f} | "
            f"{fit:.2f} | {fit / (flops[e + '_folds'] / flops['plain']):.2f} | "
            f"{r['fit_s']['ours'] / r['fit_s']['paper']:.2f} | {mem_ratio:.2f} |"
        )
    if device == "cuda":
        lines += ["", "| workload | plain step ms | ours step ms | reference step ms |", "|---|---|---|---|"]
        for r in rows:
            s = r["step_ms"]
            lines.append(f"| {r['workload']} | {s['plain']:.2f} | {s[r['engine']]:.2f} | {s['reference']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps-per-round", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None,
                        help="markdown file (default: benchmarks/results/speed_DEVICE.md)")
    parser.add_argument("--profile", action="store_true", help="where an epoch's time goes, per workload")
    parser.add_argument("--_memory", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    if args._memory:
        workload, methods = args._memory
        print(json.dumps({m: _measure_memory(workload, m, args.device, args.quick)
                          for m in methods.split(",")}))
        return
    if args.profile:
        return profile_epoch(args.device, args.quick)
    rounds, per_round = (1, 1) if args.quick else (args.rounds, args.steps_per_round)
    rows = run(args.device, args.quick, rounds, per_round)
    table = markdown(rows, args.device, args.quick)
    out = args.out or RESULTS / f"speed_{args.device}{'_quick' if args.quick else ''}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    (out.with_suffix(".json")).write_text(json.dumps(rows, indent=1))
    print(table)
    print(f"written to {out}")
    return rows


if __name__ == "__main__":
    main()
