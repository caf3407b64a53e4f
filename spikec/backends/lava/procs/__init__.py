"""spikec's own Lava processes and their fixed-point (`fixed_pt`) CPU models.

Every module in this package must stay free of side effects: when Lava compiles a network it looks
for process models by executing *every* module in the directory of the module that defines a
Process (lava.magma.compiler.compiler_graphs.ProcGroupDiGraphs._find_proc_models). Only class
definitions and imports belong here.

Modules:
    if_neuron   SpikecIF: the IR's IF layer (subtract or zero reset, `>=`, v_init, signed spikes
                with gate, bias schedule in local time, SRP pre-simulation, saturation counting)
    readout     SpikecReadout: the IR's non-spiking readout accumulator
    recorder    SpikeRecorder: a sink that writes what it receives into a memory-mapped file
    files       helpers shared by the three models (opening the memory-mapped record files)
"""

from spikec.backends.lava.compat import install as _install

_install()  # lava must never be imported in spikec before the Python 3.11 shim is in place
