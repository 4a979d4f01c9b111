"""A pool of past generated images for a GAN's discriminator (Shrivastava et al., CVPR 2017; as in CycleGAN).

Training the discriminator on a history of generated images, not only the latest batch, keeps it from forgetting
what the generator produced a few steps ago.
"""

from __future__ import annotations

import torch

__all__ = ["HistoryImagePool"]


class HistoryImagePool:
    """Keeps up to ``size`` images; :meth:`query` stores new images and returns a batch of the same size.

    While the pool is not full, each image is stored and returned as it is. Once full, each image is, with
    probability 0.5, swapped with a random stored one (the stored one is returned), else returned as it is.
    ``size`` 0 turns the pool off (the images are returned as they are). Images are stored detached, on their device.

    Args:
        size: the pool's capacity (CycleGAN and CaCL: 50 and 64).
        seed: seed of the pool's own random generator (the draws do not touch the global RNG).
    """

    def __init__(self, size: int = 64, seed: int = 0) -> None:
        if isinstance(size, bool) or int(size) < 0:
            raise ValueError(f"size must be a non-negative integer, got {size!r}.")
        self.size = int(size)
        self.images: list[torch.Tensor] = []
        self._gen = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """``images``: (B, ...). Returns a (B, ...) batch, detached."""
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        for img in images:
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif torch.rand((), generator=self._gen) < 0.5:
                k = int(torch.randint(self.size, (), generator=self._gen))
                out.append(self.images[k].clone())
                self.images[k] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)
