"""ComfyUI's comfy_execution package as packs import it: graph_utils (GraphBuilder, Node, is_link,
ExecutionBlocker) for node expansion, and graph (DynamicPrompt and its errors)."""
