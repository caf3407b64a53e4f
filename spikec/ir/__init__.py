"""The integer IF graph: nodes, graph, validation, reference interpreter, HDF5 format."""

from spikec.ir.graph import Graph, broadcast_param
from spikec.ir.interpreter import run_reference
from spikec.ir.nodes import IF, Conv2d, Dense, Edge, Flatten, Input, Readout, SumPool2d

__all__ = ["Graph", "Input", "IF", "Readout", "Edge", "Dense", "Conv2d", "SumPool2d", "Flatten",
           "broadcast_param", "run_reference"]
