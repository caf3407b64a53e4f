"""Check bit-exact equivalence of every backend, layer by layer, for a small residual network and a
small DenseNet (channel concatenations).

    python examples/verify_networks.py [--quick] [--out out/verify]
"""

import argparse
from pathlib import Path

import spikec
from spikec.analysis.verify_view import plot_equivalence, print_verify
from spikec.backends import available
from spikec.datasets import digits
from spikec.models import small_densenet, small_resnet
from spikec.quantize import replace_relu, train

parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true")
parser.add_argument("--out", default="out/verify")
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

data = digits()
all_equal = True
for name, model in (("resnet", small_resnet(channels=8)), ("densenet", small_densenet(growth=4, layers=2))):
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
