"""Where files live: model folders by kind, and the input / output / temp folders.

Model kinds are ComfyUI's folder names (checkpoints, loras, vae, controlnet, upscale_models,
embeddings, clip, unet, gan ...). Each kind has a list of search paths: the user's models
directory first, then paths that plugins declare (the built-in packs ship default weights).
"""
from __future__ import annotations

from pathlib import Path

MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft")


class FolderError(ValueError):
    pass


def _is_diffusers_folder(path: Path) -> bool:
    """A diffusers pipeline (model_index.json) or a single diffusers model (config.json + weights,
    e.g. a ControlNet); the parts inside a pipeline folder are not listed on their own."""
    if (path / "model_index.json").exists():
        return True
    return (path / "config.json").exists() and any(path.glob("diffusion_pytorch_model*"))


class Folders:
    def __init__(self, base: str | Path = ".", models: str | Path | None = None,
                 output: str | Path | None = None, input: str | Path | None = None,
                 temp: str | Path | None = None) -> None:
        base = Path(base)
        self.models = Path(models) if models else base / "models"
        self.output = Path(output) if output else base / "output"
        self.input = Path(input) if input else base / "input"
        self.temp = Path(temp) if temp else base / "temp"
        self._extra: dict[str, list[Path]] = {}

    def add(self, kind: str, path: str | Path) -> None:
        paths = self._extra.setdefault(kind, [])
        if Path(path) not in paths:
            paths.append(Path(path))

    def search_paths(self, kind: str) -> list[Path]:
        return [self.models / kind, *self._extra.get(kind, [])]

    def list(self, kind: str) -> list[str]:
        """Model files of a kind, as names relative to their search path (sub-folders kept)."""
        names: list[str] = []
        for root in self.search_paths(kind):
            if not root.is_dir():
                continue
            for path in sorted(root.rglob("*")):
                if path.is_file() and path.suffix.lower() in MODEL_EXTENSIONS:
                    name = path.relative_to(root).as_posix()
                    if name not in names:
                        names.append(name)
                elif path.is_dir() and _is_diffusers_folder(path) and not _is_diffusers_folder(path.parent):
                    names.append(path.relative_to(root).as_posix())
        return names

    def find(self, kind: str, name: str) -> Path:
        """The path of a model file; the error names the folders searched and the files found."""
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise FolderError(f"model name {name!r} must be relative to a {kind} folder")
        for root in self.search_paths(kind):
            path = root / name
            if path.exists():
                return path
        searched = ", ".join(str(p) for p in self.search_paths(kind))
        found = self.list(kind)
        raise FolderError(f"{kind} file {name!r} not found; searched {searched}; "
                          f"found {', '.join(found) if found else 'no files'}")

    def dir_for(self, kind: str) -> Path:
        """The folder of an image kind: output, input or temp."""
        if kind not in ("output", "input", "temp"):
            raise FolderError(f"unknown folder type {kind!r} (expected output, input or temp)")
        return getattr(self, kind)

    def safe_path(self, kind: str, filename: str, subfolder: str = "") -> Path:
        """Resolve a file inside an image folder, refusing traversal and symlinks out of it."""
        root = self.dir_for(kind).resolve()
        candidate = (root / subfolder / filename)
        resolved = candidate.resolve()
        if resolved != root and root not in resolved.parents:
            raise FolderError(f"{filename!r} is outside the {kind} folder")
        return resolved
