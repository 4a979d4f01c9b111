"""An active-learning loop around any bundle's training config: label a seed set, train, score the unlabelled pool
with the trained network, query the next images, train again, for a budget schedule (Chong et al., "Evaluation of
active learning techniques on medical image classification with unbalanced data", DGM4MICCAI/DALI 2021).

The bundle needs no changes: the loop overrides one config key with the labelled items of each cycle (e.g.
``training_list`` or ``train#dataset#data``), points the bundle's output keys at the cycle's folder
(``run_overrides`` with ``{cycle_dir}``), and afterwards builds the bundle's network (``network_key``) and
pre-processing (``transform_key``) from the same configs to predict the pool. Labels of the pool items stand for the
oracle (the annotator): their class histogram of each query is recorded.

Outputs in ``work_dir``: ``cycle_<k>/`` (what the bundle writes there) and ``cycles.json`` (per cycle: labelled count,
queried indices and their class histogram, the metrics read from the evaluation; ``summary``: queried class shares
over all cycles and each metric's mean over the cycles), rewritten after every cycle.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..bundle_helpers import load_weights, run_bundle
from ..io import atomic_write, read_metrics_rows
from ..metrics.acquisition import ACQUISITION_SCORES, acquisition_score
from .active_queries import make_query

__all__ = ["ActiveLearningLoop", "budget_schedule", "pool_predictions"]


def budget_schedule(pool_size: int, budget: Sequence[float], total: int | None = None) -> list[int]:
    """Cumulative labelled counts of each cycle: ``budget`` entries <= 1 are fractions of ``total`` (the whole data
    set; default ``pool_size``), larger ones counts. Raises ``ValueError`` for an empty pool or schedule, a count
    that does not grow, or a budget larger than the pool."""
    if pool_size < 1:
        raise ValueError("the unlabelled pool is empty: no images to label.")
    if not budget:
        raise ValueError("the budget schedule is empty; expected e.g. [0.1, 0.2, 0.3, 0.4].")
    base = pool_size if total is None else int(total)
    counts = [int(round(b * base)) if float(b) <= 1.0 else int(b) for b in budget]
    if counts[0] < 1 or any(b <= a for a, b in zip(counts, counts[1:])):
        raise ValueError(f"the budget schedule must grow from at least one image: {list(budget)} -> {counts} images.")
    if counts[-1] > pool_size:
        raise ValueError(f"budget of {counts[-1]} images (schedule {list(budget)}) is larger than the unlabelled "
                         f"pool of {pool_size} images.")
    return counts


@torch.no_grad()
def pool_predictions(network: torch.nn.Module, items: Sequence[Mapping], transform: Any, input_key: str = "image",
                     batch_size: int = 64, device: str | torch.device = "cpu",
                     embedding_layer: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and embeddings of ``items`` (after ``transform``) under ``network`` in eval mode.

    Probabilities: softmax over the output channels, or ``[1 - p, p]`` of a sigmoid for a single output channel;
    shape (N, C[, spatial...]). Embeddings (N, D): the input of ``embedding_layer`` (a module name of the network),
    by default of its last ``nn.Linear`` (a classifier's penultimate features); a network without one and no
    ``embedding_layer`` gets the spatially averaged logits.
    """
    network = network.to(device).eval()
    modules = dict(network.named_modules())
    if embedding_layer is None:
        linear = [name for name, m in modules.items() if isinstance(m, torch.nn.Linear)]
        embedding_layer = linear[-1] if linear else None
    elif embedding_layer not in modules:
        raise ValueError(f"embedding_layer {embedding_layer!r} is not a module of the network; modules: "
                         f"{[n for n in modules if n][:30]}")
    captured: list[torch.Tensor] = []
    hook = None
    if embedding_layer is not None:
        def keep_input(_module, args):
            x = args[0]
            captured.append((x.flatten(2).mean(2) if x.ndim > 2 and not isinstance(modules[embedding_layer], torch.nn.Linear)
                             else x.flatten(1)).float().cpu())
        hook = modules[embedding_layer].register_forward_pre_hook(keep_input)
    probs, embeds = [], []
    try:
        for start in range(0, len(items), batch_size):
            batch = [transform(dict(it)) for it in items[start:start + batch_size]]
            x = torch.stack([torch.as_tensor(b[input_key]) for b in batch]).float().to(device)
            logits = network(x)
            logits = logits[0] if isinstance(logits, (tuple, list)) else logits
            logits = logits.float()
            p = torch.cat([1 - torch.sigmoid(logits), torch.sigmoid(logits)], 1) if logits.shape[1] == 1 \
                else torch.softmax(logits, 1)
            probs.append(p.cpu())
            if hook is None:
                embeds.append(logits.flatten(2).mean(2).cpu() if logits.ndim > 2 else logits.cpu())
            else:
                embeds.append(captured.pop())
    finally:
        if hook is not None:
            hook.remove()
    return torch.cat(probs).numpy(), torch.cat(embeds).numpy()


def _substitute(value: Any, cycle_dir: str) -> Any:
    if isinstance(value, str):
        return value.replace("{cycle_dir}", cycle_dir)
    if isinstance(value, list):
        return [_substitute(v, cycle_dir) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, cycle_dir) for k, v in value.items()}
    return value


class ActiveLearningLoop:
    """Pool-based active learning through a bundle's own configs.

    Args:
        bundle_dir: the bundle folder.
        train_configs: its config files (names in ``configs/``) that train a model into the cycle folder.
        pool: the items that may be labelled (each with the label the oracle reveals, ``label_key``).
        budget: cumulative labelled amount per cycle (:func:`budget_schedule`; fractions of ``total`` or counts);
            the first entry is the random seed set.
        work_dir: the loop's folder.
        strategy: a query strategy name (:data:`monai_ext.engines.ACTIVE_QUERIES`), ``strategy_kwargs`` its options.
        score: an acquisition score name (:data:`monai_ext.metrics.ACQUISITION_SCORES`).
        seed: seeds the seed set, the random strategies and every training run (``seed_key``).
        list_key: the config key that holds the training items.
        datalist: for bundles whose training items sit inside a dataset-list dict that their config computes (e.g.
            ``datalist: "$...datalist(...)"`` read as ``@datalist['training']``): that dict; ``list_key`` (e.g.
            ``datalist``) is then overridden by a copy whose ``datalist_field`` holds the labelled items.
        run_overrides: config overrides of every training and evaluation run; ``{cycle_dir}`` in strings is
            replaced by the cycle's folder (point ``ckpt_dir``, ``output_dir``, ``log_dir`` there).
        eval_configs: config files that evaluate the cycle's model (``None``: no evaluation); ``metrics_file`` (in
            the cycle folder) is read afterwards (MONAI ``MetricsSaver`` rows ``name,value``).
        network_key, transform_key: config ids of the network definition and of the pre-processing for scoring
            (a ``Compose`` or a list of transforms).
        checkpoint: the trained weights file name in the cycle folder.
        input_key, label_key: item keys of the network input and of the oracle's label.
        embedding_layer, score_reduction, batch_size: see :func:`pool_predictions` and the score functions.
        total: the data set size that fractional budgets refer to (default: the pool's).
        seed_key: the config key of the training seed (``None``: not set).
    """

    def __init__(
        self,
        bundle_dir: str | Path,
        train_configs: Sequence[str],
        pool: Sequence[Mapping[str, Any]],
        budget: Sequence[float],
        work_dir: str | Path,
        strategy: str = "random",
        score: str = "margin",
        seed: int = 0,
        list_key: str = "training_list",
        datalist: Mapping[str, Any] | None = None,
        datalist_field: str = "training",
        run_overrides: Mapping[str, Any] | None = None,
        eval_configs: Sequence[str] | None = None,
        metrics_file: str = "metrics.csv",
        network_key: str = "network_def",
        transform_key: str = "preprocessing",
        checkpoint: str = "model.pt",
        input_key: str = "image",
        label_key: str = "label",
        embedding_layer: str | None = None,
        score_reduction: str = "mean",
        batch_size: int = 64,
        total: int | None = None,
        strategy_kwargs: Mapping[str, Any] | None = None,
        seed_key: str | None = "seed",
    ) -> None:
        if score not in ACQUISITION_SCORES:
            raise ValueError(f"unknown acquisition score {score!r}; expected one of {ACQUISITION_SCORES}.")
        self.pool = [dict(it) for it in pool]
        self.counts = budget_schedule(len(self.pool), budget, total)
        self.query = make_query(strategy, **dict(strategy_kwargs or {}))
        self.bundle_dir, self.work_dir = Path(bundle_dir), Path(work_dir)
        self.train_configs, self.eval_configs = list(train_configs), list(eval_configs or [])
        self.strategy, self.score, self.seed = strategy, score, int(seed)
        self.list_key, self.run_overrides = list_key, dict(run_overrides or {})
        self.datalist, self.datalist_field = (None if datalist is None else dict(datalist)), datalist_field
        self.metrics_file, self.network_key, self.transform_key = metrics_file, network_key, transform_key
        self.checkpoint, self.input_key, self.label_key = checkpoint, input_key, label_key
        self.embedding_layer, self.score_reduction, self.batch_size = embedding_layer, score_reduction, batch_size
        self.seed_key = seed_key

    def _overrides(self, cycle_dir: Path, labelled: np.ndarray) -> dict[str, Any]:
        out = _substitute(self.run_overrides, str(cycle_dir))
        items = [self.pool[i] for i in np.flatnonzero(labelled)]
        out[self.list_key] = items if self.datalist is None else {**self.datalist, self.datalist_field: items}
        if self.seed_key:
            out[self.seed_key] = self.seed
        return out

    def _predict(self, overrides: Mapping[str, Any], cycle_dir: Path, items: Sequence[Mapping]) -> tuple:
        from monai.bundle import ConfigParser
        from monai.transforms import Compose

        parser = ConfigParser()
        parser.read_config([str(self.bundle_dir / "configs" / c) for c in self.train_configs])
        parser["bundle_root"] = str(self.bundle_dir)
        for k, v in overrides.items():
            parser[k] = v
        network = load_weights(parser.get_parsed_content(self.network_key), cycle_dir / self.checkpoint)
        transform = parser.get_parsed_content(self.transform_key)
        transform = Compose(transform) if isinstance(transform, (list, tuple)) else transform
        device = "cuda" if torch.cuda.is_available() else "cpu"
        return pool_predictions(network, items, transform, self.input_key, self.batch_size, device,
                                self.embedding_layer)

    def _histogram(self, indices: np.ndarray) -> dict[str, int]:
        labels = [self.pool[i].get(self.label_key) for i in indices]
        if not all(isinstance(v, (int, np.integer)) for v in labels):
            return {}
        return {str(k): int(v) for k, v in sorted(Counter(int(v) for v in labels).items())}

    @staticmethod
    def _summary(cycles: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Queried class counts and shares over all cycles, and each metric's mean over the cycles (the area under
        the learning curve, per cycle)."""
        total: Counter = Counter()
        for c in cycles:
            total.update({k: int(v) for k, v in c.get("queried_histogram", {}).items()})
        n = sum(total.values())
        names = sorted({m for c in cycles for m in c.get("metrics", {})})
        return {"queried_histogram": dict(sorted(total.items())),
                "queried_share": {k: v / n for k, v in sorted(total.items())} if n else {},
                "mean_metrics": {m: float(np.mean([c["metrics"][m] for c in cycles if m in c.get("metrics", {})]))
                                 for m in names}}

    def run(self) -> dict[str, Any]:
        """Run every cycle; returns (and writes to ``work_dir/cycles.json``) the record."""
        rng = np.random.default_rng(self.seed)
        labelled = np.zeros(len(self.pool), bool)
        labelled[rng.choice(len(self.pool), size=self.counts[0], replace=False)] = True
        record: dict[str, Any] = {"strategy": self.strategy, "score": self.score, "seed": self.seed,
                                  "pool_size": len(self.pool), "schedule": self.counts,
                                  "pool_histogram": self._histogram(np.arange(len(self.pool))),
                                  "seed_histogram": self._histogram(np.flatnonzero(labelled)), "cycles": []}
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for k, count in enumerate(self.counts):
            t0 = time.perf_counter()
            cycle_dir = self.work_dir / f"cycle_{k}"
            cycle_dir.mkdir(exist_ok=True)
            overrides = self._overrides(cycle_dir, labelled)
            print(f"active learning ({self.strategy}, {self.score}, seed {self.seed}): cycle {k + 1}/{len(self.counts)}, "
                  f"{int(labelled.sum())} labelled images", flush=True)
            run_bundle(self.bundle_dir, self.train_configs, **overrides)
            cycle: dict[str, Any] = {"cycle": k, "labelled": int(labelled.sum()),
                                     "labelled_histogram": self._histogram(np.flatnonzero(labelled))}
            if self.eval_configs:
                run_bundle(self.bundle_dir, self.eval_configs, **overrides)
                cycle["metrics"] = {n: float(v) for n, v in read_metrics_rows(cycle_dir / self.metrics_file).items()}
            if k + 1 < len(self.counts):
                free = np.flatnonzero(~labelled)
                # one pass over the images the strategy reads: the whole pool when it uses embeddings, else the free
                scored = np.arange(len(self.pool)) if self.query.uses_embeddings else free
                probs, emb = self._predict(overrides, cycle_dir, [self.pool[i] for i in scored])
                in_free = np.isin(scored, free)
                scores = np.zeros(len(self.pool))
                scores[free] = acquisition_score(self.score, probs[in_free], emb[in_free], self.score_reduction)
                embeddings = emb if self.query.uses_embeddings else None
                chosen = self.query(scores, embeddings, labelled, self.counts[k + 1] - count, rng)
                labelled[chosen] = True
                cycle.update({"queried": [int(i) for i in chosen], "queried_histogram": self._histogram(chosen),
                              "mean_score_queried": float(scores[chosen].mean()),
                              "mean_score_pool": float(scores[free].mean())})
            cycle["seconds"] = round(time.perf_counter() - t0, 1)
            record["cycles"].append(cycle)
            record["summary"] = self._summary(record["cycles"])
            atomic_write(self.work_dir / "cycles.json", lambda p: p.write_text(json.dumps(record, indent=1)))
        return record

