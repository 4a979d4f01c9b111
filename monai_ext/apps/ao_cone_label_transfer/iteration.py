"""The iterative label transfer as a chain of bundle runs (Liu, Aguilera, Liu & Tam, DGM4MICCAI/DALI 2021, Fig. 1):
round 0 trains the segmenter on the labelled visits; each later round labels the visit pairs with the previous
round's model (configs/transfer.yaml), fine-tunes that model on the labelled visits plus the labelled pairs
(configs/train.yaml) and scores it on the test visits (configs/evaluate.yaml)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...bundle_helpers import run_bundle
from ...io import PathLike, atomic_write, read_metrics_rows
from .transfer_round import TRANSFER_MODES

__all__ = ["CHAIN_MODES", "iterate_label_transfer"]

#: the label-transfer modes of a round, and ``none``: no pairs at all (the rounds only train longer: a control)
CHAIN_MODES = (*TRANSFER_MODES, "none")


def iterate_label_transfer(bundle: PathLike, work_dir: PathLike, rounds: int = 5, mode: str = "transfer",
                           baseline_epochs: int = 60, round_epochs: int = 20, overrides: Mapping[str, Any] | None = None,
                           final_ckpt: str | None = None, initial_ckpt: str = "") -> list[dict[str, Any]]:
    """Run round 0 (``baseline_epochs`` on the labelled visits) and ``rounds`` label-transfer rounds (``mode``, one of
    :data:`CHAIN_MODES`; ``round_epochs`` each, starting from the previous round's model) in
    ``work_dir/round_<k>/`` (``model_final.pt``: the round's last-epoch model, which the next round starts from and
    which is scored; ``pseudo_labels/``: the transferred labels; ``eval/metrics.csv``: the test scores when the data
    set has test visits). The last epoch and not the best validation model: the validation visits are clean
    labelled ones, and picking on them would undo what the rounds teach about the noisy visits.

    Writes ``work_dir/rounds.csv`` (a row per round: the test scores and the transfer's summary; the same in
    ``rounds.json`` by ``round_<k>``) and, with ``final_ckpt``, copies the last round's model there.

    ``initial_ckpt``: weights round 0 starts from ("" : from scratch), e.g. the bundle's committed model to adapt it to
    new data.

    Resumable: a round whose files exist is not run again (``model_final.pt`` marks a finished training).
    ``overrides``: config keys passed to every run (e.g. ``dataset_dir``, ``seed``, ``device``).
    """
    if mode not in CHAIN_MODES:
        raise ValueError(f"mode must be one of {CHAIN_MODES}, got {mode!r}.")
    for name, v in (("rounds", rounds), ("baseline_epochs", baseline_epochs), ("round_epochs", round_epochs)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "rounds" else 1):
            raise ValueError(f"{name} must be a {'non-negative' if name == 'rounds' else 'positive'} integer, got {v!r}.")
    ov = dict(overrides or {})
    work = Path(work_dir).expanduser()
    rows: list[dict[str, Any]] = []
    for k in range(rounds + 1):
        rk = work / f"round_{k}"
        prev = work / f"round_{k - 1}" / "model_final.pt"
        pseudo = rk / "pseudo_labels"
        if k > 0 and mode != "none" and not (pseudo / "round.json").is_file():
            run_bundle(bundle, ["train.yaml", "transfer.yaml"],
                       **{**ov, "ckpt_path": str(prev), "round_dir": str(pseudo), "transfer_mode": mode})
        if not (rk / "model_final.pt").is_file():
            run_bundle(bundle, ["train.yaml"], **{
                **ov, "ckpt_dir": str(rk), "output_dir": str(rk), "log_dir": str(rk / "logs"),
                "max_epochs": baseline_epochs if k == 0 else round_epochs, "init_ckpt": str(prev) if k > 0 else initial_ckpt,
                "pseudo_label_dir": str(pseudo) if k > 0 and mode != "none" else ""})
        if not (rk / "eval" / "metrics.csv").is_file():
            run_bundle(bundle, ["train.yaml", "evaluate.yaml"],
                       **{**ov, "ckpt_path": str(rk / "model_final.pt"), "output_dir": str(rk / "eval")})
        row: dict[str, Any] = {"round": k}
        if (rk / "eval" / "metrics.csv").is_file():
            row.update({key: float(v) for key, v in read_metrics_rows(rk / "eval" / "metrics.csv").items()})
        if (pseudo / "round.json").is_file():
            summary = json.loads((pseudo / "round.json").read_text())["summary"]
            row.update({f"transfer_{key}": v for key, v in summary.items() if isinstance(v, (int, float))})
        rows.append(row)
        print(f"label transfer round {k}/{rounds} ({mode}): "
              + ", ".join(f"{key} {row[key]:.4f}" for key in ("test_dice", "test_area_overlap", "test_dice_noisy")
                          if key in row), flush=True)
    fields = list(dict.fromkeys(key for r in rows for key in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(work / "rounds.csv", lambda p: p.write_text(buf.getvalue()))
    atomic_write(work / "rounds.json",
                 lambda p: p.write_text(json.dumps({f"round_{r['round']}": r for r in rows}, indent=1) + "\n"))
    if final_ckpt:
        last = work / f"round_{rounds}" / "model_final.pt"
        atomic_write(Path(final_ckpt), lambda p: shutil.copyfile(last, p))
        print(f"label transfer: the round-{rounds} model is {final_ckpt}", flush=True)
    return rows
