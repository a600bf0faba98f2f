"""The public API: what each public module exports, and numpydoc's validation of every public object.

Every name in the ``__all__`` of the public modules (``test_docs.PUBLIC_MODULES``), and every method
and property their API pages show that is defined in our code (not those inherited from skorch,
scikit-learn or torch, documented by those projects), passes ``numpydoc.validate.validate`` with no
error among ``CHECKS``.
"""
import importlib
import importlib.util
import inspect

import pytest
from test_docs import DOCS, PUBLIC_MODULES

# what the API pages show: docs/_members.py, loaded from its file (no sys.path edit)
_spec = importlib.util.spec_from_file_location("_members", DOCS / "_members.py")
_members = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_members)
api_members, documented_owner = _members.api_members, _members.documented_owner

numpydoc_validate = pytest.importorskip("numpydoc.validate")

# The numpydoc checks every public docstring passes (numpydoc.validate.ERROR_MSGS has the texts).
# Left out, by choice: ES01 (extended summary), SA01-SA04 (See Also), EX01 (Examples: the classes and
# functions are held to it by test_docstrings.py; methods need none), SS05 (third-person summaries
# such as "Returns ..." read well) and SS06 (a summary may wrap), GL01/GL02 (quote placement).
CHECKS = frozenset({
    "GL03", "GL05", "GL06", "GL07", "GL08", "GL09", "GL10",
    "SS01", "SS02", "SS03", "SS04",
    "PR01", "PR02", "PR03", "PR04", "PR05", "PR06", "PR07", "PR08", "PR09", "PR10",
    "RT01", "RT02", "RT03", "RT04", "RT05", "YD01",
})


def public_objects():
    """``(import path, defining module)`` of every public object: the ``__all__`` names, and the members
    their API pages show (``docs/_members.py``) that are defined in sk_reweight."""
    found, seen = [], set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.ismodule(obj) or not (inspect.isclass(obj) or callable(obj)) or id(obj) in seen:
                continue  # modules are checked through their own __all__, constants have no docstring
            seen.add(id(obj))
            found.append((f"{module_name}.{name}", obj.__module__))
            if not inspect.isclass(obj):
                continue
            shown = api_members(obj)
            for member in shown["attributes"] + shown["methods"]:
                owner = documented_owner(obj, member)
                entry = owner and (f"{owner.__module__}.{owner.__qualname__}.{member}", owner.__module__)
                if entry and entry not in found:
                    found.append(entry)
    return found


def errors(path):
    """numpydoc's errors among ``CHECKS`` for the object at ``path``."""
    result = numpydoc_validate.validate(path)
    return [f"{code}: {message}" for code, message in result["errors"] if code in CHECKS]


OBJECTS = [path for path, _ in public_objects()]


def test_the_public_objects_are_collected():
    assert len(OBJECTS) >= 60


@pytest.mark.parametrize("path", OBJECTS)
def test_numpydoc_validation(path):
    assert not errors(path)
