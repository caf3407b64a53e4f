"""`spikec compile`: every option of spikec.compile has a flag, --help shows choices and defaults,
flags reach the graph exactly as the Python keyword would, and mistakes say what to do next."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import spikec
from spikec.cli import main
from spikec.cli_compile import FTBC_DEFAULTS as CLI_FTBC_DEFAULTS
from spikec.cli_compile import METHODS, PRETRAINED, TARGETS, compile_cmd
from spikec.compiler import methods, targets
from spikec.compiler.pipeline import Options
from spikec.conversion.ftbc import DEFAULTS as FTBC_DEFAULTS
from spikec.ir.digest import content_digest
from spikec.models import PRETRAINED as PRETRAINED_DIR

RENAMED = {"srp_presim": "srp_tau"}   # Python keyword -> CLI parameter, where they differ


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_every_python_option_has_a_flag():
    params = {p.name for p in compile_cmd.params}
    python = {f.name for f in dataclasses.fields(Options)} | {"method", "target", "calibration", "steps"}
    for policy in methods.METHODS.values():
        python |= set(policy.options)
    missing = sorted(k for k in python if RENAMED.get(k, k) not in params)
    assert not missing, f"spikec.compile options without a CLI flag: {missing}"
    ftbc_missing = sorted(k for k in FTBC_DEFAULTS if k != "steps" and f"ftbc_{k}" not in params)
    assert not ftbc_missing


def test_choices_are_the_registries():
    assert sorted(METHODS) == sorted(methods.METHODS)
    assert sorted(TARGETS) == sorted(targets.TARGETS)
    assert sorted(PRETRAINED) == sorted(p.stem for p in PRETRAINED_DIR.glob("*.json"))
    assert CLI_FTBC_DEFAULTS == {k: v for k, v in FTBC_DEFAULTS.items() if k != "steps"}
    assert f"[default with --method srp: {methods.SRP_DEFAULT_TAU}]" in " ".join(
        next(p for p in compile_cmd.params if p.name == "srp_tau").help.split())
    flag_defaults = {p.name: p.default for p in compile_cmd.params if not getattr(p, "is_flag", False)}
    for field in dataclasses.fields(Options):
        if field.name in flag_defaults and field.default is not None:
            assert flag_defaults[field.name] == field.default, field.name


def test_help_shows_choices_and_defaults():
    res = invoke("compile", "--help")
    text = " ".join(res.output.split())
    assert res.exit_code == 0
    assert "[" + "|".join(METHODS) + "]" in text and "[default: qcfs]" in text
    assert "[" + "|".join(TARGETS) + "]" in text and "[default: loihi]" in text
    assert "--input-range" in text and "--srp-tau" in text and "[default: 0.4]" in text


FACTORIES = """
import torch
from torch import nn

from spikec.quantize import replace_relu


def make_plain():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16, 3))


def make_model():
    return replace_relu(make_plain(), "qcfs", 4, threshold=1.0)
"""


@pytest.fixture
def weights(tmp_path, monkeypatch):
    (tmp_path / "cli_models.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "cli_models", raising=False)
    torch.save(_model().state_dict(), tmp_path / "w.pt")
    torch.manual_seed(1)
    np.savez(tmp_path / "calib.npz", x=torch.rand(8, 1, 4, 4).numpy())
    return tmp_path


def _model():
    namespace: dict = {}
    exec(FACTORIES, namespace)  # noqa: S102  (the same factory the CLI imports)
    return namespace["make_model"]().eval()


def make_plain():
    namespace: dict = {}
    exec(FACTORIES, namespace)  # noqa: S102
    return namespace["make_plain"]()


@pytest.mark.parametrize("flags, python", [
    (["--srp-tau", "2"], {"srp_presim": 2}),
    (["--method", "ecl", "--kappa", "0.5", "--gate", "none"], {"method": "ecl", "kappa": 0.5, "gate": "none"}),
    (["--ftbc", "--ftbc-alpha", "0.3", "--ftbc-batches", "1", "--ftbc-batch-size", "4", "--steps", "4"],
     {"ftbc": {"alpha": 0.3, "batches": 1, "batch_size": 4}, "steps": 4}),
    (["--input-range", "0,2", "--input-bits", "6", "--target", "int32", "--saturate"],
     {"input_bits": 6, "target": "int32", "saturate": True}),
    (["--target", "loihi-sdnn", "--sd-levels", "8", "--sd-clip", "none"],
     {"target": "loihi-sdnn", "sd_levels": 8, "sd_clip": "none"}),
])
def test_flags_equal_python_keywords(weights, flags, python):
    d = weights
    res = invoke("compile", "--model", "cli_models:make_model", "--weights", d / "w.pt", "--calibration",
                 d / "calib.npz", *flags, "-o", d / "g.h5", "--json")
    assert res.exit_code == 0, res.output
    calib = torch.as_tensor(np.load(d / "calib.npz")["x"])
    example = torch.full((1, 1, 4, 4), 2.0) if "--input-range" in flags else calib[:1]
    want = spikec.compile(_model(), example, calibration=calib, **python)
    assert content_digest(spikec.load(d / "g.h5")) == content_digest(want)


def test_no_input_range_says_which_flags(weights):
    res = invoke("compile", "--model", "cli_models:make_model", "--input-shape", "1,4,4", "-o", weights / "g.h5")
    assert res.exit_code == 2
    for flag in ("--input-range", "--calibration", "--input-scale"):
        assert flag in res.output


def test_unwrapped_factory_gets_a_hint_and_the_flag_that_fixes_it(weights):
    d = weights
    res = invoke("compile", "--model", "cli_models:make_plain", "--weights", d / "w.pt", "--input-shape", "1,4,4",
                 "--input-range", "0,1", "-o", d / "g.h5")
    assert res.exit_code == 2 and "1.lam" in res.output
    assert "replace_relu" in res.output and "--activation qcfs --levels L" in res.output
    res = invoke("compile", "--model", "cli_models:make_plain", "--weights", d / "w.pt", "--input-shape", "1,4,4",
                 "--input-range", "0,1", "--activation", "qcfs", "--levels", "4", "-o", d / "g.h5")
    assert res.exit_code == 0, res.output
    want = spikec.compile(_model(), torch.ones(1, 1, 4, 4))
    assert content_digest(spikec.load(d / "g.h5")) == content_digest(want)


def test_plain_weights_into_wrapped_model_get_the_other_hint(weights):
    d = weights
    torch.save(make_plain().state_dict(), d / "plain.pt")
    res = invoke("compile", "--model", "cli_models:make_model", "--weights", d / "plain.pt", "--input-range", "0,1",
                 "--input-shape", "1,4,4", "-o", d / "g.h5")
    assert res.exit_code == 2 and "plain ReLU model" in res.output


def test_json_carries_collapsed_threshold_warning(weights):
    d = weights
    model = _model()
    model[1].lam.data.fill_(5e-4)
    torch.save(model.state_dict(), d / "collapsed.pt")
    res = CliRunner().invoke(main, ["compile", "--model", "cli_models:make_model", "--weights", str(d / "collapsed.pt"),
                                    "--input-range", "0,1", "--input-shape", "1,4,4", "-o", str(d / "g.h5"),
                                    "--json", "--saturate"])
    assert res.exit_code == 0, res.output
    warnings = json.loads(res.stdout)["warnings"]
    assert [w["code"] for w in warnings] == ["collapsed-threshold"] and warnings[0]["where"] == "m.1"
    assert "warning (collapsed-threshold) m.1: trained threshold 0.0005" in " ".join(res.stderr.split())
