"""Distribution metrics between two sets of image features [N, D].

- FID (Heusel et al. 2017): Fréchet distance between Gaussians fitted to the features, computed as
  the reference implementations do (float64 statistics, scipy.linalg.sqrtm of sigma1 @ sigma2,
  eps on the diagonals when the product is near singular, tiny imaginary parts discarded and large
  ones an error).
- KID (Bińkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel
  k(x, y) = (x.y / d + 1)^3, averaged over random subsets (mean and standard deviation).
- Precision / recall (Kynkäänniemi et al. 2019): each set's manifold is the union of balls around
  its samples reaching their k-th nearest neighbour; precision = share of generated samples inside
  the real manifold, recall = share of real samples inside the generated one.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg

SQRTM_RESIDUAL_TOL = 1e-3  # relative error of sqrtm above which the product counts as near singular


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (unbiased, rowvar=False) in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors [N, D], got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _sqrtm(a: np.ndarray) -> tuple[np.ndarray, float]:
    with warnings.catch_warnings():  # a singular product is detected below, by the residual
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(a)
    if not np.isfinite(root).all():
        return root, float("inf")
    norm = np.linalg.norm(a, "fro")
    residual = np.linalg.norm(root @ root - a, "fro") / norm if norm > 0 else 0.0
    return root, float(residual)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2))."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"feature statistics differ in shape: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    covmean, residual = _sqrtm(sigma1 @ sigma2)
    if residual > SQRTM_RESIDUAL_TOL:  # near singular product: regularise both covariances
        offset = np.eye(sigma1.shape[0]) * eps
        covmean, _ = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: the matrix square root has a large imaginary component "
                             f"({np.max(np.abs(covmean.imag)):.3g}); the covariances are ill-conditioned "
                             "(too few images for the feature dimension?)")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid_from_features(features_a, features_b) -> float:
    mu1, s1 = feature_statistics(features_a)
    mu2, s2 = feature_statistics(features_b)
    return frechet_distance(mu1, s1, mu2, s2)


def kernel_inception_distance(features_a, features_b, num_subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """KID as (mean, std) over subsets of min(subset_size, |a|, |b|) samples from each set."""
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        x = a[rng.choice(a.shape[0], m, replace=False)]
        y = b[rng.choice(b.shape[0], m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values.append(within - 2 * kxy.sum() / (m * m))
    values = np.array(values)
    return float(values.mean()), float(values.std())


def _knn_radii(features: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """Distance from each sample to its k-th nearest neighbour in the same set (itself excluded)."""
    radii = []
    for start in range(0, features.shape[0], chunk):
        dist = torch.cdist(features[start:start + chunk], features)
        radii.append(dist.kthvalue(k + 1, dim=1).values)  # +1: the sample itself at distance 0
    return torch.cat(radii)


def _coverage(reference: torch.Tensor, radii: torch.Tensor, query: torch.Tensor, chunk: int = 1024) -> float:
    """Share of query samples inside at least one reference ball."""
    inside = []
    for start in range(0, query.shape[0], chunk):
        dist = torch.cdist(query[start:start + chunk], reference)
        inside.append((dist <= radii[None, :]).any(dim=1))
    return float(torch.cat(inside).double().mean())


def precision_recall(real_features, fake_features, k: int = 3) -> tuple[float, float]:
    real = torch.as_tensor(np.asarray(real_features), dtype=torch.float64)
    fake = torch.as_tensor(np.asarray(fake_features), dtype=torch.float64)
    if min(real.shape[0], fake.shape[0]) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples in each set "
                         f"(got {real.shape[0]} real, {fake.shape[0]} generated)")
    precision = _coverage(real, _knn_radii(real, k), fake)
    recall = _coverage(fake, _knn_radii(fake, k), real)
    return precision, recall
