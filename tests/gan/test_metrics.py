"""FID / KID / precision-recall against reference computations on fixed features, and the
Inception-v3 feature extractor in pytorch-fid's layout."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg

from nodegraph.executor import Executor
from nodes.eval.inception import FIDInceptionV3
from nodes.eval.metrics import (feature_statistics, fid_from_features, frechet_distance, kernel_inception_distance,
                                precision_recall)


def fixed_features(seed: int, n: int, d: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """n samples of one correlated Gaussian (the same for every seed), shifted and scaled."""
    mixing = np.random.default_rng(1000 + d).normal(size=(d, d)) / np.sqrt(d)
    return np.random.default_rng(seed).normal(size=(n, d)) @ mixing * scale + shift


def reference_fid_scipy(f1: np.ndarray, f2: np.ndarray, eps: float = 1e-6) -> float:
    """The reference formula (pytorch-fid / TTUR), written out here."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = linalg.sqrtm((s1 + offset).dot(s2 + offset))
    covmean = covmean.real
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def reference_fid_eigen(f1: np.ndarray, f2: np.ndarray) -> float:
    """Independent route: Tr sqrt(S1 S2) = Tr sqrt(S1^1/2 S2 S1^1/2), a symmetric PSD matrix."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


def test_fid_of_a_set_with_itself_is_zero():
    f = fixed_features(0, 400, 32)
    assert abs(fid_from_features(f, f)) < 1e-6
    few = fixed_features(1, 20, 64)  # fewer samples than dimensions: singular covariance
    assert abs(fid_from_features(few, few)) < 1e-3


@pytest.mark.parametrize("shift,scale", [(0.0, 1.0), (0.3, 1.0), (0.0, 1.7), (1.5, 0.5)])
def test_fid_matches_the_reference_computations(shift, scale):
    a = fixed_features(1, 500, 32)
    b = fixed_features(2, 600, 32, shift, scale)
    ours = fid_from_features(a, b)
    assert ours == pytest.approx(reference_fid_scipy(a, b), rel=1e-6)
    assert ours == pytest.approx(reference_fid_eigen(a, b), rel=1e-6)
    assert ours > 0


def test_fid_rejects_a_large_imaginary_part():
    mu = np.zeros(2)
    with pytest.raises(ValueError, match="imaginary component"):
        frechet_distance(mu, np.diag([1.0, -4.0]), mu, np.eye(2))  # not a covariance: sqrt has 2i on the diagonal


def test_fid_statistics_are_float64_unbiased():
    f = fixed_features(3, 50, 4).astype(np.float32)
    mu, sigma = feature_statistics(f)
    assert mu.dtype == np.float64 and np.allclose(sigma, np.cov(f.astype(np.float64), rowvar=False))


def reference_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    k = lambda p, q: (p @ q.T / d + 1) ** 3  # noqa: E731
    m = x.shape[0]
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())


def test_kid_matches_the_unbiased_mmd_and_separates_distributions():
    a, b = fixed_features(1, 200, 16), fixed_features(2, 200, 16, shift=0.5)
    mean, std = kernel_inception_distance(a, b, num_subsets=1, subset_size=200)
    assert mean == pytest.approx(reference_mmd2_unbiased(a, b), rel=1e-9) and std == 0
    same, same_std = kernel_inception_distance(a, fixed_features(3, 200, 16), num_subsets=50, subset_size=100)
    different, _ = kernel_inception_distance(a, b, num_subsets=50, subset_size=100)
    assert abs(same) < 3 * same_std + 1e-3 and different > 20 * max(abs(same), 1e-3)


def test_precision_recall_on_known_manifolds():
    real = fixed_features(1, 300, 8)
    assert precision_recall(real, real, k=3) == (1.0, 1.0)
    far = fixed_features(2, 300, 8, shift=50.0)
    assert precision_recall(real, far, k=3) == (0.0, 0.0)
    # generated samples all on one half of the real distribution: faithful but not diverse
    square = np.random.default_rng(4).random((400, 2))
    left = square[square[:, 0] < 0.5]
    precision, recall = precision_recall(square, left + 1e-4, k=3)
    assert precision == 1.0 and 0.45 < recall < 0.65


def test_inception_in_pytorch_fid_layout_loads_and_embeds(gan_env):
    module = FIDInceptionV3()
    sd = module.state_dict()
    # pytorch-fid's pt_inception-2015-12-05 keys: torchvision's names, 1008 classes, no AuxLogits
    assert len(sd) == 566 and sd["fc.weight"].shape == (1008, 2048)
    for key in ("Conv2d_1a_3x3.conv.weight", "Mixed_5b.branch_pool.bn.running_var", "Mixed_6e.branch7x7dbl_5.conv.weight",
                "Mixed_7c.branch3x3dbl_3b.bn.num_batches_tracked", "Mixed_7a.branch7x7x3_4.conv.weight"):
        assert key in sd
    assert not any(k.startswith("AuxLogits") for k in sd)
    g = torch.Generator().manual_seed(0)
    random = {k: (torch.rand(v.shape, generator=g) + 0.5 if k.endswith("running_var") else
                  torch.randn(v.shape, generator=g) * 0.05) if v.is_floating_point() else v for k, v in sd.items()}
    folder = gan_env.folders.models / "feature_extractors"
    folder.mkdir()
    torch.save(random, folder / "pt_inception-2015-12-05-6726825d.pth")
    doc = {"version": 1, "nodes": {
        "1": {"type": "FeatureExtractorLoader", "inputs": {"extractor_name": "pt_inception-2015-12-05-6726825d.pth"}},
        "2": {"type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 2, "color": 0xFF0000}},
        "3": {"type": "ImageFeatures", "inputs": {"extractor": {"node": "1", "output": 0},
                                                  "images": {"node": "2", "output": 0}}},
        "4": {"type": "PreviewAny", "inputs": {"source": {"node": "3", "output": 0}}}}}
    result = Executor(gan_env).run(doc)
    assert result.status == "success", result.errors
    features = result.value("3")
    assert features.shape == (2, 2048) and features.dtype == torch.float64
    assert torch.allclose(features[0], features[1])  # the same image twice
    assert result.value("1").info["description"].startswith("FID Inception-v3")
