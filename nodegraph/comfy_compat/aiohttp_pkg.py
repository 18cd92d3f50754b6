"""`aiohttp` itself (stand-in): the `web` submodule, for packs that import `aiohttp.web` or `from aiohttp import web`."""
from . import aiohttp_web as web  # noqa: F401
from .surface import unsupported

__getattr__ = unsupported(__name__)
