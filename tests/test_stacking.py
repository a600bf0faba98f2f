"""Row stacking and float32 conversion of tables."""
import numpy as np
import pandas as pd
import scipy.sparse
import torch

from sk_reweight._stacking import as_float32, stack_rows


def test_stack_rows_keeps_the_kind_of_table():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}, index=[5, 9])
    stacked = stack_rows(frame, frame.iloc[:1])
    assert isinstance(stacked, pd.DataFrame) and list(stacked["b"]) == ["x", "y", "x"]
    assert list(stacked.index) == [0, 1, 2]
    sparse = stack_rows(scipy.sparse.eye(2, format="csr"), np.ones((1, 2)))
    assert scipy.sparse.issparse(sparse) and sparse.toarray().tolist() == [[1, 0], [0, 1], [1, 1]]
    assert stack_rows([[1, 2]], np.array([[3, 4]])).tolist() == [[1, 2], [3, 4]]


def test_as_float32_densifies_and_casts_numbers_only():
    assert as_float32(scipy.sparse.eye(2, format="csr")).dtype == np.float32
    assert as_float32(pd.DataFrame({"a": [1, 2]})).dtype == np.float32
    assert as_float32(np.array([True, False])).dtype == np.float32
    same = np.zeros(3, np.float32)
    assert as_float32(same) is same
    tensor = torch.zeros(2)
    assert as_float32(tensor) is tensor
    assert as_float32(np.array(["a"])).dtype.kind == "U"  # left for the network to refuse
