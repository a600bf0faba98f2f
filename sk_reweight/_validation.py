"""Checks on the data given to ``fit``: clear errors that say how to fix them."""
import copy
import inspect
import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    _get_feature_names,
    check_array,
    check_consistent_length,
    column_or_1d,
    validate_data,
)

from ._clean_mask import resolve_clean_set
from ._dataset import DatasetRows, PageReleaser, dataset_rows, read_only_mapping, spread_rows
from .engines._base import frozen_state

MISSING_CLEAN_SET = (
    "{name} learns per-example weights from a small trusted clean set and cannot "
    "train without one: pass it as fit(X, y, X_clean=X_clean, y_clean=y_clean). "
    "In a Pipeline use pipe.fit(X, y, {{step}}__X_clean=..., {{step}}__y_clean=...), or "
    "with metadata routing enabled call {name}().set_fit_request(X_clean=True, "
    "y_clean=True) and Pipeline(..., transform_input=['X_clean']) so preprocessing "
    "is applied to the clean set as well."
)

# X passed the same check, so the clean set did not go through X's preprocessing
CLEAN_SET_SKIPPED_PREPROCESSING = (
    "X is numeric, so the clean set most likely skipped the preprocessing applied to X. "
    "In a Pipeline either put the trusted rows into X and pass clean_mask (a boolean "
    "array marking them) instead of X_clean/y_clean: every step then transforms them; "
    "or enable metadata routing (sklearn.set_config(enable_metadata_routing=True)), "
    "call set_fit_request(X_clean=True, y_clean=True) on the network and build the "
    "Pipeline with transform_input=['X_clean']."
)

# float32 is what torch modules are built with
ARRAY_CHECKS = dict(dtype=np.float32, allow_nd=True, ensure_min_features=1)
# training and prediction data are fed a batch at a time, converted then: a float64 array
# (a memmap larger than memory) is not copied whole
ROW_CHECKS = dict(ARRAY_CHECKS, dtype=(np.float32, np.float64))


@dataclass
class FitData:
    X: np.ndarray
    y: np.ndarray
    X_clean: np.ndarray
    y_clean: np.ndarray
    sample_weight: np.ndarray
    rows: np.ndarray = None  # positions of the training rows in the X given (clean_mask)
    n_rows: int = None  # rows of the X given

    def __post_init__(self):
        if self.n_rows is None:
            self.n_rows = len(self.X)

    def targets_by_position(self):
        """Each position's class index in the X given; -1 for the trusted rows (``clean_mask``)."""
        if self.rows is None:
            return torch.as_tensor(self.y)
        targets = torch.full((self.n_rows,), -1, dtype=torch.int64)
        targets[torch.as_tensor(self.rows)] = torch.as_tensor(self.y)
        return targets


def validate_fit_data(estimator, X, y, X_clean, y_clean, sample_weight, reset, clean_mask=None):
    """Validate and encode the training and clean sets.

    On ``reset`` sets ``n_features_in_`` (and ``feature_names_in_``), the
    classes and the per-example input shape on ``estimator``; otherwise
    checks the data against them. Labels come back encoded as ``int64``
    indices into ``estimator.classes_``. With ``clean_mask`` the trusted rows
    of ``X`` become the clean set and the others the training set (the
    checks are those of the same rows given as ``X_clean``).
    """
    X, y = dataset_rows(X, y, "X")
    if X_clean is not None:
        X_clean, y_clean = dataset_rows(X_clean, y_clean, "X_clean", whole=True)
    if isinstance(X, DatasetRows) and clean_mask is not None:
        raise ValueError("clean_mask marks rows of an array X; with a Dataset give the clean set "
                         "as X_clean and y_clean (arrays or a Dataset).")
    X, y, X_clean, y_clean, sample_weight, rows = resolve_clean_set(X, y, X_clean, y_clean, clean_mask,
                                                                    sample_weight)
    n_rows = None if rows is None else len(rows) + len(X_clean)  # the X given, trusted rows included
    check_label_types(y, "y")
    X, y = _validate_rows(estimator, X, y, reset)
    if 0 in X.shape[1:]:
        raise ValueError(
            f"X has examples of shape {X.shape[1:]}, with a dimension of size 0: there are "
            "no features to learn from (e.g. images with 0 channels)."
        )
    check_classification_targets(y)
    if reset:
        estimator.classes_inferred_ = _fit_classes(estimator, y)
        estimator.sample_shape_ = X.shape[1:]
    else:
        check_sample_shape(estimator, X)
    y_enc = encode_labels(estimator.classes_, y, "y")

    if X_clean is None or y_clean is None:
        missing = " and ".join(n for n, v in (("X_clean", X_clean), ("y_clean", y_clean)) if v is None)
        raise ValueError(f"{missing} not given. " + MISSING_CLEAN_SET.format(name=type(estimator).__name__))

    check_clean_feature_names(estimator, X_clean)
    X_clean = _numeric(check_array, X_clean, input_name="X_clean", ensure_min_samples=0,
                       hint=CLEAN_SET_SKIPPED_PREPROCESSING, **ARRAY_CHECKS)
    # pandas' copy-on-write hands out read-only arrays, which torch warns about
    X_clean = np.require(X_clean, requirements="W")
    if len(X_clean) == 0:
        raise ValueError(
            "The clean set is empty (X_clean has 0 rows); pass at least one trusted "
            "example, ideally several of every class."
        )
    check_label_types(y_clean, "y_clean")
    y_clean = column_or_1d(y_clean, warn=True)
    check_consistent_length(X_clean, y_clean)
    if y_clean.dtype.kind == "f" and not np.isfinite(y_clean).all():
        raise ValueError("Input y_clean contains NaN or infinity; every clean example needs a label.")
    if X_clean.shape[1:] != X.shape[1:]:
        raise ValueError(
            f"X_clean has per-example shape {X_clean.shape[1:]} but X has {X.shape[1:]}: "
            "the clean set must have the same features as the training data "
            "(apply the same preprocessing to both)."
        )
    warn_if_clean_set_scaled_differently(X, X_clean)
    unknown = np.setdiff1d(np.unique(y_clean), np.unique(y))
    if unknown.size:
        raise ValueError(
            f"y_clean contains labels {unknown.tolist()} that do not occur in y; "
            "every clean label must be one of the training labels."
        )
    yc_enc = encode_labels(estimator.classes_, y_clean, "y_clean")
    absent = np.setdiff1d(np.unique(y), np.unique(y_clean))
    if absent.size:
        warnings.warn(
            f"The clean set has no example of classes {absent.tolist()}; the weights "
            "cannot favour these classes. Add clean examples of every class.",
            UserWarning,
            stacklevel=3,
        )
    if len(X_clean) == len(X) and rows is None:
        warnings.warn(
            "X_clean has as many rows as X. scikit-learn meta-estimators (GridSearchCV, "
            "cross_validate) slice every fit parameter of that length together with X, "
            "so the clean set may have been split like training data. Use a clean set "
            "of a different size, or check that this is intended.",
            UserWarning,
            stacklevel=3,
        )

    if sample_weight is not None:
        # refuses negative and all-zero weights
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float32, ensure_non_negative=True
        )
    return FitData(X, y_enc, X_clean, yc_enc, sample_weight, rows, n_rows)


def check_label_types(labels, name):
    """Labels of one kind: numbers or strings, not both (sorting them fails, or merges 1 and '1')."""
    values = np.asarray(labels, dtype=object).ravel() if np.asarray(labels).dtype == object else None
    if values is None or values.size == 0:
        return
    kinds = {"string" if isinstance(v, str) else "number" if isinstance(v, numbers.Number) else
             type(v).__name__ for v in values}
    if len(kinds) > 1:
        raise ValueError(
            f"{name} mixes label types ({', '.join(sorted(kinds))}); give every label the same "
            f"type, e.g. {name}.astype(str)."
        )


def check_clean_feature_names(estimator, X_clean):
    """A DataFrame clean set must have the training columns, in the same order.

    Its values are used by position, so other or reordered columns would
    silently feed features into the wrong inputs. Arrays carry no names and
    are taken as they are.
    """
    fitted = getattr(estimator, "feature_names_in_", None)
    names = _get_feature_names(X_clean)
    if fitted is None or names is None or np.array_equal(names, fitted):
        return
    given, expected = set(names), set(fitted)
    missing = [n for n in fitted if n not in given]
    extra = [n for n in names if n not in expected]
    problem = (f"lacks columns {missing[:5]}" if missing else
               f"has columns X lacks: {extra[:5]}" if extra else "has X's columns in another order")
    raise ValueError(
        f"X_clean {problem}; the clean set must have the training data's columns in the "
        "same order. Select them with X_clean[X.columns]."
    )


#: median distance (in training standard deviations) beyond which the clean
#: features look transformed differently; class imbalance alone shifts means by
#: about the class separation, far less
_CLEAN_SHIFT_WARNING = 5.0


def warn_if_clean_set_scaled_differently(X, X_clean):
    """Warn when the clean set looks preprocessed differently from X.

    The typical cause: ``Pipeline(...).fit(X, y, net__X_clean=...)`` passes
    the clean set to the network untransformed. Compares, feature by
    feature, the clean mean with the training mean in training standard
    deviations; warns when the median over features exceeds 5.
    """
    # at most 10000 rows in a few runs estimate the statistics (and read few pages of a memmap)
    X = X[spread_rows(len(X))]
    X = X.reshape(len(X), -1)
    X_clean = X_clean.reshape(len(X_clean), -1)
    std = X.std(axis=0, dtype=np.float64)
    varying = std > 0
    if not varying.any():
        return
    shift = np.abs(X_clean.mean(axis=0, dtype=np.float64) - X.mean(axis=0, dtype=np.float64))
    median = float(np.median(shift[varying] / std[varying]))
    if median > _CLEAN_SHIFT_WARNING:
        warnings.warn(
            f"X_clean looks preprocessed differently from X: its feature means lie a median "
            f"{median:.3g} training standard deviations from X's. Apply the same "
            "preprocessing to both. In a Pipeline, step parameters such as "
            "net__X_clean reach the network untransformed: enable metadata routing "
            "(sklearn.set_config(enable_metadata_routing=True)), call "
            "set_fit_request(X_clean=True, y_clean=True) on the network and build "
            "Pipeline(..., transform_input=['X_clean']).",
            UserWarning,
            stacklevel=4,
        )


def _numeric(check, *args, hint=None, **kwargs):
    """Run a sklearn array check, explaining non-numeric features."""
    try:
        return check(*args, **kwargs)
    except ValueError as exc:
        if "could not convert" not in str(exc):
            raise
        name = kwargs.get("input_name", "X")
        raise ValueError(
            f"{name} must be numeric ({exc}). "
            + (hint or "Encode string or categorical features first, e.g. with OneHotEncoder "
                       "or OrdinalEncoder in a Pipeline before the network.")
        ) from exc


def _validate_rows(estimator, X, y, reset):
    """sklearn's checks of training data; a Dataset's rows are checked as they load."""
    if not isinstance(X, DatasetRows):
        return _validate_array(estimator, X, y, reset=reset)
    validate_data(estimator, X, skip_check_array=True, reset=reset)
    y = column_or_1d(y, warn=True)
    check_consistent_length(X, y)
    return X, y


def _validate_array(estimator, *arrays, reset):
    """``validate_data`` on ``X`` (and ``y``); a memmap is checked for NaN a chunk at a time."""
    memmap = read_only_mapping(arrays[0]) is not None
    checked = _numeric(validate_data, estimator, *arrays, reset=reset, **ROW_CHECKS,
                       **({"ensure_all_finite": False} if memmap else {}))
    if memmap:
        check_finite_in_chunks(checked[0] if len(arrays) > 1 else checked, "X")
    return checked


def check_finite_in_chunks(X, name):
    """sklearn's NaN/inf check, a chunk at a time, releasing a memmap's pages as it goes."""
    pages = PageReleaser(X)
    rows = max(1, pages.window // max(1, X[:1].nbytes))
    for start in range(0, len(X), rows):
        chunk = X[start:start + rows]
        if not np.isfinite(chunk).all():
            raise ValueError(f"Input {name} contains NaN or infinity (in rows {start} to "
                             f"{start + len(chunk) - 1}); every example needs finite features.")
        pages.count(chunk.nbytes)
    return X


def validate_predict_data(estimator, X):
    X = dataset_rows(X, None, "X", labels=False)[0]
    if isinstance(X, DatasetRows):
        validate_data(estimator, X, skip_check_array=True, reset=False)
    else:
        X = _validate_array(estimator, X, reset=False)
    check_sample_shape(estimator, X)
    return X


def check_sample_shape(estimator, X):
    if X.shape[1:] != estimator.sample_shape_:
        raise ValueError(
            f"X has per-example shape {X.shape[1:]}, but {type(estimator).__name__} "
            f"was fitted on examples of shape {estimator.sample_shape_}."
        )


def _fit_classes(estimator, y):
    if estimator.classes is not None:
        classes = np.asarray(estimator.classes)
        unknown = np.setdiff1d(np.unique(y), classes)
        if unknown.size:
            raise ValueError(f"y contains labels {unknown.tolist()} not in classes={classes.tolist()}.")
        return classes
    classes = LabelEncoder().fit(y).classes_
    if len(classes) < 2:
        raise ValueError(
            f"y has only one class ({classes[0]!r}); a classifier needs at least 2 classes."
        )
    return classes


def encode_labels(classes, labels, name):
    """Indices of ``labels`` in the sorted ``classes``."""
    order = np.argsort(classes)
    pos = np.searchsorted(classes, labels, sorter=order)
    pos = np.clip(pos, 0, len(classes) - 1)
    found = order[pos]
    if not np.array_equal(np.asarray(classes)[found], labels):
        bad = np.setdiff1d(np.unique(labels), classes)
        raise ValueError(f"{name} contains labels {bad.tolist()} not seen at fit.")
    return found.astype(np.int64)


def check_module_fits_data(net, X):
    """One forward on two examples, so a mismatch of module and data fails here, clearly."""
    module, was_training = net.module_, net.module_.training
    sample = torch.tensor(X, dtype=torch.float32, device=net.device)  # a copy: X may be read-only (pandas)
    module.eval()
    try:
        with torch.no_grad(), frozen_state(module):
            output = net.infer(sample)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        dtypes = {p.dtype for p in module.parameters() if p.is_floating_point()} - {torch.float32}
        if dtypes:
            fix = (f"X is converted to float32, but the module's parameters are "
                   f"{sorted(map(str, dtypes))}: build the module in float32 (module.float()).")
        else:
            fix = ("Give X the shape the module expects (a CNN needs images (n, C, H, W): "
                   "X.reshape(len(X), C, H, W)) or adjust the module's size parameters "
                   "(module__...).")
        raise ValueError(
            f"The module {type(module).__name__} cannot process X: its examples have shape "
            f"{tuple(net.sample_shape_)} and a batch {tuple(sample.shape)} raised "
            f"{type(exc).__name__}: {exc}. {fix}"
        ) from exc
    finally:
        module.train(was_training)
    y_pred = output[0] if isinstance(output, (tuple, list)) else output
    n_classes = len(net.classes_)
    if isinstance(net.criterion_, (torch.nn.CrossEntropyLoss, torch.nn.NLLLoss)) and (
        y_pred.dim() != 2 or y_pred.shape[1] != n_classes
    ):
        raise ValueError(
            f"The module {type(module).__name__} returns outputs of shape "
            f"{tuple(y_pred.shape)} for {len(sample)} examples, but y has {n_classes} "
            f"classes: a classifier module must return ({len(sample)}, {n_classes}) "
            f"scores. Set its number of outputs to {n_classes} (e.g. module__n_classes={n_classes})."
        )
    # skorch's NLLLoss takes the log of the output: it must be probabilities
    if isinstance(net.criterion_, torch.nn.NLLLoss) and not (
        (y_pred >= 0).all() and torch.allclose(y_pred.sum(1), torch.ones_like(y_pred[:, 0]), atol=1e-3)
    ):
        raise ValueError(
            f"With criterion=NLLLoss the module must return class probabilities (skorch "
            f"takes their log), but {type(module).__name__} returns values that are "
            "negative or do not sum to 1 per example. For a module that returns logits "
            "or log-probabilities use criterion=torch.nn.CrossEntropyLoss (the default)."
        )


def check_per_example_losses(losses, y_true):
    """``losses``, if the criterion returned one per example; else a clear error."""
    if losses.dim() != 1 or len(losses) != len(y_true):
        raise ValueError(
            f"The criterion returned a loss of shape {tuple(losses.shape)} for a batch "
            f"of {len(y_true)}; learning to reweight needs one loss per example. Use a "
            "criterion that accepts reduction='none', or one that returns a vector."
        )
    return losses


def split_class_weight(net, criterion):
    """``(criterion, class_weight)``: a class-weighted ``CrossEntropyLoss``/``NLLLoss`` without its
    class weights, and those weights (``None`` for any other criterion).

    The weights then define the clean loss (the engines' ``clean_class_weight``) and
    weigh :class:`~sk_reweight.weighting.CrossFitTrust`'s fallback; the training losses
    stay unweighted, so that a class's weight enters each step once, through what the
    clean set asks for, and not again through the alignment and the step.
    """
    weight = getattr(criterion, "weight", None)
    if not isinstance(criterion, (torch.nn.CrossEntropyLoss, torch.nn.NLLLoss)) or weight is None:
        return criterion, None
    if criterion is net.criterion:  # the user's instance is never changed
        criterion = copy.deepcopy(criterion)
    criterion.weight = None
    return criterion, weight.detach().clone()


def per_example_criterion(criterion, kwargs):
    """``criterion`` and its keyword arguments, set up to return one loss per example."""
    if kwargs.get("reduction", "none") != "none":
        raise ValueError(
            f"criterion__reduction={kwargs['reduction']!r}: learning to reweight needs "
            "one loss per example; leave criterion__reduction unset."
        )
    if isinstance(criterion, torch.nn.Module):
        if getattr(criterion, "reduction", "none") != "none" and not kwargs:
            raise ValueError(
                f"The criterion instance has reduction={criterion.reduction!r}; "
                "learning to reweight needs one loss per example. Pass the class "
                f"(criterion={type(criterion).__name__}) instead."
            )
        criterion_cls = type(criterion)
    else:
        criterion_cls = criterion
    if kwargs or not isinstance(criterion, torch.nn.Module):
        if "reduction" in inspect.signature(criterion_cls).parameters:
            kwargs["reduction"] = "none"
    return kwargs
