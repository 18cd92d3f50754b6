"""A ComfyUI client in the pattern of ComfyUI's script_examples/websockets_api_example_ws_images.py:
a websocket (websocket-client) with a client id, the prompt queued with urllib, and the images of
the SaveImageWebsocket node taken from the binary frames that arrive while that node is executing
(`frame[8:]`: an 8-byte header, then the PNG). Written from the documented behaviour; run unchanged.

    python websocket_images.py HOST:PORT PROMPT.json  -> writes the PNGs next to PROMPT.json,
                                                          prints JSON {node id: [file names]}
"""
import json
import sys
import urllib.request
import uuid
from pathlib import Path

import websocket  # websocket-client

server_address = sys.argv[1]
client_id = str(uuid.uuid4())


def queue_prompt(prompt):
    p = {"prompt": prompt, "client_id": client_id}
    data = json.dumps(p).encode("utf-8")
    req = urllib.request.Request("http://{}/prompt".format(server_address), data=data)
    return json.loads(urllib.request.urlopen(req).read())


def get_images(ws, prompt):
    prompt_id = queue_prompt(prompt)["prompt_id"]
    output_images = {}
    current_node = ""
    while True:
        out = ws.recv()
        if isinstance(out, str):
            message = json.loads(out)
            if message["type"] == "executing":
                data = message["data"]
                if data["prompt_id"] == prompt_id:
                    if data["node"] is None:
                        break  # execution is done
                    current_node = data["node"]
        else:
            if current_node == "save_image_websocket_node":
                output_images.setdefault(current_node, []).append(out[8:])
    return output_images


prompt_file = Path(sys.argv[2])
prompt = json.loads(prompt_file.read_text())
prompt["1"]["inputs"]["seed"] = 5

ws = websocket.WebSocket()
ws.connect("ws://{}/ws?clientId={}".format(server_address, client_id))
images = get_images(ws, prompt)
ws.close()
written = {}
for node_id, datas in images.items():
    for k, data in enumerate(datas):
        path = prompt_file.with_name(f"{node_id}_{k}.png")
        path.write_bytes(data)
        written.setdefault(node_id, []).append(path.name)
print(json.dumps(written))
