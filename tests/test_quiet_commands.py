"""Quiet commands: ``qrtl`` silences TensorFlow/absl/CUDA start-up noise before TensorFlow is imported,
so a command prints only its own lines (run with no TF_* variables in the environment)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "jet_tagger"

# what TensorFlow 2.15 prints on start-up when nothing silences it (checked on this machine)
NOISE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |cuda|cuDNN|cuFFT|cuBLAS|oneDNN|TensorRT|"
                   r"rebuild TensorFlow|cpu_feature_guard|^WARNING:(tensorflow|absl)|^I\d{4} |^W\d{4} ",
                   re.IGNORECASE | re.MULTILINE)


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "AUTOGRAPH_", "GRPC_"))}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def test_bare_tensorflow_import_is_noisy_here():
    """The check below can fail: importing TensorFlow without qrtl prints start-up lines on this machine."""
    res = _run([sys.executable, "-c", "import tensorflow"])
    assert NOISE.search(res.stderr + res.stdout), res.stderr


def test_convert_prints_no_tensorflow_startup_lines(tmp_path):
    script = Path(sys.executable).parent / "qrtl"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "qrtl.cli"]
    res = _run(cmd + ["convert", str(EXAMPLE / "jet_tagger.h5"), "-o", str(tmp_path / "jet.net")])
    assert res.returncode == 0, res.stderr
    assert not NOISE.search(res.stderr) and not NOISE.search(res.stdout), res.stderr + res.stdout
    assert res.stderr.strip() == "", res.stderr
    assert res.stdout.splitlines()[-1].startswith("wrote ")
