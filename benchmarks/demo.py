"""The demo's table in README.md: ``sk-reweight demo`` run into benchmarks/results/demo.

Run ``python benchmarks/demo.py --seed 0 --update-readme``.
"""
import argparse

from sk_reweight.cli import run_demo

from _harness import RESULTS
from _readme import update_readme


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args(argv)
    out = RESULTS / "demo"
    rows = run_demo(out, seed=args.seed)
    if args.update_readme:
        table = (out / "results.md").read_text()
        update_readme("demo", f"`sk-reweight demo --seed {args.seed}` printed:\n\n{table}")
    return rows


if __name__ == "__main__":
    main()
