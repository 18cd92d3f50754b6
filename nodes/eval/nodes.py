"""Evaluation nodes: load image sets, extract features, and compare sets with FID, KID and
precision/recall. Features are their own socket type so each set is embedded once and cached."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from nodegraph import (FLOAT, IMAGE, INT, Choice, Input, Int, ModelHandle, Output, Seed, SocketType, String,
                       WeightsFile, node, run_in_chunks)

from .extractors import BUILTIN_RANDOM, BUILTINS, extractor_from_state_dict, random_extractor
from .metrics import fid_from_features, kernel_inception_distance, precision_recall

FEATURE_EXTRACTOR = SocketType("FEATURE_EXTRACTOR", "#a1887f")
FEATURES = SocketType("FEATURES", "#bcaaa4")  # float64 tensor [N, D] on the CPU
FOLDER = "feature_extractors"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
ROOTS = ["input", "output", "temp"]


def extractor_choices(env) -> list[str]:
    return BUILTINS + env.folders.list(FOLDER)


def extractor_handle(module, name: str, description: str) -> ModelHandle:
    # statistics are sensitive: extract in float32 whatever the device's default dtype
    return ModelHandle(module, name=name, dtype=torch.float32, info={"description": description})


def build_extractor(weights: WeightsFile) -> ModelHandle:
    module, description = extractor_from_state_dict(weights.tensors, weights.metadata, weights.name)
    return extractor_handle(module, weights.name, description)


@node(category="loaders/eval")
class FeatureExtractorLoader:
    """The network that embeds images for FID/KID/precision-recall: Inception-v3 weights in
    pytorch-fid's layout (pt_inception-2015-12-05) from models/feature_extractors, a small conv
    extractor file, or the built-in fixed random conv net (quick, for relative comparisons)."""
    inputs = [Choice("extractor_name", extractor_choices, default=BUILTIN_RANDOM)]
    outputs = [Output("FEATURE_EXTRACTOR", FEATURE_EXTRACTOR)]

    @classmethod
    def fingerprint(cls, env, extractor_name):
        return None if extractor_name in BUILTINS else env.models.fingerprint(FOLDER, extractor_name)

    def run(self, ctx, extractor_name):
        if extractor_name == BUILTIN_RANDOM:
            return ctx.devices.load_cached((FOLDER, BUILTIN_RANDOM), lambda: extractor_handle(
                random_extractor(0), extractor_name, "built-in random conv net (seed 0)"))
        return ctx.models.load(FOLDER, extractor_name, build_extractor, prefixes=("module.",))


@node(category="eval")
class ImageFeatures:
    """Embed a set of images with a feature extractor (one vector per image)."""
    inputs = [Input("extractor", FEATURE_EXTRACTOR), Input("images", IMAGE), Int("batch_size", 32, min=1, max=1024)]
    outputs = [Output("FEATURES", FEATURES)]

    def run(self, ctx, extractor, images, batch_size):
        x = images[..., :3].movedim(-1, 1).float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return run_in_chunks(ctx, extractor, x, batch_size).double()


@node(category="eval", output_node=True)
class ComputeFID:
    """Fréchet Inception Distance between two feature sets (lower = more alike; 0 for identical
    sets). Needs more images than feature dimensions for a well-conditioned estimate."""
    inputs = [Input("features_a", FEATURES), Input("features_b", FEATURES)]
    outputs = [Output("FID", FLOAT)]

    def run(self, ctx, features_a, features_b):
        value = fid_from_features(features_a.numpy(), features_b.numpy())
        ctx.show(text=[f"FID {value:.4f} ({features_a.shape[0]} vs {features_b.shape[0]} images, "
                       f"{features_a.shape[1]}-d features)"])
        return value


@node(category="eval", output_node=True)
class ComputeKID:
    """Kernel Inception Distance (unbiased MMD^2, cubic polynomial kernel) between two feature
    sets: mean and standard deviation over random subsets. Unbiased, so usable with few images."""
    inputs = [Input("features_a", FEATURES), Input("features_b", FEATURES), Int("num_subsets", 100, min=1, max=10000),
              Int("subset_size", 1000, min=2, max=100000), Seed("seed", 0)]
    outputs = [Output("KID", FLOAT), Output("KID_std", FLOAT)]

    def run(self, ctx, features_a, features_b, num_subsets, subset_size, seed):
        mean, std = kernel_inception_distance(features_a.numpy(), features_b.numpy(), num_subsets, subset_size,
                                              seed % 2**32)
        ctx.show(text=[f"KID {mean:.6f} ± {std:.6f}"])
        return mean, std


@node(category="eval", output_node=True)
class PrecisionRecall:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN manifolds: precision =
    share of generated images that look real (fidelity), recall = share of real images the
    generated set covers (diversity)."""
    inputs = [Input("real_features", FEATURES), Input("generated_features", FEATURES), Int("k", 3, min=1, max=100)]
    outputs = [Output("precision", FLOAT), Output("recall", FLOAT)]

    def run(self, ctx, real_features, generated_features, k):
        precision, recall = precision_recall(real_features, generated_features, k)
        ctx.show(text=[f"precision {precision:.4f}, recall {recall:.4f} (k={k})"])
        return precision, recall


def _folder_files(ctx_or_env, root: str, folder: str) -> list[Path]:
    base = ctx_or_env.folders.safe_path(root, folder or ".")
    if not base.is_dir():
        raise FileNotFoundError(f"no folder {folder!r} in the {root} folder ({ctx_or_env.folders.dir_for(root)})")
    return sorted(p for p in base.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


@node(category="image")
class LoadImagesFromFolder:
    """Load every image of a folder (inside the input, output or temp folder) as one batch, in
    name order, resized to width x height (0: the first image's size)."""
    inputs = [Choice("root", ROOTS), String("folder", ""), Int("max_images", 0, min=0, max=100000),
              Int("width", 0, min=0, max=16384), Int("height", 0, min=0, max=16384)]
    outputs = [Output("IMAGE", IMAGE), Output("count", INT)]

    @classmethod
    def fingerprint(cls, env, root, folder, **_):
        digest = hashlib.sha256()
        for path in _folder_files(env, root, folder):
            st = path.stat()
            digest.update(f"{path.name}:{st.st_mtime_ns}:{st.st_size};".encode())
        return digest.hexdigest()

    def run(self, ctx, root, folder, max_images, width, height):
        files = _folder_files(ctx, root, folder)
        if max_images:
            files = files[:max_images]
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {root}/{folder}")
        images = []
        for k, path in enumerate(files):
            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im).convert("RGB")
                if not (width and height):
                    width, height = width or im.width, height or im.height
                if im.size != (width, height):
                    im = im.resize((width, height), Image.BICUBIC)
                images.append(torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0))
            ctx.progress(k + 1, len(files))
        return torch.stack(images), len(images)
