"""Generic networks that MONAI lacks. The methods' own networks live in ``monai_ext.apps.<method>``.
"""

from __future__ import annotations

__all__: list[str] = []
