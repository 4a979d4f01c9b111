"""Mean-teacher weights: the teacher is an exponential moving average of the student (Tarvainen & Valpola, "Mean
teachers are better role models", NeurIPS 2017), updated after every training iteration by an ignite handler."""

from __future__ import annotations

import copy

import torch
from ignite.engine import Engine, Events
from torch import nn

from ..networks import unwrap_parallel

__all__ = ["MeanTeacherEMA", "ema_teacher"]


def ema_teacher(student: nn.Module) -> nn.Module:
    """A frozen copy of ``student`` (DataParallel / DDP unwrapped) in eval mode: the teacher at iteration 0."""
    teacher = copy.deepcopy(unwrap_parallel(student))
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


class MeanTeacherEMA:
    """After each iteration: ``teacher = a * teacher + (1 - a) * student`` for every parameter, buffers copied,
    with ``a = min(decay, 1 - 1 / (iteration + 1))`` (the teacher follows the student closely at the start).

    Args:
        teacher: the teacher network (e.g. :func:`ema_teacher` of the student); same architecture as the student.
        student: the trained network (may be wrapped in DataParallel / DDP); default: the engine's ``network``.
        decay: the EMA decay ``a`` in [0, 1).
    """

    def __init__(self, teacher: nn.Module, student: nn.Module | None = None, decay: float = 0.99) -> None:
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"MeanTeacherEMA: decay must be in [0, 1), got {decay!r}.")
        self.teacher, self.student, self.decay = teacher, student, float(decay)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._bind)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def _bind(self, engine: Engine) -> None:
        # on STARTED, not in attach: MONAI workflows attach their handlers before they set engine.network
        student = unwrap_parallel(self.student if self.student is not None else engine.network)  # type: ignore[attr-defined]
        t_names = [n for n, _ in self.teacher.named_parameters()]
        s_names = [n for n, _ in student.named_parameters()]
        if t_names != s_names:
            raise ValueError("MeanTeacherEMA: the teacher and the student have different parameters "
                             f"({len(t_names)} vs {len(s_names)}); the teacher must be a copy of the student.")
        self._student = student

    @torch.no_grad()
    def __call__(self, engine: Engine) -> None:
        a = min(self.decay, 1.0 - 1.0 / (engine.state.iteration + 1))
        for t, s in zip(self.teacher.parameters(), self._student.parameters()):
            t.mul_(a).add_(s.detach(), alpha=1.0 - a)
        for t, s in zip(self.teacher.buffers(), self._student.buffers()):
            t.copy_(s)
