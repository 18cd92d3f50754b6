"""Import/export adapters: ComfyUI API format, ComfyUI UI (litegraph) format, PNG metadata."""
