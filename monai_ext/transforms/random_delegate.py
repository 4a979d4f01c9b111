"""What a random dictionary transform needs when its array version draws every random number: seeding both, and
the array version's record as its own (MONAI's ``RandGaussianNoised`` wraps ``RandGaussianNoise`` the same way)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

__all__ = ["RandArrayDelegateMixin"]


class RandArrayDelegateMixin:
    """For a class deriving from this, then ``RandomizableTransform`` and ``MapTransform``, that keeps its array
    version (created with ``prob=1.0``) in ``self.rand`` and draws its own ``prob`` with ``self.randomize(None)``."""

    rand: Any
    _do_transform: bool

    @property
    def last_params(self) -> dict[str, Any] | None:
        """The record of the last draw, ``None`` when it applied nothing."""
        return self.rand.last_params if self._do_transform else None

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        """Seed this transform and its array version; returns ``self``."""
        super().set_random_state(seed, state)  # type: ignore[misc]
        self.rand.set_random_state(seed, state)
        return self

    def draw_for_first_key(self, d: dict, check: Callable[[Any, str], None]) -> Hashable | None:
        """Check the first ``keys`` item of ``d`` with ``check(item, name)``, draw whether to apply and, when
        applied, the array version's parameters for that item's spatial shape; returns the key (``None``: no key)."""
        keys = list(self.key_iterator(d))  # type: ignore[attr-defined]
        if not keys:
            return None
        check(d[keys[0]], f"{keys[0]!r}")
        self.randomize(None)  # type: ignore[attr-defined]
        if self._do_transform:
            self.rand.randomize(d[keys[0]].shape[1:])
        return keys[0]
