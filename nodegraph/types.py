"""Socket types: what flows along a link, and which outputs may feed which inputs.

A type is a named `SocketType`. The engine defines only the common vocabulary that every pack and
ComfyUI share ("IMAGE", "LATENT", "MODEL" ...), with ComfyUI's names so that imported workflows keep
working. A pack declares its own types as module-level constants of its plugin module:

    GAN = SocketType("GAN", "#ff8a65")     # the colour reaches the editor through the node schemas

Types are identified by name alone, as ComfyUI's type strings are: two packs that name the same
type share it (a pack may take a "GAN" input without importing the pack that makes GANs), and the
registry keeps the first colour declared for a name.
Compatibility (`SocketType.accepts`, the one rule that validation and the formats follow):
equal names connect; "*" on either side connects to anything; a union (`IMAGE | MASK`, or
ComfyUI's "IMAGE,MASK") accepts any of its members; a choice input (COMBO) also takes a STRING
output, since a choice travels as its string.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SocketType:
    name: str
    color: str | None = field(default=None, compare=False)  # the editor's socket colour

    @property
    def members(self) -> frozenset[str]:
        return frozenset(part.strip() for part in self.name.split(","))

    def accepts(self, source: "SocketType") -> bool:
        """May an output of type `source` feed an input of this type?"""
        if self.name == source.name or self.name == "*" or source.name == "*":
            return True
        if self.name == "COMBO" and source.name == "STRING":
            return True
        return bool(self.members & source.members)

    def __or__(self, other: "SocketType") -> "SocketType":
        return SocketType(",".join(sorted(self.members | other.members)))

    def __str__(self) -> str:
        return self.name


_COMMON: dict[str, SocketType] = {}


def _define(name: str, color: str) -> SocketType:
    t = SocketType(name, color)
    _COMMON[name] = t
    return t


ANY = _define("*", "#9aa4b1")
# literal (widget) types
INT = _define("INT", "#7fb069")
FLOAT = _define("FLOAT", "#a3d977")
STRING = _define("STRING", "#77c3d9")
BOOLEAN = _define("BOOLEAN", "#d9b877")
COMBO = _define("COMBO", "#b0b0b0")  # a choice among strings; links carry STRING
# data
IMAGE = _define("IMAGE", "#64b5f6")
MASK = _define("MASK", "#81c784")
LATENT = _define("LATENT", "#ff9cf9")
CONDITIONING = _define("CONDITIONING", "#ffa931")
NOISE = _define("NOISE", "#b0b0b0")
SIGMAS = _define("SIGMAS", "#cdffcd")
# models
MODEL = _define("MODEL", "#b39ddb")
CLIP = _define("CLIP", "#ffd500")
VAE = _define("VAE", "#ff6e6e")
CONTROL_NET = _define("CONTROL_NET", "#00d78d")
UPSCALE_MODEL = _define("UPSCALE_MODEL", "#d4a0ff")

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})


def socket_type(value: "SocketType | str") -> SocketType:
    """Normalise a type given as a SocketType or a name (plugins may pass strings)."""
    if isinstance(value, SocketType):
        return value
    if not isinstance(value, str) or not value:
        raise TypeError(f"a socket type must be a SocketType or a non-empty string, not {value!r}")
    return _COMMON.get(value) or SocketType(value)


def common_types() -> dict[str, SocketType]:
    """The engine's vocabulary, by name."""
    return dict(_COMMON)
