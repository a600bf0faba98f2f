"""Fit and predict on a large tabular set: time and peak memory against the data size.

Generates ``--rows`` rows of 50 float32 features (two Gaussian classes), a
1,000-row clean set, trains one epoch of the default MLP and predicts on every
row. Peak memory is the growth of the process's peak resident set (Linux
``VmHWM``, reset before each phase) over the resident set before the data was
created, so it counts the data itself plus everything fit/predict add.

Run ``python benchmarks/load.py`` (1,000,000 rows) or ``--quick`` (20,000).
"""
import argparse
import json
import time

import numpy as np
import torch

from sk_reweight import ReweightedNeuralNetClassifier

from _memory import reset_peak, status_mib
from _harness import RESULTS
from _readme import update_readme



def make_data(n_rows, n_features=50, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n_rows)
    X = rng.standard_normal((n_rows, n_features), dtype=np.float32)
    X[:, :5] += y[:, None].astype(np.float32)  # five informative features
    return X, y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="20,000 rows")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args(argv)
    n_rows = 20_000 if args.quick else args.rows
    torch.set_num_threads(2)

    base = status_mib("VmRSS")
    X, y = make_data(n_rows)
    Xc, yc = make_data(1000, seed=1)
    data_mib = (X.nbytes + y.nbytes + Xc.nbytes + yc.nbytes) / 2**20

    net = ReweightedNeuralNetClassifier(max_epochs=1, batch_size=args.batch_size, random_state=0,
                                        device=args.device)
    reset_peak()
    t0 = time.perf_counter()
    net.fit(X, y, X_clean=Xc, y_clean=yc)
    fit_s = time.perf_counter() - t0
    fit_peak = status_mib("VmHWM") - base

    reset_peak()
    t0 = time.perf_counter()
    pred = net.predict(X)
    predict_s = time.perf_counter() - t0
    predict_peak = status_mib("VmHWM") - base
    result = {
        "rows": n_rows, "features": X.shape[1], "batch_size": args.batch_size,
        "data_MiB": round(data_mib, 1),
        "fit_peak_MiB": round(fit_peak, 1), "fit_peak_over_data": round(fit_peak / data_mib, 2),
        "predict_peak_MiB": round(predict_peak, 1),
        "predict_peak_over_data": round(predict_peak / data_mib, 2),
        "fit_seconds_1_epoch": round(fit_s, 1), "predict_seconds": round(predict_s, 1),
        "accuracy": round(float(np.mean(pred == y)), 4),
        "engine": net.meta_engine_.name,
    }
    print(json.dumps(result))
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"load_{args.device}.json").write_text(json.dumps(result, indent=1) + "\n")
    if args.update_readme:
        r = result
        update_readme(f"load-{args.device}", (
            "| rows x features | data | fit peak (1 epoch) | predict peak | fit time | predict time |\n"
            "|---|---|---|---|---|---|\n"
            f"| {r['rows']:,} x {r['features']} | {r['data_MiB']} MiB | {r['fit_peak_MiB']} MiB "
            f"({r['fit_peak_over_data']}x data) | {r['predict_peak_MiB']} MiB "
            f"({r['predict_peak_over_data']}x data) | {r['fit_seconds_1_epoch']} s "
            f"(batch {r['batch_size']}, {args.device}) | {r['predict_seconds']} s |\n"
        ))
    return result


if __name__ == "__main__":
    main()
