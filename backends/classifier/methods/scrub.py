"""SCRUB: teacher-student unlearning (spec section 7 "SCRUB"; section 3 baseline list).

The teacher is the frozen original model.  For each of the first ``max_epochs`` epochs a
*max-step* pass over D_f minimises ``-KL(teacher || student)`` (pushes the student away from the
teacher on the forget set); every epoch then runs a *min-step* pass over D_r minimising
``CE(student, y) + alpha * KL(teacher || student)``.  The epochs after ``max_epochs`` are
min-only.  Both KL terms use the distillation temperature ``kd_temperature`` (scaled by T^2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backends.classifier.methods.common import (
    EpochLog,
    Stepper,
    data_on,
    epoch_batches,
    kl_teacher_student,
    logits_of,
)
from backends.classifier.methods.configs import SCRUBConfig
from backends.classifier.setup import ClassifierSetup
from backends.common.method import Hooks, MethodResult, frozen_copy, model_device, prepare


def unlearn(
    model: nn.Module,
    setup: ClassifierSetup,
    cfg: SCRUBConfig,
    hooks: Hooks,
    *,
    seed: int,
) -> MethodResult:
    """Unlearn ``model`` in place with SCRUB (spec section 7)."""
    student = prepare(model, seed, train_all=True)
    data = data_on(setup, model_device(model))
    teacher = frozen_copy(model)
    # The teacher is frozen, so its logits are computed once.
    tf, tr = logits_of(teacher, data.xf), logits_of(teacher, data.xr)
    stepper = Stepper(student, cfg.optimizer, cfg.lr, hooks)
    t = cfg.kd_temperature
    max_log, min_log = EpochLog(hooks.on_log, "SCRUB max"), EpochLog(hooks.on_log, "SCRUB min")
    for epoch in range(stepper.start_epoch("SCRUB"), cfg.epochs):
        if epoch < cfg.max_epochs:
            for idx in epoch_batches(len(data.xf), cfg.batch_size, seed + 1, epoch, data.device):
                max_log.add(
                    stepper(lambda idx=idx: -kl_teacher_student(tf[idx], student(data.xf[idx]), t))
                )
            max_log.end(epoch, cfg.epochs, "-KL(D_f)")
        for idx in epoch_batches(len(data.xr), cfg.batch_size, seed, epoch, data.device):

            def min_loss(idx: torch.Tensor = idx) -> torch.Tensor:
                logits = student(data.xr[idx])
                return F.cross_entropy(logits, data.yr[idx]) + cfg.alpha * kl_teacher_student(
                    tr[idx], logits, t
                )

            min_log.add(stepper(min_loss))
        min_log.end(epoch, cfg.epochs, "CE + alpha KL(D_r)")
        stepper.end_epoch("SCRUB", epoch + 1, cfg.epochs)
    student.eval()
    return MethodResult()
