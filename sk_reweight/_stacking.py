"""Row stacking and float32 conversion for tables of any kind (arrays, DataFrames, sparse)."""
import numpy as np
import scipy.sparse


def stack_rows(top, bottom):
    """``top`` above ``bottom``, keeping DataFrames and sparse matrices as such."""
    if hasattr(top, "iloc"):  # pandas
        import pandas as pd

        return pd.concat([top, bottom], ignore_index=True)
    if scipy.sparse.issparse(top) or scipy.sparse.issparse(bottom):
        return scipy.sparse.vstack([top, bottom], format="csr")
    return np.concatenate([np.asarray(top), np.asarray(bottom)])


def as_float32(X):
    """Tables as dense float32 arrays (what torch modules take); anything else unchanged.

    Tensors, datasets and dicts pass through, as skorch accepts them.
    """
    if scipy.sparse.issparse(X):
        return X.astype(np.float32).toarray()
    if hasattr(X, "iloc") or isinstance(X, (np.ndarray, list)):
        X = np.asarray(X)
        if X.dtype.kind in "fiub" and X.dtype != np.float32:
            return X.astype(np.float32)
    return X
