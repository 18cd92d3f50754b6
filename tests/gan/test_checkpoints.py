"""Checkpoints in the public pix2pix/CycleGAN and DCGAN layouts load with zero missing/unexpected keys,
their size is detected from keys and shapes, and unsupported files are reported clearly."""
from __future__ import annotations

import pytest
import torch

from nodegraph import ModelFileError, read_weights
from nodegraph.executor import Executor
from nodes.gan.loaders import WRAPPER_KEYS, UnsupportedCheckpoint, compare, detect_and_build

from tests.gan.public_layouts import dcgan_keys, nlayer_keys, random_state_dict, resnet_keys, unet_keys


def L(node, output=0):
    return {"node": node, "output": output}


@pytest.mark.parametrize("norm", ["batch", "instance"])
@pytest.mark.parametrize("num_downs", [8, 6])
def test_unet_checkpoint_loads_strictly(tmp_path, norm, num_downs):
    sd = random_state_dict(unet_keys(3, 3, num_downs, ngf=8, norm=norm))
    torch.save(sd, tmp_path / "latest_net_G.pth")
    loaded = read_weights(tmp_path / "latest_net_G.pth", wrappers=WRAPPER_KEYS).tensors
    arch, module = detect_and_build(loaded)
    assert compare(module, loaded) == ([], [], [])  # zero missing, unexpected or mis-shaped keys
    assert (arch.kind, arch.args["num_downs"], arch.args["ngf"], arch.args["norm"]) == ("unet", num_downs, 8, norm)
    for key, value in module.state_dict().items():
        assert torch.equal(value, loaded[key].to(value.dtype)), key


def test_unet_256_key_names_match_the_published_ones():
    keys = unet_keys(3, 3, 8, ngf=64, norm="batch")
    # the innermost block of unet_256 sits six submodules deep; its upconv maps 512 -> 512
    assert keys["model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.3.weight"] == (512, 512, 4, 4)
    assert keys["model.model.0.weight"] == (64, 3, 4, 4) and keys["model.model.3.weight"] == (128, 3, 4, 4)


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_resnet_checkpoint_loads_strictly(tmp_path, norm):
    shapes = resnet_keys(3, 3, ngf=8, norm=norm, n_blocks=9)
    assert "model.10.conv_block.1.weight" in shapes and "model.26.weight" in shapes  # resnet_9blocks layout
    sd = random_state_dict(shapes)
    torch.save(sd, tmp_path / "latest_net_G_A.pth")
    arch, module = detect_and_build(read_weights(tmp_path / "latest_net_G_A.pth", wrappers=WRAPPER_KEYS).tensors)
    assert compare(module, sd) == ([], [], [])
    a = arch.args
    assert (arch.kind, a["n_blocks"], a["ngf"], a["norm"], a["n_downsampling"], a["padding_type"]) == \
        ("resnet", 9, 8, norm, 2, "reflect")


def test_resnet_6_blocks_and_old_instance_norm_files(tmp_path):
    shapes = resnet_keys(3, 3, ngf=8, norm="instance", n_blocks=6)
    sd = random_state_dict(shapes)
    # files saved before PyTorch 0.4 carry InstanceNorm running stats; pix2pix's loader drops them
    sd["model.2.running_mean"] = torch.zeros(8)
    sd["model.2.running_var"] = torch.ones(8)
    arch, module = detect_and_build(sd)
    assert arch.args["n_blocks"] == 6
    assert compare(module, random_state_dict(shapes)) == ([], [], [])


def test_batchnorm_files_without_num_batches_tracked_load():
    """Files saved before PyTorch 0.4.1 have no num_batches_tracked buffers."""
    sd = {k: v for k, v in random_state_dict(unet_keys(3, 3, 7, ngf=8, norm="batch")).items()
          if not k.endswith("num_batches_tracked")}
    arch, module = detect_and_build(sd)
    assert arch.args["num_downs"] == 7 and arch.args["norm"] == "batch"
    assert torch.equal(module.state_dict()["model.model.1.model.2.running_var"], sd["model.model.1.model.2.running_var"])


@pytest.mark.parametrize("n_layers,norm", [(3, "batch"), (3, "instance"), (2, "batch"), (5, "none")])
def test_patchgan_checkpoint_loads_strictly(n_layers, norm):
    sd = random_state_dict(nlayer_keys(6, 16, n_layers, norm))
    arch, module = detect_and_build(sd)
    assert compare(module, sd) == ([], [], [])
    assert (arch.kind, arch.role, arch.input_nc, arch.args["n_layers"], arch.args["norm"]) == \
        ("patchgan", "discriminator", 6, n_layers, norm)


def test_dcgan_checkpoints_load_strictly():
    g_shapes, d_shapes = dcgan_keys(nz=100, ngf=16, ndf=16)
    g_arch, g = detect_and_build(random_state_dict(g_shapes))
    d_arch, d = detect_and_build(random_state_dict(d_shapes))
    assert (g_arch.role, g_arch.input_nc, g_arch.resolution) == ("generator", 100, 64)
    assert (d_arch.role, d_arch.resolution) == ("discriminator", 64)
    assert g(torch.randn(2, 100, 1, 1)).shape == (2, 3, 64, 64)
    assert d(torch.rand(2, 3, 64, 64)).shape == (2, 1, 1, 1)


def test_dataparallel_prefix_is_removed():
    sd = {f"module.{k}": v for k, v in random_state_dict(nlayer_keys(3, 8, 3, "batch")).items()}
    assert detect_and_build(sd)[0].kind == "patchgan"


def test_unsupported_files_are_reported_clearly(tmp_path):
    with pytest.raises(UnsupportedCheckpoint, match="not a supported GAN checkpoint.*Supported: DCGAN"):
        detect_and_build({"encoder.weight": torch.zeros(3, 3)}, "weird.pth")
    # a U-Net with one block's weights of the wrong size: the message names the key and both shapes
    sd = random_state_dict(unet_keys(3, 3, 6, ngf=8, norm="batch"))
    sd["model.model.1.model.5.weight"] = torch.zeros(32, 9, 4, 4)
    with pytest.raises(UnsupportedCheckpoint, match=r"model\.model\.1\.model\.5\.weight: file \(32, 9, 4, 4\)"):
        detect_and_build(sd, "broken.pth")
    torch.save({"epoch": 3, "note": "no tensors"}, tmp_path / "meta.pth")
    with pytest.raises(ModelFileError, match="meta.pth: the file contains no weight tensors"):
        read_weights(tmp_path / "meta.pth", wrappers=WRAPPER_KEYS)


def test_pix2pix_loader_node_translates_images(gan_env):
    sd = random_state_dict(unet_keys(3, 3, 6, ngf=8, norm="instance"))
    torch.save(sd, gan_env.folders.models / "gan" / "latest_net_G.pth")
    doc = {"version": 1, "nodes": {
        "1": {"type": "Pix2PixLoader", "inputs": {"generator_name": "latest_net_G.pth"}},
        "2": {"type": "EmptyImage", "inputs": {"width": 80, "height": 48, "batch_size": 2, "color": 0x3366CC}},
        "3": {"type": "ImageToImageGAN", "inputs": {"gan": L("1"), "image": L("2"), "size": "input size"}},
        "4": {"type": "PreviewImage", "inputs": {"images": L("3")}}}}
    result = Executor(gan_env).run(doc)
    assert result.status == "success", result.errors
    out = result.value("3")
    assert out.shape == (2, 48, 80, 3) and 0 <= out.min() and out.max() <= 1  # padded to 64 inside, cropped back


def test_loaders_refuse_the_wrong_role(gan_env):
    torch.save(random_state_dict(nlayer_keys(3, 8, 3, "batch")), gan_env.folders.models / "gan" / "netD.pth")
    doc = {"version": 1, "nodes": {
        "1": {"type": "GANLoader", "inputs": {"gan_name": "netD.pth"}},
        "2": {"type": "SampleZ", "inputs": {"gan": L("1"), "seed": 0, "batch_size": 1}},
        "3": {"type": "GANSample", "inputs": {"gan": L("1"), "z": L("2")}},
        "4": {"type": "PreviewImage", "inputs": {"images": L("3")}}}}
    result = Executor(gan_env).run(doc)
    assert result.status == "error"
    assert "PatchGAN" in result.errors[0]["exception_message"]
    assert "DiscriminatorLoader" in result.errors[0]["exception_message"]
