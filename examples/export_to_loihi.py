"""Export a trained CNN to Lava/Loihi: compile for stock Loihi neurons, write a lava-dl netx HDF5
file and a runnable Lava script, run the netx file through Intel's loader and check it, and the
Lava backend, against the PyTorch backend bit for bit.

    python examples/export_to_loihi.py [--quick] [--out out/export]

Uses the shipped CIFAR-10 VGG (spikec.models.pretrained("cifar10_vgg_small_qcfs")) when it is
there, else trains a small BatchNorm CNN on 8x8 digits.
"""

import argparse
from pathlib import Path

import numpy as np

import spikec
from spikec.backends.netx.run import run_netx
from spikec.models import PRETRAINED

parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true", help="fewer epochs, samples and steps (CI)")
parser.add_argument("--out", default="out/export")
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

# 1. A trained sequential CNN with BatchNorm and QCFS clip activations (learned thresholds).
#    netx loads only sequential conv/flatten/dense stacks; BatchNorm folds into per-channel biases.
if (PRETRAINED / "cifar10_vgg_small_qcfs.pt").exists():
    from spikec.datasets import CIFAR10_SUBSET, cifar10

    name = "cifar10_vgg"
    model = spikec.models.pretrained("cifar10_vgg_small_qcfs")
    images, labels = cifar10(CIFAR10_SUBSET)
    calib, x_test, y_test = images[:64], images[5::100], labels[5::100]   # one image per class
else:
    from spikec.datasets import digits
    from spikec.models import small_cnn
    from spikec.quantize import evaluate, replace_relu, train

    name = "digits"
    data = digits()
    model = replace_relu(small_cnn(image_size=8, channels=8, blocks=2), kind="qcfs", levels=4, threshold=1.0)
    train(model, (data.x_train, data.y_train), epochs=8 if args.quick else 20, lr=0.1, batch_size=64)
    print(f"ANN accuracy: {evaluate(model, (data.x_test, data.y_test)):.2%}")
    calib, x_test, y_test = data.x_train[:64], data.x_test, data.y_test
model.eval()

# 2. Compile for stock Loihi LIF neurons (reset to zero, '>' threshold), the neurons netx builds.
graph = spikec.compile(model, calib, method="qcfs", target="loihi-stock")
spikec.save(graph, out / f"{name}.h5")

# 3. Export: the netx HDF5 file Intel's loader reads (when netx can express the graph exactly), and
#    a Lava script for any graph.
from spikec.errors import UnsupportedError  # noqa: E402

try:
    spikec.export(graph, out / f"{name}.net", format="netx")
    netx_file = out / f"{name}.net"
except UnsupportedError as err:   # e.g. biases that netx would start before a layer's start step
    netx_file = None
    print(f"netx export refused (nothing written): {str(err).splitlines()[1].strip()} ...")
spikec.export(graph, out / f"{name}_lava.py", format="lava")
print(f"wrote {out / f'{name}_lava.py'}" + (f" and {netx_file}" if netx_file else ""))

# 4. Run a few samples through Intel's netx loader (spikec.backends.netx.run.load_network: netx's
#    Network plus the input message bits and the initial potentials that start each layer's bias on
#    time) and on PyTorch: equal? Then the same on spikec's own Lava backend (always when netx
#    refused the graph; otherwise not in --quick mode).
n, steps = (1, 2) if args.quick else (8, 16)
x = graph.encode(x_test[:n].numpy())
fast = spikec.run(graph, x, steps, backend="torch")
if netx_file is not None:
    netx = run_netx(netx_file, x, graph.hardware_steps(steps), record=False)
    assert np.array_equal(netx.output, fast.output), "netx and PyTorch backends disagree"
    print(f"netx == PyTorch on {n} samples; predictions {fast.predictions().tolist()}, labels "
          f"{y_test[:n].tolist()}; {fast.hardware_steps} hardware steps for T={steps}")
if netx_file is None or not args.quick:
    lava = spikec.run(graph, x, steps, backend="lava")
    assert np.array_equal(lava.output, fast.output), "Lava and PyTorch backends disagree"
    print(f"Lava == PyTorch on {n} samples; predictions {fast.predictions().tolist()}, labels {y_test[:n].tolist()}")

# 5. The most accurate mapping onto Loihi's stock neurons (docs/lava.md, "Which stock neuron"):
#    Lava's SigmaDelta neurons (target "loihi-sdnn"). Each layer sends its quantized activation once
#    as a graded message, so the readout is final at T=1. Compare with the stock LIF graph above on
#    the same images (torch backend, bit-exact with the reference; the Lava module export of a
#    sigma-delta graph is checked on Lava in tests/backends/test_lava_sigma_delta.py).
sdnn = spikec.compile(model, calib, method="qcfs", target="loihi-sdnn")
spikec.export(sdnn, out / f"{name}_sdnn_lava.py", format="lava")
x_all = graph.encode(x_test.numpy())
y_all = np.asarray(y_test)
lif_acc = np.mean(spikec.run(graph, x_all, steps, backend="torch").predictions() == y_all)
sd_acc = np.mean(spikec.run(sdnn, sdnn.encode(x_test.numpy()), 1, backend="torch").predictions() == y_all)
print(f"stock LIF (loihi-stock) at T={steps}: {lif_acc:.0%}; stock SigmaDelta (loihi-sdnn) at T=1: {sd_acc:.0%} "
      f"on {len(y_all)} test images; wrote {out / f'{name}_sdnn_lava.py'}")
