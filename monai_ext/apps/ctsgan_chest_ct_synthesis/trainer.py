"""CT-SGAN training engine: alternating slice/slab critic and generator updates with a gradient penalty.

Why not MONAI's :class:`~monai.engines.GanTrainer` as is: its iteration draws latents of a fixed
``latent_shape``, runs one discriminator on whole generator outputs and calls
``d_loss_function(fakes, reals)``. CT-SGAN needs, in the same step, (1) one slab position shared by the
real and the generated side (the slice critic judges slices "with respect to the slice position" and
the slab critic a run of ``T`` slices from the same region), (2) two critics, (3) a gradient penalty
that differentiates the critics w.r.t. their inputs, and (4) a generator that only renders the sampled
slab. So :class:`CTSGANTrainer` subclasses ``GanTrainer`` (same constructor arguments, events, state,
handlers: ``StatsHandler``, ``CheckpointSaver``, ``TensorBoardStatsHandler`` work unchanged) and
replaces only ``_iteration``.

Distributed training (``torchrun``, one process per GPU): the iteration calls sub-modules
(``g.slices``, ``d.slice_critic``, ``d.slab_critic``) and differentiates the critics w.r.t. their inputs,
which a :class:`~torch.nn.parallel.DistributedDataParallel` wrapper would not see (its gradient hooks run
only through its own ``forward``). So when a process group is initialised the trainer broadcasts rank 0's
weights once at the start and averages the gradients with ``all_reduce`` before each optimiser step; the
random slab positions and latents differ per rank (``seed + rank``).

Objective (Pesaranghader et al., DGM4MICCAI 2021, Eq. 2, with the Wasserstein option they preferred):
``L_D = sum_slice [D_s(fake) - D_s(real)] + [D_slab(fake) - D_slab(real)] + lambda * (GP_slice + GP_slab)``
and ``L_G = -D_s(fake) - D_slab(fake)``; ``adversarial_loss="bce"`` gives the paper's Jensen-Shannon form
(non-saturating for the generator). ``overlap_weight > 0`` adds ``overlap_weight * O`` to ``L_G``, where ``O``
(:func:`~monai_ext.apps.ctsgan_chest_ct_synthesis.slice_overlap_disagreement`) is the L1 disagreement of adjacent 3-channel
slices about the two volume slices they share; an addition to the paper, which stacks only the centre channels
and so leaves the outer ones judged slice by slice but tied to nothing along z. ``seam_weight > 0`` adds
``seam_weight * S`` to ``L_G``, where ``S`` (:func:`~monai_ext.losses.seam_excess_loss`) is the seam spikiness of
the generated slab beyond that of the real slab, and ``zspec_weight > 0`` adds ``zspec_weight * Z``, where ``Z``
(:func:`~monai_ext.losses.z_spectrum_loss`) is the log distance between the generated and the real slab's power
spectra along z, and ``zspec_bone_weight > 0`` the same distance over each slab's bone columns only
(:func:`~monai_ext.losses.bone_z_spectrum_loss`; all additions to the paper).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from monai.engines import GanTrainer
from monai.engines.utils import GanKeys
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from ...engines.distributed import average_gradients, broadcast_module, is_distributed
from ...losses.gradient_penalty import critic_gradient_penalty
from ...losses.seam_penalty import seam_excess_loss, seam_spikiness
from ...losses.z_spectrum import bone_z_spectrum_loss, z_spectrum_loss
from .networks import (
    CTSGANCritics,
    CTSGANGenerator,
    slice_overlap_disagreement,
    volume_to_slices,
)

__all__ = ["CTSGANTrainer"]


def _d_adv(real: torch.Tensor, fake: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "wgan":
        return fake.mean() - real.mean()
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def _g_adv(fake: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "wgan":
        return -fake.mean()
    return F.softplus(-fake).mean()


class CTSGANTrainer(GanTrainer):
    """Train a :class:`~monai_ext.apps.ctsgan_chest_ct_synthesis.CTSGANGenerator` against :class:`~monai_ext.apps.ctsgan_chest_ct_synthesis.CTSGANCritics`.

    Each iteration takes a batch of real volumes ``batch[image_key]`` ``(B, 1, H, W, D)`` in ``[-1, 1]`` and

    1. draws a slab start ``s`` (uniform over ``0 .. D - 2 - T``), the same for real and generated volumes;
    2. ``d_train_steps`` times: generates the ``T`` 3-channel slices ``s .. s+T-1`` of ``B`` new volumes of
       depth ``D`` (no generator gradient), takes ``N = slices_per_slab`` random slices of the slab for
       ``D_slice`` and the ``T`` centre slices for ``D_slab``, and updates both critics;
    3. generates new volumes' slabs and updates ``G_slice`` and ``R_v`` through both critics.

    Args:
        device, max_epochs, train_data_loader, epoch_length, train_handlers, non_blocking, amp_kwargs,
        optim_set_to_none: as in :class:`~monai.engines.GanTrainer`.
        g_network: the generator.
        g_optimizer: its optimiser.
        d_network: both critics.
        d_optimizer: their optimiser.
        slab_size: ``T``, consecutive centre slices per slab (must equal ``d_network.slab_critic.slab_size``).
        slices_per_slab: ``N``, slices per volume shown to ``D_slice`` (<= ``T``).
        adversarial_loss: ``"wgan"`` (default, the paper's preference) or ``"bce"``.
        gp_mode: ``"wgan-gp"``, ``"r1"`` or ``"none"``.
        gp_weight: weight of the gradient penalty of each critic.
        drift_weight: weight of ``E[D(real)^2]`` (keeps Wasserstein scores near 0; 0 disables it).
        d_train_steps: critic updates per generator update.
        overlap_weight: weight of the overlap-consistency term of the generator loss (0: the paper's loss). The
            term is a mean absolute difference in the ``[-1, 1]`` intensity units.
        seam_weight: weight of the seam term of the generator loss (0: the paper's loss); the term is a mean
            log ratio (unitless), see :mod:`monai_ext.losses.seam_penalty`. Needs ``slab_size >= 4``.
        zspec_weight: weight of the z-spectrum term of the generator loss (0: the paper's loss); the term is a mean
            absolute log power ratio (unitless), see :mod:`monai_ext.losses.z_spectrum`. Needs ``slab_size >= 4``.
        zspec_scales: in-plane block sizes (voxels) at which the z-spectrum term compares the slabs (mean over
            them); ``(1,)``: voxel columns only.
        zspec_bone_weight: weight of the bone z-spectrum term (0: none): the z-spectrum distance over the columns
            where each slab has its brightest voxels (spine, sternum). Needs ``slab_size >= 4``.
        critic_warmup: number of first iterations that update only the critics (0: none). For starting from a
            trained generator with new critics (``init_generator`` of the bundle), so the generator is not
            steered by critics that have not learned anything yet; the generator outputs are logged as nan then.
        image_key: key of the real volumes in the batch.

    ``engine.state.output`` holds ``d_loss`` and ``g_loss`` (``GanKeys.DLOSS``/``GanKeys.GLOSS``), ``d_slice``,
    ``d_slab`` (adversarial terms of each critic), ``gp`` (sum of both penalties), ``wasserstein`` (mean
    real-minus-fake score of the two critics), ``overlap`` (the generated slab's overlap disagreement, logged
    whatever ``overlap_weight``), ``seam`` (the generated slab's seam spikiness, logged whatever
    ``seam_weight``; 0 when ``slab_size < 4``), ``zspec`` (the z-spectrum term when ``zspec_weight > 0``, else 0),
    ``zspec_bone`` (the bone z-spectrum term when ``zspec_bone_weight > 0``, else 0),
    ``slab_start``, and ``GanKeys.REALS``/``FAKES`` (the real and the last generated slab ``(B, 1, H, W, T)``)
    and ``GanKeys.LATENTS`` (the noise).
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: DataLoader,
        g_network: CTSGANGenerator,
        g_optimizer: Optimizer,
        d_network: CTSGANCritics,
        d_optimizer: Optimizer,
        slab_size: int = 8,
        slices_per_slab: int = 4,
        adversarial_loss: str = "wgan",
        gp_mode: str = "wgan-gp",
        gp_weight: float = 10.0,
        drift_weight: float = 1e-3,
        d_train_steps: int = 1,
        overlap_weight: float = 0.0,
        seam_weight: float = 0.0,
        zspec_weight: float = 0.0,
        zspec_scales: Sequence[int] = (1,),
        zspec_bone_weight: float = 0.0,
        critic_warmup: int = 0,
        epoch_length: int | None = None,
        image_key: str = "image",
        train_handlers: Sequence | None = None,
        non_blocking: bool = False,
        optim_set_to_none: bool = False,
        amp_kwargs: dict | None = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(g_network, CTSGANGenerator):
            raise TypeError(f"g_network must be a CTSGANGenerator, got {type(g_network).__name__}.")
        if not isinstance(d_network, CTSGANCritics):
            raise TypeError(f"d_network must be CTSGANCritics, got {type(d_network).__name__}.")
        if int(slab_size) != d_network.slab_critic.slab_size:
            raise ValueError(
                f"slab_size={slab_size} but the slab critic takes {d_network.slab_critic.slab_size} slices."
            )
        if not 1 <= int(slices_per_slab) <= int(slab_size):
            raise ValueError(f"slices_per_slab must be in 1..slab_size={slab_size}, got {slices_per_slab}.")
        adversarial_loss = str(adversarial_loss).lower()
        if adversarial_loss not in ("wgan", "bce"):
            raise ValueError(f"adversarial_loss must be 'wgan' or 'bce', got {adversarial_loss!r}.")
        gp_mode = str(gp_mode).lower()
        if gp_mode not in ("wgan-gp", "r1", "none"):
            raise ValueError(f"gp_mode must be 'wgan-gp', 'r1' or 'none', got {gp_mode!r}.")
        if int(d_train_steps) < 1:
            raise ValueError(f"d_train_steps must be >= 1, got {d_train_steps}.")
        for name, weight, min_slab, why in (
            ("overlap_weight", overlap_weight, 2, "adjacent 3-channel slices"),
            ("seam_weight", seam_weight, 4, "neighbouring slice differences"),
            ("zspec_weight", zspec_weight, 4, "a spectrum along z"),
            ("zspec_bone_weight", zspec_bone_weight, 4, "a spectrum along z"),
        ):
            if not float(weight) >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {weight}.")
            if float(weight) > 0 and int(slab_size) < min_slab:
                raise ValueError(f"{name} > 0 needs slab_size >= {min_slab} ({why}), got {slab_size}.")
        zspec_scales = tuple(int(k) for k in zspec_scales)
        if not zspec_scales or min(zspec_scales) < 1 or max(zspec_scales) > g_network.image_size:
            raise ValueError(
                f"zspec_scales must be in-plane block sizes in 1..{g_network.image_size}, got {list(zspec_scales)}."
            )
        if int(critic_warmup) < 0:
            raise ValueError(f"critic_warmup must be >= 0 iterations, got {critic_warmup}.")
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            g_network=g_network,
            g_optimizer=g_optimizer,
            g_loss_function=lambda fake_scores: _g_adv(fake_scores, adversarial_loss),
            d_network=d_network,
            d_optimizer=d_optimizer,
            d_loss_function=lambda real_scores, fake_scores: _d_adv(real_scores, fake_scores, adversarial_loss),
            epoch_length=epoch_length,
            d_train_steps=int(d_train_steps),
            non_blocking=non_blocking,
            train_handlers=train_handlers,
            decollate=False,
            optim_set_to_none=optim_set_to_none,
            amp_kwargs=amp_kwargs,
        )
        self.slab_size = int(slab_size)
        self.slices_per_slab = int(slices_per_slab)
        self.adversarial_loss = adversarial_loss
        self.gp_mode = gp_mode
        self.gp_weight = float(gp_weight)
        self.drift_weight = float(drift_weight)
        self.overlap_weight = float(overlap_weight)
        self.seam_weight = float(seam_weight)
        self.zspec_weight = float(zspec_weight)
        self.zspec_scales = zspec_scales
        self.zspec_bone_weight = float(zspec_bone_weight)
        self.critic_warmup = int(critic_warmup)
        self.image_key = image_key
        self.rng = torch.Generator()
        self.distributed = is_distributed()
        if seed is not None:
            self.rng.manual_seed(int(seed) + (dist.get_rank() if self.distributed else 0))
        if self.distributed:
            broadcast_module(g_network)
            broadcast_module(d_network)

    def _real_volume(self, batchdata: Any) -> torch.Tensor:
        vol = batchdata[self.image_key] if isinstance(batchdata, dict) else batchdata
        if not isinstance(vol, torch.Tensor) or vol.ndim != 5 or vol.shape[1] != 1:
            shape = tuple(vol.shape) if isinstance(vol, torch.Tensor) else type(vol).__name__
            raise ValueError(f"batch['{self.image_key}'] must be real volumes (B, 1, H, W, D), got {shape}.")
        size = self.g_network.image_size
        if tuple(vol.shape[2:4]) != (size, size) or vol.shape[-1] < self.slab_size + 2:
            raise ValueError(
                f"batch['{self.image_key}'] has shape {tuple(vol.shape)}; the networks need H = W = {size} and "
                f"D >= slab_size + 2 = {self.slab_size + 2}."
            )
        return torch.as_tensor(vol).to(self.state.device, dtype=torch.float32, non_blocking=self.non_blocking)

    def _critic_terms(self, real3, real_slab, fake3, fake_slab, pos, slab_pos, idx):
        d = self.d_network
        b = real3.shape[0]
        rs, fs = real3[:, idx].flatten(0, 1), fake3[:, idx].flatten(0, 1)
        ps = pos[idx].repeat(b)
        sp = slab_pos.expand(b)
        real_s, fake_s = d.slice_critic(rs, ps), d.slice_critic(fs, ps)
        real_b, fake_b = d.slab_critic(real_slab, sp), d.slab_critic(fake_slab, sp)
        d_slice = self.d_loss_function(real_s, fake_s)
        d_slab = self.d_loss_function(real_b, fake_b)
        gp = torch.zeros((), device=real3.device)
        if self.gp_mode != "none" and self.gp_weight > 0:
            gp = critic_gradient_penalty(lambda x: d.slice_critic(x, ps), rs, fs, self.gp_mode, self.rng)
            gp = gp + critic_gradient_penalty(lambda x: d.slab_critic(x, sp), real_slab, fake_slab, self.gp_mode,
                                              self.rng)
        drift = (real_s.pow(2).mean() + real_b.pow(2).mean()) if self.drift_weight > 0 else torch.zeros(())
        wdist = 0.5 * ((real_s.mean() - fake_s.mean()) + (real_b.mean() - fake_b.mean()))
        loss = d_slice + d_slab + self.gp_weight * gp + self.drift_weight * drift
        return loss, d_slice, d_slab, gp, wdist

    def _iteration(self, engine: CTSGANTrainer, batchdata: Any) -> dict:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("must provide batch data for current iteration.")
        vol = engine._real_volume(batchdata)
        b, depth = vol.shape[0], int(vol.shape[-1])
        length, t = depth - 2, engine.slab_size
        s = int(torch.randint(0, length - t + 1, (1,), generator=engine.rng))
        real3 = volume_to_slices(vol, s, s + t)  # (B, T, 3, H, W)
        real_slab = vol[..., s + 1 : s + 1 + t]
        # relative position (0 .. 1) of each 3-channel slice's centre, and of the slab's first centre slice
        pos = (torch.arange(s, s + t, dtype=torch.float32, device=vol.device) + 1.0) / (depth - 1)
        slab_pos = pos[:1]
        g, d = engine.g_network, engine.d_network

        g.train()
        d.train()
        d.requires_grad_(True)
        totals = torch.zeros(5)
        for _ in range(engine.d_train_steps):
            with torch.no_grad():
                noise = g.sample_noise(b, depth, generator=engine.rng, device=vol.device)
                fake3 = g.slices(noise, s, s + t)
            fake_slab = fake3[:, :, 1].permute(0, 2, 3, 1).unsqueeze(1)
            idx = torch.randperm(t, generator=engine.rng)[: engine.slices_per_slab].to(vol.device)
            engine.d_optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
            loss, d_slice, d_slab, gp, wdist = engine._critic_terms(real3, real_slab, fake3, fake_slab, pos, slab_pos,
                                                                    idx)
            loss.backward()
            if engine.distributed:
                average_gradients(d)
            engine.d_optimizer.step()
            totals += torch.tensor([loss.item(), d_slice.item(), d_slab.item(), gp.item(), wdist.item()])
        totals /= engine.d_train_steps
        # during the critic warm-up the generator is neither run nor updated; its terms are logged as nan
        g_terms = dict.fromkeys(("g_loss", "overlap", "seam", "zspec", "zspec_bone"), float("nan"))
        if engine.state.iteration > engine.critic_warmup:
            d.requires_grad_(False)
            noise = g.sample_noise(b, depth, generator=engine.rng, device=vol.device)
            fake3 = g.slices(noise, s, s + t)
            fake_slab = fake3[:, :, 1].permute(0, 2, 3, 1).unsqueeze(1)
            idx = torch.randperm(t, generator=engine.rng)[: engine.slices_per_slab].to(vol.device)
            ps = pos[idx].repeat(b)
            fake_s = d.slice_critic(fake3[:, idx].flatten(0, 1), ps)
            fake_b = d.slab_critic(fake_slab, slab_pos.expand(b))
            engine.g_optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
            g_adv = engine.g_loss_function(fake_s) + engine.g_loss_function(fake_b)
            overlap = slice_overlap_disagreement(fake3) if t >= 2 else torch.zeros((), device=vol.device)
            g_loss = g_adv + engine.overlap_weight * overlap if engine.overlap_weight > 0 else g_adv
            if engine.seam_weight > 0:
                g_loss = g_loss + engine.seam_weight * seam_excess_loss(fake_slab, real_slab)
            zspec = torch.zeros((), device=vol.device)
            if engine.zspec_weight > 0:
                zspec = z_spectrum_loss(fake_slab, real_slab, scales=engine.zspec_scales)
                g_loss = g_loss + engine.zspec_weight * zspec
            zspec_bone = torch.zeros((), device=vol.device)
            if engine.zspec_bone_weight > 0:
                zspec_bone = bone_z_spectrum_loss(fake_slab, real_slab)
                g_loss = g_loss + engine.zspec_bone_weight * zspec_bone
            with torch.no_grad():
                seam = seam_spikiness(fake_slab).mean() if t >= 4 else torch.zeros(())
            g_loss.backward()
            if engine.distributed:
                average_gradients(g)
            engine.g_optimizer.step()
            d.requires_grad_(True)
            g_terms = {"g_loss": float(g_loss.item()), "overlap": float(overlap.item()),
                       "seam": float(seam.item()), "zspec": float(zspec.item()),
                       "zspec_bone": float(zspec_bone.item())}

        out = {
            "d_loss": float(totals[0]),
            "d_slice": float(totals[1]),
            "d_slab": float(totals[2]),
            "gp": float(totals[3]),
            "wasserstein": float(totals[4]),
            **g_terms,
            "slab_start": s,
        }
        out.update({GanKeys.REALS: real_slab, GanKeys.FAKES: fake_slab.detach(), GanKeys.LATENTS: noise,
                    GanKeys.GLOSS: out["g_loss"], GanKeys.DLOSS: out["d_loss"]})
        return out

