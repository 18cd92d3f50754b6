"""Test pack: a frontend extension with an HTTP route and no nodes (no NODE_CLASS_MAPPINGS), as
ComfyUI serves such packs' web folders all the same."""
from aiohttp import web
from server import PromptServer

WEB_DIRECTORY = "./web"


@PromptServer.instance.routes.get("/web_only/ping")
async def ping(request):
    return web.json_response({"pong": True})
