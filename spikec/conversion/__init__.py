"""Low-latency conversion methods that act on a compiled integer graph (post-passes).

- `ftbc.calibrate`: Forward Temporal Bias Correction (Wu et al., ECCV 2024) -> IF.bias_schedule
- `srp.apply_srp`: residual-membrane-potential pre-simulation (Hao et al., AAAI 2023) -> IF.presim
- `signed.apply_signed`: ECL-style dual-threshold neurons (Liu et al., ICML 2025) -> IF.theta_neg

Each is a pure Graph -> Graph function; the compiler's method registry wires them to
`spikec.compile(..., method=...)` options. Details and sources: research/algorithms.md.
"""

from spikec.conversion.ftbc import calibrate as ftbc_calibrate
from spikec.conversion.signed import apply_signed
from spikec.conversion.srp import apply_srp

__all__ = ["ftbc_calibrate", "apply_srp", "apply_signed"]
