"""The compile report: one row per population from graph.meta (written by spikec.compile), and a
rich table printer. It only reads a Graph, so it sits in the IR layer (Graph.report calls it)."""

from __future__ import annotations

from spikec.ir.graph import Graph

COLUMNS = ("name", "type", "source", "shape", "start", "fan_in", "theta_float", "theta", "scale",
           "weight_error", "weight_exp", "clipped", "rounded", "limited_by")
NARROW = ("name", "type", "shape", "start", "theta_float", "theta", "weight_error", "limited_by")   # fits 80 columns
HEADERS = {"theta_float": "theta f", "weight_error": "w err", "limited_by": "limit", "fan_in": "fan-in",
           "weight_exp": "w exp"}


class LayerReport(list):
    """The report rows (a list of dicts, JSON-able as is); printing it shows a table 80 columns wide."""

    def __init__(self, rows, graph: Graph):
        super().__init__(rows)
        self._graph = graph

    def __str__(self) -> str:
        from spikec.richtext import to_text

        return to_text(lambda console: print_report(self._graph, console=console))

    __repr__ = list.__repr__


def edge_keys(edges) -> list[str]:
    """One label per in-edge of a layer: its source, with #2, #3 ... for further edges from the same
    source (a concatenation of several branches of one layer)."""
    seen: dict[str, int] = {}
    keys = []
    for e in edges:
        seen[e.src] = seen.get(e.src, 0) + 1
        keys.append(e.src if seen[e.src] == 1 else f"{e.src}#{seen[e.src]}")
    return keys


def report(graph: Graph) -> LayerReport:
    """JSON-able rows (one per population, topological order) with the compiler's per-layer record.

    Graphs not made by spikec.compile get structural rows only (name, type, shape, start,
    weight_exp)."""
    starts = graph.start_steps()
    bounds = graph.meta.get("bounds", {}).get("layers", {})
    meta_rows = {row["name"]: row for row in graph.meta.get("layers", [])}
    rows = []
    for name in graph.topo_order():
        node = graph.node(name)
        row = {"name": name, "type": type(node).__name__, "shape": list(node.shape), "start": starts[name]}
        row.update({k: v for k, v in meta_rows.get(name, {}).items() if k != "start"})
        if graph.in_edges(name):   # from the graph itself, so hand-built graphs show it too
            ins = graph.in_edges(name)
            row["weight_exp"] = {k: int(e.weight_exp) for k, e in zip(edge_keys(ins), ins)}
        if "safe_steps" in bounds.get(name, {}):
            row["safe_steps"] = bounds[name]["safe_steps"]
        rows.append(row)
    return LayerReport(rows, graph)


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, list):
        if value and isinstance(value[0], (int, float)) and len(value) > 3 and len(value) != 3:
            return f"[{_fmt(min(value))}..{_fmt(max(value))}] x{len(value)}"
        if all(isinstance(v, int) for v in value):
            return "x".join(map(str, value))
        return ", ".join(map(_fmt, value))
    if isinstance(value, dict):
        nonzero = {k: v for k, v in value.items() if v}
        return ", ".join(f"{k}={_fmt(v)}" for k, v in nonzero.items()) or "0"
    return str(value)


def print_report(graph: Graph, console=None, wide: bool = False) -> None:
    """Print the report as a table (rich), followed by method, target, latency and bound facts.
    The table keeps to NARROW's columns unless `wide`."""
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    rows = report(graph)
    cols = [c for c in (COLUMNS if wide else NARROW) if any(c in r for r in rows)]
    table = Table(title=f"spikec graph: method {graph.meta.get('method', '?')}, target "
                        f"{graph.meta.get('target', '?')}, latency {graph.latency}",
                  caption=None if wide else "more columns: --wide / print_report(graph, wide=True)",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for c in cols:
        table.add_column(HEADERS.get(c, c), justify="right" if c not in ("name", "type", "source") else "left",
                         overflow="fold", no_wrap=c in ("name", "type", "shape") and not wide)
    for r in rows:
        table.add_row(*(escape(_fmt(r.get(c), 4 if wide else 3)) for c in cols))
    console.print(table)
    bounds = graph.meta.get("bounds")
    if bounds and "safe_steps" in bounds:
        console.print(f"overflow: {bounds['saturation']}; worst-case safe steps: "
                      f"{bounds['safe_steps'] if bounds['safe_steps'] is not None else 'unbounded'}")
    elif bounds:
        console.print(f"saturation: {bounds['saturation']}")
