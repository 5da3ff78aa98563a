"""Every CLI (sub)command has --help with an example; long work reports progress on stderr only."""

import json

import pytest

from fusemax.cli import main
from fusemax.docgen import command_tree, examples

COMMANDS = command_tree()


def test_the_tree_has_every_command():
    names = {cmd for cmd, _, _ in COMMANDS}
    for cmd in ("fusemax", "fusemax cascade list", "fusemax cascade show", "fusemax cascade passes",
                "fusemax cascade eval", "fusemax golden", "fusemax compile", "fusemax verilog",
                "fusemax sim", "fusemax timeline", "fusemax utilization", "fusemax model",
                "fusemax synth"):
        assert cmd in names


@pytest.mark.parametrize("cmd, parser", [(c, p) for c, _, p in COMMANDS], ids=[c for c, _, _ in COMMANDS])
def test_every_parser_has_an_example(cmd, parser):
    assert "example" in (parser.epilog or ""), f"{cmd} --help has no example"
    ex = examples(parser)
    assert ex and all(e.startswith(("fusemax", "python")) for e in ex), ex
    assert "example:" in parser.format_help()


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["cascade", "passes", "--help"])
    assert exc.value.code == 0
    assert "example:\n  fusemax cascade passes" in capsys.readouterr().out


def test_verilator_build_progress_goes_to_stderr(tmp_path, monkeypatch, capsys):
    from fusemax.sim import runner

    monkeypatch.setenv("FUSEMAX_BUILD_DIR", str(tmp_path))
    bdir, built, _ = runner.cached_build("demo", "0123456789abcdef", lambda d: {"ok": 1})
    assert built
    cap = capsys.readouterr()
    assert cap.out == ""
    assert "building the Verilator model demo" in cap.err and f"built {bdir}" in cap.err
    # reused: silent
    assert runner.cached_build("demo", "0123456789abcdef", lambda d: {})[1] is False
    assert capsys.readouterr().err == ""


def test_waiting_for_another_build_is_reported(tmp_path, monkeypatch, capsys):
    import fcntl
    import os
    import threading

    from fusemax.sim import runner

    monkeypatch.setenv("FUSEMAX_BUILD_DIR", str(tmp_path))
    lock = tmp_path / "verilator" / ".demo-fedcba987654.lock"
    lock.parent.mkdir(parents=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # "another process" holds the build lock
    threading.Timer(0.3, lambda: (fcntl.flock(fd, fcntl.LOCK_UN), os.close(fd))).start()
    runner.cached_build("demo", "fedcba9876543210", lambda d: {})
    assert "waiting for another process building" in capsys.readouterr().err


def test_verilog_progress_keeps_json_stdout_clean(tmp_path, monkeypatch, capsys):
    import fusemax.hw.verilog as verilog

    monkeypatch.setattr(verilog, "cached_verilog", lambda config: "module fusemax_top();\nendmodule\n")
    assert main(["verilog", "--config", "tiny", "-o", str(tmp_path), "--json"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["config"] == "tiny"
    assert "generating Verilog for tiny" in cap.err
