"""Model selection scored on trusted rows.

With noisy labels a score on held-out noisy rows measures agreement with the
noise; the trusted rows are the only labels to score on. :class:`CleanSetKFold`
makes scikit-learn's searches and cross-validation do that.
"""
import inspect
import numbers

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.model_selection._split import BaseCrossValidator
from sklearn.pipeline import Pipeline
from sklearn.utils import metadata_routing
from sklearn.utils.validation import _num_samples

from ._clean_mask import check_clean_mask

__all__ = ["CleanSetKFold", "request_clean_mask"]

NO_MASK = (
    "CleanSetKFold needs clean_mask (a boolean array marking the trusted rows of X) in "
    "split(). With GridSearchCV or cross_validate enable metadata routing "
    "(sklearn.set_config(enable_metadata_routing=True)), call "
    "set_fit_request(clean_mask=True) on the estimator (the network step in a "
    "Pipeline) and pass clean_mask to fit (params={'clean_mask': mask} in "
    "cross_validate): the mask then reaches both the splitter and the estimator."
)


class CleanSetKFold(BaseCrossValidator):
    """K-fold cross-validation whose test folds hold trusted rows only.

    The trusted rows (``clean_mask``) are split into ``n_splits`` folds,
    stratified by class. Each split tests on one fold and trains on every
    untrusted row plus the trusted rows of the other folds, whose mask
    entries stay ``True``: the estimator keeps a clean set to steer by,
    and every candidate of a search is scored on labels that can be trusted.

    The mask arrives through scikit-learn's metadata routing: the splitter
    requests ``clean_mask`` for ``split``; the estimator must request it for
    ``fit`` (``set_fit_request(clean_mask=True)``).

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds of the trusted rows (at least 2).
    shuffle : bool, default=False
        Shuffle the trusted rows of each class before splitting.
    random_state : int, RandomState instance or None, default=None
        Used when ``shuffle=True``.

    See Also
    --------
    sklearn.model_selection.StratifiedKFold : the split of the trusted rows.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_reweight.model_selection import CleanSetKFold
    >>> X, y = np.zeros((10, 1)), np.array([0, 1] * 5)
    >>> mask = np.arange(10) >= 6  # the last four rows are trusted
    >>> for train, test in CleanSetKFold(n_splits=2).split(X, y, clean_mask=mask):
    ...     print(train, test)
    [0 1 2 3 4 5 8 9] [6 7]
    [0 1 2 3 4 5 6 7] [8 9]

    In a search (``net`` requests ``clean_mask``; metadata routing enabled)::

        GridSearchCV(net, grid, cv=CleanSetKFold(5)).fit(X, y, clean_mask=mask)
    """

    __metadata_request__split = {"groups": metadata_routing.UNUSED, "clean_mask": True}

    def __init__(self, n_splits=5, *, shuffle=False, random_state=None):
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def split(self, X, y=None, groups=None, clean_mask=None):
        """Generate indices to split data into training and test set.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            The rows (only their number is used).
        y : array-like of shape (n_samples,), default=None
            Labels; the trusted rows are stratified by them when given.
        groups : None
            Ignored.
        clean_mask : array-like of bool, shape (n_samples,)
            ``True`` for trusted rows. Required.

        Yields
        ------
        train : ndarray
            Every untrusted row and the trusted rows of the other folds.
        test : ndarray
            The trusted rows of this fold.
        """
        if not isinstance(self.n_splits, numbers.Integral) or self.n_splits < 2:
            raise ValueError(f"n_splits must be an integer >= 2, got {self.n_splits!r}.")
        if clean_mask is None:
            raise ValueError(NO_MASK)
        n_samples = _num_samples(X)
        trusted = np.flatnonzero(check_clean_mask(clean_mask, n_samples))
        if len(trusted) < self.n_splits:
            raise ValueError(
                f"CleanSetKFold(n_splits={self.n_splits}) needs at least {self.n_splits} "
                f"trusted rows; clean_mask marks {len(trusted)}."
            )
        folds = self._trusted_folds(y)
        labels = None if y is None else np.asarray(y)[trusted]
        for _, test in folds.split(np.zeros((len(trusted), 1)), labels):
            test = trusted[test]
            train = np.setdiff1d(np.arange(n_samples), test, assume_unique=True)
            yield train, test

    def _trusted_folds(self, y):
        kind = KFold if y is None else StratifiedKFold
        return kind(self.n_splits, shuffle=self.shuffle,
                    random_state=self.random_state if self.shuffle else None)

    def get_n_splits(self, X=None, y=None, groups=None, clean_mask=None):
        """Return the number of splits, ``n_splits``.

        Parameters
        ----------
        X, y, groups, clean_mask : object, optional
            Ignored, for scikit-learn's interface.

        Returns
        -------
        int
            ``n_splits``.
        """
        return self.n_splits


def request_clean_mask(estimator):
    """Ask for ``clean_mask`` in ``fit``, through Pipelines, under metadata routing.

    Sets ``set_fit_request(clean_mask=True)`` on ``estimator``, or on the
    last step of a (nested) Pipeline, so that with
    ``sklearn.set_config(enable_metadata_routing=True)`` a search or
    ``cross_validate`` passes the sliced mask on to it.

    Parameters
    ----------
    estimator : estimator or Pipeline
        Its final estimator must take ``clean_mask`` in ``fit``.

    Returns
    -------
    estimator
        The same object.

    Examples
    --------
    >>> import sklearn
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_reweight import ReweightedNeuralNetClassifier
    >>> from sk_reweight.model_selection import request_clean_mask
    >>> with sklearn.config_context(enable_metadata_routing=True):
    ...     pipe = request_clean_mask(make_pipeline(StandardScaler(), ReweightedNeuralNetClassifier()))
    ...     pipe.get_metadata_routing().consumes("fit", ["clean_mask"])
    {'clean_mask'}
    """
    final = estimator
    while isinstance(final, Pipeline):
        final = final.steps[-1][1]
    if "clean_mask" not in inspect.signature(final.fit).parameters:
        raise TypeError(
            f"{type(final).__name__}.fit takes no clean_mask; wrap it in "
            "sk_reweight.baselines.CleanSetBaseline to give it the clean set."
        )
    final.set_fit_request(clean_mask=True)
    return estimator
