"""CLI conventions a newcomer relies on: a busy port is one clear line, --quiet keeps errors, --verbose explains."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bastion.cli.main import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_busy_port_is_one_clear_line_and_exit_2(bastion_home: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = subprocess.run([sys.executable, "-c", "from bastion.cli.main import main; main()", "serve", "--port",
                              str(port)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"127.0.0.1:{port} is already in use" in lines[0] and "--port" in lines[0]


def test_quiet_silences_notes_but_never_errors_and_verbose_shows_the_cause(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()), str(p))
    good, bad = tmp_path / "good.npz", tmp_path / "std.npz"
    rng = np.random.default_rng(0)
    np.savez(good, x=rng.random((10, 1, 8, 8)).astype(np.float32), y=np.arange(10) % 3)
    np.savez(bad, x=rng.standard_normal((10, 1, 8, 8)).astype(np.float32), y=np.arange(10) % 3)

    code, out, err = run(["attack", "evasion", "--model", str(p), "--data", str(good), "--eps", "1.0"], capsys)
    assert code == 0 and "warning" in err and "input range" in err
    code, out, err = run(["-q", "attack", "evasion", "--model", str(p), "--data", str(good), "--eps", "1.0"], capsys)
    assert code == 0 and err == "" and "robust_accuracy" in out, "results on stdout, nothing else"
    code, _, err = run(["-q", "attack", "evasion", "--model", str(p), "--data", str(bad)], capsys)
    assert code == 2 and "InputRangeError" in err, "an error is never silenced"
    code, _, err = run(["-v", "attack", "evasion", "--model", str(p), "--data", str(bad)], capsys)
    assert code == 2 and "Traceback" in err
    code, _, err = run(["attack", "evasion", "--model", str(p), "--data", str(good), "--eps", "1.0"], capsys)
    assert "warning" in err, "--quiet does not stick to later commands"


def test_an_eps_past_the_input_box_is_a_warning_in_either_norm(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()), str(p))
    data = tmp_path / "d.npz"
    np.savez(data, x=np.random.default_rng(1).random((10, 1, 8, 8)).astype(np.float32), y=np.arange(10) % 3)
    base = ["attack", "evasion", "--model", str(p), "--data", str(data), "--steps", "2"]
    _, _, err = run([*base, "--norm", "l2", "--eps", "1e9"], capsys)
    assert "covers the whole input range" in err and "l2 diameter is 8" in err  # sqrt(64) x width 1
    _, _, err = run([*base, "--norm", "l2", "--eps", "2"], capsys)
    assert "covers" not in err, "an L2 budget inside the box is a real question"
    _, _, err = run([*base, "--eps", "0.1"], capsys)
    assert "warning" not in err
