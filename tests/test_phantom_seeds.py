"""The seeds every phantom data set derives per case: deterministic, distinct per key, in range."""

import numpy as np
import pytest

from monai_ext.phantoms import case_seed, derive_seed


def test_derived_seeds_are_deterministic_distinct_and_in_range():
    a = [derive_seed(7, 31, i, bits=31) for i in range(200)]
    assert a == [derive_seed(7, 31, i, bits=31) for i in range(200)]
    assert len(set(a)) == 200 and all(0 <= s < 2**31 for s in a)
    np.random.default_rng(a[0])  # usable as a NumPy seed
    full = [derive_seed(7, i) for i in range(200)]
    assert max(full) >= 2**31  # the 32-bit form keeps the top bit (about half of them)
    assert [s & 0x7FFFFFFF for s in full[:5]] == [derive_seed(7, i, bits=31) for i in range(5)]
    assert case_seed(3, 4) == derive_seed(3, 4) and derive_seed(3, 4) != derive_seed(4, 3)
    with pytest.raises(ValueError, match="bits"):
        derive_seed(1, bits=33)


def test_check_seed_accepts_whole_numbers_and_names_bad_ones():
    from monai_ext.phantoms import check_seed

    assert check_seed(3) == 3 and check_seed(np.int64(4)) == 4 and check_seed(5.0) == 5
    for bad in (None, "x", "3", -1, True, 2.5, float("inf")):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            check_seed(bad)
    with pytest.raises(ValueError, match="case_seed must"):
        check_seed(None, "case_seed")
