"""Trusted rows marked inside ``X`` (``clean_mask``), split off as the clean set."""
import numpy as np
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import _num_samples

BOTH_GIVEN = (
    "Give the clean set one way: either X_clean and y_clean, or clean_mask marking "
    "trusted rows of X, not both."
)


def check_clean_mask(clean_mask, n_samples):
    """``clean_mask`` as a boolean array of ``n_samples`` with trusted and untrusted rows."""
    mask = np.asarray(clean_mask)
    if mask.dtype != bool:
        raise TypeError(
            f"clean_mask must be a boolean array (True: trusted row), got dtype {mask.dtype}. "
            "From row indices build one with: mask = np.zeros(len(X), bool); mask[indices] = True."
        )
    if mask.shape != (n_samples,):
        raise ValueError(
            f"clean_mask has shape {mask.shape} but X has {n_samples} rows; it needs one "
            "entry per row of X (True: trusted row). A step before this one that adds or "
            "drops rows (a sampler such as SMOTE) misaligns the mask: resample inside the "
            "method instead, e.g. sk_reweight.baselines.CleanSetBaseline(make_pipeline(SMOTE(), net)), "
            "which resamples only the rows it trains on."
        )
    if mask.all() or not mask.any():
        which = "every" if mask.all() else "no"
        raise ValueError(
            f"clean_mask marks {which} row as trusted; it must mark some rows of X as "
            "trusted (the clean set) and leave the others to train on."
        )
    return mask


def split_clean_rows(X, y, clean_mask, sample_weight=None):
    """Split ``X, y`` by ``clean_mask``.

    Returns ``X_train, y_train, X_clean, y_clean, sample_weight_train,
    train_rows`` (``train_rows``: positions of the training rows in ``X``).
    DataFrames stay DataFrames.
    """
    n_samples = _num_samples(X)
    mask = check_clean_mask(clean_mask, n_samples)
    for name, values in (("y", y), ("sample_weight", sample_weight)):
        if values is not None and _num_samples(values) != n_samples:
            raise ValueError(f"{name} has {_num_samples(values)} rows but X has {n_samples}.")
    train, clean = np.flatnonzero(~mask), np.flatnonzero(mask)
    weight = None if sample_weight is None else np.asarray(sample_weight)[train]
    return (_safe_indexing(X, train), _safe_indexing(y, train), _safe_indexing(X, clean),
            _safe_indexing(y, clean), weight, train)


def resolve_clean_set(X, y, X_clean, y_clean, clean_mask, sample_weight=None):
    """The clean set given either way: ``X, y, X_clean, y_clean, sample_weight, train_rows``.

    Without ``clean_mask`` everything comes back as given (``train_rows`` is ``None``).
    """
    if clean_mask is None:
        return X, y, X_clean, y_clean, sample_weight, None
    if X_clean is not None or y_clean is not None:
        raise ValueError(BOTH_GIVEN)
    return split_clean_rows(X, y, clean_mask, sample_weight)
