"""The compile report under the compiler's name: it lives in the IR layer (`spikec.ir.report`, it
only reads a Graph and its meta, and Graph.report calls it); the CLI imports it from here."""

from spikec.ir.report import COLUMNS, NARROW, LayerReport, edge_keys, print_report, report

__all__ = ["COLUMNS", "NARROW", "LayerReport", "edge_keys", "print_report", "report"]
