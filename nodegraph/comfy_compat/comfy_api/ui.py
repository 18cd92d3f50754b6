"""ComfyUI's `comfy_api.latest.ui`: what a V3 node shows (NodeOutput(ui=...)), as ComfyUI 0.8's _ui.py
shapes it: {"images": [{filename, subfolder, type}], "animated": (bool,)}, {"text": (value,)}."""
from __future__ import annotations

import random
import string

from .io import FolderType, _UIOutput


class SavedResult(dict):
    def __init__(self, filename: str, subfolder: str, type: FolderType) -> None:
        super().__init__(filename=filename, subfolder=subfolder, type=FolderType(type).value)


class SavedImages(_UIOutput):
    def __init__(self, results: list, is_animated: bool = False) -> None:
        self.results = results
        self.is_animated = is_animated

    def as_dict(self) -> dict:
        data = {"images": self.results}
        if self.is_animated:
            data["animated"] = (True,)
        return data


def save_images(images, filename_prefix: str, folder_type: FolderType, compress_level: int = 4) -> list[SavedResult]:
    """Each image of an IMAGE batch as PNG in the output or temp folder, named as ComfyUI names them."""
    import numpy as np
    from PIL import Image as PILImage

    import folder_paths

    folder = folder_paths.get_temp_directory() if folder_type == FolderType.temp else folder_paths.get_output_directory()
    full, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
        filename_prefix, folder, images[0].shape[1], images[0].shape[0])
    results = []
    for index, image in enumerate(images):
        array = np.clip(image.detach().cpu().float().numpy() * 255.0, 0, 255).astype(np.uint8)
        name = f"{filename.replace('%batch_num%', str(index))}_{counter:05}_.png"
        PILImage.fromarray(array).save(f"{full}/{name}", compress_level=compress_level)
        results.append(SavedResult(name, subfolder, folder_type))
        counter += 1
    return results


class PreviewImage(_UIOutput):
    def __init__(self, image, animated: bool = False, cls=None, **kwargs) -> None:
        suffix = "".join(random.choice(string.ascii_lowercase) for _ in range(5))
        self.values = save_images(image, "ComfyUI_temp_" + suffix, FolderType.temp, compress_level=1)
        self.animated = animated

    def as_dict(self) -> dict:
        return {"images": self.values, "animated": (self.animated,)}


class PreviewMask(PreviewImage):
    def __init__(self, mask, animated: bool = False, cls=None, **kwargs) -> None:
        image = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).movedim(1, -1).expand(-1, -1, -1, 3)
        super().__init__(image, animated, cls, **kwargs)


class PreviewText(_UIOutput):
    def __init__(self, value: str, **kwargs) -> None:
        self.value = value

    def as_dict(self) -> dict:
        return {"text": (self.value,)}


__all__ = ["SavedResult", "SavedImages", "PreviewImage", "PreviewMask", "PreviewText"]
