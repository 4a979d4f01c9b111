"""Cost of a MAML meta-update (bundles/metahistoseg, ``monai_ext.engines.MAMLTrainer``) against a plain training
step on the same tiles: the plain-MONAI baseline is MONAI's ``SupervisedTrainer`` with the same network (MONAI
``BasicUNet`` with one 1x1 head per task, ``monai_ext.networks.MultiHeadSegNet``) and cross-entropy on a batch of
``episodes x (support + query)`` tiles, in the same run. MAML adapts on the support tiles (one inner SGD step per
episode, first order or second order) and steps on the query loss of the adapted weights.

Run: ``python benchmarks/bench_maml_step.py [--steps 10] [--episodes 2] [--support 4] [--query 4] [--size 64]
[--device cuda]``. Random RGB tiles (the cost does not depend on the content). Prints seconds per step of each,
the ratios MAML / plain step, and on CUDA the peak memory of each.
"""

from __future__ import annotations

import argparse
import time

import torch
from monai.engines import SupervisedTrainer
from monai.losses import DiceCELoss

from monai_ext.engines import MAMLTrainer
from monai_ext.networks import MultiHeadSegNet


def _time(make, steps: int, device: str) -> tuple[float, float]:
    make(2).run()   # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    trainer = make(steps)
    t = time.perf_counter()
    trainer.run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if device.startswith("cuda") else float("nan")
    return (time.perf_counter() - t) / steps, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--support", type=int, default=4)
    ap.add_argument("--query", type=int, default=4)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    n = args.episodes * (args.support + args.query)
    batch = {"image": torch.rand(n, 3, args.size, args.size), "label": torch.randint(0, 2, (n, 1, args.size, args.size)).float(),
             "task": torch.arange(n) // (args.support + args.query) % 2}
    loss = DiceCELoss(to_onehot_y=True, softmax=True, lambda_dice=0.0)

    def network():
        torch.manual_seed(0)
        return MultiHeadSegNet(2, 3, [2, 2]).to(args.device)

    def plain(steps):
        net = network()
        return SupervisedTrainer(device=args.device, max_epochs=1, epoch_length=steps, train_data_loader=[batch] * steps,
                                 network=net, optimizer=torch.optim.Adam(net.parameters(), 1e-3), loss_function=loss,
                                 prepare_batch=lambda b, d, nb, **k: (b["image"].to(d), b["label"].to(d), (),
                                                                      {"task_index": b["task"].to(d)}),
                                 decollate=False)

    def maml(first_order):
        def make(steps):
            net = network()
            return MAMLTrainer(device=args.device, max_epochs=1, epoch_length=steps, train_data_loader=[batch] * steps,
                               network=net, optimizer=torch.optim.Adam(net.parameters(), 1e-3), loss_function=loss,
                               episodes_per_batch=args.episodes, support=args.support, first_order=first_order,
                               decollate=False)
        return make

    t_plain, m_plain = _time(plain, args.steps, args.device)
    t_fo, m_fo = _time(maml(True), args.steps, args.device)
    t_so, m_so = _time(maml(False), args.steps, args.device)
    mem = lambda m: f", peak {m:.0f} MiB" if m == m else ""  # noqa: E731
    print(f"{args.episodes} episodes x ({args.support} support + {args.query} query) = {n} tiles of {args.size} x "
          f"{args.size} on {args.device}, {torch.get_num_threads()} threads, {args.steps} steps")
    print(f"  MONAI SupervisedTrainer step:  {t_plain:.3f} s/step{mem(m_plain)}")
    print(f"  MAML first order:              {t_fo:.3f} s/step{mem(m_fo)}")
    print(f"  MAML second order:             {t_so:.3f} s/step{mem(m_so)}")
    print(f"  ratio first-order MAML / plain step: {t_fo / t_plain:.2f}")
    print(f"  ratio second-order MAML / plain step: {t_so / t_plain:.2f}")


if __name__ == "__main__":
    main()
