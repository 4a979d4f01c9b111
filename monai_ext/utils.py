"""Small helpers shared by the bundles and the command line."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Callable


def require_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` if it is an existing file, else raise ``FileNotFoundError`` saying what it should hold."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: not found; expected {what}.")
    return p


def _temporary_sibling(path: Path, suffix: str, make: Callable[[Path], None]) -> Path:
    """A new, unique hidden sibling of ``path`` created by ``make`` (which must fail if it exists). ``make`` gets
    the default mode (0o666 / 0o777), so the umask applies as for any new file; ``mkstemp`` / ``mkdtemp`` would
    give 0600 / 0700, which another user, e.g. a MONAI Label server, could not read."""
    for _ in range(100):
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{suffix}")
        try:
            make(candidate)
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name next to {path}")


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path`` (same extension, ``.nii.gz`` included, so writers
    that go by it work), then rename it to ``path``: no reader sees a half-written file, and a failure leaves
    nothing behind. The file gets the permissions of a normally created one. Returns ``path``."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix
    tmp = _temporary_sibling(path, suffix, lambda p: os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)))
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_directory(folder: str | Path, fill: Callable[[Path], object]) -> bool:
    """Call ``fill(tmp)`` on a temporary sibling folder, then rename it to ``folder``. If ``folder`` appeared in
    the meantime (a concurrent writer finished first), its content is kept and ours dropped; returns whether
    ours was installed. The folder gets the permissions of a normally created one."""
    folder = Path(folder).expanduser()
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(folder, "", lambda p: p.mkdir())
    try:
        fill(tmp)
        if folder.exists():
            return False
        os.replace(tmp, folder)
        return True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


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
