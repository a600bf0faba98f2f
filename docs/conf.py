"""Sphinx configuration: pydata-sphinx-theme, numpydoc, sphinx-gallery and MyST pages."""
import ast
import importlib
import importlib.util
import os
import pkgutil
import re
import shutil
from pathlib import Path

import sk_reweight

# _members.py (which members each class page shows), loaded from its file: no sys.path edit
_members_spec = importlib.util.spec_from_file_location("_members", Path(__file__).parent / "_members.py")
_members = importlib.util.module_from_spec(_members_spec)
_members_spec.loader.exec_module(_members)
_api_members = _members.api_members

project = "sk_reweight"
author = "sk_reweight developers"
copyright = "2026, sk_reweight developers"
release = version = sk_reweight.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
# _name.md files are fragments that other pages include, not pages of their own
exclude_patterns = ["_build", "**/_*.md", "**/*.ipynb", "auto_examples/**.md5", "auto_examples/**.py",
                    "auto_examples/**.json", "auto_examples/**.zip"]
templates_path = ["_templates"]

autosummary_generate = True
# generated/ is rewritten from api.rst at every build: a page of a name no longer listed would linger
shutil.rmtree(Path(__file__).parent / "generated", ignore_errors=True)
# no "members" or "inherited-members" defaults: a default that is not a string replaces the class
# template's explicit member list (templates/autosummary/class.rst says what each class page shows)
autodoc_default_options = {}
# signatures show ``optimizer=torch.optim.Adam`` as written, not ``<class 'torch.optim.adam.Adam'>``
autodoc_preserve_defaults = True


def _class_members():
    """``{full name: {"methods": [...], "attributes": [...]}}`` of every public class (``_members.py``)."""
    found = {}
    public = [m.name for m in pkgutil.iter_modules(sk_reweight.__path__) if not m.name.startswith("_")]
    for module_name in ["sk_reweight"] + [f"sk_reweight.{m}" for m in public if m != "cli"]:
        module = importlib.import_module(module_name)
        found.update({f"{module_name}.{name}": _api_members(getattr(module, name)) for name in module.__all__
                      if isinstance(getattr(module, name), type)})
    return found


# the class template lists exactly these members, in a summary table and then in full
autosummary_context = {"api_members": _class_members()}

# private names of ours that public docstrings mention (none: they name them as ``literals``);
# nothing outside the package goes here (the inventories below resolve those)
nitpick_ignore = []

# links to the projects whose names the docs use, from small inventories shipped in _inventories/
# (the build has no network; make_inventories.py writes them)
_INVENTORIES = Path(__file__).parent / "_inventories"
intersphinx_mapping = {
    project: (url, str(_INVENTORIES / f"{project}.inv"))
    for project, url in [("python", "https://docs.python.org/3/"),
                         ("numpy", "https://numpy.org/doc/stable/"),
                         ("sklearn", "https://scikit-learn.org/stable/"),
                         ("torch", "https://docs.pytorch.org/docs/stable/"),
                         ("skorch", "https://skorch.readthedocs.io/en/stable/"),
                         ("pandas", "https://pandas.pydata.org/docs/"),
                         ("matplotlib", "https://matplotlib.org/stable/")]
}


def skip_member(app, what, name, obj, skip, options):
    """Leave out scikit-learn's generated ``set_*_request`` methods (documented by scikit-learn)."""
    return True if name.startswith("set_") and name.endswith("_request") else skip


# every cell at most this long: a table of results, whose values should not wrap
_SHORT_CELL = 40


def classify_tables(app, doctree, docname):
    """Tag tables for ``_static/tables.css``: results tables and the error catalogue."""
    from docutils import nodes

    for table in doctree.findall(nodes.table):
        cells = [entry.astext() for entry in table.findall(nodes.entry)]
        if docname == "user_guide/troubleshooting" and any(len(c) > _SHORT_CELL for c in cells):
            table["classes"].append("messages")
        elif cells and max(len(c) for c in cells) <= _SHORT_CELL:
            table["classes"].append("results")


def setup(app):
    app.connect("autodoc-skip-member", skip_member)
    app.connect("doctree-resolved", classify_tables)


numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]
# the doc pages include result files written by benchmarks/ outside docs/
suppress_warnings = ["myst.header"]

html_theme = "pydata_sphinx_theme"
html_title = "sk_reweight"
html_static_path = ["_static"]
html_css_files = ["tables.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": False,
    # pages with wide tables drop it (html_theme.sidebar_secondary.remove in their front matter)
    "secondary_sidebar_items": ["page-toc"],
}

# SK_REWEIGHT_DOCS_RERUN=1 runs every example even when an earlier build ran it unchanged;
# SK_REWEIGHT_DOCS_EXAMPLES=0 builds the pages without running them (the fast test tier)
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "subsection_order": ["../examples/getting_started", "../examples/tabular", "../examples/images",
                         "../examples/scale", "../examples/extending"],
    "plot_gallery": os.environ.get("SK_REWEIGHT_DOCS_EXAMPLES", "1") != "0",
    "filename_pattern": r".*\.py$",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "matplotlib_animations": False,
    "capture_repr": (),
    "reset_modules": ("matplotlib",),
    "run_stale_examples": os.environ.get("SK_REWEIGHT_DOCS_RERUN") == "1",
}



def _text(node, constants):
    """The literal text of a message expression; f-string fields as ``{...}``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{...}" for v in node.values)
    if isinstance(node, ast.BinOp):  # "..." + "..."
        return " ".join(t for t in (_text(node.left, constants), _text(node.right, constants)) if t)
    if isinstance(node, ast.Name):  # a message kept in a module constant
        return constants.get(node.id)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        text = _text(node.func.value, constants)
        return None if text is None else text.replace("{{", "{").replace("}}", "}")
    return None


def error_messages(package):
    """``(module, kind, message)`` of every error raised and warning issued with a readable message."""
    found = []
    for path in sorted(Path(package).rglob("*.py")):
        tree = ast.parse(path.read_text())
        constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                     and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
                     for t in n.targets if isinstance(t, ast.Name)}
        module = ".".join(path.relative_to(Path(package).parent).with_suffix("").parts)
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) \
                    and isinstance(node.exc.func, ast.Name) and node.exc.args:
                kind, message = node.exc.func.id, node.exc.args[0]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "warn" and node.args:
                category = node.args[1] if len(node.args) > 1 else next(
                    (k.value for k in node.keywords if k.arg == "category"), None)
                kind, message = (category.id if isinstance(category, ast.Name) else "UserWarning"), node.args[0]
            else:
                continue
            text = _text(message, constants)
            if text:
                found.append((module, kind, text))
    return found


def write_error_catalogue(target):
    lines = ["| where | error | message (what it means and what to do) |", "|---|---|---|"]
    for module, error, message in error_messages(Path(sk_reweight.__file__).parent):
        text = " ".join(message.split()).replace("|", "\\|").replace("`", "'")
        text = re.sub(r"(?<![\w'])(__\w+__)", r"`\1`", text)  # __len__ as code, not bold "len"
        lines.append(f"| `{module}` | `{error}` | {text} |")
    content = "\n".join(lines) + "\n"
    if not target.exists() or target.read_text() != content:  # unchanged: no rebuild of the page
        target.write_text(content)


def write_results_dates(target):
    """When each benchmark result file last changed (from git), for the benchmarks page."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    lines = ["| result file | last written |", "|---|---|"]
    for path in sorted((root / "benchmarks" / "results").rglob("*.md")):
        if path.stem.endswith("_quick"):  # the test suite's smoke runs
            continue
        try:
            date = subprocess.run(["git", "log", "-1", "--format=%cs", "--", str(path)], cwd=root,
                                  capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            date = ""
        lines.append(f"| `{path.relative_to(root)}` | {date or 'not committed'} |")
    content = "\n".join(lines) + "\n"
    if not target.exists() or target.read_text() != content:
        target.write_text(content)


write_results_dates(Path(__file__).parent / "benchmarks" / "_dates.md")

# troubleshooting: every error message the package raises, read from its source
write_error_catalogue(Path(__file__).parent / "user_guide" / "_errors.md")
