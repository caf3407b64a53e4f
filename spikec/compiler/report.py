"""The compile report: one row per population from graph.meta, and a rich table printer."""

from __future__ import annotations

from spikec.ir.graph import Graph

COLUMNS = ("name", "type", "source", "shape", "start", "fan_in", "theta_float", "theta", "scale",
           "weight_error", "weight_exp", "clipped", "rounded", "limited_by")


def edge_keys(edges) -> list[str]:
    """One label per in-edge of a layer: its source, with #2, #3 ... for further edges from the same
    source (a concatenation of several branches of one layer)."""
    seen: dict[str, int] = {}
    keys = []
    for e in edges:
        seen[e.src] = seen.get(e.src, 0) + 1
        keys.append(e.src if seen[e.src] == 1 else f"{e.src}#{seen[e.src]}")
    return keys


def report(graph: Graph) -> list[dict]:
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
        if name in bounds:
            row["safe_steps"] = bounds[name]["safe_steps"]
        rows.append(row)
    return rows


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
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


def print_report(graph: Graph, console=None) -> None:
    """Print the report as a table (rich), followed by method, target, latency and bound facts."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    rows = report(graph)
    cols = [c for c in COLUMNS if any(c in r for r in rows)]
    table = Table(title=f"spikec graph: method {graph.meta.get('method', '?')}, target "
                        f"{graph.meta.get('target', '?')}, latency {graph.latency}")
    for c in cols:
        table.add_column(c, justify="right" if c not in ("name", "type", "source") else "left")
    for r in rows:
        table.add_row(*(_fmt(r.get(c)) for c in cols))
    console.print(table)
    bounds = graph.meta.get("bounds")
    if bounds:
        console.print(f"overflow: {bounds['saturation']}; worst-case safe steps: "
                      f"{bounds['safe_steps'] if bounds['safe_steps'] is not None else 'unbounded'}")
