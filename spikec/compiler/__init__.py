"""Compiler front end: a trained PyTorch CNN -> an integer IF graph (spikec.ir.Graph).

Pipeline (spikec.compiler.pipeline): trace (torch.fx) -> fold BN -> lower (table) -> thresholds
-> normalize -> quantize (target widths) -> retime -> method post-pass -> overflow bounds.
"""

from spikec.compiler.api import compile, compile_model
from spikec.compiler.frontend import replace_maxpool
from spikec.compiler.methods import Policy
from spikec.compiler.report import print_report, report  # loads the submodule first: the names stay functions

__all__ = ["compile", "compile_model", "replace_maxpool", "report", "print_report", "Policy"]
