"""Export a trained CNN to Lava/Loihi: compile for stock Loihi neurons, write a lava-dl netx HDF5
file and a runnable Lava script, and check the Lava backend against the PyTorch backend.

    python examples/export_to_loihi.py [--quick] [--out out/export]
"""

import argparse
from pathlib import Path

import numpy as np
from torch import nn

import spikec
from spikec.datasets import digits
from spikec.quantize import evaluate, replace_relu, train

parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true", help="fewer epochs and samples (CI)")
parser.add_argument("--out", default="out/export")
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

# 1. A small sequential CNN on 8x8 digits, with QCFS clip activations so that the thresholds are
#    learned. netx loads only sequential conv/flatten/dense stacks, and its neurons add a bias from
#    the first step on (before their input arrives), so the layers have no bias.
data = digits()
model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.ReLU(),
                      nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False), nn.ReLU(),
                      nn.Flatten(), nn.Linear(8 * 4 * 4, 10, bias=False))
replace_relu(model, kind="qcfs", levels=4, threshold=1.0)
train(model, (data.x_train, data.y_train), epochs=8 if args.quick else 20, lr=0.1, batch_size=64)
print(f"ANN accuracy: {evaluate(model, (data.x_test, data.y_test)):.2%}")

# 2. Compile for stock Loihi LIF neurons (reset to zero, '>' threshold), the semantics netx expresses.
graph = spikec.compile(model, data.x_test[:1], method="qcfs", target="loihi-stock")
spikec.save(graph, out / "digits.h5")

# 3. Export: the netx HDF5 file Intel's loader reads, and a Lava script for any graph.
spikec.export(graph, out / "digits.net", format="netx")
spikec.export(graph, out / "digits_lava.py", format="lava")
print(f"wrote {out / 'digits.net'} and {out / 'digits_lava.py'}")

# 4. Run a few samples on the Lava backend (Loihi's fixed-point models) and on PyTorch: equal?
x = graph.encode(data.x_test[: 2 if args.quick else 8].numpy())
steps = 8
lava = spikec.run(graph, x, steps, backend="lava")
fast = spikec.run(graph, x, steps, backend="torch")
assert np.array_equal(lava.output, fast.output), "Lava and PyTorch backends disagree"
print(f"Lava == PyTorch on {len(x)} samples; predictions {lava.predictions().tolist()}, "
      f"labels {data.y_test[:len(x)].tolist()}; {lava.hardware_steps} hardware steps for T={steps}")
