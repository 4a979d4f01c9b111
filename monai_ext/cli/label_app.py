"""Serving a bundle with MONAI Label's ``monaibundle`` sample app, offline."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["prepare_app", "server_command", "label_app"]


def prepare_app(bundle: str | Path, apps_dir: str | Path, python: str = sys.executable) -> Path:
    """Copy MONAI Label's ``monaibundle`` sample app into ``apps_dir`` (once) and the bundle into its
    ``model/`` folder (``models/model.pt`` included). Returns the app folder."""
    from .catalog import is_segmentation_bundle, resolve_bundle, segmentation_bundles

    src = resolve_bundle(bundle)
    if not is_segmentation_bundle(src):
        servable = segmentation_bundles(src.parent)
        raise ValueError(
            f"bundle '{src.name}' ({src}) has no segmentation output in its network_data_format: MONAI Label's "
            f"monaibundle app serves bundles that return a label map for an input image (here: {', '.join(servable) or 'none'}). "
            f"Run its inference with: python -m monai.bundle run --config_file {src / 'configs' / 'inference.yaml'}"
        )
    app = Path(apps_dir) / "monaibundle"
    if not (app / "main.py").is_file():
        cmd = [python, "-m", "monailabel.main", "apps", "--download", "--name", "monaibundle", "--output", str(apps_dir)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    if not (src / "models" / "model.pt").is_file():
        raise FileNotFoundError(f"{src / 'models' / 'model.pt'}: not found; MONAI Label serves trained weights only.")
    dst = app / "model" / src.name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("eval", "logs", "data", "*.ts", "model_final.pt"))
    return app


def server_command(
    bundle: str, app: str | Path, studies: str | Path, host: str = "127.0.0.1", port: int = 8000, python: str = sys.executable
) -> list[str]:
    """The ``monailabel start_server`` command that serves ``bundle`` from the local app folder, with
    nothing downloaded (``zoo_source github`` makes it use the local model folder, ``sam2 false``
    avoids a weight download)."""
    name = Path(bundle).name
    return [
        python, "-m", "monailabel.main", "start_server",
        "--app", str(app), "--studies", str(studies),
        "--conf", "models", name, "--conf", "zoo_source", "github", "--conf", "sam2", "false",
        "--conf", "skip_trainers", "true", "--host", host, "--port", str(port),
    ]


def label_app(
    bundle: str, studies: str, apps_dir: str = "monailabel_apps", port: int = 8000, python: str = sys.executable, run: bool = False
) -> str:
    """Prepare the app folder and print (or, with ``run``, execute) the MONAI Label server command.

    ``python`` is the interpreter of the environment where ``monailabel`` (0.8.5: monai 1.5, pydicom < 3)
    and ``monai_ext`` are installed; see the README for that environment.
    """
    app = prepare_app(bundle, apps_dir, python=python)
    cmd = server_command(bundle, app, studies, port=port, python=python)
    line = shlex.join(cmd)
    print(line)
    if run:
        subprocess.run(cmd, check=True)
    return line
