"""Convert NVIDIA's pickled StyleGAN2-ADA / StyleGAN3 network snapshot (.pkl) to a weights-only
.safetensors file that nodegraph's StyleGANLoader reads.

A .pkl snapshot holds pickled Python classes: opening it runs code from the file. Run this only on a
file you trust, on a machine with NVIDIA's stylegan2-ada-pytorch or stylegan3 checkout on the Python
path (the pickle refers to its torch_utils and dnnlib modules):

    PYTHONPATH=/path/to/stylegan2-ada-pytorch python tools/stylegan_pkl_to_safetensors.py network.pkl network.safetensors

It saves the G_ema generator's state dict (NVIDIA's key layout: mapping.fc*, mapping.w_avg,
synthesis.b*) with the snapshot's z/w sizes and resolution as metadata. nodegraph itself never
unpickles anything.
"""
from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path


def convert(source: Path, target: Path, key: str = "G_ema", half: bool = False) -> dict[str, str]:
    import torch
    from safetensors.torch import save_file

    with open(source, "rb") as f:
        snapshot = pickle.load(f)  # noqa: S301 - the user chose to trust this file (see the docstring)
    if key not in snapshot:
        raise SystemExit(f"{source}: no {key!r} in the snapshot (it has {sorted(snapshot)})")
    network = snapshot[key]
    dtype = torch.float16 if half else torch.float32
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).detach().contiguous().cpu()
               for k, v in network.state_dict().items()}
    metadata = {"source": source.name, "network": key, "layout": "nvidia"}
    for attribute in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"):
        if hasattr(network, attribute):
            metadata[attribute] = str(getattr(network, attribute))
    save_file(tensors, str(target), metadata=metadata)
    return metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="the .pkl snapshot")
    parser.add_argument("target", type=Path, nargs="?", help="the .safetensors to write (default: beside the source)")
    parser.add_argument("--network", default="G_ema", help="which network of the snapshot (default G_ema)")
    parser.add_argument("--half", action="store_true", help="store fp16 (half the size)")
    args = parser.parse_args(argv)
    target = args.target or args.source.with_suffix(".safetensors")
    print(convert(args.source, target, args.network, args.half), "->", target, file=sys.stderr)


if __name__ == "__main__":
    main()
