"""Seeds and counts of the phantom data sets: one case's (or one random field's) seed derived from the data set's seed and
its index, so that any case can be regenerated alone."""

from __future__ import annotations

import numpy as np

__all__ = ["check_count", "check_seed", "derive_seed"]


def derive_seed(*keys: int, bits: int = 32) -> int:
    """A deterministic, well-mixed seed from the integers ``keys`` (NumPy ``SeedSequence``), kept to its lowest
    ``bits`` bits (32: the full state word; 31: a non-negative int32)."""
    if not 1 <= bits <= 32:
        raise ValueError(f"bits must be 1..32, got {bits}")
    state = int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])
    return state & ((1 << bits) - 1)


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` as an int when it is a non-negative whole number (``3`` or ``3.0``; not ``True``).

    Raises:
        ValueError: naming ``name`` and the value given.
    """
    try:
        ok = not isinstance(seed, bool) and int(seed) == seed and int(seed) >= 0  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a non-negative integer, got {seed!r}.")
    return int(seed)  # type: ignore[call-overload]


def check_count(value: object, name: str = "cases") -> int:
    """``value`` as an int when it is a whole number >= 1 (a number of cases or images; not ``True``).

    Raises:
        ValueError: naming ``name`` and the value given.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)
