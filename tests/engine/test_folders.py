"""Model folders: what a model input can choose from."""
from nodegraph.folders import Folders


def test_lists_files_and_diffusers_folders_but_not_the_parts_of_a_pipeline(tmp_path):
    root = tmp_path / "models" / "controlnet"
    (root / "sub").mkdir(parents=True)
    (root / "a.safetensors").write_bytes(b"x")
    (root / "sub" / "b.pth").write_bytes(b"x")
    (root / "notes.txt").write_text("not a model")
    single = root / "canny-diffusers"  # one diffusers model: config.json + weights
    single.mkdir()
    (single / "config.json").write_text("{}")
    (single / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    pipeline = root / "pipe"  # a diffusers pipeline: listed once, not its unet/ part
    (pipeline / "unet").mkdir(parents=True)
    (pipeline / "model_index.json").write_text("{}")
    (pipeline / "unet" / "config.json").write_text("{}")
    (pipeline / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    names = Folders(tmp_path).list("controlnet")
    assert "a.safetensors" in names and "sub/b.pth" in names and "notes.txt" not in names
    assert "canny-diffusers" in names and "pipe" in names and "pipe/unet" not in names
    assert "canny-diffusers/diffusion_pytorch_model.safetensors" in names  # the file itself, too
