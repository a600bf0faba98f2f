"""The documentation: every public name in the API reference, a warning-free build, a short README."""
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PUBLIC_MODULES = ["sk_reweight", "sk_reweight.baselines", "sk_reweight.callbacks", "sk_reweight.comparison",
                  "sk_reweight.corruption", "sk_reweight.datasets", "sk_reweight.diagnostics",
                  "sk_reweight.engines", "sk_reweight.exceptions", "sk_reweight.losses",
                  "sk_reweight.model_selection", "sk_reweight.modules", "sk_reweight.plotting",
                  "sk_reweight.weighting"]


def documented_objects():
    """The objects ``docs/api.rst`` lists, resolved."""
    objects, module = [], None
    for line in (DOCS / "api.rst").read_text().splitlines():
        if line.startswith(".. currentmodule::"):
            module = line.split("::")[1].strip()
        elif re.fullmatch(r"   [A-Za-z_][\w.]*", line) and module:
            path = f"{module}.{line.strip()}"
            owner, _, name = path.rpartition(".")
            objects.append(getattr(importlib.import_module(owner), name))
    return objects


def test_every_public_name_is_in_the_api_reference():
    documented = {id(obj) for obj in documented_objects()}
    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if type(obj).__name__ != "module" and id(obj) not in documented:
                missing.append(f"{module_name}.{name}")
    assert not missing, f"add to docs/api.rst: {missing}"
    assert {m.removeprefix("sk_reweight.") for m in PUBLIC_MODULES[1:]} >= {
        p.stem for p in (ROOT / "sk_reweight").glob("[!_]*.py") if p.stem != "cli"}


def test_the_readme_is_short_and_its_example_runs(capsys):
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    commands = re.findall(r"```bash\n(.*?)```", text, re.S)
    assert commands[:2] == ['pip install torch==2.13.0 && pip install -e . && sk-reweight demo\n',
                            'pip install -e ".[test]" && python -m pytest tests -q\n']
    code = re.search(r"## A first fit.*?```python\n(.*?)```", text, re.S).group(1)
    assert len(code.splitlines()) <= 15
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.startswith("(20, 3000)") and "given_label" in out
    for link in re.findall(r"\]\(((?:docs|benchmarks)/[^)]+)\)", text):
        assert (ROOT / link).exists(), link


@pytest.mark.skipif(importlib.util.find_spec("sphinx") is None, reason="pip install -e .[docs]")
def test_the_docs_build_without_a_warning_and_run_every_example(tmp_path):
    # NO_COLOR and -N: a CI machine with FORCE_COLOR set otherwise wraps the progress lines in escapes
    env = {**os.environ, "SK_REWEIGHT_QUICK": "1", "SK_REWEIGHT_DOCS_RERUN": "1", "OMP_NUM_THREADS": "1",
           "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    done = subprocess.run([sys.executable, "-m", "sphinx", "-N", "-W", "--keep-going", "-b", "html",
                           str(DOCS), str(tmp_path / "html")], env=env, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    examples = sorted(p.stem for p in (ROOT / "examples").glob("*.py"))
    built = sorted(p.stem for p in (tmp_path / "html" / "auto_examples").glob("*.html")
                   if p.stem not in ("index", "sg_execution_times"))
    assert built == examples and len(examples) >= 8
    stdout = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", done.stdout)
    ran = re.findall(r"generating gallery for auto_examples\.\.\. \[\s*\d+%\] (\S+)\.py", stdout)
    assert sorted(ran) == examples  # every example executed, none skipped as run before:
    assert "after excluding 0 files that had previously been run" in stdout
    for page in ("api", "getting_started", "user_guide/troubleshooting", "benchmarks/mnist", "changelog",
                 "architecture", "user_guide/scaling"):
        assert (tmp_path / "html" / f"{page}.html").exists(), page
    assert "mnist_curves.png" in (tmp_path / "html" / "benchmarks" / "mnist.html").read_text()
