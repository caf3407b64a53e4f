"""The LeNet-size layer stack every backend benchmark uses (thresholds are each benchmark's own).

(name, ops from the previous population given a numpy Generator, IF shape or None for the readout)
"""

from spikec.ir import Conv2d, Dense, Flatten, SumPool2d

LAYERS = [
    ("c1", lambda r: (Conv2d(r.integers(-8, 9, (6, 1, 5, 5))),), (6, 24, 24)),
    ("c2", lambda r: (SumPool2d(2), Conv2d(r.integers(-8, 9, (16, 6, 5, 5)))), (16, 8, 8)),
    ("f1", lambda r: (SumPool2d(2), Flatten(), Dense(r.integers(-8, 9, (120, 256)))), (120,)),
    ("f2", lambda r: (Dense(r.integers(-8, 9, (84, 120))),), (84,)),
    ("out", lambda r: (Dense(r.integers(-8, 9, (10, 84))),), None),
]
