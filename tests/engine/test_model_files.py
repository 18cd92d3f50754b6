"""The model-file service (ctx.models / env.models): finds a file in the model folders, reads it without
running pickled code, fingerprints it for cache keys, and builds each file version once, shared."""
from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

from nodegraph import ModelFileError, ModelHandle, read_weights
from nodegraph.executor import Executor
from nodegraph.folders import FolderError

from tests.engine import testnodes
from tests.engine.helpers import L, make_env, wf


@pytest.fixture
def env(tmp_path, builtin_registry):
    env = make_env(tmp_path, builtin_registry)
    (env.folders.models / "things").mkdir()
    return env


def weights(n: int = 2) -> dict[str, torch.Tensor]:
    return {"layer.weight": torch.arange(n * n, dtype=torch.float32).reshape(n, n), "layer.bias": torch.zeros(n)}


def test_safetensors_tensors_and_metadata(tmp_path):
    save_file(weights(), str(tmp_path / "a.safetensors"), metadata={"resolution": "64"})
    loaded = read_weights(tmp_path / "a.safetensors")
    assert loaded.name == "a.safetensors" and loaded.metadata == {"resolution": "64"}
    assert torch.equal(loaded.tensors["layer.weight"], weights()["layer.weight"])


@pytest.mark.parametrize("wrapped, wrappers", [
    ({"state_dict": weights(), "epoch": 3}, ("state_dict",)),
    ({"params": {"x": torch.ones(1)}, "params_ema": weights()}, ("params_ema", "params")),  # BasicSR: EMA first
    ({"netG": weights()}, ()),  # a one-entry dict of a dict opens, as ComfyUI's load_torch_file does
])
def test_training_wrappers_are_opened(tmp_path, wrapped, wrappers):
    torch.save(wrapped, tmp_path / "w.pth")
    assert set(read_weights(tmp_path / "w.pth", wrappers=wrappers).tensors) == {"layer.weight", "layer.bias"}


def test_a_common_prefix_is_removed_only_when_every_key_has_it(tmp_path):
    torch.save({f"module.{k}": v for k, v in weights().items()}, tmp_path / "dp.pth")
    assert set(read_weights(tmp_path / "dp.pth", prefixes=("module.",)).tensors) == {"layer.weight", "layer.bias"}
    torch.save({"module.a": torch.ones(1), "b": torch.ones(1)}, tmp_path / "mixed.pth")
    assert set(read_weights(tmp_path / "mixed.pth", prefixes=("module.",)).tensors) == {"module.a", "b"}


class Pickled:  # an object torch.load(weights_only=True) must refuse to rebuild
    pass


def test_unsafe_damaged_and_empty_files_are_refused_naming_the_file(tmp_path):
    torch.save({"model": Pickled(), "w": torch.zeros(1)}, tmp_path / "evil.pth")
    with pytest.raises(ModelFileError, match=r"evil.pth: cannot be read with torch.load\(weights_only=True\)"):
        read_weights(tmp_path / "evil.pth")
    save_file(weights(64), str(tmp_path / "good.safetensors"))
    data = (tmp_path / "good.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="cut.safetensors: not a readable safetensors file"):
        read_weights(tmp_path / "cut.safetensors")
    torch.save({"epoch": 3, "note": "no weights"}, tmp_path / "empty.pth")
    with pytest.raises(ModelFileError, match="empty.pth: the file contains no weight tensors"):
        read_weights(tmp_path / "empty.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ModelFileError, match="list.pth: expected a state dict of weights, the file holds a list"):
        read_weights(tmp_path / "list.pth")
    (tmp_path / "folder.pth").mkdir()
    with pytest.raises(ModelFileError, match="folder.pth: is a folder, not a model file"):
        read_weights(tmp_path / "folder.pth")


def test_a_missing_file_names_the_folders_searched_and_the_files_found(env):
    save_file(weights(), str(env.folders.models / "things" / "there.safetensors"))
    with pytest.raises(FolderError, match=r"things file 'gone.pth' not found; searched .*things; found there.safetensors"):
        env.models.load("things", "gone.pth", lambda w: w)
    assert env.models.fingerprint("things", "gone.pth") is None  # the run reports it, not the cache key


def test_each_file_version_is_built_once_and_shared(env):
    path = env.folders.models / "things" / "m.safetensors"
    save_file(weights(), str(path))
    builds = []

    def build(w):
        builds.append(w.name)
        return ModelHandle(torch.nn.Linear(2, 2), name=w.name)

    first = env.models.load("things", "m.safetensors", build)
    assert env.models.load("things", "m.safetensors", build) is first and builds == ["m.safetensors"]
    assert env.models.load("things", "m.safetensors", build, variant="fp16") is not first  # another variant
    before = env.models.fingerprint("things", "m.safetensors")
    save_file(weights(3), str(path))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert env.models.fingerprint("things", "m.safetensors") != before
    assert env.models.load("things", "m.safetensors", build) is not first
    assert builds == ["m.safetensors"] * 3


def test_a_loader_node_reruns_when_its_file_changes_and_builds_once_per_version(env):
    path = env.folders.models / "things" / "m.safetensors"
    save_file(weights(), str(path))
    doc = wf(n1={"type": "WeightsSum", "inputs": {"weights_name": "m.safetensors"}},
             n2={"type": "Collect", "inputs": {"value": L("1")}})
    testnodes.CALLS.clear()
    ex = Executor(env)
    first = ex.run(doc)
    assert first.status == "success", first.errors
    assert first.value("1") == 1 + 2 + 3 and ex.run(doc).executed == []
    ex.env.cache.clear()  # outputs gone, the model cache keeps the built model
    assert ex.run(doc).executed == ["1", "2"] and testnodes.CALLS["WeightsSum:build"] == 1
    save_file(weights(3), str(path))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    changed = ex.run(doc)
    assert changed.executed == ["1", "2"] and changed.value("1") == sum(range(9))
    assert testnodes.CALLS["WeightsSum:build"] == 2


def test_a_folder_model_is_built_from_its_path_once_per_version_of_any_file_in_it(env):
    folder = env.folders.models / "things" / "pipe"
    (folder / "unet").mkdir(parents=True)
    save_file(weights(), str(folder / "unet" / "a.safetensors"))
    (folder / "config.json").write_text("{}")
    builds = []

    def build(path):
        builds.append(path)
        return sum(float(t.sum()) for t in read_weights(path / "unet" / "a.safetensors").tensors.values())

    assert env.models.load_path("things", "pipe", build) == 6.0
    assert env.models.load_path("things", "pipe", build) == 6.0 and builds == [folder]
    before = env.models.fingerprint("things", "pipe")
    config = folder / "config.json"
    config.write_text('{"changed": true}')  # not a weights file, still part of the model
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 10**9))
    assert env.models.fingerprint("things", "pipe") != before
    env.models.load_path("things", "pipe", build)
    assert builds == [folder, folder]
    with pytest.raises(ModelFileError, match="pipe: is a folder, not a model file"):
        env.models.load("things", "pipe", lambda w: w)  # load reads one file; folders go through load_path
