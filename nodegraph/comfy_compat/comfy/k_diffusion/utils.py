"""ComfyUI's `comfy.k_diffusion.utils`, the part packs import: FolderOfImages (video/image-folder
loaders use its IMG_EXTENSIONS and its recursive, sorted listing)."""
from __future__ import annotations

from pathlib import Path

from PIL import Image
from torch import nn
from torch.utils import data

from ...surface import unsupported


class FolderOfImages(data.Dataset):
    """Every image under `root` (recursively, sorted by path), each item a 1-tuple of the RGB
    image after `transform`."""

    IMG_EXTENSIONS = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}

    def __init__(self, root, transform=None) -> None:
        super().__init__()
        self.root = Path(root)
        self.transform = transform if transform is not None else nn.Identity()
        self.paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in self.IMG_EXTENSIONS)

    def __repr__(self) -> str:
        return f'FolderOfImages(root="{self.root}", len: {len(self)})'

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):
        with Image.open(self.paths[index]) as image:
            return (self.transform(image.convert("RGB")),)


__getattr__ = unsupported(__name__)
