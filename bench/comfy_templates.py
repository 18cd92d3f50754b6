"""How many ComfyUI workflows nodegraph takes as they are: parsed / validated / ran, and which
missing node types keep the rest out.

    python bench/comfy_templates.py FOLDER [--run] [--only-sd] [--rows] [--max-steps 4] [--max-side 256]

FOLDER holds ComfyUI workflows (UI or API format, searched recursively), e.g. the `templates/`
folders of the `comfyui-workflow-templates*` wheels (`pip download --no-deps
comfyui-workflow-templates-media-image`, unzip). Index and other non-workflow JSON is skipped.

A workflow is *SD-family* when it loads its model from checkpoints none of which is named like
another family (SD3, Flux, video, audio ...), and loads no separate diffusion model. In those, every
model file that is not here (checkpoint, LoRA, ControlNet, upscaler, VAE ...) is replaced by the
shipped default of its kind (CLIP vision, GLIGEN: small random stand-ins, as none ships), and LoadImage /
LoadImageMask get a generated picture, so "validated" measures nodes and wiring, not missing downloads. With --run the validated ones run on the CPU, with the sampler
steps capped (--max-steps) and every size and position scaled so that the largest latent
fits in --max-side, to keep it quick.
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders
from nodegraph.registry import default_registry
from nodegraph.validate import validate
from nodegraph.formats import WorkflowFormatError, detect_format, parse_workflow

NOT_SD = re.compile(r"sd3|flux|hunyuan|ltx|wan2|wan_|cascade|svd|zero123|audio|hidream|qwen|lumina|chroma|aura|"
                    r"pixart|kolors|mochi|cosmos|omnigen|ace_step|sam3|sam2|sdpose|yue|netayume|z_image|kandinsky",
                    re.I)
SEPARATE_MODEL_LOADERS = {"UNETLoader", "UnetLoaderGGUF", "DiffusersLoader"}
IMAGE_LOADERS = {"LoadImage": "image", "LoadImageMask": "image"}
SIZE_INPUTS = {"width", "height"}
GEOMETRY_INPUTS = SIZE_INPUTS | {"x", "y"}
STEP_INPUTS = {"steps"}
DEFAULT_VAE = "nodegraph-default-vae.safetensors"
STAND_IN_CLIP_VISION = "nodegraph-stand-in-clip-vision.safetensors"
STAND_IN_GLIGEN = "nodegraph-stand-in-gligen.safetensors"


@dataclass
class Row:
    name: str
    sd_family: bool = False
    parsed: bool = False
    validated: bool = False
    ran: bool | None = None
    seconds: float | None = None
    problem: str = ""
    missing: set[str] = field(default_factory=set)
    issue_kinds: collections.Counter = field(default_factory=collections.Counter)


def find_workflows(folder: Path):
    for path in sorted(folder.rglob("*.json")):
        if path.name.startswith("index"):
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            detect_format(doc)
        except (json.JSONDecodeError, UnicodeDecodeError, WorkflowFormatError):
            continue
        yield path, doc


def sd_family(workflow) -> bool:
    """Loads its model from at least one checkpoint, none named like another family, and no
    separately loaded diffusion model (community SD fine-tunes carry any name, so the test is
    "not known to be something else")."""
    names = []
    for entry in workflow.nodes.values():
        if entry.type in SEPARATE_MODEL_LOADERS:
            return False
        value = entry.inputs.get("ckpt_name")
        if isinstance(value, str):
            names.append(value)
    return bool(names) and not any(NOT_SD.search(n) for n in names)


def substitute(workflow, env, image_name: str) -> None:
    """Model files that are not here become the shipped default of their kind; images a generated one."""
    registry = env.registry
    available: dict[str, list[str]] = {}
    for entry in workflow.nodes.values():
        spec = registry.get(entry.type)
        if spec is None:
            continue
        for inp in spec.inputs:
            value = entry.inputs.get(inp.name)
            if not isinstance(value, str):
                continue
            if inp.folder is not None:
                files = available.setdefault(inp.folder, env.folders.list(inp.folder))
                if value not in files and files:
                    entry.inputs[inp.name] = _default_of(inp.folder, files)
            elif IMAGE_LOADERS.get(entry.type) == inp.name:
                entry.inputs[inp.name] = image_name


def _default_of(kind: str, files: list[str]) -> str:
    preferred = {"checkpoints": "nodegraph-default.safetensors", "vae": DEFAULT_VAE}
    return preferred[kind] if preferred.get(kind) in files else files[0]


def write_default_vae(env) -> None:
    """The default checkpoint's VAE as a VAE file of its own, for workflows that load one."""
    source = env.folders.find("checkpoints", "nodegraph-default.safetensors")
    weights = {k[len("first_stage_model."):]: v for k, v in load_file(str(source)).items()
               if k.startswith("first_stage_model.")}
    (env.folders.models / "vae").mkdir(parents=True, exist_ok=True)
    save_file(weights, str(env.folders.models / "vae" / DEFAULT_VAE))


def write_stand_in_clip_vision(env) -> None:
    """No CLIP vision model ships, so a small random one (transformers layout) stands in for the ones
    workflows name: enough to measure CLIPVisionEncode / unCLIPConditioning wiring, not their pictures."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=1, image_size=224,
        patch_size=32, projection_dim=64))
    weights = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    (env.folders.models / "clip_vision").mkdir(parents=True, exist_ok=True)
    save_file(weights, str(env.folders.models / "clip_vision" / STAND_IN_CLIP_VISION))


def write_stand_in_gligen(env) -> None:
    """No GLIGEN model ships, so a random one in GLIGEN's original layout, sized to the default checkpoint
    (a fuser in each of its spatial transformers, keys as wide as its CLIP), stands in for the ones workflows name."""
    source = env.folders.find("checkpoints", "nodegraph-default.safetensors")
    checkpoint = load_file(str(source))
    prefix, suffix = "model.diffusion_model.", ".transformer_blocks.0.attn1.to_q.weight"
    blocks = [(k[len(prefix):-len(suffix)], int(v.shape[0])) for k, v in checkpoint.items()
              if k.startswith(prefix) and k.endswith(suffix)]
    key_dim = int(checkpoint["cond_stage_model.transformer.text_model.final_layer_norm.weight"].shape[0])
    generator = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=generator) * 0.02

    weights = {}
    for block, dim in blocks:
        f = f"{block}.transformer_blocks.0.fuser."
        weights.update({f + "linear.weight": r(dim, key_dim), f + "linear.bias": r(dim),
                        **{f + f"attn.to_{p}.weight": r(dim, dim) for p in "qkv"},
                        f + "attn.to_out.0.weight": r(dim, dim), f + "attn.to_out.0.bias": r(dim),
                        f + "ff.net.0.proj.weight": r(dim * 8, dim), f + "ff.net.0.proj.bias": r(dim * 8),
                        f + "ff.net.2.weight": r(dim, dim * 4), f + "ff.net.2.bias": r(dim),
                        f + "norm1.weight": torch.ones(dim), f + "norm1.bias": torch.zeros(dim),
                        f + "norm2.weight": torch.ones(dim), f + "norm2.bias": torch.zeros(dim),
                        f + "alpha_attn": torch.tensor(0.1), f + "alpha_dense": torch.tensor(0.1)})
    position_dim = 8 * 2 * 4  # 8 Fourier frequencies, sin and cos, of a box's 4 numbers
    weights.update({"position_net.linears.0.weight": r(512, key_dim + position_dim),
                    "position_net.linears.0.bias": r(512), "position_net.linears.2.weight": r(512, 512),
                    "position_net.linears.2.bias": r(512), "position_net.linears.4.weight": r(key_dim, 512),
                    "position_net.linears.4.bias": r(key_dim), "position_net.null_positive_feature": r(key_dim),
                    "position_net.null_position_feature": r(position_dim)})
    (env.folders.models / "gligen").mkdir(parents=True, exist_ok=True)
    save_file(weights, str(env.folders.models / "gligen" / STAND_IN_GLIGEN),
              metadata={"nodegraph.hints": json.dumps({"num_attention_heads": 8})})


def make_quick(workflow, max_steps: int, max_side: int) -> None:
    """Cap sampler steps, and scale every size and position by one factor (multiples of 8) so
    that the largest latent fits in max_side: areas and crops keep their place in the picture."""
    sides = [v for e in workflow.nodes.values() if e.type.startswith("EmptyLatent")
             for k, v in e.inputs.items() if k in SIZE_INPUTS and isinstance(v, int)]
    factor = min(1.0, max_side / max(sides)) if sides else 1.0
    for entry in workflow.nodes.values():
        for name, value in list(entry.inputs.items()):
            if isinstance(value, bool) or not isinstance(value, int):
                continue
            if name in STEP_INPUTS and value > max_steps:
                entry.inputs[name] = max_steps
            elif name in GEOMETRY_INPUTS and factor < 1.0 and value > 0:
                entry.inputs[name] = max(8, int(round(value * factor / 8)) * 8) if name in SIZE_INPUTS \
                    else int(round(value * factor / 8)) * 8


def first_issue(issues) -> str:
    text = str(issues[0])
    return text if len(text) <= 110 else text[:107] + "..."


def measure(path: Path, doc, env, executor, args, image_name: str) -> Row:
    row = Row(path.name)
    try:
        workflow = parse_workflow(doc, env.registry)
    except Exception as exc:  # a foreign document can fail anywhere in its converter
        row.problem = f"parse: {type(exc).__name__}: {exc}"[:110]
        return row
    row.parsed = True
    row.sd_family = sd_family(workflow)
    if row.sd_family:
        substitute(workflow, env, image_name)
    _, issues = validate(workflow, env.registry, env)
    row.missing = {i.node_type for i in issues if i.kind == "unknown_type" and i.node_type}
    row.issue_kinds.update(i.kind for i in issues)
    if issues:
        row.problem = first_issue(issues)
        return row
    row.validated = True
    if args.run and (row.sd_family or not args.only_sd):
        make_quick(workflow, args.max_steps, args.max_side)
        start = time.perf_counter()
        try:
            result = executor.run(workflow)
            row.ran = result.status == "success"
            if not row.ran:
                row.problem = "run: " + (result.errors[0]["exception_message"] if result.errors else result.status)[:100]
        except Exception as exc:
            row.ran = False
            row.problem = f"run: {type(exc).__name__}: {exc}"[:110]
        row.seconds = time.perf_counter() - start
    return row


def report(rows: list[Row], args, out=sys.stdout) -> None:
    def line(*cells):
        print("  ".join(str(c) for c in cells), file=out)

    if args.rows:
        width = max((len(r.name) for r in rows), default=10)
        line(f"{'workflow':<{width}}", "sd ", "parsed", "valid", "ran ", "problem")
        for r in rows:
            ran = "-" if r.ran is None else ("yes" if r.ran else "NO")
            line(f"{r.name:<{width}}", "sd " if r.sd_family else "   ", f"{'yes' if r.parsed else 'NO':<6}",
                 f"{'yes' if r.validated else 'no':<5}", f"{ran:<4}", r.problem)
        print(file=out)

    def summary(label, subset):
        ran = [r for r in subset if r.ran is not None]
        line(f"{label:<22}", f"{len(subset):>5}", f"{sum(r.parsed for r in subset):>6}",
             f"{sum(r.validated for r in subset):>9}",
             f"{sum(bool(r.ran) for r in ran):>4}/{len(ran):<4}" if args.run else "   -")

    line(f"{'':<22}", "total", "parsed", "validated", "ran")
    summary("all workflows", rows)
    summary("SD-family", [r for r in rows if r.sd_family])
    print(file=out)
    for label, subset in (("all workflows", rows), ("SD-family", [r for r in rows if r.sd_family])):
        counts = collections.Counter(t for r in subset for t in r.missing)
        only = collections.Counter(next(iter(r.missing)) for r in subset if len(r.missing) == 1)
        blocked = sum(1 for r in subset if r.missing)
        line(f"missing node types, {label}: {len(counts)} types keep {blocked} workflows out "
             "(needed by N workflows; the only missing type of M)")
        for name, n in counts.most_common(args.top):
            line(f"  {n:>4}  {only.get(name, 0):>4}  {name}")
        print(file=out)
    others = collections.Counter(k for r in rows if r.parsed and not r.validated and not r.missing
                                 for k in r.issue_kinds)
    if others:
        line("other validation problems in workflows with every node type known (issues by kind):",
             ", ".join(f"{k} {n}" for k, n in others.most_common()))
    unparsed = [r for r in rows if not r.parsed]
    for r in unparsed[:20]:
        line("  not parsed:", r.name, r.problem)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--run", action="store_true", help="run the validated workflows on the CPU")
    parser.add_argument("--only-sd", action="store_true", help="with --run: run only the SD-family ones")
    parser.add_argument("--rows", action="store_true", help="print one row per workflow")
    parser.add_argument("--top", type=int, default=40, help="how many missing node types to list")
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--max-side", type=int, default=256)
    args = parser.parse_args(argv)

    registry = default_registry(plugins_dir=None)
    with tempfile.TemporaryDirectory() as tmp:
        env = Environment(registry=registry, folders=Folders(tmp))
        for name in ("models", "output", "input", "temp"):
            (Path(tmp) / name).mkdir()
        write_default_vae(env)
        write_stand_in_clip_vision(env)
        write_stand_in_gligen(env)
        image_name = "bench-input.png"
        Image.new("RGBA", (128, 128), (40, 90, 200, 255)).save(Path(tmp) / "input" / image_name)
        executor = Executor(env)
        rows = [measure(path, doc, env, executor, args, image_name) for path, doc in find_workflows(args.folder)]
        env.cache.clear()
    report(rows, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
