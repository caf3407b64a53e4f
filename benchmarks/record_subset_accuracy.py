"""Record a shipped model's integer-graph accuracy on the bundled 1,000 CIFAR-10 test images.

    python benchmarks/record_subset_accuracy.py cifar10_resnet20_qcfs

Writes `subset_snn_accuracy` {ann, "1".."8"} into spikec/pretrained/<name>.json: the figures
docs/cifar10.md quotes and tests/e2e/test_cifar10_model.py holds the compiler to (within 1 point).
Rerun only when the model or, deliberately, the compiler's numerics change.
"""

from __future__ import annotations

import json
import sys

import spikec
from spikec import datasets
from spikec.models import PRETRAINED, pretrained


def main(argv=None) -> int:
    name = (argv or sys.argv[1:] or ["cifar10_resnet20_qcfs"])[0]
    model = pretrained(name)
    x, y = datasets.cifar10(datasets.CIFAR10_SUBSET)
    graph = spikec.compile(model, x[:1], method="qcfs", target="loihi")
    ev = spikec.evaluate(graph, (x, y), 8, model=model, batch_size=250)
    record_file = PRETRAINED / f"{name}.json"
    record = json.loads(record_file.read_text())
    record["subset_snn_accuracy"] = {"images": ev.total, "target": "loihi", "method": "qcfs",
                                     "ann": round(ev.ann_accuracy, 2),
                                     **{str(t): round(ev.accuracy(t), 2) for t in range(1, 9)}}
    record_file.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record["subset_snn_accuracy"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
