"""SaveImageWebsocket, as the node ComfyUI bundles (custom_nodes/websocket_image_save.py): the images
go to the submitting client as binary websocket frames, in the preview format (PNG, full size, no
metadata), instead of to a file. Its ComfyUI script (websockets_api_example_ws_images.py) reads
them as `frame[8:]` while the node is executing."""
from __future__ import annotations

from nodegraph import IMAGE, Input, node, tensor_to_pil_truncated

__all__ = ["SaveImageWebsocket"]


@node(category="api/image", output_node=True, deterministic=False)
class SaveImageWebsocket:
    """Send images to the client over the websocket, as PNG preview frames (nothing is written)."""
    inputs = [Input("images", IMAGE)]
    outputs = []

    def run(self, ctx, images):
        total = images.shape[0]
        for step in range(total):  # ComfyUI reports step before sending image `step`, from 0
            ctx.progress(step, total)
            ctx.preview(tensor_to_pil_truncated(images[step]), "PNG", None)
