"""GAN nodes: loaders, sampling, image-to-image translation, discriminator scoring and ranking,
latent tools (seeded z, lerp/slerp, arithmetic, diffusion noise paths), and an image grid."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nodegraph import (IMAGE, LATENT, MASK, Boolean, Choice, Float, Input, Int, ModelFile, ModelHandle, Output, Seed,
                       SocketType, WeightsFile, node, run_in_chunks)

from .latents import METHODS, arithmetic, interpolate, seeded_normal
from .loaders import WRAPPER_KEYS, detect_and_build
from .shapes import SHAPES, shape_coverage

# the pack's socket types (any pack may name them too: types are shared by name)
GAN = SocketType("GAN", "#ff8a65")  # a generator's ModelHandle (info: architecture, resolution)
DISCRIMINATOR = SocketType("DISCRIMINATOR", "#e57373")  # a discriminator's ModelHandle (info: score_mode)
SCORES = SocketType("SCORES", "#f06292")  # float tensor [B]: one realism score (0..1) per image
FOLDER = "gan"
CHUNK = 64  # images per forward pass
SCORE_MODES = ["auto", "sigmoid", "lsgan"]
SIZE_MODES = ["model resolution", "input size"]


# --- loading ----------------------------------------------------------------------------------------
def build_handle(weights: WeightsFile) -> ModelHandle:
    """A GAN network as a model handle; the file's metadata may give its resolution and gan_mode."""
    arch, module = detect_and_build(weights.tensors, weights.path.name)
    meta = weights.metadata
    resolution = int(meta["resolution"]) if meta.get("resolution") else arch.resolution
    info = {"architecture": arch, "resolution": resolution, "gan_mode": meta.get("gan_mode"), "meta": meta}
    return ModelHandle(module, name=weights.path.name, info=info)


def load_handle(ctx, name: str) -> ModelHandle:
    """Load (once per file version, shared across workflows) a GAN network as a model handle."""
    return ctx.models.load(FOLDER, name, build_handle, wrappers=WRAPPER_KEYS)


class _GanFileLoader:
    """Loaders re-run when their file changes (the model-file service fingerprints it)."""
    file_input = ""

    @classmethod
    def fingerprint(cls, env, **literals):
        return env.models.fingerprint(FOLDER, literals[cls.file_input])


@node(category="loaders/gan")
class GANLoader(_GanFileLoader):
    """Load a GAN generator: DCGAN (z -> image) or pix2pix/CycleGAN U-Net / ResNet (image -> image).
    The architecture and its size are detected from the file's keys and shapes."""
    file_input = "gan_name"
    inputs = [ModelFile("gan_name", FOLDER)]
    outputs = [Output("GAN", GAN)]

    def run(self, ctx, gan_name):
        handle = load_handle(ctx, gan_name)
        arch = handle.info["architecture"]
        if arch.role != "generator":
            raise ValueError(f"{gan_name} is a {arch.describe()}, not a generator: load it with DiscriminatorLoader")
        return handle


@node(category="loaders/gan")
class Pix2PixLoader(_GanFileLoader):
    """Load an image-to-image generator in the pix2pix/CycleGAN layout (latest_net_G.pth and friends)."""
    file_input = "generator_name"
    inputs = [ModelFile("generator_name", FOLDER)]
    outputs = [Output("GAN", GAN)]

    def run(self, ctx, generator_name):
        handle = load_handle(ctx, generator_name)
        arch = handle.info["architecture"]
        if not arch.conditional:
            raise ValueError(f"{generator_name} is a {arch.describe()}, not an image-to-image generator "
                             "(a z -> image generator loads with GANLoader)")
        return handle


@node(category="loaders/gan")
class DiscriminatorLoader(_GanFileLoader):
    """Load a discriminator: DCGAN, PatchGAN (NLayerDiscriminator) or PixelDiscriminator.
    score_mode: how raw outputs become 0..1 scores (auto: the file's gan_mode, else sigmoid of logits;
    lsgan: least-squares outputs clamped to 0..1). DCGAN discriminators end in a sigmoid already."""
    file_input = "discriminator_name"
    inputs = [ModelFile("discriminator_name", FOLDER), Choice("score_mode", SCORE_MODES)]
    outputs = [Output("DISCRIMINATOR", DISCRIMINATOR)]

    def run(self, ctx, discriminator_name, score_mode):
        handle = load_handle(ctx, discriminator_name)
        arch = handle.info["architecture"]
        if arch.role != "discriminator":
            raise ValueError(f"{discriminator_name} is a {arch.describe()}, not a discriminator: load it with GANLoader")
        handle = handle.clone()
        if arch.kind == "dcgan":
            handle.info["score_mode"] = "probability"
        elif score_mode == "auto":
            handle.info["score_mode"] = "lsgan" if handle.info.get("gan_mode") == "lsgan" else "sigmoid"
        else:
            handle.info["score_mode"] = score_mode
        return handle


# --- tensors in and out of networks ---------------------------------------------------------------
def run_network(ctx, handle: ModelHandle, x: torch.Tensor) -> torch.Tensor:
    """Forward a batch in chunks on the handle's device; float32 CPU result."""
    return run_in_chunks(ctx, handle, x, CHUNK)


def image_to_net(images: torch.Tensor, channels: int) -> torch.Tensor:
    """IMAGE [B,H,W,C] in 0..1 -> [B,channels,H,W] in -1..1 (grey <-> colour as needed)."""
    x = images[..., :3].movedim(-1, 1).float()
    if channels == 1 and x.shape[1] != 1:
        x = x.mean(1, keepdim=True)
    elif x.shape[1] == 1 and channels != 1:
        x = x.expand(-1, channels, -1, -1)
    if x.shape[1] != channels:
        raise ValueError(f"the network takes {channels} channels, the image has {x.shape[1]}")
    return x * 2 - 1


def net_to_image(y: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W] in -1..1 -> IMAGE [B,H,W,3] in 0..1."""
    y = ((y + 1) / 2).clamp(0, 1)
    if y.shape[1] == 1:
        y = y.expand(-1, 3, -1, -1)
    return y[:, :3].movedim(1, -1).contiguous()


def resize_nchw(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if tuple(x.shape[-2:]) == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


# --- generators -----------------------------------------------------------------------------------
def _generator(gan: ModelHandle, conditional: bool):
    arch = gan.info["architecture"]
    if arch.conditional != conditional:
        want = "an image-to-image generator (pix2pix/CycleGAN)" if conditional else "a z -> image generator (DCGAN)"
        raise ValueError(f"this node needs {want}; {gan.name} is a {arch.describe()}")
    return arch


@node(category="gan/latent")
class SampleZ:
    """Draw latent vectors z ~ N(0, 1) for a generator from a seed (the same seed gives the same z
    everywhere). truncation > 0 resamples values beyond it (the truncation trick)."""
    inputs = [Input("gan", GAN), Seed("seed"), Int("batch_size", 1, min=1, max=4096),
              Float("truncation", 0.0, min=0.0, max=10.0, step=0.05)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, gan, seed, batch_size, truncation):
        arch = _generator(gan, conditional=False)
        return ({"samples": seeded_normal(seed, (batch_size, arch.input_nc, 1, 1), truncation)},)


@node(category="gan")
class GANSample:
    """Generate images from latent vectors z with an unconditional (DCGAN-style) generator."""
    inputs = [Input("gan", GAN), Input("z", LATENT)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, gan, z):
        arch = _generator(gan, conditional=False)
        samples = z["samples"]
        if samples.ndim == 2:
            samples = samples[:, :, None, None]
        if samples.ndim != 4 or samples.shape[1] != arch.input_nc or samples.shape[2:] != (1, 1):
            raise ValueError(f"z has shape {list(samples.shape)}; {gan.name} takes [batch, {arch.input_nc}, 1, 1] "
                             "(make z with SampleZ)")
        return net_to_image(run_network(ctx, gan, samples))


@node(category="gan")
class ImageToImageGAN:
    """Translate images with a pix2pix/CycleGAN generator. size: run at the model's training
    resolution (when the file records it) and resize back, or at the input size (padded to the
    multiple the network needs)."""
    inputs = [Input("gan", GAN), Input("image", IMAGE), Choice("size", SIZE_MODES)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, gan, image, size):
        arch = _generator(gan, conditional=True)
        x = image_to_net(image, arch.input_nc)
        height, width = x.shape[-2:]
        resolution = gan.info.get("resolution")
        if size == "model resolution" and resolution:
            x = resize_nchw(x, resolution, resolution)
        m = arch.size_multiple
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        y = run_network(ctx, gan, x)[..., :h, :w]
        return net_to_image(resize_nchw(y, height, width))


# --- discriminators ---------------------------------------------------------------------------------
def score_images(ctx, disc: ModelHandle, images: torch.Tensor, condition: torch.Tensor | None = None,
                 resize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image realism scores [B] in 0..1 and the patch map [B, 1, h, w] in 0..1."""
    arch = disc.info["architecture"]
    x = images[..., :3].movedim(-1, 1).float() * 2 - 1
    if condition is not None:
        c = resize_nchw(condition[..., :3].movedim(-1, 1).float() * 2 - 1, *x.shape[-2:])
        if c.shape[0] == 1 and x.shape[0] > 1:
            c = c.expand(x.shape[0], -1, -1, -1)
        x = torch.cat([c, x], 1)  # pix2pix's conditional discriminator sees cat(A, B)
    if x.shape[1] != arch.input_nc:
        if condition is None and arch.input_nc == 1:
            x = x.mean(1, keepdim=True)
        elif condition is None and arch.input_nc > x.shape[1]:
            raise ValueError(f"{disc.name} takes {arch.input_nc} channels: it is conditional (pix2pix scores "
                             "cat(input, output)); connect the input image to `condition`")
        else:
            raise ValueError(f"{disc.name} takes {arch.input_nc} channels, got {x.shape[1]}")
    resolution = arch.resolution or (disc.info.get("resolution") if resize else None)
    if resolution:
        x = resize_nchw(x, resolution, resolution)
    out = run_network(ctx, disc, x)
    mode = disc.info.get("score_mode", "sigmoid")
    if mode == "probability":
        patch = out.clamp(0, 1)
    elif mode == "lsgan":
        patch = out.clamp(0, 1)
    else:
        patch = torch.sigmoid(out)
    return patch.mean(dim=(1, 2, 3)), patch


def heatmap(values: torch.Tensor) -> torch.Tensor:
    """[B,H,W] in 0..1 -> a jet-coloured IMAGE (blue: fake, red: real)."""
    v = values.clamp(0, 1)[..., None] * 4
    centres = torch.tensor([3.0, 2.0, 1.0])
    return (1.5 - (v - centres).abs()).clamp(0, 1)


def _format_scores(scores: torch.Tensor) -> str:
    return "scores: " + ", ".join(f"{s:.3f}" for s in scores.tolist())


@node(category="gan/discriminator")
class Discriminator:
    """Score images with a discriminator: a realism score per image (0..1, the mean over patches),
    the patch map as a MASK (1 = looks real) and as a heatmap image. A conditional (pix2pix)
    discriminator also needs the `condition` image it was trained on (the generator's input)."""
    inputs = [Input("discriminator", DISCRIMINATOR), Input("images", IMAGE),
              Boolean("resize_to_model", True, tooltip="score at the resolution the model was trained at"),
              Input("condition", IMAGE, optional=True)]
    outputs = [Output("SCORES", SCORES), Output("patch_map", MASK), Output("heatmap", IMAGE)]

    def run(self, ctx, discriminator, images, resize_to_model, condition=None):
        scores, patch = score_images(ctx, discriminator, images, condition, resize_to_model)
        mask = F.interpolate(patch, size=images.shape[1:3], mode="bilinear", align_corners=False)[:, 0].clamp(0, 1)
        ctx.show(text=[_format_scores(scores)])
        return scores, mask, heatmap(mask)


def _select(images: torch.Tensor, scores: torch.Tensor, keep: int, min_score: float = 0.0):
    order = torch.argsort(scores, descending=True, stable=True)
    passing = [int(i) for i in order if scores[i] >= min_score] or [int(order[0])]  # never empty
    if keep > 0:
        passing = passing[:keep]
    index = torch.tensor(passing, dtype=torch.long)
    return images[index], scores[index]


@node(category="gan/discriminator")
class RankByDiscriminator:
    """Best-of-N: score a batch with a discriminator and keep the best `keep` images, best first."""
    inputs = [Input("discriminator", DISCRIMINATOR), Input("images", IMAGE), Int("keep", 1, min=1, max=4096),
              Input("condition", IMAGE, optional=True)]
    outputs = [Output("IMAGE", IMAGE), Output("SCORES", SCORES)]

    def run(self, ctx, discriminator, images, keep, condition=None):
        scores, _ = score_images(ctx, discriminator, images, condition)
        best, best_scores = _select(images, scores, keep)
        ctx.show(text=[f"kept {best.shape[0]} of {images.shape[0]}; " + _format_scores(best_scores)])
        return best, best_scores


@node(category="gan/discriminator")
class FilterByScore:
    """Keep the images whose score is at least min_score, best first, at most `keep` (0: no limit).
    Never empty: if none passes, the best one is kept."""
    inputs = [Input("images", IMAGE), Input("scores", SCORES), Int("keep", 0, min=0, max=4096),
              Float("min_score", 0.0, min=0.0, max=1.0, step=0.01)]
    outputs = [Output("IMAGE", IMAGE), Output("SCORES", SCORES)]

    def run(self, ctx, images, scores, keep, min_score):
        if scores.shape[0] != images.shape[0]:
            raise ValueError(f"{scores.shape[0]} scores for {images.shape[0]} images")
        return _select(images, scores, keep, min_score)


# --- latent tools -----------------------------------------------------------------------------------
def _tags(latent: dict) -> dict:
    """What a latent says about its space (e.g. "stylegan": "W+"), kept through the latent tools;
    per-item data (noise masks, batch indexes) is not carried over."""
    return {k: v for k, v in latent.items() if k == "stylegan"}


@node(category="gan/latent")
class GANLatentInterpolate:
    """Interpolate between two latents (GAN z, StyleGAN W+ or diffusion latents) in `steps` points, both
    ends included, as one batch. slerp keeps Gaussian vectors' norms (for z); lerp is a straight line
    (for W / W+, where StyleGAN interpolates).
    (Not ComfyUI's LatentInterpolate, which blends two latents at one ratio.)"""
    inputs = [Input("latent_from", LATENT), Input("latent_to", LATENT), Int("steps", 8, min=1, max=1024),
              Choice("method", list(METHODS))]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, latent_from, latent_to, steps, method):
        return ({**_tags(latent_from), "samples": interpolate(latent_from["samples"], latent_to["samples"], steps, method)},)


@node(category="gan/latent")
class NoiseInterpolate:
    """Diffusion initial noise interpolated between two seeds: noise shaped like `latent`, drawn as
    the samplers draw it (torch.randn on the CPU from the seed), in `steps` points as one batch.
    scale multiplies the unit-variance noise (e.g. by the first sigma)."""
    inputs = [Input("latent", LATENT), Seed("seed_from", 0), Seed("seed_to", 1), Int("steps", 8, min=1, max=1024),
              Choice("method", list(METHODS)), Float("scale", 1.0, min=0.0, max=1000.0, step=0.01)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, latent, seed_from, seed_to, steps, method, scale):
        shape = tuple(latent["samples"].shape)
        path = interpolate(seeded_normal(seed_from, shape), seeded_normal(seed_to, shape), steps, method)
        return ({"samples": path * scale},)


@node(category="gan/latent")
class LatentArithmetic:
    """Latent vector arithmetic a - b + c (e.g. 'smiling woman' - 'woman' + 'man'), with b -> c
    scaled by strength; works on z and on StyleGAN W+ (W-space editing). average_batches averages each input's batch first (several exemplars)."""
    inputs = [Input("a", LATENT), Input("b", LATENT), Input("c", LATENT),
              Float("strength", 1.0, min=-10.0, max=10.0, step=0.05), Boolean("average_batches", False)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, a, b, c, strength, average_batches):
        return ({**_tags(a), "samples": arithmetic(a["samples"], b["samples"], c["samples"], average_batches, strength)},)


# --- images -------------------------------------------------------------------------------------------
@node(category="image/batch")
class GANImageGrid:
    """Lay a batch out as one image: `columns` per row (0: all in one strip), with padding between.
    (Not ComfyUI's ImageGrid, a dataset node that tiles a list of images at a fixed cell size.)"""
    inputs = [Input("images", IMAGE), Int("columns", 0, min=0, max=4096), Int("padding", 2, min=0, max=256),
              Float("pad_value", 1.0, min=0.0, max=1.0, step=0.01)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, images, columns, padding, pad_value):
        b, h, w, c = images.shape
        cols = b if columns == 0 else min(columns, b)
        rows = -(-b // cols)
        out = torch.full((1, rows * h + (rows - 1) * padding, cols * w + (cols - 1) * padding, c), pad_value)
        for k in range(b):
            r, q = divmod(k, cols)
            y, x = r * (h + padding), q * (w + padding)
            out[0, y:y + h, x:x + w] = images[k]
        return out


@node(category="mask")
class ShapeMask:
    """A mask of one default-world shape (the shapes the built-in models know), anti-aliased.
    center and radius are fractions of the side."""
    inputs = [Choice("shape", list(SHAPES)), Float("center_x", 0.5, min=0.0, max=1.0, step=0.01),
              Float("center_y", 0.5, min=0.0, max=1.0, step=0.01), Float("radius", 0.3, min=0.01, max=1.0, step=0.01),
              Int("size", 64, min=8, max=4096, step=8)]
    outputs = [Output("MASK", MASK)]

    def run(self, ctx, shape, center_x, center_y, radius, size):
        kinds = torch.tensor([SHAPES.index(shape)])
        center = torch.tensor([[center_x, center_y]], dtype=torch.float32)
        return shape_coverage(kinds, center, torch.tensor([radius], dtype=torch.float32), size)[:, 0]
