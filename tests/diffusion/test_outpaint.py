"""workflows/outpaint.json on the embedded default model: the source stays, the padding continues it."""
from __future__ import annotations

import pytest
import torch

from training.default_world.analyze import nearest_color, read_image
from tests.diffusion.workflow_files import WorkflowRunner

PAD = 32  # the workflow extends its 96x128 source by 32 px on the right
FEATHER = 16
KEPT = 96 - FEATHER + 1  # columns 0..80 of the source have mask 0 (ComfyUI counts the last column as 1 from the edge)


@pytest.fixture(scope="module")
def run_workflow(tmp_path_factory, builtin_registry):
    return WorkflowRunner(tmp_path_factory.mktemp("outpaint"), builtin_registry)


def padding_follows(final: torch.Tensor, background_rgb) -> tuple[float, str]:
    """Share of the padding's pixels near the source's background colour, and the palette name of its median."""
    padding = final[:, -PAD:].reshape(-1, 3)
    near = (padding - torch.tensor(background_rgb)).norm(dim=-1) < 0.25
    return float(near.float().mean()), nearest_color(padding.median(dim=0).values.numpy())


def test_outpaint_keeps_the_source_and_continues_its_background(run_workflow):
    result = run_workflow("outpaint.json")
    source = result.value("10")[0]  # the picture to extend: 96x128
    padded, mask = result.value("11", 0)[0], result.value("11", 1)[0]
    final = result.value("15")[0]
    assert source.shape == (128, 96, 3) and final.shape == (128, 128, 3)
    # ImagePadForOutpaint: grey canvas, mask 1 on the new room, fading into the source over the feathering
    assert padded[:, 96:].eq(0.5).all() and mask[:, 96:].eq(1).all()
    assert mask[:, :KEPT].eq(0).all() and mask[:, KEPT:96].gt(0).all()
    # the source region is kept exactly where the mask is 0, and blended in the feathered band
    assert torch.equal(final[:, :KEPT], source[:, :KEPT])
    band = mask[:, KEPT:96, None]
    decoded = result.value("14")[0]
    assert torch.allclose(final[:, KEPT:96], source[:, KEPT:] * (1 - band) + decoded[:, KEPT:96] * band, atol=1e-6)
    # the new room continues the source's background (measured: 99% of its pixels within 0.25)
    background = read_image(source)
    share, name = padding_follows(final, background.background_rgb)
    assert (background.background, name) == ("blue", "blue") and share > 0.85
    assert (final[:, 96:] - 0.5).abs().max() > 0.2  # not the grey canvas


def test_outpaint_fill_follows_the_picture_not_the_prompt(run_workflow):
    """With an empty outpaint prompt the padding still takes the source's background colour."""
    result = run_workflow("outpaint.json", **{"6__text": "a white heart on a purple background", "16__text": ""})
    source, final = result.value("10")[0], result.value("15")[0]
    background = read_image(source)
    share, name = padding_follows(final, background.background_rgb)
    assert (background.background, name) == ("purple", "purple") and share > 0.85
