"""Train a CIFAR-10 model for conversion (never run in CI; the results ship in spikec/pretrained).

    python benchmarks/train_cifar10.py --model resnet20 --kind qcfs --epochs 30
    python benchmarks/train_cifar10.py --model vgg_small --kind relu --epochs 20
    python benchmarks/train_cifar10.py --model vgg_small --kind qcfs --epochs 4 --lr 0.01 \
        --finetune spikec/pretrained/cifar10_vgg_small_relu.pt      # the "from a ReLU model" path
    python benchmarks/train_cifar10.py --model resnet20 --kind qcfs --epochs 35 --lr 0.05 \
        --resume-from spikec/pretrained/cifar10_resnet20_qcfs.pt --name cifar10_resnet20_qcfs_long
    python benchmarks/train_cifar10.py --model resnet20 --kind qcfs --epochs 50 --lr 0.05 --threads 2 \
        --compile --finetune R.pt --distill-from R.pt --name cifar10_resnet20_qcfs_kd   # R.pt: a ReLU model

Recipe: random crop with 4-pixel zero padding and horizontal flip, SGD (momentum 0.9, Nesterov),
weight decay 5e-4 (on every parameter, thresholds included, as in the QCFS code), batch 128,
one linear warm-up epoch then a cosine schedule to 0, stepped per batch; bf16 autocast on the CPU
(AMX) with channels-last tensors for speed, and the test accuracy measured in float32 at the end.
`--compile` runs the training forward pass through torch.compile: QCFS's clamp/floor/scale chain
and BatchNorm are fused: 3.0x faster per step on one thread (ResNet-20, batch 128; measured by
benchmarks/train_step_speed.py, docs/benchmarks.md: the eager step spends about 85 % of its time in
element-wise kernels, not in convolutions).
Activations: `relu` (plain), `qcfs` (L levels) or `ecl` (learnable clip; L levels or --levels 0 for
the pure clip). Thresholds start from data: the 99.9th percentile of each layer's input on 512
training images (spikec.quantize.calibrate_thresholds); with --finetune, on the trained ReLU
model's activations. `--distill-from` adds knowledge distillation from a trained ReLU model of the
same architecture (loss = (1 - w) * cross-entropy + w * tau^2 * KL to the teacher's outputs at
temperature tau; w = 0.9 and tau = 4 by default): the quantized student learns the full-precision
net's soft outputs as well as the labels.

Checkpoints every epoch to <out>/checkpoint.pt (resumed automatically); the log goes to stdout.
At the end the state dict goes to spikec/pretrained/cifar10_<model>_<kind>.pt and a JSON beside it
records the command, seed, epochs, wall time and the ANN test accuracy.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from spikec import datasets, models
from spikec.quantize import calibrate_thresholds, replace_relu
from spikec.quantize.train import set_levels

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


def build(model_name: str, kind: str, levels: int | None) -> torch.nn.Module:
    """The architecture with its activations swapped for `kind` (relu = unchanged)."""
    net = getattr(models, model_name)()
    return net if kind == "relu" else replace_relu(net, kind=kind, levels=levels)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 32x32 crop of the 4-pixel zero-padded batch, then a random horizontal flip."""
    n = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4))
    dx, dy = torch.randint(0, 9, (2, n), generator=gen)
    out = torch.stack([padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32] for i in range(n)])
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def distilled(ce: torch.Tensor, logits: torch.Tensor, teacher: torch.nn.Module, x: torch.Tensor,
              weight: float, temperature: float) -> torch.Tensor:
    """(1 - weight) * ce + weight * tau^2 * KL(teacher || student), both softened at temperature tau
    (Hinton et al., 2015; tau^2 keeps the gradient scale independent of tau)."""
    with torch.no_grad():
        target = F.log_softmax(teacher(x).float() / temperature, dim=1)
    student = F.log_softmax(logits / temperature, dim=1)
    kl = F.kl_div(student, target, log_target=True, reduction="batchmean")
    return (1.0 - weight) * ce + weight * temperature ** 2 * kl


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(x), 500):
        xb = x[start:start + 500].contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            correct += int((model(xb).argmax(1) == y[start:start + 500]).sum())
    return 100.0 * correct / len(x)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="resnet20", choices=["resnet20", "vgg_small"])
    ap.add_argument("--kind", default="qcfs", choices=["relu", "qcfs", "ecl"])
    ap.add_argument("--levels", type=int, default=4, help="quantisation levels L (0 = pure clip, ecl only)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CIFAR-10 archive or folder")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the training forward pass (about a minute to compile, then ~3x faster)")
    ap.add_argument("--sample-levels", type=lambda v: [int(t) for t in v.split(",")],
                    help="train with every QCFS layer at L drawn per batch from this list (e.g. 1,2,4,8), so "
                         "the net stays accurate at coarser levels (fewer SNN steps); tests at --levels")
    ap.add_argument("--finetune", type=Path, help="start from this ReLU state dict (swap, calibrate, train)")
    ap.add_argument("--resume-from", type=Path,
                    help="start from this trained state dict of the same --kind (a new schedule, no calibration)")
    ap.add_argument("--distill-from", type=Path,
                    help="state dict of a trained ReLU model of the same --model, used as teacher (knowledge "
                         "distillation: the loss mixes cross-entropy with the KL divergence to its softened outputs)")
    ap.add_argument("--distill-weight", type=float, default=0.9, help="weight of the distillation term (0..1)")
    ap.add_argument("--distill-temperature", type=float, default=4.0, help="softmax temperature of distillation")
    ap.add_argument("--out", type=Path, help="checkpoint folder (default out/train/<name>)")
    ap.add_argument("--limit", type=int, help="use only the first N training images (smoke runs)")
    ap.add_argument("--name", help="output name (default cifar10_<model>_<kind>[_ft])")
    args = ap.parse_args(argv)
    if not 0.0 <= args.distill_weight <= 1.0 or not args.distill_temperature > 0:
        ap.error("--distill-weight must lie in [0, 1] and --distill-temperature be > 0")
    for flag, path in (("--finetune", args.finetune), ("--resume-from", args.resume_from),
                       ("--distill-from", args.distill_from)):
        if path is not None and not path.is_file():
            ap.error(f"{flag}: no state dict file at {path}")
    if args.compile and args.sample_levels:
        # measured in session 8: the first epoch took 682 s against ~50 s, as the compiled graph is
        # specialised to each layer's L and rebuilt when set_levels changes it
        ap.error("--sample-levels changes L every batch, which makes torch.compile rebuild its graph: "
                 "run level sampling without --compile")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    levels = args.levels or None
    name = args.name or f"cifar10_{args.model}_{args.kind}" + ("_ft" if args.finetune else "")
    out = args.out or ROOT / "out" / "train" / name
    out.mkdir(parents=True, exist_ok=True)

    x_train, y_train = datasets.cifar10(args.data, "train")
    x_test, y_test = datasets.cifar10(args.data, "test")
    if args.limit:
        keep = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(args.seed))[:args.limit]
        x_train, y_train = x_train[keep], y_train[keep]
    model = build(args.model, "relu", None)
    if args.finetune:
        model.load_state_dict(torch.load(args.finetune, weights_only=True))
    if args.kind != "relu":
        model = replace_relu(model, kind=args.kind, levels=levels)
        model.train(not args.finetune)  # from scratch: BN batch statistics, as training will see them
        if args.resume_from:
            model.load_state_dict(torch.load(args.resume_from, weights_only=True))
        else:
            thresholds = calibrate_thresholds(model, x_train[:512])
            print("initial thresholds:", {k: round(v, 3) for k, v in thresholds.items()}, flush=True)
    model = model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if args.compile else model
    teacher = None
    if args.distill_from:
        teacher = build(args.model, "relu", None)
        teacher.load_state_dict(torch.load(args.distill_from, weights_only=True))
        teacher = teacher.eval().to(memory_format=torch.channels_last)
        teacher = torch.compile(teacher) if args.compile else teacher
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                          weight_decay=args.weight_decay)
    steps_per_epoch = len(x_train) // args.batch_size
    total = args.epochs * steps_per_epoch
    warm = min(steps_per_epoch, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else
                                              0.5 * (1 + torch.cos(torch.tensor((s - warm) / max(1, total - warm)
                                                                                * torch.pi)).item()))
    ckpt = out / "checkpoint.pt"
    first_epoch, wall = 0, 0.0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        first_epoch, wall = state["epoch"], state["wall"]
        print(f"resumed at epoch {first_epoch}", flush=True)
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(first_epoch, args.epochs):
        gen.manual_seed(args.seed * 1000 + epoch)
        model.train()
        t0 = time.time()
        order = torch.randperm(len(x_train), generator=gen)
        seen = correct = 0
        loss_sum = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * args.batch_size:(step + 1) * args.batch_size]
            xb = augment(x_train[idx], gen).contiguous(memory_format=torch.channels_last)
            if args.sample_levels:
                set_levels(model, args.sample_levels[int(torch.randint(len(args.sample_levels), (1,),
                                                                       generator=gen))])
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = forward(xb)
                loss = F.cross_entropy(logits.float(), y_train[idx])
                if teacher is not None:
                    loss = distilled(loss, logits.float(), teacher, xb, args.distill_weight,
                                     args.distill_temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            seen += len(idx)
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y_train[idx]).sum())
        wall += time.time() - t0
        if args.sample_levels:
            set_levels(model, levels)
        test = accuracy(model, x_test, y_test, bf16=True)
        print(f"epoch {epoch + 1}/{args.epochs} loss {loss_sum / seen:.4f} train {100 * correct / seen:.2f} "
              f"test(bf16) {test:.2f} lr {sched.get_last_lr()[0]:.4f} epoch {time.time() - t0:.0f}s", flush=True)
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "epoch": epoch + 1, "wall": wall}, tmp)
        tmp.replace(ckpt)

    model = model.to(memory_format=torch.contiguous_format)
    test = accuracy(model, x_test, y_test, bf16=False)
    dest = ROOT / "spikec" / "pretrained"
    dest.mkdir(exist_ok=True)
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, dest / f"{name}.pt")
    record = {"name": name, "model": args.model, "kind": args.kind, "levels": levels if args.kind != "relu" else None,
              "command": "python benchmarks/train_cifar10.py " + shlex.join(sys.argv[1:] if argv is None else argv),
              "seed": args.seed, "epochs": args.epochs, "threads": args.threads,
              "sampled_levels": args.sample_levels,
              "train_wall_s": round(wall), "ann_test_accuracy": round(test, 2),
              "finetuned_from": str(args.finetune) if args.finetune else None,
              "distilled_from": str(args.distill_from) if args.distill_from else None,
              "continued_from": str(args.resume_from) if args.resume_from else None}
    (dest / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
