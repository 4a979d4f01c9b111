"""Label corruption by erosion or dilation of a binary mask: unbiased (random sign) or biased (always one way).

Vorontsov & Kadoury, "Label noise in segmentation networks: mitigation must deal with bias" (DGM4MICCAI /
DALI 2021), argue that masks that are *randomly* too large or too small (an annotator's inconsistency) hurt a
segmentation network little, while masks that are *always* too large or too small (an annotator's habit, a
tool's bias) teach the network that bias. These transforms make both kinds of error:

- :class:`MaskMorphology` / :class:`MaskMorphologyd`: deterministic: dilate (``radius > 0``) or erode
  (``radius < 0``) the mask with a disk (2D) or ball (3D) of ``|radius|`` pixels; ``radius = 0`` is the identity;
- :class:`RandMaskMorphology` / :class:`RandMaskMorphologyd`: with probability ``prob`` draw an integer radius
  and apply :class:`MaskMorphology`: ``mode="random"`` uniform in ``[-max_radius, max_radius]`` (zero mean:
  unbiased), ``"dilate"`` uniform in ``[1, max_radius]``, ``"erode"`` uniform in ``[-max_radius, -1]`` (biased).

The applied parameters are appended to ``meta["mask_morphology"]`` (a list of dicts, one per application) of a
MetaTensor output (dictionary versions: in ``data[f"{key}_{meta_key_postfix}"]`` for plain arrays);
``MaskMorphology(**record)`` reproduces the output.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, RandomizableTransform, Transform
from monai.utils import TransformBackends
from scipy import ndimage as ndi

from .binary_mask import RandMaskKeysMixin, append_mask_record, apply_to_mask_keys, binary_mask_array, mask_like

__all__ = [
    "MASK_MORPHOLOGY_MODES",
    "MaskMorphology",
    "MaskMorphologyD",
    "MaskMorphologyDict",
    "MaskMorphologyd",
    "RandMaskMorphology",
    "RandMaskMorphologyD",
    "RandMaskMorphologyDict",
    "RandMaskMorphologyd",
]

META_FIELD = "mask_morphology"
MASK_MORPHOLOGY_MODES = ("random", "dilate", "erode")


def _morph_check_radius(radius: Any, name: str = "radius") -> int:
    if isinstance(radius, bool) or not np.isfinite(float(radius)) or float(radius) != int(radius):
        raise ValueError(f"{name}={radius!r}: expected an integer number of pixels.")
    return int(radius)


def _morph_apply(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius == 0:
        return mask.copy()
    r = abs(radius)
    grid = np.indices((2 * r + 1,) * mask.ndim) - r
    ball = (grid**2).sum(0) <= r * r
    if radius > 0:
        return ndi.binary_dilation(mask, structure=ball)
    return ndi.binary_erosion(mask, structure=ball, border_value=0)


class MaskMorphology(Transform):
    """Dilate (``radius > 0``) or erode (``radius < 0``) a channel-first binary mask (1, H, W[, D]) with a disk or
    ball of ``|radius|`` pixels (Euclidean distance <= ``|radius|``); pixels outside the image count as
    background. Label corruption of Vorontsov & Kadoury (DGM4MICCAI/DALI 2021).

    Call ``t(img)``: numpy array or torch tensor (any device; values 0/1). Returns a new array of the same type,
    shape, dtype and device; a MetaTensor gets ``{"radius": r}`` appended to ``meta["mask_morphology"]``.
    Raises ``ValueError`` for non-binary values, a shape other than one channel and 2 or 3 spatial axes, or a
    non-integer radius.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, radius: int) -> None:
        self.radius = _morph_check_radius(radius)

    @property
    def params(self) -> dict[str, Any]:
        """The parameters as a record (``MaskMorphology(**record)`` rebuilds this transform)."""
        return {"radius": self.radius}

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Dilate or erode the mask ``img``; see the class docstring."""
        out = mask_like(_morph_apply(binary_mask_array(img), self.radius), img)
        append_mask_record(out, META_FIELD, self.params)
        return out


class RandMaskMorphology(RandomizableTransform):
    """With probability ``prob``, :class:`MaskMorphology` with a random integer radius.

    Args:
        prob: probability of corrupting the mask.
        max_radius: largest radius in pixels (>= 1).
        mode: ``"random"`` (radius uniform in [-max_radius, max_radius]: as often eroded as dilated, unbiased),
            ``"dilate"`` ([1, max_radius]) or ``"erode"`` ([-max_radius, -1]): biased.

    ``last_params`` holds the record of the last application (``None`` when not applied);
    ``MaskMorphology(**last_params)`` replays it. Deterministic under ``set_random_state``.
    """

    backend = MaskMorphology.backend

    def __init__(self, prob: float = 1.0, max_radius: int = 2, mode: str = "random") -> None:
        RandomizableTransform.__init__(self, prob)
        self.max_radius = _morph_check_radius(max_radius, "max_radius")
        if self.max_radius < 1:
            raise ValueError(f"max_radius={max_radius!r}: expected an integer >= 1.")
        if mode not in MASK_MORPHOLOGY_MODES:
            raise ValueError(f"mode={mode!r}: expected one of {list(MASK_MORPHOLOGY_MODES)}.")
        self.mode = mode
        self.last_params: dict[str, Any] | None = None

    def randomize(self, data: Any = None) -> None:
        """Decide whether to corrupt (``prob``) and draw the radius into :attr:`last_params`."""
        super().randomize(None)
        if not self._do_transform:
            self.last_params = None
            return
        low = -self.max_radius if self.mode == "random" else 1
        r = int(self.R.randint(low, self.max_radius + 1))
        self.last_params = {"radius": -r if self.mode == "erode" else r}

    def transform(self) -> MaskMorphology | None:
        """The :class:`MaskMorphology` of :attr:`last_params` (``None`` when the last draw applies nothing)."""
        return None if self.last_params is None else MaskMorphology(**self.last_params)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """Corrupt the mask ``img`` (or re-apply ``last_params`` with ``randomize=False``)."""
        binary_mask_array(img)
        if randomize:
            self.randomize()
        t = self.transform()
        return img if t is None else t(img)


class MaskMorphologyd(MapTransform):
    """Dictionary-based :class:`MaskMorphology` on every ``keys`` mask (the label, not the image); plain arrays
    get the record in ``data[f"{key}_{meta_key_postfix}"]["mask_morphology"]``."""

    backend = MaskMorphology.backend

    def __init__(self, keys: KeysCollection, radius: int, meta_key_postfix: str = "meta_dict",
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.morph = MaskMorphology(radius)
        self.meta_key_postfix = meta_key_postfix

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict:
        """Dilate or erode every ``keys`` mask of ``data``; returns a new dict."""
        return apply_to_mask_keys(self, dict(data), self.morph, META_FIELD, self.meta_key_postfix)


class RandMaskMorphologyd(RandMaskKeysMixin, RandomizableTransform, MapTransform):
    """Dictionary-based :class:`RandMaskMorphology`: one radius per call, applied to every ``keys`` mask; plain
    arrays get the record in ``data[f"{key}_{meta_key_postfix}"]["mask_morphology"]``."""

    backend = MaskMorphology.backend

    def __init__(self, keys: KeysCollection, prob: float = 1.0, max_radius: int = 2, mode: str = "random",
                 meta_key_postfix: str = "meta_dict", allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.rand = RandMaskMorphology(prob, max_radius, mode)
        self.meta_field, self.meta_key_postfix = META_FIELD, meta_key_postfix


MaskMorphologyD = MaskMorphologyDict = MaskMorphologyd
RandMaskMorphologyD = RandMaskMorphologyDict = RandMaskMorphologyd
