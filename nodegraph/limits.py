"""Resource limits: how big a submission, a workflow, a decoded image or a number may get.

One `Limits` per process, on the Environment (`env.limits`), so the CLI, the server and the
nodes see the same values; `nodegraph run` and `nodegraph serve` set them from flags. Each limit
guards an operation whose cost a small input can blow up: a 63 KB PNG that decodes to 8192²
pixels, a 200-byte workflow asking for 3**(3·10⁷), a 100k-node document.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


@dataclass
class Limits:
    max_body_bytes: int = 32 * 2**20  # a submission: an HTTP request body, a workflow file
    max_upload_bytes: int = 32 * 2**20  # one uploaded image
    max_nodes: int = 20_000  # nodes in one workflow
    max_image_pixels: int = 8192 * 8192  # an image decoded at upload or by LoadImage
    max_int_bits: int = 4096  # an integer a math node computes
    max_history_page: int = 500
    max_queue_page: int = 500  # pending jobs in one page of /v1/queue

    def workflow_size_problem(self, node_count: int) -> str | None:
        if node_count > self.max_nodes:
            return (f"the workflow has {node_count:,} nodes, more than the limit of {self.max_nodes:,} "
                    "(--max-nodes)")
        return None

    def image_size_problem(self, width: int, height: int, what: str = "the image") -> str | None:
        """Checked on the header, before any pixel is decoded."""
        if width * height > self.max_image_pixels:
            return (f"{what} is {width}x{height} = {width * height:,} pixels, more than the limit of "
                    f"{self.max_image_pixels:,} (--max-image-pixels)")
        return None

    def power_problem(self, base: int, exponent: int) -> str | None:
        """Would base ** exponent have more than max_int_bits? Estimated without computing it."""
        if abs(base) <= 1 or exponent <= 0:
            return None
        bits = exponent * math.log2(abs(base))
        if bits > self.max_int_bits:
            return (f"the result would have about {bits:,.0f} bits, more than the limit of "
                    f"{self.max_int_bits:,} (--max-int-bits)")
        return None

    def int_problem(self, value: int) -> str | None:
        if value.bit_length() > self.max_int_bits:
            return (f"the result has {value.bit_length():,} bits, more than the limit of {self.max_int_bits:,} "
                    "(--max-int-bits)")
        return None


def parse_size(text: str) -> int:
    """'1048576', '512M', '8GiB', '1.5 GB' -> bytes (K/M/G/T are powers of 1024)."""
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"not a size: {text!r} (expected e.g. 2000000, 512M or 8GiB)")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** " kmgt".index(unit or " "))


def parse_count(text: str) -> int:
    """A positive count: '20000', '20k', '64M' (decimal thousands / millions)."""
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([km]?)\s*$", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(f"not a count: {text!r} (expected e.g. 20000, 20k or 64M)")
    value = int(float(match.group(1)) * {"": 1, "k": 10**3, "m": 10**6}[match.group(2).lower()])
    if value < 1:
        raise ValueError(f"{text!r}: must be at least 1")
    return value
