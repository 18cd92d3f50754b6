"""ComfyUI's `comfy_api` package (the V3 node contract) for ComfyUI packs: `comfy_api.latest`."""
