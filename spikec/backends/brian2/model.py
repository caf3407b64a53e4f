"""A spikec integer integrate-and-fire graph as a Brian2 network (needs only numpy and brian2).

spikec embeds this module verbatim in the scripts written by `spikec.export(graph, path,
format="brian2")`, so the exported script and `spikec.run(..., backend="brian2")` run the same code.
The network is described by a *spec* (JSON-able `meta` + integer `arrays`, see brian2_plan.py).

How the IR maps onto Brian2 (one clock step = one hardware step t = t_in_timesteps + 1):

* Each IF layer is one NeuronGroup of int64 variables. A batch of B samples is laid side by side:
  neuron b * n + j is neuron j of sample b, so one Brian2 run simulates the whole batch.
* The layer's IR step (spikec/ir/nodes.py, IF) runs as one `run_regularly` operation at the start
  of every step: it adds the input current `I` collected during the previous step, saturates v,
  decides the spike `out` in {-1, 0, +1}, resets, and latches the SRP mask. `out > 0` is Brian2's
  `spike` event, `out < 0` the custom `negspike` event. Before its start step a layer is silent and
  holds v_init (every term is gated on the local step k >= 1).
* Each IR edge is one Synapses object, `I_post += w` (and `I_post -= w` on `negspike`), with the
  edge's extra delay as a homogeneous synaptic delay. Spikes are delivered in the `synapses` slot
  and consumed at the start of the next step: every edge delays by exactly one step, like Loihi.
  Residual edges are several Synapses writing the same `I`.
* A current-encoded input enters as constant currents `I_x<m>` (the edge's weights applied to the
  sample once, like Loihi's bias injection), switched on at the local step where it arrives.
  A spike-encoded input is a NeuronGroup whose threshold reads the spike table from a TimedArray.
* The readout is a NeuronGroup accumulating `I + bias` at its evaluated local steps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from brian2 import EventMonitor, Network, NeuronGroup, SpikeMonitor, StateMonitor, Synapses, TimedArray, ms
from brian2.core.clocks import Clock
from brian2.core.preferences import prefs

# Importing Brian 2 installs its own sys.excepthook, which labels every later uncaught exception
# (spikec's own errors included) as a Brian 2 internal error: give Python its hook back.
if getattr(sys.excepthook, "__name__", "") == "brian_excepthook":
    sys.excepthook = sys.__excepthook__

DT = 1 * ms            # one hardware step; the value itself never matters
DT_SECONDS = 1e-3


# --------------------------------------------------------------------------- model text


def if_equations(layer: dict) -> str:
    """The NeuronGroup model of one IF layer (all variables are int64)."""
    lines = ["v : integer  # membrane potential",
             "I : integer  # synaptic input collected during the previous step",
             "out : integer  # what the neuron emitted in this step: +1, -1 or 0",
             "n_sat : integer  # steps in which v was clipped to +-v_max",
             "theta : integer (constant)  # threshold"]
    if layer["signed"]:
        lines.append("theta_neg : integer (constant)  # negative threshold")
    if layer["has_bias"]:
        lines.append("bias : integer (constant)")
    if layer["has_v_init"]:
        lines.append("v_init : integer (constant)")
    if layer["presim"]:
        lines.append("mask : integer  # SRP: 1 until the latch, then (v > 0) at the latch")
    if layer["gate"] == "net":
        lines.append("net : integer  # sum of the spikes emitted so far (gate of negative spikes)")
    return "\n".join(lines + _input_currents(layer))


def _input_currents(layer: dict) -> list[str]:
    return [f"I_x{m} : integer (constant)  # current from the input sample"
            for m in range(len(layer["x_arrivals"]))]


def if_update(layer: dict) -> str:
    """The abstract code of one IF step, run at the start of every hardware step."""
    terms = ["I"]
    if layer["has_bias"]:
        terms.append("int(k >= 1) * bias")
    if layer["has_schedule"]:
        terms.append("int(bias_schedule(t, i % n))")
    terms += [f"int(k >= {a}) * I_x{m}" for m, a in enumerate(layer["x_arrivals"])]
    signed = layer["signed"]
    lines = ["k = t_in_timesteps + 2 - start  # local step (hardware step t_in_timesteps + 1)",
             f"v_in = v + {' + '.join(terms)}",
             "v = clip(v_in, -v_max, v_max)",
             "n_sat += int(v != v_in)",
             "I = 0",
             "up = int(k >= 1 and v >= theta)"]
    if signed:
        gate = " and net > 0" if layer["gate"] == "net" else ""
        lines.append(f"down = int(k >= 1 and v <= -theta_neg{gate}) * (1 - up)")
    if layer["reset"] == "subtract":
        lines.append("v = v - up * theta" + (" + down * theta" if signed else ""))
    else:
        lines.append("v = v * (1 - up" + (" - down)" if signed else ")"))
    spike = "(up - down)" if signed else "up"
    lines.append(f"out = {spike}" + (" * mask" if layer["presim"] else ""))
    if layer["gate"] == "net":
        lines.append("net += out")
    if layer["presim"]:
        lines += ["latch = int(k == presim)  # SRP: end of the pre-simulation",
                  "mask = latch * int(v > 0) + (1 - latch) * mask",
                  "v = latch * v_init + (1 - latch) * v"]
        if layer["gate"] == "net":
            lines.append("net = (1 - latch) * net")
    return "\n".join(lines)


def readout_equations(layer: dict) -> str:
    lines = ["acc : integer  # the logits",
             "I : integer  # synaptic input collected during the previous step",
             "n_sat : integer  # steps in which acc was clipped to +-v_max"]
    if layer["has_bias"]:
        lines.append("bias : integer (constant)")
    return "\n".join(lines + _input_currents(layer))


def readout_update(layer: dict) -> str:
    terms = ["I"] + (["bias"] if layer["has_bias"] else [])
    terms += [f"int(k >= {a}) * I_x{m}" for m, a in enumerate(layer["x_arrivals"])]
    return "\n".join([
        "k = t_in_timesteps + 2 - start",
        "window = int(k > skip)  # local steps skip+1 ...: the run ends with the last evaluated one",
        f"acc_in = acc + window * ({' + '.join(terms)})",
        "acc = clip(acc_in, -v_max, v_max)",
        "n_sat += int(acc != acc_in)",
        "I = 0"])


# --------------------------------------------------------------------------- inputs


def hardware_steps(spec: dict, steps: int) -> int:
    return spec["meta"]["latency"] + int(steps)


def input_values(spec: dict, x, steps: int) -> dict:
    """Per-run input arrays: {"<group>.I_x<m>": int64 [B*n]} for current-encoded inputs,
    {"stimulus": float64 [hardware_steps + 1, B*n]} (a 0/1 spike table) for spike-encoded ones."""
    meta, arrays = spec["meta"], spec["arrays"]
    x = np.asarray(x)
    if x.dtype.kind not in "iu":   # floats are refused, never truncated (NaN, 0.7, ...)
        raise ValueError(f"inputs must be an integer array, got dtype {x.dtype}; encode float samples first "
                         "(round(x * input scale), spikec's Graph.encode)")
    x = x.astype(np.int64)
    batch = x.shape[0]
    total = hardware_steps(spec, steps)
    if meta["input"]["encoding"] == "spikes":
        table = np.zeros((total + 1, batch, meta["input"]["n"]))
        rows = min(x.shape[1], total)
        table[:rows] = x[:, :rows].reshape(batch, rows, -1).transpose(1, 0, 2)
        return {"stimulus": table.reshape(total + 1, -1)}
    flat = x.reshape(batch, -1)
    values = {}
    for layer in meta["layers"]:
        for m, arrival in enumerate(layer["x_arrivals"]):
            current = np.zeros((layer["n"], batch), np.int64)
            for edge in meta["edges"]:
                if edge["current"] and edge["dst"] == layer["group"] and edge["arrival"] == arrival:
                    i, j, w = (arrays[f"{edge['key']}.{c}"] for c in "ijw")
                    np.add.at(current, j, w[:, None] * flat[:, i].T)
            values[f"{layer['group']}.I_x{m}"] = current.T.reshape(-1)
    return values


# --------------------------------------------------------------------------- network


def build(spec: dict, batch: int, inputs: dict, record: bool = False, record_v: bool = False):
    """Create the Brian2 objects for `batch` samples; returns (Network, handles).

    handles["probes"]: {key: Brian2 Variable} read by `collect`; handles["inputs"]: {key: (Brian2
    object, variable or None)} where `inputs` values go (a TimedArray when the variable is None).
    """
    meta, arrays = spec["meta"], spec["arrays"]
    clock = Clock(dt=DT, name="spikec_clock")
    groups, objects, handles = {}, [], {"probes": {}, "inputs": {}}
    if meta["input"]["encoding"] == "spikes":
        stimulus = TimedArray(inputs["stimulus"], dt=DT, name="stimulus")
        groups["input"] = NeuronGroup(batch * meta["input"]["n"], "", threshold="stimulus(t, i) > 0",
                                      reset="", clock=clock, namespace={"stimulus": stimulus}, name="input")
        handles["inputs"]["stimulus"] = (stimulus, None)
        objects.append(groups["input"])
    for layer in meta["layers"]:
        g = _population(layer, arrays, batch, inputs, clock, handles)
        groups[layer["group"]] = g
        objects.append(g)
        if layer["kind"] == "if":
            objects += _monitors(layer, g, record, record_v, handles["probes"])
    for edge in meta["edges"]:
        if not edge["current"] and edge["nnz"]:
            objects.append(_synapses(edge, arrays, groups, batch, clock))
    return Network(*objects), handles


def _population(layer: dict, arrays: dict, batch: int, inputs: dict, clock, handles: dict) -> NeuronGroup:
    """The NeuronGroup of one IF layer or of the readout, with its per-step update operation."""
    group = layer["group"]
    namespace = {"start": layer["start"], "v_max": layer["v_max"], "n": layer["n"]}
    if layer["kind"] == "if":
        model, update, threshold = if_equations(layer), if_update(layer), "out > 0"
        events = {"negspike": "out < 0"} if layer["signed"] else None
        namespace["presim"] = layer["presim"]
        if layer["has_schedule"]:
            table = arrays[f"{group}.schedule"].astype(np.float64)
            namespace["bias_schedule"] = TimedArray(table, dt=DT, name=f"{group}_bias_schedule")
    else:
        model, update, threshold, events = readout_equations(layer), readout_update(layer), None, None
        namespace["skip"] = layer["skip"]
    variables = [line.split(":")[0].strip() for line in model.splitlines()]
    g = NeuronGroup(batch * layer["n"], model, threshold=threshold, reset="" if threshold else None,
                    events=events, clock=clock, namespace=namespace, name=group,
                    dtype={name: np.int64 for name in variables})
    g.run_regularly(update, when="start", name=f"{group}_step")
    for param in ("theta", "theta_neg", "bias", "v_init"):
        if param in variables:
            setattr(g, param, np.tile(arrays[f"{group}.{param}"], batch))
    if layer.get("has_v_init"):
        g.v = np.tile(arrays[f"{group}.v_init"], batch)
    if layer.get("presim"):
        g.mask = 1
    for m in range(len(layer["x_arrivals"])):
        key = f"{group}.I_x{m}"
        setattr(g, f"I_x{m}", inputs[key])
        handles["inputs"][key] = (g, f"I_x{m}")
    handles["probes"][f"{group}.n_sat"] = g.variables["n_sat"]
    if layer["kind"] == "readout":
        handles["probes"][f"{group}.acc"] = g.variables["acc"]
    return g


def _monitors(layer: dict, g: NeuronGroup, record: bool, record_v: bool, probes: dict) -> list:
    group, monitors = layer["group"], []
    if record:
        events = [("spike", SpikeMonitor(g, record=True, name=f"{group}_spikes"))]
        if layer["signed"]:
            events.append(("negspike", EventMonitor(g, "negspike", record=True, name=f"{group}_negspikes")))
        for event, mon in events:
            monitors.append(mon)
            probes[f"{group}.{event}_i"] = mon.variables["i"]
            probes[f"{group}.{event}_t"] = mon.variables["t"]
    if record_v:
        mon = StateMonitor(g, "v", record=True, when="end", name=f"{group}_v")
        monitors.append(mon)
        probes[f"{group}.v"] = mon.variables["v"]
    return monitors


def _synapses(edge: dict, arrays: dict, groups: dict, batch: int, clock) -> Synapses:
    src, dst = groups[edge["src"]], groups[edge["dst"]]
    if edge["signed"]:
        on_pre = {"pre": "I_post += w", "neg": "I_post -= w"}
        on_event = {"pre": "spike", "neg": "negspike"}
    else:
        on_pre, on_event = "I_post += w", "spike"
    delay = None
    if edge["delay"]:
        delay = edge["delay"] * DT
        delay = {path: delay for path in on_pre} if isinstance(on_pre, dict) else delay
    syn = Synapses(src, dst, "w : integer (constant)", on_pre=on_pre, on_event=on_event, delay=delay,
                   clock=clock, name=edge["key"], dtype={"w": np.int64})
    i, j, w = (arrays[f"{edge['key']}.{c}"] for c in "ijw")
    n_src, n_dst = len(src) // batch, len(dst) // batch
    offsets = np.arange(batch)[:, None]
    syn.connect(i=(i + offsets * n_src).ravel(), j=(j + offsets * n_dst).ravel())
    syn.w = np.tile(w, batch)
    return syn


# --------------------------------------------------------------------------- results


def collect(spec: dict, batch: int, steps: int, get, valid: int | None = None) -> dict:
    """Turn the probed arrays (`get(key) -> numpy array`) into spikec's Trace fields, keeping the
    first `valid` samples of the batch (all by default; the rest are padding)."""
    meta = spec["meta"]
    total = hardware_steps(spec, steps)
    valid = batch if valid is None else valid
    result = {"saturations": {}, "spikes": None, "voltages": None}
    for layer in meta["layers"]:
        group, n = layer["group"], layer["n"]
        n_sat = np.asarray(get(f"{group}.n_sat"), np.int64)[:valid * n]
        result["saturations"][layer["name"]] = int(n_sat.sum())
        if layer["kind"] == "readout":
            result["output"] = np.asarray(get(f"{group}.acc"), np.int64).reshape(batch, n)[:valid]
            continue
        shape = (total, batch) + tuple(layer["shape"])
        if get(f"{group}.spike_i", None) is not None:
            spikes = np.zeros((total, batch * n), np.int8)
            for event, sign in (("spike", 1), ("negspike", -1)):
                idx = get(f"{group}.{event}_i", None)
                if idx is not None:
                    step = np.rint(np.asarray(get(f"{group}.{event}_t")) / DT_SECONDS).astype(np.int64)
                    spikes[step, np.asarray(idx, np.int64)] = sign
            result["spikes"] = result["spikes"] or {}
            result["spikes"][layer["name"]] = spikes.reshape(shape)[:, :valid]
        volts = get(f"{group}.v", None)
        if volts is not None:
            result["voltages"] = result["voltages"] or {}
            result["voltages"][layer["name"]] = np.asarray(volts, np.int64).reshape(shape)[:, :valid]
    return result


def simulate(spec: dict, x, steps: int, record: bool = False, record_v: bool = False,
             target: str = "numpy") -> dict:
    """Build and run the network in this process with a runtime code-generation target
    ("numpy" or "cython"); returns `collect`'s dict."""
    batch = np.asarray(x).shape[0]
    previous = prefs.codegen.target
    prefs.codegen.target = target
    try:
        net, handles = build(spec, batch, input_values(spec, x, steps), record, record_v)
        net.run(hardware_steps(spec, steps) * DT)
        probes = handles["probes"]
        return collect(spec, batch, steps,
                       lambda key, *default: probes[key].get_value() if key in probes else default[0])
    finally:
        prefs.codegen.target = previous


# --------------------------------------------------------------------------- spec files and script use


def write_spec(spec: dict, path) -> None:
    """Write the spec to an .npz (arrays + JSON metadata); the caller makes it atomic."""
    with open(path, "wb") as f:
        np.savez_compressed(f, __meta__=np.array(json.dumps(spec["meta"])), **spec["arrays"])


def load_spec(path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files if key != "__meta__"}
        return {"meta": json.loads(str(data["__meta__"])), "arrays": arrays}


def main(argv=None) -> int:
    """Command line of an exported script: run the network on inputs from an .npy file."""
    parser = argparse.ArgumentParser(description="Run a spikec integer IF network with Brian2.")
    parser.add_argument("inputs", help=".npy of integer inputs: [B, *shape] (current encoding) or "
                                       "[B, S, *shape] (spikes)")
    parser.add_argument("steps", type=int, help="evaluated readout steps T")
    parser.add_argument("--spec", default=str(Path(__file__).with_suffix(".npz")),
                        help="network parameters (default: the .npz next to this script)")
    parser.add_argument("--target", choices=("numpy", "cython"), default="numpy")
    parser.add_argument("--record", action="store_true", help="also record every layer's spikes")
    parser.add_argument("--out", help="write output, saturations (and spikes) to this .npz")
    args = parser.parse_args(argv)
    spec = load_spec(args.spec)
    x = np.load(args.inputs)
    expected = tuple(spec["meta"]["input"]["shape"])
    if x.dtype.kind not in "iu" or x.shape[-len(expected):] != expected:
        parser.error(f"inputs must be an integer array [B, ..., {expected}], got {x.dtype} {x.shape}")
    result = simulate(spec, x, args.steps, record=args.record, target=args.target)
    for b, row in enumerate(result["output"]):
        print(f"sample {b}: " + " ".join(str(int(v)) for v in row))
    if args.out:
        extra = {f"saturations/{k}": np.int64(v) for k, v in result["saturations"].items()}
        extra.update({f"spikes/{k}": v for k, v in (result["spikes"] or {}).items()})
        np.savez(args.out, output=result["output"], **extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
