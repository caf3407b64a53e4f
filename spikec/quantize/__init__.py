"""ANN side: clip activations the compiler understands, ReLU replacement, a small trainer."""

from spikec.quantize.activations import ClipActivation
from spikec.quantize.calibrate import calibrate_thresholds
from spikec.quantize.ecl import ECLClip
from spikec.quantize.qcfs import QCFS
from spikec.quantize.replace import replace_relu
from spikec.quantize.signed import SignedClip
from spikec.quantize.train import evaluate, train

__all__ = ["ClipActivation", "QCFS", "ECLClip", "SignedClip", "replace_relu", "train", "evaluate",
           "calibrate_thresholds"]
