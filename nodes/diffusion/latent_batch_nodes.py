"""Latent batch nodes (ComfyUI's nodes.py and comfy_extras/nodes_latent.py, nodes_rebatch.py): repeat, pick,
join and regroup latents.

"batch_index" lists each latent's position in the batch it was sampled in: the sampler draws latent k's
initial noise as the batch_index[k]-th draw of the seed (sampling/noise.py), so a latent taken out of a
batch is sampled again with its own noise, and LatentBatchSeedBehavior "fixed" gives all one noise.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nodegraph import LATENT, Choice, Input, Int, Output, node, repeat_to_batch

from .latent_combine_nodes import reshape_latent_to


@node(category="latent/batch", display_name="Repeat Latent Batch")
class RepeatLatentBatch:
    """Repeat the batch `amount` times."""
    inputs = [Input("samples", LATENT), Int("amount", 1, min=1, max=64)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples, amount):
        x = samples["samples"]
        out = dict(samples, samples=x.repeat(amount, *([1] * (x.ndim - 1))))
        masks = samples.get("noise_mask")
        if masks is not None and masks.shape[0] > 1:
            # ComfyUI repeats the masks as given (its tiling to the latent batch is computed, then unused)
            out["noise_mask"] = masks.repeat(amount, *([1] * (masks.ndim - 1)))
        if "batch_index" in samples:
            index = list(samples["batch_index"])
            offset = max(index) - min(index) + 1
            out["batch_index"] = index + [i + k * offset for k in range(1, amount) for i in index]
        return (out,)


@node(category="latent/batch", display_name="Latent From Batch")
class LatentFromBatch:
    """Take `length` latents from `batch_index` on (both clamped to the batch); they keep their noise."""
    inputs = [Input("samples", LATENT), Int("batch_index", 0, min=0, max=63), Int("length", 1, min=1, max=64)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples, batch_index, length):
        x = samples["samples"]
        batch_index = min(x.shape[0] - 1, batch_index)
        length = min(x.shape[0] - batch_index, length)
        out = dict(samples, samples=x[batch_index:batch_index + length].clone())
        masks = samples.get("noise_mask")
        if masks is not None:
            if masks.shape[0] == 1:
                out["noise_mask"] = masks.clone()
            else:
                out["noise_mask"] = repeat_to_batch(masks, x.shape[0])[batch_index:batch_index + length].clone()
        if "batch_index" in samples:
            out["batch_index"] = list(samples["batch_index"])[batch_index:batch_index + length]
        else:
            out["batch_index"] = list(range(batch_index, batch_index + length))
        return (out,)


@node(category="latent/batch")
class LatentBatch:
    """samples1's latents followed by samples2's (resized to samples1's size if needed). Deprecated in
    ComfyUI, still in its workflows."""
    inputs = [Input("samples1", LATENT), Input("samples2", LATENT)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples1, samples2):
        s1 = samples1["samples"]
        s2 = reshape_latent_to(s1.shape, samples2["samples"], repeat_batch=False)
        index = (list(samples1.get("batch_index", range(s1.shape[0])))
                 + list(samples2.get("batch_index", range(s2.shape[0]))))
        return (dict(samples1, samples=torch.cat((s1, s2), dim=0), batch_index=index),)


@node(category="latent/advanced")
class LatentBatchSeedBehavior:
    """fixed: every latent of the batch gets the first one's noise; random: each its own (batch_index dropped)."""
    inputs = [Input("samples", LATENT), Choice("seed_behavior", ["random", "fixed"], default="fixed")]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples, seed_behavior):
        out = dict(samples)
        if seed_behavior == "random":
            out.pop("batch_index", None)
        else:
            out["batch_index"] = [out.get("batch_index", [0])[0]] * samples["samples"].shape[0]
        return (out,)


def _cells(latent: dict, offset: int) -> tuple[torch.Tensor, torch.Tensor, list]:
    """samples, one noise mask per latent (all ones at pixel size without one) and the batch indices."""
    samples = latent["samples"]
    b, _, h, w = samples.shape
    mask = latent.get("noise_mask")
    mask = torch.ones(b, 1, h * 8, w * 8) if mask is None else mask.reshape(-1, 1, *mask.shape[-2:])
    index = list(latent["batch_index"]) if "batch_index" in latent else list(range(offset, offset + b))
    return samples, repeat_to_batch(mask, b), index


def _join_masks(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if b.shape[-2:] != a.shape[-2:]:  # ComfyUI fails here; masks of one latent size describe the same cells
        b = F.interpolate(b.float(), size=a.shape[-2:], mode="bilinear")
    return torch.cat((a, b.to(a.dtype)))


@node(category="latent/batch", display_name="Rebatch Latents")
class RebatchLatents:
    """Regroup a list of latent batches into batches of batch_size (a latent of another size starts a new
    batch); noise masks and batch indices travel with their latents, an all-ones mask is dropped."""
    inputs = [Input("latents", LATENT, is_list=True), Int("batch_size", 1, min=1, max=4096, is_list=True)]
    outputs = [Output("LATENT", LATENT, is_list=True)]

    def run(self, ctx, latents, batch_size):
        size = int(batch_size[0])
        groups: list[list] = []  # [samples, masks, indices] of latents of one spatial size
        offset = 0
        for latent in latents:
            samples, mask, index = _cells(latent, offset)
            offset += len(index)
            if groups and groups[-1][0].shape[-2:] == samples.shape[-2:]:
                last = groups[-1]
                groups[-1] = [torch.cat((last[0], samples)), _join_masks(last[1], mask), last[2] + index]
            else:
                groups.append([samples, mask, index])
        out = []
        for samples, mask, index in groups:
            for start in range(0, samples.shape[0], size):
                batch = {"samples": samples[start:start + size], "noise_mask": mask[start:start + size],
                         "batch_index": index[start:start + size]}
                if batch["noise_mask"].mean() == 1.0:
                    del batch["noise_mask"]
                out.append(batch)
        return out
