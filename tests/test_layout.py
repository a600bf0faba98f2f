"""The package's layout stays as the architecture page describes it."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sk_reweight"


def lines_of_code(path):
    """Lines that are neither blank, comments nor docstrings."""
    source = path.read_text()
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
                and ast.get_docstring(node) is not None:
            first = node.body[0]
            docstrings.update(range(first.lineno, first.end_lineno + 1))
    return sum(1 for i, line in enumerate(source.splitlines(), 1)
               if line.strip() and not line.strip().startswith("#") and i not in docstrings)


def test_the_estimator_only_wires_parts_together():
    assert lines_of_code(PACKAGE / "_estimator.py") <= 300


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_oversized(path):
    assert lines_of_code(path) <= 400


def test_every_module_has_its_test_file():
    modules = [p for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")]
    modules += [p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    missing = [p.name for p in modules if not (ROOT / "tests" / f"test_{p.stem.lstrip('_')}.py").exists()]
    assert not missing


@pytest.mark.parametrize("folder", ["benchmarks", "examples"])
def test_outside_code_uses_only_the_public_api(folder):
    paths = list((ROOT / folder).rglob("*.py"))
    assert paths
    for path in paths:
        text = path.read_text()
        assert "sys.path" not in text, path.name
        private = r"(from|import) sk_reweight(\.\w+)*\._\w|import _\w+ as|sk_reweight\.\w+ import _"
        assert not re.search(private, text), path.name


def test_the_code_is_clean_under_the_linter():
    pytest.importorskip("ruff")
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
