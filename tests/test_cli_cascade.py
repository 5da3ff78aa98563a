"""``fusemax cascade ...`` end to end through the CLI entry point."""

import json

import numpy as np
import pytest

from fusemax.cli import main
from fusemax.sw.attention_io import reference_attention
from fusemax.sw.library import builtin_names


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_inputs(path, shape=(2, 3, 37, 29, 24, 40), batch=True, seed=0, **override):
    b, h, m, p, e, f = shape
    rng = np.random.default_rng(seed)
    arrays = {"Q": rng.standard_normal((b, h, p, e)), "K": rng.standard_normal((b, h, m, e)),
              "V": rng.standard_normal((b, h, m, f))}
    if not batch:
        arrays = {k: v[0, 0] for k, v in arrays.items()}
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return arrays


def test_list_shows_every_builtin_with_its_passes(capsys):
    code, out, _ = run(capsys, "cascade", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == builtin_names()
    assert {r["name"]: r["passes"].get("M", r["passes"].get("K")) for r in rows} == {
        "pedagogical-1": 2, "pedagogical-2": 1, "pedagogical-3": 1,
        "attention-3pass": 3, "attention-2pass": 2, "attention-1pass": 1,
        "attention-softmax1": 1, "attention-kbias": 1, "attention-kvbias": 1,
        "sigmoid-nonorm": 1, "sigmoid-norm": 1, "attention-entropy": 1, "act-calibration": 3,
        "flowformer": 2, "flowformer-causal": 1, "attention-local": 1, "attention-routing": 1}


def test_show_output_is_a_cascade_file_that_shows_the_same(capsys, tmp_path):
    code, out, _ = run(capsys, "cascade", "show", "attention-1pass", "--unicode")
    assert code == 0 and "⋄ : m1 ≥ M1" in out
    path = tmp_path / "mine.cas"
    path.write_text(out, encoding="utf-8")
    code, again, _ = run(capsys, "cascade", "show", str(path), "--unicode")
    assert code == 0 and again == out


def test_passes_json(capsys):
    code, out, _ = run(capsys, "cascade", "passes", "attention-3pass", "--json")
    data = json.loads(out)
    assert code == 0 and data["cascade"] == "attention-3pass" and data["passes"]["M"] == 3
    code, out, _ = run(capsys, "cascade", "passes", "attention-1pass")
    assert "M 1 pass" in out


@pytest.mark.parametrize("batch", [True, False])
def test_eval_matches_softmax(capsys, tmp_path, batch):
    arrays = write_inputs(tmp_path / "in.npz", batch=batch)
    code, out, err = run(capsys, "cascade", "eval", "attention-1pass", "--inputs",
                         str(tmp_path / "in.npz"), "--out", str(tmp_path / "out.npz"),
                         "--param", "M0=8", "--intermediates", str(tmp_path / "int.npz"), "--json")
    assert code == 0, err
    assert json.loads(out)["sizes"]["M1"] == 5
    o = np.load(tmp_path / "out.npz")["O"]
    q, k, v = (arrays[n] if batch else arrays[n][None, None] for n in "QKV")
    expected = reference_attention(q, k, v, 1 / np.sqrt(24))
    expected = expected if batch else expected[0, 0]
    assert o.shape == expected.shape
    assert np.max(np.abs(o - expected)) < 1e-9 * np.max(np.abs(expected))
    inter = np.load(tmp_path / "int.npz")
    lead = ["B", "H"] if batch else []
    assert list(inter["RNV.ranks"]) == lead + ["F", "M1", "P"]
    assert np.isnan(inter["BQK"]).any()  # padded keys of the last chunk are empty


@pytest.mark.parametrize("override, message", [
    ({"V": None}, "missing array(s) V"),
    ({"K": np.zeros((2, 3, 37))}, "array K has 3 dimensions (2, 3, 37); expected 2 (M,E) or 4 (B,H,M,E)"),
    ({"K": np.zeros((2, 3, 37, 23))}, "dimension E is 23 in K but 24 in Q"),
    ({"V": np.zeros((2, 3, 36, 40))}, "dimension M is 36 in V but 37 in K"),
    ({"Q": np.full((2, 3, 29, 24), np.nan)}, "array Q holds NaN at index [0, 0, 0, 0]"),
    ({"V": np.zeros((37, 40))}, "carry B,H dimensions and some do not"),
])
def test_eval_refuses_bad_inputs_by_name(capsys, tmp_path, override, message):
    write_inputs(tmp_path / "in.npz", **override)
    code, _, err = run(capsys, "cascade", "eval", "attention-1pass", "--inputs",
                       str(tmp_path / "in.npz"), "--out", str(tmp_path / "out.npz"))
    assert code == 2
    assert message in err


def test_eval_reports_cascade_errors_with_position(capsys, tmp_path):
    path = tmp_path / "bad.cas"
    path.write_text("cascade bad\ninput A[K]\noutput Z\nExtended Einsums:\n  Z = A[k] * C[k]\n")
    code, _, err = run(capsys, "cascade", "passes", str(path))
    assert code == 2
    assert f"{path}:5:14: unknown tensor C" in err


def test_unknown_cascade_suggests_a_name(capsys):
    code, _, err = run(capsys, "cascade", "show", "attention-1pas")
    assert code == 2 and "did you mean attention-1pass?" in err


def test_bad_param_syntax(capsys, tmp_path):
    write_inputs(tmp_path / "in.npz")
    code, _, err = run(capsys, "cascade", "eval", "attention-1pass", "--inputs",
                       str(tmp_path / "in.npz"), "--out", str(tmp_path / "o.npz"), "--param", "M0")
    assert code == 2 and "expected NAME=N" in err


def test_every_subcommand_has_help_with_an_example(capsys):
    for argv in (["cascade"], ["cascade", "list"], ["cascade", "show"], ["cascade", "passes"],
                 ["cascade", "eval"]):
        with pytest.raises(SystemExit) as info:
            main(argv + ["--help"])
        assert info.value.code == 0
        assert "example:" in capsys.readouterr().out
