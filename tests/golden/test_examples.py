"""Every example workflow still draws the pictures (and computes the numbers) it drew when the
fixtures in tests/golden/examples/ were rendered (by `python -m tests.golden.render`, before the
architecture renovation). A refactor must not move a pixel; a change meant to alter pictures
re-renders the fixtures in its own commit and says why."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.golden.render import example_names, fixture_dir, render

# Same code on another x86 CPU may round a float differently (vector width changes summation order);
# through 20 sampler steps that can move a pixel by a level. Anything a refactor breaks moves far more.
MAX_LEVELS = 2
MEAN_LEVELS = 0.05


@pytest.mark.slow
@pytest.mark.parametrize("name", example_names())
def test_example_renders_as_before(name, tmp_path, builtin_registry):
    expected = json.loads((fixture_dir(name) / "expected.json").read_text())
    rendered = render(name, tmp_path, builtin_registry)
    assert sorted(rendered["images"]) == sorted(expected["images"].values())
    for fixture, file in expected["images"].items():
        want = np.asarray(Image.open(fixture_dir(name) / fixture).convert("RGB")).astype(np.int16)
        got = rendered["images"][file].astype(np.int16)
        assert got.shape == want.shape, file
        diff = np.abs(got - want)
        assert diff.max() <= MAX_LEVELS and diff.mean() <= MEAN_LEVELS, \
            f"{name} {file}: max {diff.max()} levels, mean {diff.mean():.3f}"
    assert sorted(rendered["numbers"]) == sorted(expected["numbers"])
    for key, values in expected["numbers"].items():
        assert rendered["numbers"][key] == pytest.approx(values, rel=1e-4, abs=1e-6), key


def test_every_example_has_fixtures():
    for name in example_names():
        assert (fixture_dir(name) / "expected.json").is_file(), f"no fixtures for {name}"
