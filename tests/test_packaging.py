"""The release artefacts: metadata in one place, a wheel and sdist that install and run."""
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import sk_reweight

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "getting_started" / "quickstart.py"


def test_the_metadata_is_complete_and_the_version_lives_in_one_place():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dynamic"] == ["version"] and "version" not in project
    assert project["license"] == "BSD-3-Clause" and (ROOT / project["license-files"][0]).is_file()
    assert project["readme"]["file"] == "README.md" and project["urls"] and project["classifiers"]
    # nothing else spells the version out (the changelog names releases, the results record runs)
    pattern = re.escape(sk_reweight.__version__)
    for path in [*ROOT.glob("*.toml"), *ROOT.glob("*.md"), *(ROOT / "docs").glob("*.py"),
                 *(ROOT / "sk_reweight").rglob("*.py")]:
        if path.name != "__init__.py" or path.parent.name != "sk_reweight":
            assert not re.search(rf"\b{pattern}\b", path.read_text()), path


@pytest.mark.slow
def test_the_built_wheel_installs_in_a_fresh_environment_and_runs_the_quickstart(tmp_path):
    dist = tmp_path / "dist"
    # no build isolation: nothing is downloaded; the [test] extra installs setuptools and build
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True, text=True, timeout=600)
    wheel, = dist.glob("sk_reweight-*-py3-none-any.whl")
    sdist, = dist.glob("sk_reweight-*.tar.gz")
    assert wheel.name == f"sk_reweight-{sk_reweight.__version__}-py3-none-any.whl"
    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
                             capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0 and checked.stdout.count("PASSED") == 2, checked.stdout + checked.stderr

    # a fresh environment that sees this one's torch, scikit-learn, ... but not the checkout
    env_dir = tmp_path / "env"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=600)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    where = subprocess.run([str(python), "-c", "import sk_reweight; print(sk_reweight.__file__)"], cwd=outside,
                           env=env, check=True, capture_output=True, text=True).stdout
    assert Path(where.strip()).is_relative_to(env_dir), where
    ran = subprocess.run([str(python), str(QUICKSTART)], cwd=outside, env=env, capture_output=True, text=True,
                         timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "balanced accuracy, reweighted" in ran.stdout
    assert list(outside.iterdir()) == []
