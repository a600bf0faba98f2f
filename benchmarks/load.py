"""Data larger than memory: one epoch on arrays, memmaps and a torch Dataset, against plain skorch.

Writes ``--rows`` rows of 50 features (two Gaussian classes) to files in a
temporary folder, then, each in a fresh process, trains one epoch of the
default MLP (batch ``--batch-size``) and predicts every row, from:

- ``array``: a float32 array in memory;
- ``memmap32`` / ``memmap64``: a float32 / float64 ``np.memmap`` of the file;
- ``dataset``: a map-style torch ``Dataset`` whose items are rows of the
  float32 memmap.

``reweight`` is :class:`~sk_reweight.ReweightedNeuralNetClassifier` (a
1,000-row clean set); ``skorch`` is plain ``skorch.NeuralNetClassifier`` with
the same MLP on the same data (it takes float32 only, so no float64 row).

Memory: ``peak RSS`` is the growth of the process's peak resident set
(Linux ``VmHWM``, reset before fitting) over the resident set before; it
counts the pages of a memmapped file the epoch touched (page cache the
kernel can reclaim). ``peak anonymous`` is the peak growth of ``RssAnon``,
sampled every 2 ms: the memory the process itself allocated. Throughput is
training rows per second. Threads: ``--threads`` (default 2).

Run ``python benchmarks/load.py`` (1,000,000 rows) or ``--quick`` (20,000).
"""
import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from _harness import RESULTS
from _memory import reset_peak, status_mib

N_FEATURES = 50
CELLS = [("array", "reweight"), ("array", "skorch"), ("memmap32", "reweight"), ("memmap32", "skorch"),
         ("memmap64", "reweight"), ("dataset", "reweight"), ("dataset", "skorch")]


def write_data(folder, n_rows, seed=0):
    """Features as float32 and float64 files, labels as .npy; a clean set in memory."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n_rows)
    X32 = np.memmap(folder / "X32.dat", dtype=np.float32, mode="w+", shape=(n_rows, N_FEATURES))
    X64 = np.memmap(folder / "X64.dat", dtype=np.float64, mode="w+", shape=(n_rows, N_FEATURES))
    for start in range(0, n_rows, 100_000):  # in chunks: the writer stays small too
        stop = min(n_rows, start + 100_000)
        block = rng.standard_normal((stop - start, N_FEATURES), dtype=np.float32)
        block[:, :5] += y[start:stop, None]  # five informative features
        X32[start:stop], X64[start:stop] = block, block
    X32.flush(), X64.flush()
    np.save(folder / "y.npy", y)


class MemmapRows(torch.utils.data.Dataset):
    """Rows of a float32 memmap as ``(x, y)`` items; labels also as ``targets``, as torchvision's."""

    def __init__(self, X, y):
        self.X, self.y = X, y
        self.targets = y

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return torch.from_numpy(np.array(self.X[i])), int(self.y[i])


def open_data(folder, source):
    y = np.load(folder / "y.npy")
    shape = (len(y), N_FEATURES)
    if source == "array":
        return np.array(np.memmap(folder / "X32.dat", dtype=np.float32, mode="r", shape=shape)), y
    if source == "memmap64":
        return np.memmap(folder / "X64.dat", dtype=np.float64, mode="r", shape=shape), y
    X = np.memmap(folder / "X32.dat", dtype=np.float32, mode="r", shape=shape)
    return (MemmapRows(X, y), None) if source == "dataset" else (X, y)


def make_net(method, batch_size):
    from sk_reweight import ReweightedNeuralNetClassifier
    from sk_reweight.modules import MLP

    if method == "reweight":
        return ReweightedNeuralNetClassifier(max_epochs=1, batch_size=batch_size, random_state=0, device="cpu")
    from skorch import NeuralNetClassifier

    return NeuralNetClassifier(MLP, module__n_features=N_FEATURES, module__n_classes=2, max_epochs=1,
                               batch_size=batch_size, criterion=torch.nn.CrossEntropyLoss,
                               optimizer=torch.optim.Adam, lr=1e-3, train_split=None, device="cpu")


class AnonymousPeak:
    """Peak ``RssAnon`` growth, sampled in a thread."""

    def __enter__(self):
        self.base = self.peak = status_mib("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, status_mib("RssAnon"))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.growth = max(self.peak, status_mib("RssAnon")) - self.base


def run_cell(folder, source, method, batch_size, threads):
    """One fit and predict in this process: its measurements."""
    torch.set_num_threads(threads)
    rss_before = status_mib("VmRSS")
    X, y = open_data(folder, source)
    net = make_net(method, batch_size)
    rng = np.random.default_rng(1)
    yc = rng.integers(0, 2, 1000)
    Xc = rng.standard_normal((1000, N_FEATURES), dtype=np.float32) + np.where(np.arange(N_FEATURES) < 5, yc[:, None], 0)
    clean = dict(X_clean=Xc.astype(np.float32), y_clean=yc) if method == "reweight" else {}
    reset_peak()
    with AnonymousPeak() as fit_anon:
        start = time.perf_counter()
        net.fit(X, y, **clean)
        fit_s = time.perf_counter() - start
    fit_rss = status_mib("VmHWM") - rss_before
    with AnonymousPeak() as predict_anon:
        start = time.perf_counter()
        proba = net.predict_proba(X)
        predict_s = time.perf_counter() - start
    labels = np.load(folder / "y.npy")
    return {"source": source, "method": method, "rows": len(labels), "threads": threads,
            "fit_rows_per_s": round(len(labels) / fit_s), "fit_peak_rss_MiB": round(fit_rss, 1),
            "fit_peak_anonymous_MiB": round(fit_anon.growth, 1),
            "predict_rows_per_s": round(len(labels) / predict_s),
            "predict_peak_anonymous_MiB": round(predict_anon.growth, 1),
            "accuracy": round(float(np.mean(proba.argmax(1) == labels)), 4)}


def table(result):
    lines = [f"{result['rows']:,} rows x {N_FEATURES} features, one epoch, batch {result['batch_size']}, "
             f"{result['threads']} torch threads; data file {result['data_MiB']} MiB (float32). "
             f"Each cell in a fresh process.", "",
             "| data | method | fit rows/s | fit peak RSS | fit peak anonymous | predict rows/s "
             "| predict peak anonymous | accuracy |", "|---|---|---|---|---|---|---|---|"]
    for c in result["cells"]:
        lines.append(f"| {c['source']} | {c['method']} | {c['fit_rows_per_s']:,} | {c['fit_peak_rss_MiB']} MiB "
                     f"| {c['fit_peak_anonymous_MiB']} MiB | {c['predict_rows_per_s']:,} "
                     f"| {c['predict_peak_anonymous_MiB']} MiB | {c['accuracy']} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="20,000 rows")
    parser.add_argument("--cell", nargs=3, metavar=("FOLDER", "SOURCE", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cell:  # one measurement, in its own process
        folder, source, method = args.cell
        print(json.dumps(run_cell(Path(folder), source, method, args.batch_size, args.threads)))
        return None
    n_rows = 20_000 if args.quick else args.rows
    cells = []
    with tempfile.TemporaryDirectory() as folder:
        write_data(Path(folder), n_rows)
        for source, method in CELLS:
            done = subprocess.run([sys.executable, __file__, "--cell", folder, source, method,
                                   "--batch-size", str(args.batch_size), "--threads", str(args.threads)],
                                  capture_output=True, text=True, check=False)
            if done.returncode:
                raise SystemExit(f"{source}/{method} failed:\n{done.stderr[-3000:]}")
            cells.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(cells[-1]), flush=True)
    result = {"rows": n_rows, "batch_size": args.batch_size, "threads": args.threads,
              "data_MiB": round(n_rows * N_FEATURES * 4 / 2**20, 1), "cells": cells}
    name = "load_quick" if args.quick else "load_cpu"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(table(result))
    return result


if __name__ == "__main__":
    main()
