"""spandrel imports without torchvision, and nothing afterwards sees a fake torchvision."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nodes.upscale.spandrel_import import TorchvisionMissing, _stand_in_modules, normalize

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, extra_path: Path | None = None) -> str:
    env_path = [str(ROOT)] + ([str(extra_path)] if extra_path else [])
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            cwd=ROOT, env={"PYTHONPATH": ":".join(env_path), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_spandrel_imports_and_transformers_still_works_without_torchvision():
    out = run_python("""
        import importlib.util, sys
        assert importlib.util.find_spec("torchvision") is None, "this test needs an environment without torchvision"
        from nodes.upscale.spandrel_import import import_spandrel
        spandrel = import_spandrel()
        from spandrel.architectures.LaMa import LaMaArch  # the architectures that import torchvision
        from spandrel.architectures.RestoreFormer import RestoreFormerArch
        assert not [m for m in sys.modules if m.split(".")[0] == "torchvision"], "a stand-in was left behind"
        assert importlib.util.find_spec("torchvision") is None
        import transformers
        from transformers import CLIPTextModel
        from diffusers import AutoencoderKL
        assert not [m for m in sys.modules if m.split(".")[0] == "torchvision"]
        print("ok", spandrel.__version__, CLIPTextModel.__name__)
    """)
    assert out.startswith("ok 0.4.2 CLIPTextModel")


def test_a_real_torchvision_is_used_when_installed(tmp_path):
    package = tmp_path / "torchvision" / "transforms"
    package.mkdir(parents=True)
    (tmp_path / "torchvision" / "__init__.py").write_text("REAL = True\n")
    (package / "__init__.py").write_text("")
    (package / "functional.py").write_text(textwrap.dedent("""
        import enum
        class InterpolationMode(enum.Enum):
            BILINEAR = "bilinear"
        def rotate(*a, **k):
            return "the installed rotate"
        def normalize(*a, **k):
            return "the installed normalize"
    """))
    out = run_python("""
        import sys
        from nodes.upscale.spandrel_import import import_spandrel
        import_spandrel()
        from spandrel.architectures.LaMa.__arch import LaMa
        print(LaMa.rotate(), sys.modules["torchvision"].REAL)
    """, extra_path=tmp_path)
    assert out.strip() == "the installed rotate True"


def test_stand_in_normalize_is_torchvisions_and_other_functions_fail_clearly():
    x = torch.rand(2, 3, 4, 5)
    before = x.clone()
    mean, std = [0.5, 0.4, 0.3], [0.5, 0.25, 2.0]
    expected = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    assert torch.allclose(normalize(x, mean, std), expected)
    assert torch.equal(x, before)  # not in place by default
    with pytest.raises(ValueError, match="zero"):
        normalize(x, mean, [1.0, 0.0, 1.0])
    functional = _stand_in_modules()["torchvision.transforms.functional"]
    with pytest.raises(TorchvisionMissing, match="rotate is not available: torchvision is not installed.*"
                                                 "This model architecture needs torchvision"):
        functional.rotate(x, 90)
    with pytest.raises(TorchvisionMissing, match="resize is not available"):
        functional.resize(x, [2, 2])
