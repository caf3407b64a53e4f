"""Check bit-exact equivalence of every backend, layer by layer, for a small residual network and a
small DenseNet (channel concatenations).

    python examples/verify_networks.py [--quick] [--out out/verify]
"""

import argparse
from pathlib import Path

from torch import nn

import spikec
from spikec.analysis.verify_view import plot_equivalence, print_verify
from spikec.backends import available
from spikec.datasets import digits
from spikec.models import small_densenet
from spikec.quantize import replace_relu, train


class Block(nn.Module):
    """A ResNet BasicBlock with a 1x1 stride-2 downsample shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu2 = nn.ReLU()

    def forward(self, x):
        return self.relu2(self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x))))) + self.down(x))


parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true")
parser.add_argument("--out", default="out/verify")
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

data = digits()
resnet = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), Block(8, 8, 2),
                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
all_equal = True
for name, model in (("resnet", resnet), ("densenet", small_densenet(growth=4, layers=2))):
    replace_relu(model, kind="qcfs", levels=4, threshold=1.0)
    train(model, (data.x_train, data.y_train), epochs=4 if args.quick else 15, lr=0.1, batch_size=64)
    graph = spikec.compile(model, data.x_test[:1], method="qcfs")

    # A residual addition is two edges into one IF layer (the compiler delays the shortcut so both
    # paths arrive in step); a concatenation is one edge per concatenated source, each with its own
    # weight slice. verify() runs every backend and compares every spike at every step.
    x = graph.encode(data.x_test[:2].numpy())
    backends = [b for b in ("torch", "brian2", "lava") if b in available()]
    report = spikec.verify(graph, x, steps=4 if args.quick else 8, backends=backends)
    print(f"\n{name}: {len(graph.if_layers)} IF layers, {len(graph.edges)} edges")
    print_verify(report)
    plot_equivalence(report, out / f"{name}_equivalence.png")
    (out / f"{name}_verify.json").write_text(report.to_json(indent=2))
    all_equal &= report.equal
raise SystemExit(0 if all_equal else 1)
