"""A ComfyUI client in the pattern of ComfyUI's script_examples/basic_api_example.py (queue the API
prompt with urllib, no client id, no websocket), finished the way such scripts wait for a result:
polling /history/{prompt_id} until the entry appears, then fetching each image from /view.
Written from the documented behaviour; run unchanged against our server.

    python basic_api_polling.py HOST:PORT PROMPT.json  -> prints JSON {node id: [PNG sizes]}
"""
import json
import sys
import time
import urllib.parse
import urllib.request

server_address = sys.argv[1]


def queue_prompt(prompt):
    p = {"prompt": prompt}
    data = json.dumps(p).encode("utf-8")  # urllib posts it form-encoded, as the example does
    req = urllib.request.Request("http://{}/prompt".format(server_address), data=data)
    return json.loads(urllib.request.urlopen(req).read())


def get_history(prompt_id):
    with urllib.request.urlopen("http://{}/history/{}".format(server_address, prompt_id)) as response:
        return json.loads(response.read())


def get_image(filename, subfolder, folder_type):
    query = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": folder_type})
    with urllib.request.urlopen("http://{}/view?{}".format(server_address, query)) as response:
        return response.read()


with open(sys.argv[2]) as f:
    prompt = json.load(f)
prompt["1"]["inputs"]["seed"] = 5  # the example edits the prompt before queueing it

prompt_id = queue_prompt(prompt)["prompt_id"]
deadline = time.time() + 60
while True:
    history = get_history(prompt_id)
    if prompt_id in history:
        break
    if time.time() > deadline:
        raise SystemExit("no history entry for " + prompt_id)
    time.sleep(0.1)

entry = history[prompt_id]
assert entry["status"]["completed"] is True, entry["status"]
result = {}
for node_id, node_output in entry["outputs"].items():
    result[node_id] = [len(get_image(i["filename"], i["subfolder"], i["type"])) for i in node_output.get("images", [])]
print(json.dumps(result))
