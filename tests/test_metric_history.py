"""MetricHistorySaver: one CSV row per validation round, with the trainer's epoch, written atomically."""

from __future__ import annotations

import csv

import pytest
import torch
from ignite.engine import Events
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import MeanDice, ValidationHandler, from_engine
from monai.transforms import Activationsd, AsDiscreted, Compose

from monai_ext.handlers import MetricHistorySaver, read_metric_history


def _batch():
    return {"image": torch.rand(1, 1, 4, 4, 4), "label": torch.randint(0, 2, (1, 1, 4, 4, 4)).float()}


def _engines(history: MetricHistorySaver, max_epochs: int, interval: int, exec_at_start: bool = False, extra=None):
    torch.manual_seed(0)
    net = torch.nn.Conv3d(1, 2, 1)
    evaluator = SupervisedEvaluator(
        device="cpu", val_data_loader=[_batch()], network=net,
        postprocessing=Compose([Activationsd("pred", softmax=True),
                                AsDiscreted(["pred", "label"], argmax=[True, False], to_onehot=2)]),
        key_val_metric={"val_mean_dice": MeanDice(include_background=False, output_transform=from_engine(["pred", "label"]))},
        val_handlers=[history],
    )
    for name, fn in (extra or {}).items():  # extra "metrics" set by a handler (e.g. non-scalar ones)
        evaluator.add_event_handler(Events.EPOCH_COMPLETED, lambda e, n=name, f=fn: e.state.metrics.__setitem__(n, f(e)))
    trainer = SupervisedTrainer(
        device="cpu", max_epochs=max_epochs, train_data_loader=[_batch()], network=net,
        optimizer=torch.optim.SGD(net.parameters(), 0.1), loss_function=lambda p, y: p.mean(),
        train_handlers=[ValidationHandler(interval, evaluator, exec_at_start=exec_at_start)],
    )
    return trainer, evaluator


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_rows_carry_the_trainer_epoch_of_each_validation_round(tmp_path):
    history = MetricHistorySaver(tmp_path, filename="h.csv")
    trainer, evaluator = _engines(history, max_epochs=6, interval=2, exec_at_start=True)
    seen = []
    evaluator.add_event_handler(Events.EPOCH_COMPLETED, lambda e: seen.append(e.state.epoch))
    trainer.run()
    rows = _rows(tmp_path / "h.csv")
    # ValidationHandler runs the evaluator with the trainer's epoch: 0 before training, then 2, 4, 6
    assert [int(r["epoch"]) for r in rows] == [0, 2, 4, 6] == seen
    assert list(rows[0]) == ["epoch", "val_mean_dice"]
    assert all(0.0 <= float(r["val_mean_dice"]) <= 1.0 for r in rows)
    assert [p.name for p in tmp_path.iterdir()] == ["h.csv"]  # no temporary file left behind
    evaluator.run()  # an evaluator run on its own counts as epoch 1
    assert int(_rows(tmp_path / "h.csv")[-1]["epoch"]) == 1


def test_scalar_metrics_only_in_first_seen_order_and_an_old_file_is_replaced(tmp_path):
    (tmp_path / "metric_history.csv").write_text("epoch,old\n99,1\n")
    extra = {"a_scalar_tensor": lambda e: torch.tensor(0.25), "per_class": lambda e: torch.tensor([0.1, 0.2]),
             "as_dict": lambda e: {"x": 1.0}, "count": lambda e: 3}
    trainer, _ = _engines(MetricHistorySaver(str(tmp_path)), max_epochs=2, interval=1, extra=extra)
    trainer.run()
    rows = _rows(tmp_path / "metric_history.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert list(rows[0]) == ["epoch", "val_mean_dice", "a_scalar_tensor", "count"]
    assert float(rows[1]["a_scalar_tensor"]) == 0.25 and rows[1]["count"] == "3.0"


def test_metric_names_select_and_order_the_columns(tmp_path):
    extra = {"other": lambda e: 0.5}
    trainer, _ = _engines(MetricHistorySaver(tmp_path, metric_names=["other", "missing"], delimiter=";"),
                          max_epochs=1, interval=1, extra=extra)
    trainer.run()
    text = (tmp_path / "metric_history.csv").read_text().splitlines()
    assert text == ["epoch;other;missing", "1;0.5;"]


def test_filename_must_not_name_a_folder(tmp_path):
    with pytest.raises(ValueError, match="filename"):
        MetricHistorySaver(tmp_path, filename="sub/h.csv")


def test_the_reader_returns_what_the_saver_wrote(tmp_path):
    history = MetricHistorySaver(tmp_path, filename="h.csv", epoch_column="round")
    trainer, _ = _engines(history, max_epochs=4, interval=2)
    trainer.run()
    epochs, values = read_metric_history(tmp_path / "h.csv", epoch_column="round")
    rows = _rows(tmp_path / "h.csv")
    assert epochs.tolist() == [2, 4] == [int(r["round"]) for r in rows]
    assert values.tolist() == [float(r["val_mean_dice"]) for r in rows]
    with pytest.raises(ValueError, match="expected columns 'epoch' and 'val_mean_dice'"):
        read_metric_history(tmp_path / "h.csv")  # the default epoch column is not in this file
    with pytest.raises(FileNotFoundError, match="missing.csv: no metric history"):
        read_metric_history(tmp_path / "missing.csv")
