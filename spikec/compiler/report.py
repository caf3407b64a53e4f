"""The compile report now lives in the IR layer (`spikec.ir.report`: it only reads a Graph and its
meta). This name is kept for the CLI modules that still import it; import spikec.ir.report."""

from spikec.ir.report import COLUMNS, NARROW, LayerReport, edge_keys, print_report, report

__all__ = ["COLUMNS", "NARROW", "LayerReport", "edge_keys", "print_report", "report"]
