"""StyleGAN2 generators: the loader reads tiny random checkpoints in NVIDIA's and rosinality's layouts
key for key and draws the image the paper's equations give (tests/gan/stylegan_reference.py); the
nodes' truncation, style mixing, W-space interpolation and noise modes do what the papers say."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from nodegraph.executor import Executor
from nodegraph.formats import parse_workflow
from nodes.gan.stylegan_layouts import StyleGANLayoutError, load_stylegan

from . import stylegan_reference as ref

TOL = dict(rtol=1e-4, atol=1e-4)


def images_of(generator, z, noise_mode="const", psi=1.0, cutoff=None):
    with torch.no_grad():
        return generator(generator.map(z, psi, cutoff), noise_mode=noise_mode)


@pytest.mark.parametrize("noise_mode", ["const", "none"])
def test_nvidia_layout_matches_the_equations(noise_mode):
    sd = ref.nvidia_checkpoint(seed=1)
    generator, info = load_stylegan(sd, "tiny.safetensors")
    assert info["layout"] == "nvidia" and info["w_avg"] == "file"
    config = info["config"]
    assert (config.z_dim, config.w_dim, config.mapping_layers, config.resolution) == (ref.Z, ref.W, ref.MLP, 16)
    assert config.channels == ref.CHANNELS and generator.num_ws == 6
    z = torch.randn(3, ref.Z, generator=torch.Generator().manual_seed(5))
    got = images_of(generator, z, noise_mode)
    want = ref.nvidia_forward(sd, z, noise_mode)
    assert got.shape == (3, 3, 16, 16)
    torch.testing.assert_close(got, want, **TOL)
    assert want.std() > 0.1  # a real picture of numbers, not zeros


@pytest.mark.parametrize("noise_mode", ["const", "none"])
def test_rosinality_layout_matches_the_equations(noise_mode):
    sd = ref.rosinality_checkpoint(seed=2)
    generator, info = load_stylegan(sd, "g_ema.pt")
    assert info["layout"] == "rosinality" and info["w_avg"] == "estimated"
    assert info["config"].channels == ref.CHANNELS
    z = torch.randn(2, ref.Z, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(images_of(generator, z, noise_mode), ref.rosinality_forward(sd, z, noise_mode), **TOL)


def test_truncation_matches_the_equations_with_a_cutoff():
    sd = ref.nvidia_checkpoint(seed=3)
    generator, _ = load_stylegan(sd)
    z = torch.randn(2, ref.Z, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(images_of(generator, z, psi=0.5, cutoff=2),
                               ref.nvidia_forward(sd, z, psi=0.5, cutoff=2), **TOL)


def test_other_resolutions_and_widths_are_read_from_the_keys():
    channels = {4: 4, 8: 4, 16: 3, 32: 3}
    generator, info = load_stylegan(ref.rosinality_checkpoint(channels=channels))
    assert info["config"].resolution == 32 and generator.num_ws == 8
    assert generator(generator.map(torch.randn(1, ref.Z))).shape == (1, 3, 32, 32)


def test_files_load_through_the_node_from_pt_and_safetensors(gan_env, tmp_path):
    folder = gan_env.folders.models / "gan"
    save_file(ref.nvidia_checkpoint(seed=4), str(folder / "nv.safetensors"))
    torch.save({"g": ref.rosinality_checkpoint(seed=9), "g_ema": ref.rosinality_checkpoint(seed=5)}, folder / "ros.pt")
    doc = {"nodes": {
        "1": {"type": "StyleGANLoader", "inputs": {"stylegan_name": "nv.safetensors"}},
        "2": {"type": "StyleGANSample", "inputs": {"stylegan": {"node": "1", "output": "STYLEGAN"}, "seed": 3,
                                                   "batch_size": 2, "noise_mode": "const"}},
        "3": {"type": "StyleGANLoader", "inputs": {"stylegan_name": "ros.pt"}},
        "4": {"type": "StyleGANSample", "inputs": {"stylegan": {"node": "3", "output": "STYLEGAN"}, "seed": 3,
                                                   "batch_size": 2, "noise_mode": "none"}},
        "5": {"type": "PreviewImage", "inputs": {"images": {"node": "2", "output": "IMAGE"}}},
        "6": {"type": "PreviewImage", "inputs": {"images": {"node": "4", "output": "IMAGE"}}}}}
    result = Executor(gan_env).run(parse_workflow(doc, gan_env.registry))
    assert result.status == "success", result.errors
    from nodes.gan.stylegan_nodes import seeded_z
    z = seeded_z(3, 2, ref.Z)
    want_nv = (ref.nvidia_forward(ref.nvidia_checkpoint(seed=4), z, "const") + 1) / 2
    want_ros = (ref.rosinality_forward(ref.rosinality_checkpoint(seed=5), z, "none") + 1) / 2  # g_ema, not g
    torch.testing.assert_close(result.value("2"), want_nv.clamp(0, 1).movedim(1, -1), **TOL)
    torch.testing.assert_close(result.value("4"), want_ros.clamp(0, 1).movedim(1, -1), **TOL)


def test_a_pickle_is_refused_with_the_conversion_command(gan_env):
    (gan_env.folders.models / "gan" / "ffhq.pkl").write_bytes(b"\x80\x04not opened")
    doc = {"nodes": {"1": {"type": "StyleGANLoader", "inputs": {"stylegan_name": "ffhq.pkl"}},
                     "2": {"type": "StyleGANSample", "inputs": {"stylegan": {"node": "1", "output": "STYLEGAN"}}},
                     "3": {"type": "PreviewImage", "inputs": {"images": {"node": "2", "output": "IMAGE"}}}}}
    result = Executor(gan_env).run(parse_workflow(doc, gan_env.registry))
    assert result.status != "success"
    message = json.dumps(result.errors)
    assert "stylegan_name" in message and "tools/stylegan_pkl_to_safetensors.py ffhq.pkl ffhq.safetensors" in message


@pytest.mark.parametrize("edit,needle", [
    (lambda sd: sd.update({"synthesis.input.affine.weight": torch.zeros(4, 8)}), "StyleGAN3"),
    (lambda sd: sd.update({"mapping.embed.weight": torch.zeros(8, 10)}), "class-conditional"),
    (lambda sd: sd.update({"synthesis.b8.skip.weight": torch.zeros(6, 8, 1, 1)}), "resnet"),
    (lambda sd: sd.pop("synthesis.b8.conv1.bias"), "missing"),
    (lambda sd: sd.update({"synthesis.b8.resample_filter": torch.ones(4, 4) / 16}), "low-pass"),
])
def test_unsupported_files_say_what_they_are(edit, needle):
    sd = ref.nvidia_checkpoint()
    edit(sd)
    with pytest.raises(StyleGANLayoutError, match=needle):
        load_stylegan(sd, "x.safetensors")
    with pytest.raises(StyleGANLayoutError, match="not a StyleGAN2 generator"):
        load_stylegan({"main.0.weight": torch.zeros(1)}, "dcgan.safetensors")


# --- the nodes' effects ------------------------------------------------------------------------------
@pytest.fixture
def tiny(gan_env):
    save_file(ref.nvidia_checkpoint(seed=11), str(gan_env.folders.models / "gan" / "tiny.safetensors"))
    return gan_env


def run_nodes(env, nodes: dict):
    nodes = {"1": {"type": "StyleGANLoader", "inputs": {"stylegan_name": "tiny.safetensors"}}, **nodes}
    result = Executor(env).run(parse_workflow({"nodes": nodes}, env.registry))
    assert result.status == "success", result.errors
    return result


G = {"node": "1", "output": "STYLEGAN"}


def mapping(seed, batch=1, psi=1.0, cutoff=0):
    return {"type": "StyleGANMapping", "inputs": {"stylegan": G, "seed": seed, "batch_size": batch,
                                                  "truncation_psi": psi, "truncation_cutoff": cutoff}}


def synthesis(latent_node, noise_mode="const", noise_seed=0):
    return {"type": "StyleGANSynthesis", "inputs": {"stylegan": G, "latent": {"node": latent_node, "output": "LATENT"},
                                                    "noise_mode": noise_mode, "noise_seed": noise_seed}}


def preview(node):
    return {"type": "PreviewImage", "inputs": {"images": {"node": node, "output": "IMAGE"}}}


def test_psi_zero_gives_the_mean_image_for_any_seed(tiny):
    result = run_nodes(tiny, {"2": mapping(1, 3, psi=0.0), "3": synthesis("2"), "4": preview("3"),
                              "5": mapping(1, 3, psi=1.0), "6": synthesis("5"), "7": preview("6")})
    truncated, free = result.value("3"), result.value("6")
    assert torch.allclose(truncated[0], truncated[1], atol=1e-6) and torch.allclose(truncated[0], truncated[2], atol=1e-6)
    assert (free[0] - free[1]).abs().mean() > 0.02  # without truncation the seeds differ
    w_avg = ref.nvidia_checkpoint(seed=11)["mapping.w_avg"]
    assert torch.allclose(result.value("2")["samples"], w_avg.expand(3, 6, -1))


def test_truncation_cutoff_keeps_the_fine_layers(tiny):
    result = run_nodes(tiny, {"2": mapping(4, 1, psi=0.0, cutoff=2), "3": mapping(4, 1), "4": synthesis("2"),
                              "5": preview("4"), "6": synthesis("3"), "7": preview("6")})
    ws, free = result.value("2")["samples"][0], result.value("3")["samples"][0]
    w_avg = ref.nvidia_checkpoint(seed=11)["mapping.w_avg"]
    assert torch.allclose(ws[:2], w_avg.expand(2, -1)) and torch.equal(ws[2:], free[2:])


def test_style_mixing_takes_coarse_layers_from_a_and_fine_from_b(tiny):
    mix = {"type": "StyleGANStyleMix", "inputs": {"stylegan": G, "coarse": {"node": "2", "output": "LATENT"},
                                                  "fine": {"node": "3", "output": "LATENT"}, "crossover": 2}}
    result = run_nodes(tiny, {"2": mapping(1), "3": mapping(2), "4": mix, "5": synthesis("4"), "6": preview("5"),
                              "7": synthesis("2"), "8": preview("7"), "9": synthesis("3"), "10": preview("9")})
    a, b, mixed = (result.value(k)["samples"][0] for k in ("2", "3", "4"))
    assert torch.equal(mixed[:2], a[:2]) and torch.equal(mixed[2:], b[2:])
    image_a, image_b, image_mix = result.value("7")[0], result.value("9")[0], result.value("5")[0]
    assert not torch.allclose(image_mix, image_a) and not torch.allclose(image_mix, image_b)
    # crossover 0 is all B, crossover = num_ws all A
    for crossover, want in ((0, image_b), (6, image_a)):
        mix["inputs"]["crossover"] = crossover
        again = run_nodes(tiny, {"2": mapping(1), "3": mapping(2), "4": mix, "5": synthesis("4"), "6": preview("5")})
        torch.testing.assert_close(again.value("5")[0], want)


def test_w_interpolation_starts_and_ends_on_the_seeds_and_arithmetic_stays_in_w(tiny):
    interp = {"type": "GANLatentInterpolate", "inputs": {"latent_from": {"node": "2", "output": "LATENT"},
                                                         "latent_to": {"node": "3", "output": "LATENT"},
                                                         "steps": 5, "method": "lerp"}}
    arith = {"type": "LatentArithmetic", "inputs": {"a": {"node": "2", "output": "LATENT"},
                                                    "b": {"node": "2", "output": "LATENT"},
                                                    "c": {"node": "3", "output": "LATENT"}, "strength": 1.0,
                                                    "average_batches": False}}
    result = run_nodes(tiny, {"2": mapping(1), "3": mapping(2), "4": interp, "5": synthesis("4"), "6": preview("5"),
                              "7": synthesis("2"), "8": preview("7"), "9": synthesis("3"), "10": preview("9"),
                              "11": arith, "12": synthesis("11"), "13": preview("12")})
    path = result.value("4")
    assert path["stylegan"] == "W+" and path["samples"].shape == (5, 6, ref.W)
    strip = result.value("5")
    torch.testing.assert_close(strip[0], result.value("7")[0])
    torch.testing.assert_close(strip[-1], result.value("9")[0])
    middle = path["samples"][2]
    torch.testing.assert_close(middle, (result.value("2")["samples"][0] + result.value("3")["samples"][0]) / 2)
    assert result.value("11")["stylegan"] == "W+"  # a - a + c = c
    torch.testing.assert_close(result.value("12")[0], result.value("9")[0], rtol=1e-4, atol=1e-5)


def test_noise_modes(tiny):
    result = run_nodes(tiny, {"2": mapping(1), "3": synthesis("2", "const"), "4": preview("3"),
                              "5": synthesis("2", "none"), "6": preview("5"),
                              "7": synthesis("2", "random", 1), "8": preview("7"),
                              "9": synthesis("2", "random", 1), "10": preview("9"),
                              "11": synthesis("2", "random", 2), "12": preview("11")})
    const, none, r1, r1b, r2 = (result.value(k)[0] for k in ("3", "5", "7", "9", "11"))
    assert torch.equal(r1, r1b)  # seeded
    for a, b in ((const, none), (const, r1), (none, r1), (r1, r2)):
        assert (a - b).abs().max() > 1e-3
    # with every noise strength zero, all three modes draw the same image
    sd = ref.nvidia_checkpoint(seed=11)
    for key in [k for k in sd if k.endswith("noise_strength")]:
        sd[key] = torch.zeros(())
    generator, _ = load_stylegan(sd)
    ws = generator.map(torch.randn(1, ref.Z))
    with torch.no_grad():
        outs = [generator(ws, noise_mode=m, generator=torch.Generator().manual_seed(0)) for m in ("const", "none", "random")]
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(outs[0], outs[2])


def test_truncation_node_pulls_any_w_plus_to_the_average(tiny):
    trunc = {"type": "StyleGANTruncation", "inputs": {"stylegan": G, "latent": {"node": "2", "output": "LATENT"},
                                                      "truncation_psi": 0.5, "truncation_cutoff": 3}}
    result = run_nodes(tiny, {"2": mapping(3, 2), "3": trunc, "4": synthesis("3"), "5": preview("4")})
    ws, out = result.value("2")["samples"], result.value("3")["samples"]
    w_avg = ref.nvidia_checkpoint(seed=11)["mapping.w_avg"]
    torch.testing.assert_close(out[:, :3], w_avg + 0.5 * (ws[:, :3] - w_avg))
    assert torch.equal(out[:, 3:], ws[:, 3:])


def test_the_converter_saves_g_ema_of_a_snapshot_as_the_loader_reads_it(tmp_path):
    """tools/stylegan_pkl_to_safetensors.py on a snapshot-like pickle ({"G_ema": module}; here the
    pack's own generator class stands in for NVIDIA's, which the tests cannot import)."""
    import pickle
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    from stylegan_pkl_to_safetensors import convert

    generator, _ = load_stylegan(ref.nvidia_checkpoint(seed=12))
    with open(tmp_path / "net.pkl", "wb") as f:
        pickle.dump({"G_ema": generator, "D": torch.nn.Linear(2, 2)}, f)
    meta = convert(tmp_path / "net.pkl", tmp_path / "net.safetensors")
    assert meta["z_dim"] == str(ref.Z) and meta["network"] == "G_ema"
    from nodegraph import read_weights
    again, info = load_stylegan(read_weights(tmp_path / "net.safetensors").tensors)
    z = torch.randn(2, ref.Z)
    torch.testing.assert_close(images_of(again, z), images_of(generator, z))
