"""`spikec check`: every construct of a model that spikec cannot convert, as a table (or JSON)."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table


@click.command("check")
@click.option("--model", "model_spec", required=True, help="package.module:factory returning the nn.Module "
              "(e.g. torchvision.models:resnet18)")
@click.option("--weights", type=click.Path(dir_okay=False), help="state dict (.pt) to load into the model")
@click.option("--input-shape", default="3,32,32", show_default=True, help="per-sample input shape C,H,W or N")
@click.option("--wide", is_flag=True, help="one table row per problem instead of a list")
@click.option("--json", "as_json", is_flag=True, help="print the problems as JSON")
def check_cmd(model_spec, weights, input_shape, wide, as_json):
    """List what stops a model from converting (module path, op, source line, suggestion); exit 1 if any."""
    import torch

    import spikec
    from spikec.cli_io import build_model, parse_shape

    model = build_model(model_spec, weights)
    problems = spikec.check(model, torch.rand((1,) + parse_shape(input_shape)))
    if as_json:
        click.echo(json.dumps([p.to_json() for p in problems], indent=2))
    elif not problems:
        click.echo(f"{model_spec}: no problems; spikec.compile can convert it (spikec.prepare first for "
                   "plain-ReLU models and the qcfs method)")
    elif wide:
        table = Table(title=f"{model_spec}: {len(problems)} problem(s)", show_lines=True)
        for col in ("module", "op", "source", "problem", "suggestion", "prepare fixes"):
            table.add_column(col, overflow="fold")
        for p in problems:
            table.add_row(*map(escape, (p.module or "(forward)", p.op, p.source, p.message, p.suggestion)),
                          "yes" if p.fixable else "")
        Console().print(table)
    else:
        _print_list(model_spec, problems)
    raise SystemExit(1 if problems else 0)


def _print_list(model_spec: str, problems) -> None:
    """One numbered block per problem, wrapped to the terminal (readable at 80 columns)."""
    from rich.padding import Padding
    from rich.text import Text

    console = Console()
    console.print(Text(f"{model_spec}: {len(problems)} problem(s)", style="bold"))
    for i, p in enumerate(problems, 1):
        fix = "  [spikec.prepare fixes it]" if p.fixable else ""
        console.print(Text(f"{i}. {p.module or '(forward)'} ({p.op}) at {p.source}{fix}"))
        console.print(Padding(Text(f"problem: {p.message}"), (0, 0, 0, 3), expand=False))
        console.print(Padding(Text(f"do: {p.suggestion}"), (0, 0, 0, 3), expand=False))
