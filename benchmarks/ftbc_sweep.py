"""FTBC's calibration settings on the CIFAR-10 ResNet-20: does more (or less) calibration close the
low-T gap?

    nice python benchmarks/ftbc_sweep.py --images 1000 \
        --configs '[{"alpha":0.4,"batches":2,"batch_size":100},{"alpha":0.3,"batches":2,"batch_size":100}]'

Each config compiles cifar10_resnet20_qcfs with method qcfs and ftbc=config (calibrated on the same
1,000 training images as benchmarks/cifar10_accuracy.py, for --steps steps; the schedule is causal,
so a schedule for 8 steps equals the first 8 steps of one for 32) and evaluates the integer graph
at T = 1..steps on a balanced test subset. Prints one line per config and writes --out (JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cifar10_accuracy import DEFAULT_DATA, ROOT, run_row, test_and_calibration  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--configs", required=True, help="JSON list of ftbc option dicts")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "ftbc_sweep.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    x, y, x_calib = test_and_calibration(args.data, args.images)
    rows = []
    for cfg in json.loads(args.configs):
        cfg = {"steps": args.steps, **cfg}
        rows.append(run_row(f"ftbc {cfg}", "cifar10_resnet20_qcfs", "qcfs", {"ftbc": cfg}, "loihi",
                            x, y, x_calib, args.steps, 250))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"images": len(y), "steps": args.steps, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
