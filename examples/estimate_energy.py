"""Estimate synaptic operations, energy and Loihi cores of a converted CNN against its ANN.

    python examples/estimate_energy.py [--quick] [--out out/estimate]
"""

import argparse
from pathlib import Path

from torch import nn

import spikec
from spikec.analysis.plots import save_plots
from spikec.analysis.report import print_estimate
from spikec.datasets import digits
from spikec.quantize import replace_relu, train

parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true")
parser.add_argument("--out", default="out/estimate")
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

data = digits()
model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                      nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 4 * 4, 10))
replace_relu(model, kind="qcfs", levels=4, threshold=1.0)
train(model, (data.x_train, data.y_train), epochs=4 if args.quick else 15, lr=0.1, batch_size=64)
graph = spikec.compile(model, data.x_test[:1], method="qcfs")

# Counts come from the spikes a run actually produced (torch backend), per layer; energy is given
# as a band under documented constant sets (Loihi 1 measurements, 45 nm Horowitz figures).
x = graph.encode(data.x_test[: 20 if args.quick else 200].numpy())
est = spikec.estimate(graph, x, steps=4, hardware="loihi2", model=model)
print_estimate(est)
for path in save_plots(est, out):
    print(f"wrote {path}")
(out / "estimate.json").write_text(est.to_json())
