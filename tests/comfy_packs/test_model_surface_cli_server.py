"""The model-surface test packs in workflows run through the CLI (a real subprocess) and the server
(ComfyUI's /prompt and /history): pack sampling gives the pictures our own nodes give."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image
from tests.server.conftest import ServerThread

from nodegraph.environment import Environment
from nodegraph.folders import Folders
from tests.tiny_models import save_tiny_checkpoint

from .test_cli_server import cli

KS = {"seed": 3, "steps": 3, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}


def api_prompt() -> dict:
    """ComfyUI API format: our KSampler against the pack's common_ksampler (same settings), and a pack-patched
    model (CFG rescale) sampled by a pack's Python sampler in SamplerCustom against ours."""
    return {
        "1": {"class_type": "TestCheckpointLoader", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "2": {"class_type": "TestTextEncodeScheduled", "inputs": {"clip": ["1", 1], "text": "a red circle"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "blue"}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {**KS, "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                                                   "latent_image": ["4", 0]}},
        "6": {"class_type": "TestCommonKSampler", "inputs": {**KS, "model": ["1", 0], "positive": ["2", 0],
                                                             "negative": ["3", 0], "latent_image": ["4", 0]}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "8": {"class_type": "TestVAERoundTrip", "inputs": {"vae": ["1", 2], "image": ["7", 0], "tiled": False}},
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "ours"}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "theirs"}},
        "12": {"class_type": "TestRescaleCFGPatch", "inputs": {"model": ["1", 0], "multiplier": 0.7}},
        "13": {"class_type": "RescaleCFG", "inputs": {"model": ["1", 0], "multiplier": 0.7}},
        "14": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "normal", "steps": 3,
                                                          "denoise": 1.0}},
        "15": {"class_type": "TestPythonEulerSampler", "inputs": {"s_scale": 1.0}},
        "16": {"class_type": "SamplerCustom", "inputs": {"model": ["12", 0], "add_noise": True, "noise_seed": 3,
                                                         "cfg": 5.0, "positive": ["2", 0], "negative": ["3", 0],
                                                         "sampler": ["15", 0], "sigmas": ["14", 0],
                                                         "latent_image": ["4", 0]}},
        "17": {"class_type": "KSampler", "inputs": {**KS, "model": ["13", 0], "positive": ["2", 0],
                                                    "negative": ["3", 0], "latent_image": ["4", 0]}},
        "18": {"class_type": "VAEDecode", "inputs": {"samples": ["16", 0], "vae": ["1", 2]}},
        "19": {"class_type": "VAEDecode", "inputs": {"samples": ["17", 0], "vae": ["1", 2]}},
        "20": {"class_type": "SaveImage", "inputs": {"images": ["18", 0], "filename_prefix": "patched_theirs"}},
        "21": {"class_type": "SaveImage", "inputs": {"images": ["19", 0], "filename_prefix": "patched_ours"}},
        "22": {"class_type": "SaveImage", "inputs": {"images": ["8", 1], "filename_prefix": "roundtrip"}},
    }


def pictures(folder) -> dict[str, np.ndarray]:
    return {p.name.rsplit("_", 2)[0]: np.asarray(Image.open(p).convert("RGB")).astype(int)
            for p in folder.glob("*.png")}


def check(found: dict[str, np.ndarray]) -> None:
    assert set(found) == {"ours", "theirs", "patched_ours", "patched_theirs", "roundtrip"}, sorted(found)
    assert found["ours"].shape == (32, 32, 3)
    assert np.array_equal(found["ours"], found["theirs"])  # common_ksampler is KSampler
    assert np.abs(found["patched_ours"] - found["patched_theirs"]).max() <= 1  # float order only
    assert np.abs(found["patched_ours"] - found["ours"]).max() > 0  # the patch changed the picture
    assert found["roundtrip"].shape == (32, 32, 3)


def setup(tmp_path):
    for name in ("models/checkpoints", "output", "input", "temp"):
        (tmp_path / name).mkdir(parents=True)
    save_tiny_checkpoint(tmp_path / "models" / "checkpoints" / "tiny.safetensors", "sd1", seed=5)


@pytest.mark.slow  # ~50 s on 2 CPU cores (a subprocess importing torch, diffusers and the packs); the server test below runs the same workflow in-process
def test_cli_runs_the_model_surface_packs(tmp_path):
    setup(tmp_path)
    workflow = tmp_path / "surface.json"
    workflow.write_text(json.dumps(api_prompt()))
    proc = cli("--models-dir", str(tmp_path / "models"), "run", str(workflow), "--output-dir", str(tmp_path / "out"),
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    check(pictures(tmp_path / "out"))


def test_server_runs_the_model_surface_packs(tmp_path, comfy_registry):
    setup(tmp_path)
    env = Environment(registry=comfy_registry, folders=Folders(tmp_path))
    with ServerThread(env, tmp_path, in_process=True) as server, server.client() as http:
        job = http.post("/prompt", json={"prompt": api_prompt()}).json()
        assert "prompt_id" in job, job
        deadline = time.monotonic() + 120
        while not (history := http.get(f"/history/{job['prompt_id']}").json()) and time.monotonic() < deadline:
            time.sleep(0.1)
        entry = history[job["prompt_id"]]
        assert entry["status"]["status_str"] == "success", entry["status"]
        assert entry["outputs"]["10"]["images"][0]["filename"].startswith("ours_")
    check(pictures(tmp_path / "output"))
