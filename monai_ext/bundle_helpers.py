"""Small helpers shared by the bundles and the command line."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["bundle_config_parser", "locate_bundle_root", "config_error", "config_flag", "check_best_model_schedule", "shared_data_dir", "run_bundle", "rank0_first", "load_weights", "end_distributed"]





def locate_bundle_root(name: str) -> str:
    """Default ``bundle_root`` of a bundle config, so that it runs from where users start it.

    - inside the bundle folder (``configs/metadata.json`` here, the Model Zoo way): ``"."``;
    - at the top of this repository (``bundles/<name>/configs`` below the working directory):
      that folder, so ``python -m monai.bundle run --config_file bundles/<name>/configs/train.yaml``
      writes into the bundle and not into the repository root;
    - otherwise ``"."``. An explicit ``--bundle_root`` always wins (MONAI Label passes one).
    """
    here = Path.cwd()
    if (here / "configs" / "metadata.json").is_file():
        return "."
    candidate = here / "bundles" / name
    if (candidate / "configs").is_dir():
        return str(candidate)
    return "."


def config_error(message: str) -> None:
    """Raise ``ValueError(message)``: lets a bundle config reject a bad setting with a clear message."""
    raise ValueError(message)


def config_flag(value, name: str) -> bool:
    """A config switch as a bool. The bundle runner passes ``--key false`` on as the string ``"false"`` (only
    ``False`` becomes a bool), which a plain ``if`` would read as true; accepts bools, 0 / 1 and
    true / false / yes / no in any case, and names ``name`` on anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    raise ValueError(f"{name} must be true or false, got {value!r}.")


def check_best_model_schedule(max_epochs: int, val_interval: int) -> None:
    """For a config that keeps the best validation model as ``models/model.pt``: ``ValueError`` when no validation
    would run (``val_interval`` > ``max_epochs``, or either below 1), since then that file is never written."""
    for name, v in (("max_epochs", max_epochs), ("val_interval", val_interval)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}.")
    if val_interval > max_epochs:
        raise ValueError(f"val_interval={val_interval} > max_epochs={max_epochs}: no validation would run, so no best "
                         "validation model (models/model.pt) would be written; lower val_interval.")


def shared_data_dir() -> Path | None:
    """The project's sample data: ``$MONAI_EXT_SHARED_DATA`` when set, else ``../shared/data`` beside the
    repository; ``None`` when that folder does not exist."""
    env = os.environ.get("MONAI_EXT_SHARED_DATA")
    candidate = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return candidate if candidate.is_dir() else None


def run_bundle(bundle_dir: str | Path, configs: list[str] | str, **overrides) -> None:
    """Run ``configs`` (file names inside ``<bundle_dir>/configs``) through MONAI's bundle runner, as
    ``python -m monai.bundle run`` does, with the bundle's metadata and logging config.

    ``bundle_root`` defaults to ``bundle_dir``; every other keyword overrides a config key."""
    from monai.bundle import run

    bundle_dir = Path(bundle_dir)
    names = [configs] if isinstance(configs, str) else list(configs)
    config_file = [str(bundle_dir / "configs" / c) for c in names]
    overrides.setdefault("bundle_root", str(bundle_dir))
    run(
        config_file=config_file if len(config_file) > 1 else config_file[0],
        meta_file=str(bundle_dir / "configs" / "metadata.json"),
        logging_file=str(bundle_dir / "configs" / "logging.conf"),
        **overrides,
    )


def bundle_config_parser(config_file: str | Path, overrides: dict | None = None, device: str = "cpu"):
    """A bundle config file read into MONAI's ``ConfigParser`` for use from code: ``bundle_root`` set to the bundle
    folder (the parent of ``configs/``), ``overrides`` applied, ``device`` set (``"cpu"`` by default)."""
    from monai.bundle import ConfigParser

    cfg = ConfigParser()
    cfg.read_config(str(config_file))
    cfg["bundle_root"] = str(Path(config_file).resolve().parents[1])
    for k, v in (overrides or {}).items():
        cfg[k] = v
    cfg["device"] = f"$torch.device('{device}')"
    return cfg


def rank0_first(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` on rank 0 first, then on the other ranks of an initialised process group.

    For steps that write shared files, such as generating the synthetic data set in an empty
    ``dataset_dir``: with ``torchrun`` every rank would otherwise write the same files at once. Without
    a process group it just calls ``fn``."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return fn(*args, **kwargs)
    if dist.get_rank() != 0:
        dist.barrier()
    try:
        return fn(*args, **kwargs)
    finally:
        if dist.get_rank() == 0:
            dist.barrier()


def load_weights(network, path: str | os.PathLike):
    """Load the weights file ``path`` into ``network`` (strict) and return the network, for configs that start
    from earlier weights. Accepts a plain state dict or one wrapped as ``{"model": state_dict}`` (what a MONAI
    ``CheckpointSaver`` with more than one object writes); a missing file or non-matching weights raise an error
    that names the file."""
    import torch

    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"weights file {p} not found (pretrained_ckpt).")
    state = torch.load(str(p), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and set(state) == {"model"} and isinstance(state["model"], dict):
        state = state["model"]
    try:
        network.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise ValueError(f"{p}: these weights do not fit the network: {str(e).splitlines()[0][:300]}") from e
    return network


def end_distributed(*networks) -> None:
    """Leave distributed training cleanly (a multi-GPU config's ``finalize``), on every rank: wait for all ranks (so
    rank 0's last writes are done), destroy the process group, and drop what the ``DistributedDataParallel``
    wrappers among ``networks`` keep of it (reducer, logger, process group), collected while the interpreter is
    still alive.

    Why the last step: a wrapper that is still alive when the interpreter exits (the bundle's config parser holds
    it) releases the gloo process group during interpreter finalisation, and a rank then aborts now and then with
    "terminate called without an active exception" (a 2-process CPU job with one DDP model: 8 of 40 runs; with the
    wrappers released: 0 of 30). A released wrapper cannot train any more. Without an initialised process group
    only the release is done."""
    import gc

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    for net in networks:
        if isinstance(net, DistributedDataParallel):
            for name in ("reducer", "logger", "process_group"):
                if name in net.__dict__:
                    delattr(net, name)
    gc.collect()
