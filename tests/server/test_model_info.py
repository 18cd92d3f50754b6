"""/v1/models/{folder}/info: a model file's native image size, read from its safetensors header, so the
editor can size a new Empty Latent Image for the model in use (the node's declared default stays
ComfyUI's 512)."""
import torch
from safetensors.torch import save_file


def test_model_info_reads_the_image_size_from_the_header(server, http):
    folder = server.state.env.folders.models / "checkpoints"
    folder.mkdir(exist_ok=True)
    t = {"w": torch.zeros(1)}
    save_file(t, str(folder / "ours.safetensors"), metadata={"nodegraph.image_size": "128"})
    save_file(t, str(folder / "modelspec.safetensors"), metadata={"modelspec.resolution": "1024x768"})
    save_file(t, str(folder / "plain.safetensors"))
    info = lambda name: http.get("/v1/models/checkpoints/info", params={"name": name})  # noqa: E731
    assert info("ours.safetensors").json() == {"name": "ours.safetensors", "image_size": [128, 128]}
    assert info("modelspec.safetensors").json()["image_size"] == [1024, 768]
    assert info("plain.safetensors").json()["image_size"] is None
    assert info("missing.safetensors").status_code == 404
    assert info("../../etc/passwd").status_code == 404
    assert http.get("/v1/models/nope/info", params={"name": "x"}).status_code == 404
