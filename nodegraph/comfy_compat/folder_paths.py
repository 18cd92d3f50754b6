"""ComfyUI's `folder_paths`, answered from nodegraph's Folders.

Model folder kinds keep ComfyUI's names and extension filters; each kind's paths are our search
paths for it (the models directory's sub-folder first, then the folders packs and plugins add),
so a pack's `get_filename_list("checkpoints")` lists what our CheckpointLoaderSimple lists.
Folders a pack adds (`add_model_folder_path`, or assigning into `folder_names_and_paths`) reach
our own model loaders too. input/output/temp are the environment's folders.

Differences from ComfyUI: the lists returned by `folder_names_and_paths[kind]` are fresh copies,
so appending to them changes nothing (use `add_model_folder_path`); file lists are not cached.
"""
from __future__ import annotations

import mimetypes
import os
import time
from collections.abc import Collection, MutableMapping
from pathlib import Path

from . import runtime
from .surface import unsupported

supported_pt_extensions: set[str] = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}

# ComfyUI's kinds: the sub-folders of the models directory each one reads, and its extensions
_COMFY_KINDS: dict[str, tuple[tuple[str, ...], Collection[str]]] = {
    "checkpoints": (("checkpoints",), supported_pt_extensions),
    "configs": (("configs",), [".yaml"]),
    "loras": (("loras",), supported_pt_extensions),
    "vae": (("vae",), supported_pt_extensions),
    "text_encoders": (("text_encoders", "clip"), supported_pt_extensions),
    "diffusion_models": (("unet", "diffusion_models"), supported_pt_extensions),
    "clip_vision": (("clip_vision",), supported_pt_extensions),
    "style_models": (("style_models",), supported_pt_extensions),
    "embeddings": (("embeddings",), supported_pt_extensions),
    "diffusers": (("diffusers",), ["folder"]),
    "vae_approx": (("vae_approx",), supported_pt_extensions),
    "controlnet": (("controlnet", "t2i_adapter"), supported_pt_extensions),
    "gligen": (("gligen",), supported_pt_extensions),
    "upscale_models": (("upscale_models",), supported_pt_extensions),
    "latent_upscale_models": (("latent_upscale_models",), supported_pt_extensions),
    "hypernetworks": (("hypernetworks",), supported_pt_extensions),
    "photomaker": (("photomaker",), supported_pt_extensions),
    "classifiers": (("classifiers",), {""}),
    "model_patches": (("model_patches",), supported_pt_extensions),
    "audio_encoders": (("audio_encoders",), supported_pt_extensions),
}
_LEGACY = {"unet": "diffusion_models", "clip": "text_encoders"}

extension_mimetypes_cache = {"webp": "image", "fbx": "model"}
filename_list_cache: dict = {}  # ComfyUI's; never filled here (lists are read fresh)


def map_legacy(folder_name: str) -> str:
    return _LEGACY.get(folder_name, folder_name)


def _our_kinds(kind: str) -> tuple[str, ...]:
    """Our Folders' kind names for a ComfyUI kind (ours keep ComfyUI's older names too)."""
    if kind in _COMFY_KINDS:
        return _COMFY_KINDS[kind][0]
    return (kind,)


class FolderTable(MutableMapping):
    """`folder_names_and_paths`: kind -> ([paths], extensions), read from the live Folders."""

    def __init__(self) -> None:
        self._pack_kinds: dict[str, Collection[str]] = {}  # kinds packs declared -> extensions

    def __getitem__(self, kind: str):
        kind = map_legacy(kind)
        if kind == "custom_nodes":
            return [os.path.abspath("custom_nodes")], set()
        if kind not in _COMFY_KINDS and kind not in self._pack_kinds and not _declared_by_plugin(kind):
            raise KeyError(kind)
        paths: list[str] = []
        folders = runtime.folders()
        for ours in _our_kinds(kind):
            for path in folders.search_paths(ours):
                if str(path) not in paths:
                    paths.append(str(path))
        if kind in self._pack_kinds:
            exts = self._pack_kinds[kind]
        else:
            exts = _COMFY_KINDS[kind][1] if kind in _COMFY_KINDS else supported_pt_extensions
        return paths, exts

    def __setitem__(self, kind: str, value) -> None:
        paths, exts = value
        kind = map_legacy(kind)
        self._pack_kinds[kind] = set(exts)
        for path in paths:
            _add_path(kind, path)

    def __delitem__(self, kind: str) -> None:
        raise TypeError("folder kinds cannot be removed in nodegraph")

    def __iter__(self):
        seen = dict.fromkeys([*_COMFY_KINDS, "custom_nodes", *self._pack_kinds])
        return iter(seen)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def declare(self, kind: str, exts: Collection[str] | None = None) -> None:
        if kind not in _COMFY_KINDS and kind not in self._pack_kinds:
            self._pack_kinds[kind] = set(exts) if exts is not None else set()


def _declared_by_plugin(kind: str) -> bool:
    folders = runtime.folders()
    return bool(getattr(folders, "_extra", {}).get(kind))


def _add_path(kind: str, path: str, first: bool = False) -> None:
    """A model folder added by a pack: into the registry loading it (so every environment made
    from it gets the folder) and into the environment answering now."""
    registry = runtime.loading_registry()
    if registry is not None:
        registry.model_folders.setdefault(kind, []).append(Path(path))
    folders = runtime.folders()
    folders.add(kind, path)
    if first:  # ComfyUI's is_default: searched before the others
        extra = folders._extra[kind]
        extra.remove(Path(path))
        extra.insert(0, Path(path))


folder_names_and_paths = FolderTable()


# --- directories ----------------------------------------------------------------------------------
def get_output_directory() -> str:
    return str(runtime.folders().output.resolve())


def get_input_directory() -> str:
    """Made if missing, as ComfyUI's folder_paths does at import: packs list it in INPUT_TYPES."""
    folder = runtime.folders().input.resolve()
    if not folder.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # as ComfyUI: the listing then fails and names the folder
    return str(folder)


def get_temp_directory() -> str:
    return str(runtime.folders().temp.resolve())


def get_user_directory() -> str:
    return str((runtime.folders().models.parent / "user").resolve())


def set_output_directory(output_dir: str) -> None:
    runtime.folders().output = Path(output_dir)


def set_input_directory(input_dir: str) -> None:
    runtime.folders().input = Path(input_dir)


def set_temp_directory(temp_dir: str) -> None:
    runtime.folders().temp = Path(temp_dir)


def get_directory_by_type(type_name: str) -> str | None:
    return {"output": get_output_directory, "input": get_input_directory,
            "temp": get_temp_directory}.get(type_name, lambda: None)()


def get_input_subfolders() -> list[str]:
    root = get_input_directory()
    out = []
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            out.append(os.path.relpath(os.path.join(dirpath, d), root))
    return sorted(out)


# --- annotated names: "file.png [output]" -----------------------------------------------------------
def annotated_filepath(name: str) -> tuple[str, str | None]:
    for kind in ("output", "input", "temp"):
        suffix = f" [{kind}]"
        if name.endswith(suffix):
            return name[:-len(suffix)], get_directory_by_type(kind)
        if name.endswith(f"[{kind}]"):  # ComfyUI cuts one character more than the tag: the space
            return name[:-len(suffix)], get_directory_by_type(kind)
    return name, None


def get_annotated_filepath(name: str, default_dir: str | None = None) -> str:
    name, base_dir = annotated_filepath(name)
    return os.path.join(base_dir or default_dir or get_input_directory(), name)


def exists_annotated_filepath(name: str) -> bool:
    name, base_dir = annotated_filepath(name)
    return os.path.exists(os.path.join(base_dir or get_input_directory(), name))


# --- model folders ----------------------------------------------------------------------------------
def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    kind = map_legacy(folder_name)
    folder_names_and_paths.declare(kind)
    if str(full_folder_path) in folder_names_and_paths[kind][0] and not is_default:
        return
    _add_path(kind, full_folder_path, first=is_default)


def get_folder_paths(folder_name: str) -> list[str]:
    return list(folder_names_and_paths[map_legacy(folder_name)][0])


def recursive_search(directory: str, excluded_dir_names: list[str] | None = None) -> tuple[list[str], dict[str, float]]:
    if not os.path.isdir(directory):
        return [], {}
    excluded = set(excluded_dir_names or [])
    files, dirs = [], {directory: os.path.getmtime(directory)}
    for dirpath, subdirs, filenames in os.walk(directory, followlinks=True):
        subdirs[:] = [d for d in subdirs if d not in excluded]
        files += [os.path.relpath(os.path.join(dirpath, f), directory) for f in filenames]
        for d in subdirs:
            dirs[os.path.join(dirpath, d)] = os.path.getmtime(os.path.join(dirpath, d))
    return files, dirs


def filter_files_extensions(files: Collection[str], extensions: Collection[str]) -> list[str]:
    return sorted(f for f in files if len(extensions) == 0 or os.path.splitext(f)[-1].lower() in extensions)


def filter_files_content_types(files: list[str], content_types: list[str]) -> list[str]:
    out = []
    for file in files:
        ext = file.split(".")[-1]
        if ext not in extension_mimetypes_cache:
            mime, _ = mimetypes.guess_type(file, strict=False)
            if not mime:
                continue
            extension_mimetypes_cache[ext] = mime.split("/")[0]
        if extension_mimetypes_cache[ext] in content_types:
            out.append(file)
    return out


def get_filename_list(folder_name: str) -> list[str]:
    """Files of a kind, relative to their folder, filtered by the kind's extensions, sorted."""
    paths, exts = folder_names_and_paths[map_legacy(folder_name)]
    names: set[str] = set()
    for path in paths:
        files, _ = recursive_search(path, excluded_dir_names=[".git"])
        names.update(f.replace(os.sep, "/") for f in filter_files_extensions(files, exts))
    return sorted(names)


def get_full_path(folder_name: str, filename: str) -> str | None:
    kind = map_legacy(folder_name)
    if kind not in folder_names_and_paths:
        return None
    filename = os.path.relpath(os.path.join("/", filename), "/")  # no way out of the folder
    for path in folder_names_and_paths[kind][0]:
        full = os.path.join(path, filename)
        if os.path.isfile(full):
            return full
    return None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    full = get_full_path(folder_name, filename)
    if full is None:
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return full


def get_save_image_path(filename_prefix: str, output_dir: str, image_width=0, image_height=0):
    """(full_output_folder, filename, counter, subfolder, filename_prefix), as ComfyUI numbers files:
    the counter follows the highest `<prefix>_<digits>` already in the folder."""
    if "%" in filename_prefix:
        now = time.localtime()
        for key, value in (("%width%", image_width), ("%height%", image_height), ("%year%", now.tm_year),
                           ("%month%", f"{now.tm_mon:02d}"), ("%day%", f"{now.tm_mday:02d}"),
                           ("%hour%", f"{now.tm_hour:02d}"), ("%minute%", f"{now.tm_min:02d}"),
                           ("%second%", f"{now.tm_sec:02d}")):
            filename_prefix = filename_prefix.replace(key, str(value))
    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    output_dir = os.path.abspath(output_dir)
    full_output_folder = os.path.join(output_dir, subfolder)
    if os.path.commonpath((output_dir, os.path.abspath(full_output_folder))) != output_dir:
        raise ValueError(f"Saving image outside the output folder is not allowed: {full_output_folder}")
    counter = 1
    if os.path.isdir(full_output_folder):
        for name in os.listdir(full_output_folder):
            head, rest = name[:len(filename) + 1], name[len(filename) + 1:]
            if os.path.normcase(head[:-1]) != os.path.normcase(filename) or head[-1:] != "_":
                continue
            try:
                counter = max(counter, int(rest.split("_")[0]) + 1)
            except ValueError:
                counter = max(counter, 1)
    else:
        os.makedirs(full_output_folder, exist_ok=True)
    return full_output_folder, filename, counter, subfolder, filename_prefix


class _CacheHelper:
    """ComfyUI's cache_helper: a context manager around a burst of listings (nothing is cached here)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def clear(self) -> None:
        pass


cache_helper = _CacheHelper()

def place_at_base() -> None:
    """Packs take os.path.dirname(folder_paths.__file__) as ComfyUI's own folder (where ComfyUI's
    folder_paths.py lives: its base path) and write there (legacy web/extensions copies). Point __file__ at the
    base path of the folders now answering, so they write there, never into nodegraph's package."""
    globals()["__file__"] = str(runtime.folders().models.resolve().parent / "folder_paths.py")


_DYNAMIC = {
    "models_dir": lambda: str(runtime.folders().models.resolve()),
    "base_path": lambda: str(runtime.folders().models.resolve().parent),
    "output_directory": get_output_directory,
    "input_directory": get_input_directory,
    "temp_directory": get_temp_directory,
    "user_directory": get_user_directory,
}
_missing = unsupported(__name__)


def __getattr__(name: str):
    if name in _DYNAMIC:  # module "constants" that follow the environment
        return _DYNAMIC[name]()
    return _missing(name)
