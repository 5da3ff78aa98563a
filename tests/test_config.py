"""FuseMaxConfig / NumericsConfig: presets, JSON round trip, digest, validation."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from fusemax.config import (EXP2_COEFFS, PRESETS, FuseMaxConfig, NumericsConfig, load_config,
                            preset)
from fusemax.errors import FuseMaxError
from fusemax.hw.formats import FixedFormat


def test_required_presets():
    for name, (r, c) in {"tiny": (4, 4), "small": (8, 8), "medium": (16, 16), "large": (32, 32)}.items():
        cfg = preset(name)
        assert (cfg.rows, cfg.cols) == (r, c)
        assert cfg.numerics.name == "fx16" and cfg.numerics.q.width == 16
        int8 = preset(f"{name}-int8")
        assert (int8.rows, int8.cols) == (r, c)
        assert int8.numerics.q.width == int8.numerics.k.width == int8.numerics.v.width == 8
    rect = preset("rect")
    assert rect.rows != rect.cols


def test_unknown_preset_lists_names():
    with pytest.raises(FuseMaxError) as exc:
        preset("huge")
    for name in ("tiny", "small", "medium", "large", "small-int8"):
        assert name in str(exc.value)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_json_round_trip(name):
    cfg = preset(name)
    again = FuseMaxConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.digest() == cfg.digest()
    json.loads(cfg.to_json())  # plain JSON


def test_digest_stable_and_sensitive():
    cfg = preset("small")
    assert len(cfg.digest()) == 16 and int(cfg.digest(), 16) >= 0
    # equal configs built independently hash equal, in this process and in a fresh one
    same = FuseMaxConfig("small", 8, 8, NumericsConfig())
    assert same.digest() == cfg.digest()
    code = "from fusemax.config import preset; print(preset('small').digest())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == cfg.digest()
    # any change changes it
    digests = {cfg.digest(), cfg.replace(rows=4).digest(), cfg.replace(name="x").digest(),
               cfg.replace(numerics=dataclasses.replace(cfg.numerics, rounding="floor")).digest(),
               cfg.replace(numerics=dataclasses.replace(cfg.numerics, exp_degree=5)).digest(),
               cfg.replace(numerics=dataclasses.replace(cfg.numerics, out=FixedFormat(16, 11))).digest()}
    assert len(digests) == 6
    assert len({c.digest() for c in PRESETS.values()}) == len(PRESETS)


def test_from_json_defaults_and_unknown_fields():
    d = {"name": "mine", "rows": 2, "cols": 3}  # numerics omitted -> default
    cfg = FuseMaxConfig.from_dict(d)
    assert cfg.numerics == NumericsConfig()
    d["numerics"] = {"rounding": "floor", "q": {"kind": "fixed", "width": 12, "frac": 9}}
    cfg = FuseMaxConfig.from_dict(d)
    assert cfg.numerics.q == FixedFormat(12, 9) and cfg.numerics.rounding == "floor"
    with pytest.raises(FuseMaxError, match="unknown config field"):
        FuseMaxConfig.from_dict({"name": "x", "rows": 2, "cols": 2, "bogus": 1})
    with pytest.raises(FuseMaxError, match="unknown numerics field"):
        FuseMaxConfig.from_dict({"name": "x", "rows": 2, "cols": 2, "numerics": {"exp_deg": 3}})
    with pytest.raises(FuseMaxError, match="missing"):
        FuseMaxConfig.from_dict({"name": "x", "rows": 2})
    with pytest.raises(FuseMaxError, match="not implemented"):
        FuseMaxConfig.from_dict({"name": "x", "rows": 2, "cols": 2,
                                 "numerics": {"q": {"kind": "float", "width": 16, "frac": 0}}})
    with pytest.raises(FuseMaxError, match="does not parse"):
        FuseMaxConfig.from_json("{nope")


def test_load_config_file(tmp_path):
    cfg = preset("rect").replace(name="custom", rows=3)
    path = tmp_path / "c.json"
    path.write_text(cfg.to_json())
    assert load_config(str(path)) == cfg
    assert load_config("tiny") == preset("tiny")
    with pytest.raises(FuseMaxError, match="cannot read"):
        load_config(str(tmp_path / "missing.json"))


@pytest.mark.parametrize("kwargs, match", [
    (dict(rows=0), "rows must be a positive integer"),
    (dict(cols=-1), "cols must be a positive integer"),
    (dict(rows=2.5), "rows must be a positive integer"),
    (dict(name=""), "name"),
])
def test_config_validation(kwargs, match):
    base = dict(name="x", rows=4, cols=4)
    base.update(kwargs)
    with pytest.raises(FuseMaxError, match=match):
        FuseMaxConfig(**base)


@pytest.mark.parametrize("kwargs, match", [
    (dict(rounding="up"), "rounding"),
    (dict(overflow="wrap"), "overflow"),
    (dict(exp_degree=0), "exp_degree"),
    (dict(exp_degree=7), "built-in"),
    (dict(exp_degree=2, exp_coeffs=(0.7,)), "exp_coeffs has 1"),
    (dict(exp_coeffs=(0.7, 0.2, 0.05, -0.01)), r"\[0, 2\)"),
    (dict(exp=FixedFormat(8, 8, signed=False)), "cannot represent 1.0"),
    (dict(exp_frac=0), "exp_frac"),
    (dict(exp_frac=14), "exp.frac <= exp_frac"),
    (dict(acc_guard_bits=-1), "acc_guard_bits"),
    (dict(rnv=FixedFormat(60, 20)), "> 62"),
])
def test_numerics_validation(kwargs, match):
    with pytest.raises(FuseMaxError, match=match):
        NumericsConfig(**kwargs)


@pytest.mark.parametrize("width, frac, signed, match", [
    (0, 0, True, "width"), (1, 0, True, "width"), (63, 0, True, "62"), (8, 2.5, True, "frac"),
])
def test_format_validation(width, frac, signed, match):
    with pytest.raises(FuseMaxError, match=match):
        FixedFormat(width, frac, signed)


def test_explicit_coefficients_and_derived():
    nc = NumericsConfig(exp_degree=3, exp_coeffs=EXP2_COEFFS[3])
    assert nc.coefficients() == EXP2_COEFFS[3]
    codes = nc.coefficient_codes()
    assert codes[0] == 1 << nc.exp_frac and len(codes) == 4
    d = NumericsConfig()
    assert d.exp_cycles == d.exp_degree + 1 <= 6  # + 1 subtract <= the paper's 7
    assert d.div_cycles == d.out.width + 3
    assert d.qk_acc_width == 16 + 16 + 8
    cfg = preset("small")
    assert cfg.sld_width >= d.exp.width + 3 and cfg.slnv_width >= d.exp.width + d.v.width + 3
    assert "score" in cfg.describe()


def test_sigmoid_unit_needs_a_zero_epsilon_in_rd_codes():
    """The 1D PE divides by RD alone; an RD format in which 1e-8 is a nonzero code is refused."""
    replace = dataclasses.replace
    cfg = preset("tiny-sigmoid")
    assert cfg.sigmoid_unit and cfg.numerics.sigmoid_eps_code == 0
    fine = replace(cfg.numerics, rd=FixedFormat(32, 25), rnv=FixedFormat(24, 16))
    assert cfg.replace(numerics=fine).numerics.sigmoid_eps_code == 0
    wide = replace(cfg.numerics, rd=FixedFormat(32, 26), rnv=FixedFormat(24, 16))
    assert wide.sigmoid_eps_code == 1
    assert not cfg.replace(sigmoid_unit=False, numerics=wide).sigmoid_unit  # no unit: accepted
    with pytest.raises(FuseMaxError, match="epsilon 1e-8 is 1 RD codes"):
        cfg.replace(numerics=wide)
    with pytest.raises(FuseMaxError, match="sigmoid_unit must be true or false"):
        cfg.replace(sigmoid_unit=1)
