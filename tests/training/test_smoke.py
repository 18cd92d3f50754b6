"""The training scripts of the shipped models still run: each one's --smoke mode (every stage, tiny step
counts, CPU) writes its weights and metrics. The shipped files came from full GPU runs of these scripts."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[2]

SCRIPTS = {  # script -> the weights file its smoke run must write
    "train_default.py": "default_unet.safetensors",
    "train_lora.py": "nodegraph-silhouette.safetensors",
    "train_controlnet.py": "nodegraph-default-shape-controlnet.safetensors",
    "train_upscaler.py": "2x-nodegraph-world-esrgan.safetensors",
}


@pytest.mark.slow  # each script trains for a while, in a subprocess
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_smoke_run_writes_weights(script, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "training" / script), "--smoke", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    weights = tmp_path / SCRIPTS[script]
    with safe_open(str(weights), "pt") as f:
        assert len(list(f.keys())) > 10


@pytest.mark.slow
def test_stylegan_smoke_on_the_cpu_writes_a_loadable_generator(tmp_path):
    """train_stylegan.py --smoke --device cpu: every stage (GAN, scorer, evaluation) runs, and the
    generator it writes loads through the StyleGAN loader in NVIDIA's layout."""
    proc = subprocess.run([sys.executable, str(ROOT / "training" / "train_stylegan.py"), "--smoke", "--device", "cpu",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    sys.path.insert(0, str(ROOT))
    from nodegraph import read_weights
    from nodes.gan.stylegan_layouts import load_stylegan

    weights = read_weights(tmp_path / "default-world-stylegan2-G.safetensors")
    generator, info = load_stylegan(weights.tensors, weights.name)
    assert info["layout"] == "nvidia" and info["config"].resolution == 64
    assert (tmp_path / "stylegan_metrics.json").is_file() and (tmp_path / "default-world-stylegan2-patchgan-D.safetensors").is_file()
