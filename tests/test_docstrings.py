"""Every public name is documented, and the examples in the docstrings run."""
import doctest
import importlib
import inspect

import matplotlib
import pytest

matplotlib.use("Agg")

PUBLIC = ["sk_reweight", "sk_reweight.modules", "sk_reweight.datasets", "sk_reweight.corruption",
          "sk_reweight.baselines", "sk_reweight.plotting", "sk_reweight.weighting",
          "sk_reweight.engines", "sk_reweight.callbacks", "sk_reweight.diagnostics",
          "sk_reweight.exceptions", "sk_reweight.losses", "sk_reweight.model_selection",
          "sk_reweight.comparison"]
MODULES = PUBLIC + ["sk_reweight._estimator", "sk_reweight._weight_history", "sk_reweight._random",
                    "sk_reweight.engines._base", "sk_reweight.engines._jvp",
                    "sk_reweight.engines._layerwise", "sk_reweight.engines._layer_rules",
                    "sk_reweight.engines._reference",
                    "sk_reweight.engines._selection"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


@pytest.mark.parametrize("name", PUBLIC)
def test_public_names_have_numpydoc_docstrings_with_examples(name):
    module = importlib.import_module(name)
    for attr in module.__all__:
        obj = getattr(module, attr)
        if inspect.ismodule(obj) or not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        doc = inspect.getdoc(obj) or ""
        assert doc, f"{name}.{attr} has no docstring"
        if issubclass(obj, Exception) if inspect.isclass(obj) else False:
            continue
        assert "Examples\n--------" in doc, f"{name}.{attr} has no Examples section"
