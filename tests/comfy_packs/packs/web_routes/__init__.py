"""Test pack: a web directory for ComfyUI's frontend, HTTP routes, and websocket messages."""
from aiohttp import web
from server import PromptServer

WEB_DIRECTORY = "./js"
GREETINGS = []


@PromptServer.instance.routes.get("/web_routes/hello/{name}")
async def hello(request):
    return web.json_response({"hello": request.match_info["name"], "loud": request.rel_url.query.get("loud") == "1"})


@PromptServer.instance.routes.post("/web_routes/greet")
async def greet(request):
    body = await request.json()
    if "name" not in body:
        raise web.HTTPBadRequest(text="name is required")
    GREETINGS.append(body["name"])
    return web.Response(text=f"greeted {body['name']}")


class TestNotify:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"message": ("STRING", {"default": "hi", "multiline": True})},
                "hidden": {"unique_id": "UNIQUE_ID"}}

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "notify"
    CATEGORY = "test_pack/web"

    def notify(self, message, unique_id):
        PromptServer.instance.send_sync("web_routes.notice", {"node": unique_id, "message": message},
                                        PromptServer.instance.client_id)
        return {"ui": {"text": [message]}}


NODE_CLASS_MAPPINGS = {"TestNotify": TestNotify}
