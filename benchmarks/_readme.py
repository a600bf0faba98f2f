"""Put a benchmark's table into README.md between its markers."""
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def update_readme(block, content):
    start, end = f"<!-- {block}:start -->", f"<!-- {block}:end -->"
    text = README.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"README.md has no {start} ... {end} block to update.")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    README.write_text(f"{head}{start}\n{content}{end}{tail}")


if __name__ == "__main__":
    # python benchmarks/_readme.py NAME: show results/NAME.md (as a run with --update-readme would)
    import sys

    for name in sys.argv[1:]:
        update_readme(name.replace("_", "-"), (README.parent / "benchmarks" / "results" / f"{name}.md").read_text())
