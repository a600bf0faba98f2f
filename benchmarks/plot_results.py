"""Redraw a benchmark's PNG from its saved results, without training again.

``python benchmarks/plot_results.py imbalance_noise noisy_labels`` reads
``benchmarks/results/NAME.json`` and writes ``NAME.png`` with the plotting
code of the benchmark script itself (useful after changing a plot, or for a
run made before the script drew one).
"""
import argparse
import importlib
import json

from _harness import RESULTS

PLOTTED = ("imbalance_noise", "noisy_labels", "mnist_imbalance")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", choices=PLOTTED)
    parser.add_argument("--quick", action="store_true", help="the results of --quick runs")
    args = parser.parse_args(argv)
    written = []
    for name in args.names:
        stem = RESULTS / (f"{name}_quick" if args.quick else name)
        payload = json.loads(stem.with_suffix(".json").read_text())
        if name == "mnist_imbalance":  # keyed by proportion; JSON made the keys strings
            payload = {float(p): stats for p, stats in payload["paper"].items()}
        path = stem.with_suffix(".png")
        importlib.import_module(name).plot(payload, path)
        print(f"written to {path}")
        written.append(path)
    return written


if __name__ == "__main__":
    main()
