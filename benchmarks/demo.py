"""The demo's results for the docs: ``sk-reweight demo`` run into benchmarks/results/demo.

Run ``python benchmarks/demo.py --seed 0``.
"""
import argparse

from _harness import RESULTS

from sk_reweight.cli import run_demo


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = RESULTS / "demo"
    rows = run_demo(out, seed=args.seed)
    return rows


if __name__ == "__main__":
    main()
