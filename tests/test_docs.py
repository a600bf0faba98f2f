"""The documentation: every public name in the API reference, a warning-free build, a short README."""
import ast
import builtins
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import time
import zlib
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
        if line.startswith((".. currentmodule::", ".. module::")):
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
                            'pip install -e ".[test]" && python -m pytest tests -q -m "not slow"\n']
    code = re.search(r"## A first fit.*?```python\n(.*?)```", text, re.S).group(1)
    assert len(code.splitlines()) <= 15
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.startswith("(20, 3000)") and "given_label" in out
    for link in re.findall(r"\]\(((?:docs|benchmarks)/[^)]+)\)", text):
        assert (ROOT / link).exists(), link


needs_sphinx = pytest.mark.skipif(importlib.util.find_spec("sphinx") is None, reason="pip install -e .[docs]")
# the code samples of the pages: fenced ```python blocks and reST code-blocks
CODE_SAMPLES = re.compile(r"^```python\n(.*?)^```|\.\. code-block:: python\n\n((?:    .*\n|\n)+)", re.S | re.M)


def build_docs(target, *, examples, nitpicky=False):
    """``sphinx-build -W`` (warnings fail), running the examples or not; returns stdout and seconds.

    ``nitpicky``: ``-n`` too, so a reference that resolves nowhere (ours, or through the inventories
    of ``docs/_inventories``) fails the build.
    """
    # NO_COLOR and -N: a CI machine with FORCE_COLOR set otherwise wraps the progress lines in escapes
    env = {**os.environ, "SK_REWEIGHT_DOCS_RERUN": "1", "SK_REWEIGHT_DOCS_EXAMPLES": "1" if examples else "0",
           "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sphinx", "-N", "-W", "--keep-going", *(["-n"] if nitpicky else []),
                           "-b", "html", str(DOCS), str(target)], env=env, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", done.stdout), time.perf_counter() - start


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built without running the examples (the fast tier's build), nitpicky."""
    html = tmp_path_factory.mktemp("docs") / "html"
    build_docs(html, examples=False, nitpicky=True)
    return html


@needs_sphinx
def test_the_docs_build_without_a_warning(site):
    for page in ("api", "getting_started", "user_guide/troubleshooting", "benchmarks/mnist", "changelog",
                 "architecture", "user_guide/scaling", "auto_examples/index"):
        assert (site / f"{page}.html").exists(), page
    assert "mnist_curves.png" in (site / "benchmarks" / "mnist.html").read_text()


@needs_sphinx
def test_every_reference_resolves_to_its_projects_page(site, tmp_path):
    """``site`` is built with ``-n -W``: an unresolved reference fails it. The outside names resolve
    through the committed inventories, which their script rewrites identically, to the real pages."""
    spec = importlib.util.spec_from_file_location("make_inventories", DOCS / "_inventories" / "make_inventories.py")
    make_inventories = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_inventories)

    make_inventories.main(tmp_path)
    committed = DOCS / "_inventories"
    assert sorted(p.name for p in tmp_path.glob("*.inv")) == sorted(p.name for p in committed.glob("*.inv"))
    def text(path):  # the header lines and the decompressed entries: zlib builds differ in their bytes
        header, _, body = path.read_bytes().partition(b"zlib.\n")
        return header, zlib.decompress(body)

    for inventory in tmp_path.glob("*.inv"):
        assert text(inventory) == text(committed / inventory.name), f"rerun {make_inventories.__file__}"
    estimator = (site / "generated" / "sk_reweight.ReweightedNeuralNetClassifier.html").read_text()
    assert 'href="https://skorch.readthedocs.io/en/stable/classifier.html#skorch.classifier.NeuralNetClassifier"' \
        in estimator
    assert 'href="https://docs.pytorch.org/docs/stable/amp.html#torch.amp.GradScaler"' in estimator
    folds = (site / "generated" / "sk_reweight.model_selection.CleanSetKFold.html").read_text()
    assert "https://scikit-learn.org/stable/modules/generated/sklearn.model_selection.StratifiedKFold.html" in folds


@needs_sphinx
def test_the_class_pages_show_our_members_with_a_summary(site):
    page = (site / "generated" / "sk_reweight.ReweightedNeuralNetClassifier.html").read_text()
    members = set(re.findall(r'id="sk_reweight\.ReweightedNeuralNetClassifier\.(\w+)"', page))
    assert {"fit", "partial_fit", "predict", "predict_proba", "score", "save_params", "load_params",
            "get_params", "set_params", "sample_weights_", "suspicious_examples"} <= members
    assert not members & {"fit_loop", "notify", "run_single_epoch", "get_split_datasets", "train_step",
                          "on_epoch_end", "initialize_module", "forward", "get_metadata_routing"}
    assert 'class="autosummary longtable' in page and "Methods" in page
    assert "optimizer=torch.optim.Adam" in re.sub(r"<[^>]+>", "", page) and "&lt;class" not in page
    module = (site / "generated" / "sk_reweight.modules.MLP.html").read_text()
    assert not re.findall(r'id="sk_reweight\.modules\.MLP\.\w+"', module)  # torch's Module members


@needs_sphinx
def test_every_page_has_a_title(site):
    index = (site / "searchindex.js").read_text()
    titles = json.loads(re.search(r'"titles":(\[.*?\])', index).group(1))
    assert "<no title>" not in titles
    assert not [p.name for p in site.rglob("_*.html")]  # included fragments are not pages


@needs_sphinx
def test_the_error_catalogue_shows_code_as_code(site):
    page = (site / "user_guide" / "troubleshooting.html").read_text()
    assert '<span class="pre">__len__</span>' in page and "<strong>len</strong>" not in page
    assert 'class="messages table"' in page  # its message column wraps (_static/tables.css)


@needs_sphinx
def test_the_home_page_says_how_to_install_and_links_the_paper(site):
    page = (site / "index.html").read_text()
    assert "pip install" in re.sub(r"<[^>]+>", "", page) and 'href="https://arxiv.org/abs/1803.09050"' in page


def test_every_code_sample_imports_what_it_uses():
    """A sample copied alone runs its imports and names no public object it did not import."""
    public = {"np", "torch", "nn", "pd", "plt", "sklearn", "skorch"}
    for name in PUBLIC_MODULES + ["sklearn.pipeline", "sklearn.model_selection", "sklearn.preprocessing",
                                  "sklearn.compose", "sklearn.metrics", "skorch", "skorch.callbacks"]:
        public |= set(importlib.import_module(name).__all__)
    pages = [p for p in [*DOCS.rglob("*.md"), *DOCS.rglob("*.rst"), ROOT / "README.md"]
             if not {"auto_examples", "generated", "_build"} & set(p.parts)]
    samples = 0
    for page in pages:
        for fenced, indented in CODE_SAMPLES.findall(page.read_text()):
            tree = ast.parse(textwrap.dedent(fenced or indented))
            imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
            exec(compile(ast.Module(imports, type_ignores=[]), str(page), "exec"), {})
            bound = {alias.asname or alias.name.split(".")[0] for node in imports for alias in node.names}
            bound |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)
                      and not isinstance(node.ctx, ast.Load)}
            bound |= {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
            used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
            missing = (used - bound - set(dir(builtins))) & public
            assert not missing, f"{page.relative_to(ROOT)}: a sample uses {sorted(missing)} without importing it"
            samples += 1
    assert samples >= 5


# the gallery's promise for the whole build with every example, on the 2-core CI machine
DOCS_BUILD_SECONDS = 360


@needs_sphinx
@pytest.mark.slow
def test_the_docs_build_with_every_example_in_under_six_minutes(tmp_path):
    from PIL import Image, ImageChops
    from sphinx_gallery import __file__ as gallery

    html = tmp_path / "html"
    stdout, seconds = build_docs(html, examples=True)
    examples = sorted(p.relative_to(ROOT / "examples").with_suffix("").as_posix()
                      for p in (ROOT / "examples").rglob("*.py"))
    built = sorted(p.relative_to(html / "auto_examples").with_suffix("").as_posix()
                   for p in (html / "auto_examples").rglob("*.html")
                   if p.stem not in ("index", "sg_execution_times"))
    assert built == examples and len(examples) >= 8
    ran = re.findall(r"generating gallery for auto_examples/?[\w/]*\.\.\. \[\s*\d+%\] (\S+)\.py", stdout)
    assert sorted(ran) == sorted(Path(e).name for e in examples)  # every example executed, none skipped
    # every card shows the example's own figure, not sphinx-gallery's placeholder
    placeholder = Image.open(Path(gallery).parent / "_static" / "no_image.png").convert("RGB")
    for name in examples:
        thumb = Image.open(html / "_images" / f"sphx_glr_{Path(name).name}_thumb.png").convert("RGB")
        assert ImageChops.difference(thumb, placeholder.resize(thumb.size)).getbbox() is not None, name
        assert (html / "_images" / f"sphx_glr_{Path(name).name}_001.png").exists(), name
    assert seconds < DOCS_BUILD_SECONDS, f"the docs build took {seconds:.0f} s"
