"""A fixed, seeded split of a data set's cases into training, validation and testing lists."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["split_cases"]


def split_cases(
    cases: Sequence[dict[str, Any]],
    num_val: int,
    num_test: int,
    split_seed: int,
    source: Any,
    sort_key: Callable[[dict[str, Any]], Any] = lambda c: c["case"],
) -> dict[str, list[dict[str, Any]]]:
    """``cases`` sorted by ``sort_key`` (so the split does not depend on listing order), shuffled with
    ``split_seed``: the first ``num_test`` are the test set, the next ``num_val`` the validation set, the rest the
    training set. A fixed ``split_seed`` keeps the test cases of runs with different training seeds the same.

    Raises:
        ValueError: a negative (or boolean) size, or fewer cases than ``num_val + num_test + 1`` (``source``, the
            data set's folder, named in the message).
    """
    for name, n in (("num_val", num_val), ("num_test", num_test)):
        if isinstance(n, bool) or int(n) < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {n!r}.")
    if len(cases) < num_val + num_test + 1:
        raise ValueError(
            f"{source}: {len(cases)} case(s), but num_val={num_val} + num_test={num_test} held-out cases and at least "
            "one training case are needed."
        )
    order = sorted(cases, key=sort_key)
    random.Random(int(split_seed)).shuffle(order)
    return {
        "testing": order[:num_test],
        "validation": order[num_test : num_test + num_val],
        "training": order[num_test + num_val :],
    }
