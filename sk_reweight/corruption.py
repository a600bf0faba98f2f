"""Label noise, class imbalance and trusted clean sets, each reproducible.

Every corruption returns which examples it changed, so that benchmarks can
score how well the learned weights find them.
"""
import numpy as np
from sklearn.utils import _safe_indexing, check_random_state

__all__ = [
    "flip_labels_uniform",
    "flip_labels_background",
    "flip_labels_transition",
    "long_tailed_counts",
    "make_imbalanced",
    "train_clean_split",
    "draw_clean_mask",
]


def flip_labels_uniform(y, rate, *, classes=None, random_state=None):
    """Flip a ``rate`` fraction of labels, each to one of the *other* classes.

    Parameters
    ----------
    y : array-like of shape (n,)
        The true labels.
    rate : float in [0, 1]
        Fraction of examples whose label changes (exactly ``round(rate * n)``).
    classes : array-like, default=None
        Classes to flip among; by default those in ``y``.
    random_state : int, RandomState or None
        Seeds the draw.

    Returns
    -------
    y_noisy : ndarray of shape (n,)
        The labels after flipping.
    flipped : ndarray of bool, shape (n,)
        Where the label was flipped.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_reweight.corruption import flip_labels_uniform
    >>> y = np.array([0, 0, 1, 1, 2, 2, 0, 1, 2, 0])
    >>> y_noisy, flipped = flip_labels_uniform(y, 0.3, random_state=0)
    >>> int(flipped.sum()), bool(np.all(y_noisy[flipped] != y[flipped]))
    (3, True)
    """
    y = np.asarray(y)
    rng = check_random_state(random_state)
    classes = np.unique(y) if classes is None else np.asarray(classes)
    if len(classes) < 2:
        raise ValueError("Flipping needs at least two classes.")
    _check_rate(rate)
    flipped = np.zeros(len(y), bool)
    flipped[rng.choice(len(y), int(round(rate * len(y))), replace=False)] = True
    index = np.searchsorted(classes, y[flipped])
    shift = rng.randint(1, len(classes), flipped.sum())  # never 0: a real flip
    y_noisy = y.copy()
    y_noisy[flipped] = classes[(index + shift) % len(classes)]
    return y_noisy, flipped


def flip_labels_background(y, rate, *, target_class, random_state=None):
    """Flip a ``rate`` fraction of labels to one fixed background class.

    The flipped examples are drawn among those not already of
    ``target_class``, so every flip changes a label.

    Parameters
    ----------
    y : array-like of shape (n,)
        The true labels.
    rate : float in [0, 1]
        Fraction of all examples whose label becomes ``target_class``.
    target_class : label
        The background class.
    random_state : int, RandomState or None
        Seeds the draw.

    Returns
    -------
    y_noisy : ndarray of shape (n,)
        The labels after flipping.
    flipped : ndarray of bool, shape (n,)
        Where the label was flipped.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_reweight.corruption import flip_labels_background
    >>> y_noisy, flipped = flip_labels_background(np.arange(10) % 3, 0.2, target_class=0, random_state=0)
    >>> y_noisy[flipped]
    array([0, 0])
    """
    y = np.asarray(y)
    rng = check_random_state(random_state)
    _check_rate(rate)
    candidates = np.flatnonzero(y != target_class)
    n_flip = int(round(rate * len(y)))
    if n_flip > len(candidates):
        raise ValueError(f"Cannot flip {n_flip} labels: only {len(candidates)} are not {target_class!r}.")
    flipped = np.zeros(len(y), bool)
    flipped[rng.choice(candidates, n_flip, replace=False)] = True
    y_noisy = y.copy()
    y_noisy[flipped] = target_class
    return y_noisy, flipped


def flip_labels_transition(y, transition, *, classes=None, random_state=None):
    """Draw each noisy label from ``transition[true_class]``.

    Parameters
    ----------
    y : array-like of shape (n,)
        The true labels.
    transition : array-like of shape (n_classes, n_classes)
        Row-stochastic: ``transition[i, j] = P(noisy = classes[j] | true = classes[i])``.
    classes : array-like, default=None
        The classes of the rows and columns of ``transition``; by default those in ``y``, sorted.
    random_state : int, RandomState or None
        Seeds the draw.

    Returns
    -------
    y_noisy : ndarray of shape (n,)
        The noisy labels.
    flipped : ndarray of bool, shape (n,)
        Where the noisy label differs from the true one.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_reweight.corruption import flip_labels_transition
    >>> T = [[0.5, 0.5], [0.0, 1.0]]  # class 0 is confused with 1 half of the time
    >>> y_noisy, flipped = flip_labels_transition(np.zeros(1000, int), T, classes=[0, 1], random_state=0)
    >>> round(float(flipped.mean()), 1)
    0.5
    """
    y = np.asarray(y)
    rng = check_random_state(random_state)
    classes = np.unique(y) if classes is None else np.asarray(classes)
    T = np.asarray(transition, dtype=float)
    if T.shape != (len(classes), len(classes)) or (T < 0).any() or not np.allclose(T.sum(1), 1):
        raise ValueError(
            f"transition must be a row-stochastic ({len(classes)}, {len(classes)}) matrix."
        )
    index = np.searchsorted(classes, y)
    cumulative = T.cumsum(1)[index]
    noisy_index = (rng.rand(len(y))[:, None] > cumulative).sum(1).clip(max=len(classes) - 1)
    y_noisy = classes[noisy_index]
    return y_noisy, y_noisy != y


def long_tailed_counts(counts, imbalance_factor):
    """Per-class counts decaying exponentially from the largest to 1/factor of it.

    Classes keep their order: class ``k`` of ``K`` keeps
    ``max(counts) * factor ** (-k / (K - 1))`` examples (at most what it has).

    Parameters
    ----------
    counts : array-like of int
        The examples each class has.
    imbalance_factor : float
        The largest class's count over the smallest's.

    Returns
    -------
    ndarray of int
        The examples each class keeps (at least 1).

    Examples
    --------
    >>> from sk_reweight.corruption import long_tailed_counts
    >>> long_tailed_counts([1000] * 5, imbalance_factor=100)
    array([1000,  316,  100,   31,   10])
    """
    counts = np.asarray(counts)
    K = len(counts)
    target = counts.max() * float(imbalance_factor) ** (-np.arange(K) / max(K - 1, 1))
    return np.minimum(counts, np.maximum(1, np.floor(target))).astype(int)


def make_imbalanced(X, y, *, proportions=None, imbalance_factor=None, random_state=None):
    """Subsample to given class proportions or to a long-tailed profile.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n, ...)
        The examples.
    y : array-like of shape (n,)
        Their labels.
    proportions : dict, default=None
        ``{class: share}`` summing to 1; keeps as many examples as possible.
    imbalance_factor : float, default=None
        Long tail over the sorted classes (see :func:`long_tailed_counts`).
    random_state : int, RandomState or None
        Seeds the draw.

    Returns
    -------
    X_kept : array-like or DataFrame
        The kept examples.
    y_kept : ndarray
        Their labels.
    kept : ndarray of int
        Indices of the kept examples in ``X``.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_reweight.corruption import make_imbalanced
    >>> X, y = np.zeros((200, 2)), np.repeat([4, 9], 100)
    >>> X_kept, y_kept, kept = make_imbalanced(X, y, proportions={4: 0.1, 9: 0.9}, random_state=0)
    >>> np.bincount(y_kept)[[4, 9]]
    array([ 11, 100])
    """
    y = np.asarray(y)
    rng = check_random_state(random_state)
    classes, counts = np.unique(y, return_counts=True)
    if (proportions is None) == (imbalance_factor is None):
        raise ValueError("Give exactly one of proportions or imbalance_factor.")
    if proportions is not None:
        shares = np.array([proportions.get(c, 0.0) for c in classes], dtype=float)
        if not np.isclose(shares.sum(), 1) or (shares < 0).any():
            raise ValueError("proportions must be non-negative and sum to 1.")
        total = np.min(np.where(shares > 0, counts / np.where(shares > 0, shares, 1), np.inf))
        target = np.floor(total * shares).astype(int)
    else:
        target = long_tailed_counts(counts, imbalance_factor)
    kept = np.concatenate([
        rng.choice(np.flatnonzero(y == c), n, replace=False) for c, n in zip(classes, target)
    ])
    kept = np.sort(kept)
    return X[kept], y[kept], kept


def draw_clean_mask(y, clean_size, *, random_state=None):
    """Mark a class-balanced trusted set among the rows of ``y``, *before* any corruption.

    Parameters
    ----------
    y : array-like of shape (n,)
        The true labels.
    clean_size : int
        Number of trusted rows, split as evenly as possible across the
        classes of ``y``.
    random_state : int, RandomState or None
        Seeds the draw.

    Returns
    -------
    ndarray of bool, shape (n,)
        ``True`` for the trusted rows: pass it as ``fit(X, y, clean_mask=...)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_reweight.corruption import draw_clean_mask
    >>> mask = draw_clean_mask(np.repeat(["a", "b"], 10), 4, random_state=0)
    >>> int(mask.sum()), int(mask[:10].sum())
    (4, 2)
    """
    y = np.asarray(y)
    mask = np.zeros(len(y), bool)
    mask[_draw_clean_rows(y, clean_size, check_random_state(random_state))] = True
    return mask


def _draw_clean_rows(y, clean_size, rng):
    """Trusted row indices, class by class."""
    classes, counts = np.unique(y, return_counts=True)
    per_class = np.full(len(classes), clean_size // len(classes))
    per_class[rng.permutation(len(classes))[: clean_size % len(classes)]] += 1
    if (per_class > counts).any():
        raise ValueError(f"clean_size={clean_size} needs more examples of some class than y has.")
    return np.concatenate([
        rng.choice(np.flatnonzero(y == c), n, replace=False) for c, n in zip(classes, per_class)
    ])


def train_clean_split(X, y, clean_size, *, random_state=None):
    """Draw a class-balanced trusted clean set *before* any corruption.

    The rows :func:`draw_clean_mask` marks, split off.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n, ...)
        The examples.
    y : array-like of shape (n,)
        The true labels.
    clean_size : int
        Total size, split as evenly as possible across the classes of ``y``.
    random_state : int, RandomState or None
        Seeds the draw.

    Returns
    -------
    X_train : array-like or DataFrame
        The rows left for training (a DataFrame stays a DataFrame).
    X_clean : array-like or DataFrame
        The ``clean_size`` trusted rows, disjoint from ``X_train``.
    y_train : ndarray
        The labels of ``X_train``.
    y_clean : ndarray
        The labels of ``X_clean``.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_reweight.corruption import train_clean_split
    >>> X, y = np.arange(40).reshape(20, 2), np.repeat([0, 1], 10)
    >>> X_train, X_clean, y_train, y_clean = train_clean_split(X, y, 4, random_state=0)
    >>> len(X_train), np.bincount(y_clean)
    (16, array([2, 2]))
    """
    y = np.asarray(y)
    clean = _draw_clean_rows(y, clean_size, check_random_state(random_state))
    train = np.setdiff1d(np.arange(len(y)), clean)
    return _safe_indexing(X, train), _safe_indexing(X, clean), y[train], y[clean]


def _check_rate(rate):
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be between 0 and 1, got {rate}.")
