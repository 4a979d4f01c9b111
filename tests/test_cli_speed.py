"""The command line answers --help and list without importing torch or MONAI, and --help runs nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "args",
    [["--help"], ["list"], ["demo", "--help"], ["verify", "--help"], ["package", "--help"], ["study", "--help"], ["synth", "--help"]],
    ids=lambda a: " ".join(a),
)
def test_help_and_list_are_fast_and_run_nothing(args, tmp_path):
    # the same as `python -m monai_ext ARGS` (sys.argv[0] is "-m" while the package is imported), plus a check
    # of what it imported
    check = (
        "import sys, runpy\n"
        f"sys.argv = ['-m'] + {args!r}\n"
        "try:\n"
        "    runpy.run_module('monai_ext', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        "heavy = sorted(m for m in ('torch', 'monai') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "HEAVY []" in res.stdout, f"{args} imported heavy modules: {res.stdout[-500:]}"
    assert elapsed < 10.0, f"{args} took {elapsed:.1f} s"  # generous: a loaded 2-core CI machine; ~0.3 s when idle
    assert list(tmp_path.iterdir()) == [], f"{args} wrote {list(tmp_path.iterdir())}"


def test_python_dash_m_help_runs_nothing(tmp_path):
    res = subprocess.run([sys.executable, "-m", "monai_ext", "demo", "--help"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout + res.stderr  # fire writes help to stdout or through a pager, depending on the terminal
    assert "--max_epochs" in out and "--install_weights" in out
    assert list(tmp_path.iterdir()) == []
