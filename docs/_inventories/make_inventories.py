"""Write the intersphinx inventories the docs link through: ``python docs/_inventories/make_inventories.py``.

The docs build has no network, so instead of each project's ``objects.inv`` it reads these small
ones (Sphinx's inventory format, version 2), listing exactly the outside names the docs refer to,
each with its address in that project's documentation (``conf.py``'s ``intersphinx_mapping`` has
the base addresses). A name the docs start to use is added to ``ENTRIES`` and the script rerun; the
docs test (``sphinx-build -n``) says which are missing.
"""
import zlib
from pathlib import Path

# project: [(name, domain:role, address relative to the project's base address, shown title or "-")]
ENTRIES = {
    "python": [
        ("pickle", "py:module", "library/pickle.html#module-pickle", "-"),
        ("collections.abc.Callable", "py:class", "library/collections.abc.html#collections.abc.Callable", "-"),
        ("collections.abc.Iterator", "py:class", "library/collections.abc.html#collections.abc.Iterator", "-"),
    ],
    "numpy": [
        ("numpy.ndarray", "py:class", "reference/generated/numpy.ndarray.html#numpy.ndarray", "-"),
        ("numpy.nan", "py:data", "reference/constants.html#numpy.nan", "-"),
    ],
    "sklearn": [
        ("sklearn.model_selection.StratifiedKFold", "py:class",
         "modules/generated/sklearn.model_selection.StratifiedKFold.html#sklearn.model_selection.StratifiedKFold", "-"),
        ("sklearn.model_selection.GridSearchCV", "py:class",
         "modules/generated/sklearn.model_selection.GridSearchCV.html#sklearn.model_selection.GridSearchCV", "-"),
        ("sklearn.pipeline.Pipeline", "py:class",
         "modules/generated/sklearn.pipeline.Pipeline.html#sklearn.pipeline.Pipeline", "-"),
        ("sklearn.base.ClassifierMixin.score", "py:method",
         "modules/generated/sklearn.base.ClassifierMixin.html#sklearn.base.ClassifierMixin.score", "-"),
        ("accuracy_score", "std:label", "modules/model_evaluation.html#accuracy-score", "Accuracy score"),
    ],
    "torch": [
        ("torch.Tensor", "py:class", "tensors.html#torch.Tensor", "-"),
        ("torch.device", "py:class", "tensor_attributes.html#torch.device", "-"),
        ("torch.dtype", "py:class", "tensor_attributes.html#torch.dtype", "-"),
        ("torch.Generator", "py:class", "generated/torch.Generator.html#torch.Generator", "-"),
        ("torch.nn.Module", "py:class", "generated/torch.nn.Module.html#torch.nn.Module", "-"),
        ("torch.nn.modules.module.Module", "py:class", "generated/torch.nn.Module.html#torch.nn.Module", "-"),
        ("torch.optim.Optimizer", "py:class", "optim.html#torch.optim.Optimizer", "-"),
        ("torch.amp.GradScaler", "py:class", "amp.html#torch.amp.GradScaler", "-"),
        ("torch.func.functional_call", "py:function",
         "generated/torch.func.functional_call.html#torch.func.functional_call", "-"),
        ("torch.load", "py:function", "generated/torch.load.html#torch.load", "-"),
        ("torch.save", "py:function", "generated/torch.save.html#torch.save", "-"),
    ],
    "skorch": [
        ("skorch.NeuralNetClassifier", "py:class", "classifier.html#skorch.classifier.NeuralNetClassifier", "-"),
        ("skorch.classifier.NeuralNetClassifier", "py:class",
         "classifier.html#skorch.classifier.NeuralNetClassifier", "-"),
        ("skorch.NeuralNet", "py:class", "net.html#skorch.net.NeuralNet", "-"),
        ("skorch.net.NeuralNet", "py:class", "net.html#skorch.net.NeuralNet", "-"),
        ("skorch.NeuralNet.forward", "py:method", "net.html#skorch.net.NeuralNet.forward", "-"),
        # skorch's predict docstrings name it with the :func: role
        ("skorch.NeuralNet.forward", "py:function", "net.html#skorch.net.NeuralNet.forward", "-"),
        ("skorch.net.NeuralNet.save_params", "py:method", "net.html#skorch.net.NeuralNet.save_params", "-"),
        ("skorch.net.NeuralNet.load_params", "py:method", "net.html#skorch.net.NeuralNet.load_params", "-"),
        ("skorch.callbacks.Callback", "py:class", "callbacks.html#skorch.callbacks.Callback", "-"),
        ("skorch.callbacks.Checkpoint", "py:class", "callbacks.html#skorch.callbacks.Checkpoint", "-"),
        ("skorch.callbacks.PrintLog", "py:class", "callbacks.html#skorch.callbacks.PrintLog", "-"),
    ],
    "pandas": [
        ("pandas.DataFrame", "py:class", "reference/api/pandas.DataFrame.html#pandas.DataFrame", "-"),
    ],
    "matplotlib": [
        ("matplotlib.axes.Axes", "py:class", "api/_as_gen/matplotlib.axes.Axes.html#matplotlib.axes.Axes", "-"),
        ("matplotlib.figure.Figure", "py:class", "api/_as_gen/matplotlib.figure.Figure.html#matplotlib.figure.Figure",
         "-"),
    ],
}


def inventory(project, entries):
    """The bytes of an ``objects.inv`` (version 2) holding ``entries``."""
    header = f"# Sphinx inventory version 2\n# Project: {project}\n# Version: \n" \
             "# The remainder of this file is compressed using zlib.\n"
    lines = "".join(f"{name} {role} 1 {uri} {title}\n" for name, role, uri, title in sorted(entries))
    return header.encode() + zlib.compress(lines.encode(), 9)


def main(target=Path(__file__).parent):
    for project, entries in ENTRIES.items():
        (target / f"{project}.inv").write_bytes(inventory(project, entries))


if __name__ == "__main__":
    main()
