"""The paper's reduced-data protocol (Chadebec & Allassonniere, DGM4MICCAI 2021, Table 2) on real handwritten
digits (scikit-learn's, :mod:`monai_ext.datalists.sklearn_digits`).

One run (:func:`run_digits_arm`, a step of ``configs/study_digits.yaml``) draws the 500-image training set of its
seed, trains (or reuses) one fully connected RHVAE per class on the raw training images, builds the arm's
training set (raw; raw + classic augmentation x5/x10/x15; raw + prior or manifold samples; generated only),
trains the classifier with the best-validation checkpoint and scores it on every digit not drawn.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.nets import Classifier
from monai.transforms import Compose, RandFlip, RandGaussianNoise, RandRotate, RandZoom
from monai.utils import set_determinism

from ...datalists.sklearn_digits import NUM_DIGIT_CLASSES, reduced_digits_split, stack_images
from ...io import atomic_write
from .loss import RHVAEElboLoss
from .rhvae import RiemannianHamiltonianMLPVAE, load_rhvae
from .samplers import generate_images
from .study import balanced_accuracy, labelled_grid_png

__all__ = [
    "MLPVariationalAutoEncoder",
    "digits_generated_grid",
    "train_class_generator",
    "classic_augmentation",
    "digit_classifier",
    "train_digit_classifier",
    "run_digits_arm",
]

#: the authors' released d = 10 settings (d = 2: temperature 0.8)
RHVAE_DIGIT_SETTINGS = {"hidden": 400, "n_lf": 3, "eps_lf": 0.01, "beta_zero": 0.3, "regularization": 1e-3}


class MLPVariationalAutoEncoder(torch.nn.Module):
    """The paper's plain VAE baseline for the digits (the authors' code): encoder ``D -> hidden (ReLU) -> (mu,
    logvar)``, decoder ``d -> hidden (ReLU) -> D`` with a sigmoid, ``D = prod(in_shape)``. ``forward`` returns
    ``(recon, mu, logvar, z)`` like MONAI's ``VarAutoEncoder``, so :class:`RHVAEElboLoss` gives its negative
    ELBO; ``decode_forward`` and ``latent_size`` let :func:`generate_images` draw prior samples from it."""

    def __init__(self, in_shape: tuple[int, ...], latent_size: int = 10, hidden: int = 400) -> None:
        super().__init__()
        self.in_shape, self.latent_size = tuple(int(v) for v in in_shape), int(latent_size)
        self.hparams = {"in_shape": list(self.in_shape), "latent_size": self.latent_size, "hidden": int(hidden)}
        size = int(math.prod(self.in_shape))
        self.encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(size, hidden), torch.nn.ReLU())
        self.mu, self.logvar = torch.nn.Linear(hidden, latent_size), torch.nn.Linear(hidden, latent_size)
        self.decoder = torch.nn.Sequential(torch.nn.Linear(latent_size, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, size))

    def decode_forward(self, z: torch.Tensor, use_sigmoid: bool = True) -> torch.Tensor:
        out = self.decoder(z).reshape(z.shape[0], *self.in_shape)
        return torch.sigmoid(out) if use_sigmoid else out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode_forward(z), mu, logvar, z


def train_class_generator(
    images: np.ndarray,
    latent_size: int = 10,
    epochs: int = 1000,
    seed: int = 0,
    lr: float = 1e-3,
    batch_size: int = 200,
    temperature: float | None = None,
    max_grad_norm: float = 100.0,
    name: str = "class",
    kind: str = "rhvae",
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train one :class:`RiemannianHamiltonianMLPVAE` (``kind="rhvae"``; then store its metric bank) or one
    :class:`MLPVariationalAutoEncoder` (``kind="vae"``, the paper's baseline) on the images of one class
    (``(N, C, H, W)`` in [0, 1]), Adam, ``epochs`` passes in batches of ``batch_size`` (the authors: 1e-3, 200).

    Returns the model (eval mode) and a history: ``epochs``, ``seconds``, ``loss_first`` (first epoch),
    ``loss_last`` (mean of the last 50 epochs), ``skipped_steps`` (non-finite losses), ``loss_curve`` (mean loss
    per block of 50 epochs) and ``trained`` (``loss_last`` below 60 % of ``loss_first``; the RHVAEs of the digits
    study reached 10-25 %, the plain VAEs, whose loss has no latent terms to lose, 32-50 %). Raises ``ValueError``
    naming ``name`` when there are fewer images than the metric needs."""
    x = torch.as_tensor(stack_images(images, name))
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"{name}: image values must lie in [0, 1], got [{float(x.min()):.3g}, {float(x.max()):.3g}].")
    if kind not in ("rhvae", "vae"):
        raise ValueError(f"kind must be 'rhvae' or 'vae', got {kind!r}.")
    torch.manual_seed(seed)
    if kind == "vae":
        model = MLPVariationalAutoEncoder(tuple(x.shape[1:]), latent_size, RHVAE_DIGIT_SETTINGS["hidden"])
    else:
        temperature = temperature if temperature is not None else (0.8 if latent_size <= 2 else 1.5)
        model = RiemannianHamiltonianMLPVAE(tuple(x.shape[1:]), latent_size, temperature=temperature, **RHVAE_DIGIT_SETTINGS)
    min_images = getattr(model, "min_centroids", 1)
    if x.shape[0] < min_images:
        raise ValueError(f"{name}: {x.shape[0]} training image(s); an RHVAE needs at least {min_images}.")
    loss_fn = RHVAEElboLoss()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses, skipped = [], 0
    start = time.perf_counter()
    model.train()
    for _ in range(int(epochs)):
        order = torch.randperm(x.shape[0], generator=gen)
        epoch_loss = []
        for idx in torch.split(order, batch_size):
            if idx.numel() < min_images:
                continue
            batch = x[idx]
            loss = loss_fn(model(batch), batch)
            opt.zero_grad()
            if not torch.isfinite(loss):
                skipped += 1
                continue
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            opt.step()
            epoch_loss.append(loss.item())
        losses.append(float(np.mean(epoch_loss)) if epoch_loss else float("nan"))
    seconds = time.perf_counter() - start
    if kind == "rhvae":
        model.update_metric_bank(x)
    model.eval()
    block = 50
    curve = [float(np.nanmean(losses[i : i + block])) for i in range(0, len(losses), block)]
    history = {
        "epochs": int(epochs), "seconds": round(seconds, 2), "images": int(x.shape[0]), "skipped_steps": skipped,
        "loss_first": losses[0], "loss_last": curve[-1], "loss_curve": [round(v, 3) for v in curve],
        "trained": bool(curve[-1] < 0.6 * losses[0]),
    }  # fmt: skip
    return model, history


def classic_augmentation(images: np.ndarray, factor: int, seed: int = 0) -> np.ndarray:
    """The paper's classic augmentation baseline: the images and ``factor - 1`` randomly transformed copies of
    each (MONAI transforms, each applied with probability 0.5: horizontal flip, rotation up to 15 degrees, zoom
    in up to 1.3x (a crop resized back), Gaussian noise of std 0.05; clipped to [0, 1]). Returns
    ``factor * N`` images ``(factor N, C, H, W)``."""
    if int(factor) < 1:
        raise ValueError(f"augmentation factor must be >= 1, got {factor}.")
    x = stack_images(images, "images")
    aug = Compose([
        RandFlip(prob=0.5, spatial_axis=1),
        RandRotate(range_x=math.radians(15), prob=0.5, padding_mode="zeros"),
        RandZoom(prob=0.5, min_zoom=1.0, max_zoom=1.3, keep_size=True),
        RandGaussianNoise(prob=0.5, std=0.05),
    ])  # fmt: skip
    aug.set_random_state(seed=seed)
    copies = [x] + [np.stack([np.asarray(aug(img)) for img in x]) for _ in range(int(factor) - 1)]
    return np.clip(np.concatenate(copies), 0.0, 1.0).astype(np.float32)


def digit_classifier(in_shape: tuple[int, int, int] = (1, 8, 8), classes: int = NUM_DIGIT_CLASSES) -> torch.nn.Module:
    """The classifier of the digits protocol: MONAI's ``Classifier`` CNN (32/64/128 channels, strides 1/2/2, one
    residual unit each); the paper used a DenseNet, too deep for 8 x 8 images."""
    return Classifier(in_shape=in_shape, classes=classes, channels=(32, 64, 128), strides=(1, 2, 2), num_res_units=1, dropout=0.2)


def _digit_accuracies(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(b).argmax(1) for b in torch.split(x, 512)])
    return float((pred == y).float().mean()), balanced_accuracy(pred.numpy(), y.numpy())


def train_digit_classifier(
    train_images: np.ndarray, train_labels: np.ndarray, val_images: np.ndarray, val_labels: np.ndarray,
    seed: int = 0, steps: int = 2000, batch_size: int = 64, lr: float = 1e-3, eval_every: int = 50,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train :func:`digit_classifier` for ``steps`` Adam steps on batches drawn with replacement (the same budget
    for every training-set size) and keep the weights with the best validation accuracy (first best)."""
    x, y = torch.as_tensor(stack_images(train_images, "train_images")), torch.as_tensor(train_labels).long()
    xv, yv = torch.as_tensor(stack_images(val_images, "val_images")), torch.as_tensor(val_labels).long()
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"train_images ({x.shape[0]}) and train_labels ({y.shape[0]}) must be non-empty and match.")
    set_determinism(seed)
    net = digit_classifier(tuple(x.shape[1:]))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    best, best_state, best_step = -1.0, None, 0
    start = time.perf_counter()
    for step in range(1, int(steps) + 1):
        net.train()
        idx = torch.randint(x.shape[0], (batch_size,), generator=gen)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == steps:
            acc, _ = _digit_accuracies(net, xv, yv)
            if acc > best:
                best, best_step = acc, step
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    set_determinism(None)
    net.load_state_dict(best_state)
    return net.eval(), {"val_accuracy": best, "best_step": best_step, "seconds": round(time.perf_counter() - start, 2)}


def _load_vae(path: Path) -> MLPVariationalAutoEncoder:
    ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    model = MLPVariationalAutoEncoder(**ckpt["hparams"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def _class_generators(split: dict, gen_dir: Path, latent_size: int, epochs: int, seed: int, kind: str = "rhvae") -> tuple[dict, list[dict]]:
    """One RHVAE (or plain VAE) per class trained on the raw training images, cached as ``gen_dir/class<c>.pt``
    (+ ``.json``)."""
    models, histories = {}, []
    for c in range(NUM_DIGIT_CLASSES):
        path, info = gen_dir / f"class{c}.pt", gen_dir / f"class{c}.json"
        if path.is_file() and info.is_file():
            models[c] = load_rhvae(path) if kind == "rhvae" else _load_vae(path)
            history = json.loads(info.read_text())
        else:
            print(f"  training the class-{c} {kind.upper()} (d = {latent_size}, {epochs} epochs) ...", flush=True)
            images = split["train_images"][split["train_labels"] == c]
            models[c], history = train_class_generator(images, latent_size, epochs, seed=seed * 100 + c, name=f"digit class {c}", kind=kind)
            if kind == "rhvae":
                models[c].save_generator(path)
            else:
                payload = {"hparams": models[c].hparams, "state_dict": models[c].state_dict()}
                atomic_write(path, lambda p, d=payload: torch.save(d, p))
            atomic_write(info, lambda p, h=history: p.write_text(json.dumps(h, indent=1) + "\n"))
        histories.append({"class": c, **{k: v for k, v in history.items() if k != "loss_curve"}})
    return models, histories


def run_digits_arm(
    run_dir: str,
    work: str,
    seed: int,
    balance: str = "balanced",
    mode: str = "raw",
    num_per_class: int = 0,
    aug_factor: int = 1,
    generated_only: bool = False,
    latent_size: int = 10,
    vae_epochs: int = 1000,
    classifier_steps: int = 2000,
    hmc_steps: int = 100,
    size: int = 8,
    imbalance_ratio: float = 10.0,
    require_trained: bool = True,
) -> dict[str, Any]:
    """One (arm, seed) run of the digits protocol; writes ``run_dir/metrics.json`` and returns it.

    Args:
        mode: ``raw`` | ``classic`` (``aug_factor`` x) | ``prior`` | ``manifold`` (``num_per_class`` generated
            images per class from the class RHVAEs: ``prior`` z ~ N(0, I), ``manifold`` HMC on the metric) |
            ``vae`` (prior samples of a plain fully connected VAE per class, the paper's VAE rows).
        generated_only: train on the generated images only (``prior`` / ``manifold`` / ``vae``).
        work: the study's work folder; the RHVAEs are cached in ``work/rhvae/<balance>_seed<seed>_d<d>_e<epochs>``
            (the plain VAEs in ``work/vae/...``) and shared by every arm of that draw.
        require_trained: stop with ``RuntimeError`` when an RHVAE's (VAE's) loss did not fall below 60 % of its
            first epoch's (off only for plumbing tests with a few epochs).
    """
    if mode not in ("raw", "classic", "prior", "manifold", "vae"):
        raise ValueError(f"mode must be raw, classic, prior, manifold or vae, got {mode!r}.")
    if generated_only and mode not in ("prior", "manifold", "vae"):
        raise ValueError(f"generated_only needs mode prior, manifold or vae, got {mode!r}.")
    if mode in ("prior", "manifold", "vae") and int(num_per_class) < 1:
        raise ValueError(f"mode {mode}: num_per_class must be >= 1, got {num_per_class}.")
    split = reduced_digits_split(seed, balance=balance, imbalance_ratio=imbalance_ratio, size=size)
    x, y = split["train_images"], split["train_labels"]
    info: dict[str, Any] = {"balance": balance, "mode": mode, "train_real": int(len(y)), "class_counts": split["class_counts"].tolist()}
    if mode == "classic":
        x, y = classic_augmentation(x, aug_factor, seed), np.tile(y, int(aug_factor))
    elif mode in ("prior", "manifold", "vae"):
        kind = "vae" if mode == "vae" else "rhvae"
        gen_dir = Path(work) / kind / f"{balance}_seed{seed}_d{latent_size}_e{vae_epochs}"
        models, histories = _class_generators(split, gen_dir, latent_size, vae_epochs, seed, kind)
        info[kind] = histories
        untrained = [h["class"] for h in histories if not h["trained"]]
        if untrained and require_trained:
            raise RuntimeError(f"{kind.upper()}(s) of class(es) {untrained} in {gen_dir} did not train (loss not below 60 % of its first epoch's); see their .json.")
        sampler = "hmc" if mode == "manifold" else "prior"
        kwargs = {"n_steps": hmc_steps} if sampler == "hmc" else {}
        gx = [generate_images(models[c], int(num_per_class), sampler, seed=seed * 1000 + c, **kwargs)[0].numpy() for c in range(NUM_DIGIT_CLASSES)]
        gy = np.repeat(np.arange(NUM_DIGIT_CLASSES), int(num_per_class))
        x, y = (np.concatenate(gx), gy) if generated_only else (np.concatenate([x, *gx]), np.concatenate([y, gy]))
    info["train_images"] = int(len(y))
    net, fit = train_digit_classifier(x, y, split["val_images"], split["val_labels"], seed=seed, steps=classifier_steps)
    acc, bal = _digit_accuracies(net, torch.as_tensor(split["test_images"]), torch.as_tensor(split["test_labels"]))
    result = {"test_accuracy": acc, "test_balanced_accuracy": bal, "test_images": int(len(split["test_labels"])), **fit, **info}
    out = Path(run_dir) / "metrics.json"
    atomic_write(out, lambda p: p.write_text(json.dumps(result, indent=1) + "\n"))
    print(f"  {balance} {mode} seed {seed}: test accuracy {acc:.4f} (balanced {bal:.4f})", flush=True)
    return result


def digits_generated_grid(work: str, out: str, seed: int = 0, balance: str = "balanced", per_class: int = 4,
                          latent_size: int = 10, vae_epochs: int = 1000, zoom: int = 4) -> str:
    """A gray PNG of the digits study's generators: rows real training digits, plain-VAE prior samples, RHVAE
    prior samples and RHVAE manifold (HMC) samples; ``per_class`` of each class side by side, pixels ``zoom``
    times. Uses the generators the study cached in ``work`` for the draw (``balance``, ``seed``); raises
    ``FileNotFoundError`` when the study has not trained them yet. Writes ``out`` and returns its path."""
    split = reduced_digits_split(seed, balance=balance)
    tag = f"{balance}_seed{seed}_d{latent_size}_e{vae_epochs}"
    folders = {"rhvae": Path(work) / "rhvae" / tag, "vae": Path(work) / "vae" / tag}
    for kind, folder in folders.items():
        if not (folder / "class0.pt").is_file():
            raise FileNotFoundError(f"{folder}: no cached {kind.upper()}s; run the digits study (its {kind} arms) first.")
    rows: dict[str, list[np.ndarray]] = {"real": [], "VAE prior": [], "RHVAE prior": [], "RHVAE manifold": []}
    for c in range(NUM_DIGIT_CLASSES):
        rows["real"].append(split["train_images"][split["train_labels"] == c][:per_class, 0])
        vae, rhvae = _load_vae(folders["vae"] / f"class{c}.pt"), load_rhvae(folders["rhvae"] / f"class{c}.pt")
        rows["VAE prior"].append(generate_images(vae, per_class, "prior", seed=123 + c)[0][:, 0].numpy())
        rows["RHVAE prior"].append(generate_images(rhvae, per_class, "prior", seed=123 + c)[0][:, 0].numpy())
        rows["RHVAE manifold"].append(generate_images(rhvae, per_class, "hmc", seed=123 + c)[0][:, 0].numpy())
    flat = [(label, [im for images in tiles for im in images]) for label, tiles in rows.items()]
    return labelled_grid_png(flat, out, zoom=zoom, group_size=per_class)
