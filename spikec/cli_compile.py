"""`spikec compile`: every option of `spikec.compile` as a flag (tests/cli/test_cli_compile.py checks it)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import click

from spikec.cli_io import DATA_HELP, build_model, console, emit, load_array, load_data, parse_shape, show_findings
from spikec.compiler import methods, targets

# Kept literal so `spikec --help` does not import torch; a test compares them with the registries.
METHODS = tuple(methods.METHODS)   # the registries' names: a registered method or target is a CLI choice
TARGETS = tuple(targets.TARGETS)
PRETRAINED = tuple(sorted(p.stem for p in (Path(__file__).parent / "pretrained").glob("*.json")))   # shipped models
FTBC_DEFAULTS = {"alpha": 0.4, "batches": 3, "batch_size": 200}   # steps: --steps (else 32)
INPUT_HINT = ("spikec needs the range of the inputs to choose the integer input scale: give --input-range LO,HI "
              "(e.g. 0,1 for images in [0, 1]), --calibration (real samples: a .npz / .npy file or a data set "
              "name such as cifar10-subset), or --input-scale S")


def _range(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected LO,HI such as 0,1, got {text!r}", param_hint="--input-range") from None
    if not lo < hi:
        raise click.BadParameter(f"LO must be below HI, got {text!r}", param_hint="--input-range")
    return max(abs(lo), abs(hi))


def _calibration(spec: str | None, limit: int):
    """Float calibration samples from a .npy / .npz file (array x) or a data set name / path."""
    import torch

    if spec is None:
        return None
    if spec.endswith((".npy", ".npz")) or (Path(spec).is_file() and not tarfile.is_tarfile(spec)):
        return torch.as_tensor(load_array(spec)[:limit].astype("float32"))
    return load_data(spec, limit)[0].float()


def _method_options(srp_tau, ftbc, ftbc_alpha, ftbc_batches, ftbc_batch_size, kappa, gate) -> dict:
    opts: dict = {}
    if srp_tau is not None:
        opts["srp_presim"] = srp_tau
    given = {k: v for k, v in (("alpha", ftbc_alpha), ("batches", ftbc_batches), ("batch_size", ftbc_batch_size))
             if v is not None}
    if ftbc or given:
        opts["ftbc"] = given
    if kappa is not None:
        opts["kappa"] = kappa
    if gate is not None:
        opts["gate"] = gate
    return opts


@click.command("compile")
@click.option("--model", "model_spec", help="package.module:factory returning the nn.Module (the current folder "
              "is importable)")
@click.option("--pretrained", type=click.Choice(PRETRAINED), help="instead of --model: a model shipped with spikec")
@click.option("--weights", type=click.Path(dir_okay=False), help="state dict (.pt) for --model, loaded with "
              "weights_only=True")
@click.option("--activation", type=click.Choice(["qcfs", "ecl"]), help="wrap the factory's ReLUs with trainable "
              "clips (replace_relu) before loading --weights saved from such a model")
@click.option("--levels", type=int, default=4, show_default=True, help="with --activation qcfs: quantisation levels L")
@click.option("--input-shape", help="one sample's shape, e.g. 3,32,32 [default: from --calibration or --pretrained]")
@click.option("--method", type=click.Choice(METHODS), default="qcfs", show_default=True,
              help="conversion method (docs/methods.md); ReLU methods (opi, maxnorm, robust) need --calibration")
@click.option("--target", type=click.Choice(TARGETS), default="loihi", show_default=True,
              help="integer formats; loihi-stock for Lava's stock LIF and netx export, loihi-sdnn for "
              "Lava's stock sigma-delta neurons")
@click.option("--calibration", help=f"real input samples: .npy / .npz (array x), or {DATA_HELP}")
@click.option("--calibration-limit", type=click.IntRange(1), default=256, show_default=True,
              help="use at most this many calibration samples")
@click.option("--input-range", help="LO,HI of the float inputs (e.g. 0,1); sets the input scale without data")
@click.option("--input-scale", type=float, help="integer input units per float unit [default: from the range]")
@click.option("--input-bits", type=click.IntRange(2, 32), help="width of the integer input [default: the target's]")
@click.option("--steps", type=click.IntRange(1), help="T the graph will run for: proves no saturation up to T; "
              "FTBC calibrates to it")
@click.option("--saturate", is_flag=True, help="accept possible membrane saturation instead of failing")
@click.option("--per-channel", is_flag=True, help="calibrated thresholds per channel (ReLU methods)")
@click.option("--scale-per-channel", is_flag=True, help="one integer scale per output channel")
@click.option("--percentile", type=click.FloatRange(0, 100, min_open=True),
              help="calibration statistic for ReLU thresholds [default: the method's]")
@click.option("--calibration-batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--srp-tau", type=click.IntRange(1), help="SRP pre-simulation steps tau [default with --method srp: 4]")
@click.option("--ftbc", is_flag=True, help="add FTBC bias schedules (needs --calibration)")
@click.option("--ftbc-alpha", type=float, help=f"FTBC step size [default: {FTBC_DEFAULTS['alpha']}]")
@click.option("--ftbc-batches", type=click.IntRange(1), help=f"FTBC calibration batches "
              f"[default: {FTBC_DEFAULTS['batches']}]")
@click.option("--ftbc-batch-size", type=click.IntRange(1), help=f"FTBC samples per batch "
              f"[default: {FTBC_DEFAULTS['batch_size']}]")
@click.option("--kappa", type=float, help="with --method ecl: a -1 spike fires at v <= -kappa * theta [default: 0.1]")
@click.option("--gate", type=click.Choice(["net", "none"]), help="with --method ecl: negative-spike gate "
              "[default: net]")
@click.option("--sd-levels", type=click.IntRange(1), help="with --target loihi-sdnn: message levels per threshold "
              "(a power of two) [default: the QCFS L]")
@click.option("--sd-clip", type=click.Choice(["output", "input", "none"]), default="output", show_default=True,
              help="with --target loihi-sdnn: how each layer is clipped at L levels as IF neurons are (a twin "
              "layer fed by the layer's output or its inputs), or not")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="graph file to write (.h5)")
@click.option("--wide", is_flag=True, help="show every column of the report")
@click.option("--json", "as_json", is_flag=True, help="print the report (and warnings) as JSON")
def compile_cmd(model_spec, pretrained, weights, activation, levels, input_shape, method, target, calibration,
                calibration_limit, input_range, input_scale, input_bits, steps, saturate, per_channel,
                scale_per_channel, percentile, calibration_batch_size, srp_tau, ftbc, ftbc_alpha, ftbc_batches,
                ftbc_batch_size, kappa, gate, sd_levels, sd_clip, output, wide, as_json):
    """Compile a trained PyTorch model to an integer IF graph (HDF5).

    \b
    spikec compile --pretrained cifar10_vgg_small_qcfs --input-range 0,1 -o g.h5
    spikec compile --model mypkg.nets:make --weights w.pt --input-shape 1,28,28 --calibration x.npz -o g.h5
    """
    import torch

    import spikec
    from spikec.analysis.diagnostics import collapsed_thresholds
    from spikec.compiler.report import print_report, report

    model = _model(model_spec, pretrained, weights, activation, levels)
    shape = parse_shape(input_shape) if input_shape else None
    peak = _range(input_range)
    calib = _calibration(calibration, calibration_limit)
    if calib is None and peak is None and input_scale is None:
        raise click.UsageError(INPUT_HINT)
    if shape is None:
        shape = tuple(calib.shape[1:]) if calib is not None else (3, 32, 32) if pretrained else None
    if shape is None:
        raise click.UsageError("give --input-shape (one sample's shape, e.g. 1,28,28)")
    example = torch.full((1,) + shape, peak if peak is not None else 0.0)
    if calib is not None and tuple(calib.shape[1:]) == shape and peak is None:
        example = calib[:1]
    options = {k: v for k, v in (("input_scale", input_scale), ("input_bits", input_bits), ("percentile", percentile))
               if v is not None}
    options.update(saturate=saturate, per_channel=per_channel, scale_per_channel=scale_per_channel,
                   calibration_batch_size=calibration_batch_size, sd_levels=sd_levels, sd_clip=sd_clip)
    options.update(_method_options(srp_tau, ftbc, ftbc_alpha, ftbc_batches, ftbc_batch_size, kappa, gate))
    graph = spikec.compile(model, example, method=method, calibration=calib, steps=steps, target=target, **options)
    spikec.save(graph, output)
    findings = collapsed_thresholds(graph)
    if as_json:
        emit({"output": output, "layers": report(graph), "latency": graph.latency,
              "warnings": [f.to_dict() for f in findings]})
    else:
        print_report(graph, console=console(False), wide=wide)
        click.echo(f"wrote {output}")
    show_findings(findings)


def _model(model_spec, pretrained, weights, activation, levels):
    if (model_spec is None) == (pretrained is None):
        raise click.UsageError("give exactly one of --model package.module:factory and --pretrained NAME")
    if pretrained is not None:
        if weights or activation:
            raise click.UsageError("--weights and --activation go with --model; --pretrained has its own")
        from spikec.models import pretrained as load_pretrained

        return load_pretrained(pretrained)
    return build_model(model_spec, weights, activation, levels)
