"""Primitives: constants, math, comparison, a lazy switch, strings, and a value preview."""
from __future__ import annotations

import math
import random

from nodegraph import (ANY, BOOLEAN, FLOAT, INT, STRING, Boolean, Choice, Float, Input, Int, Output, String,
                       node)

CATEGORY = "primitives"


@node(category=CATEGORY)
class PrimitiveInt:
    """An integer constant."""
    inputs = [Int("value", 0, min=-(2**63 - 1), max=2**63 - 1, control_after_generate=True)]  # as ComfyUI's PrimitiveInt
    outputs = [Output("INT", INT)]

    def run(self, ctx, value):
        return value


@node(category=CATEGORY)
class PrimitiveFloat:
    """A floating-point constant."""
    inputs = [Float("value", 0.0)]
    outputs = [Output("FLOAT", FLOAT)]

    def run(self, ctx, value):
        return value


@node(category=CATEGORY)
class PrimitiveString:
    """A one-line string constant."""
    inputs = [String("value", "")]
    outputs = [Output("STRING", STRING)]

    def run(self, ctx, value):
        return value


@node(category=CATEGORY)
class PrimitiveStringMultiline:
    """A multi-line string constant."""
    inputs = [String("value", "", multiline=True)]
    outputs = [Output("STRING", STRING)]

    def run(self, ctx, value):
        return value


@node(category=CATEGORY)
class PrimitiveBoolean:
    """A boolean constant."""
    inputs = [Boolean("value", False)]
    outputs = [Output("BOOLEAN", BOOLEAN)]

    def run(self, ctx, value):
        return value


INT_OPS = {
    "add": lambda a, b: a + b, "subtract": lambda a, b: a - b, "multiply": lambda a, b: a * b,
    "floor_divide": lambda a, b: a // b, "modulo": lambda a, b: a % b, "power": lambda a, b: a ** b,
    "min": min, "max": max,
}
FLOAT_OPS = {
    "add": lambda a, b: a + b, "subtract": lambda a, b: a - b, "multiply": lambda a, b: a * b,
    "divide": lambda a, b: a / b, "power": lambda a, b: math.pow(a, b), "min": min, "max": max,
}


@node(category=CATEGORY + "/math")
class MathInt:
    """Integer arithmetic: a (op) b."""
    inputs = [Int("a", 0), Int("b", 0), Choice("op", list(INT_OPS))]
    outputs = [Output("INT", INT)]

    def run(self, ctx, a, b, op):
        if op in ("floor_divide", "modulo") and b == 0:
            raise ValueError(f"MathInt: cannot {op.replace('_', ' ')} by zero (input 'b' is 0)")
        if op == "power" and b < 0:
            raise ValueError("MathInt: a negative power is not an integer (input 'b' < 0)")
        # a ** b with a 200-byte b can hold the interpreter for seconds: bounded before computing
        limits = ctx.env.limits
        problem = limits.power_problem(a, b) if op == "power" else None
        if problem:
            raise ValueError(f"MathInt: {a} ** {b}: {problem} (input 'b')")
        result = INT_OPS[op](a, b)
        problem = limits.int_problem(result)  # products of products grow too
        if problem:
            raise ValueError(f"MathInt: {op}: {problem}")
        return result


@node(category=CATEGORY + "/math")
class MathFloat:
    """Floating-point arithmetic: a (op) b."""
    inputs = [Float("a", 0.0), Float("b", 0.0), Choice("op", list(FLOAT_OPS))]
    outputs = [Output("FLOAT", FLOAT)]

    def run(self, ctx, a, b, op):
        if op == "divide" and b == 0:
            raise ValueError("MathFloat: division by zero (input 'b' is 0)")
        return float(FLOAT_OPS[op](a, b))


COMPARE_OPS = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
               "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


@node(category=CATEGORY + "/logic")
class Compare:
    """Compare two numbers."""
    inputs = [Float("a", 0.0), Float("b", 0.0), Choice("op", list(COMPARE_OPS))]
    outputs = [Output("BOOLEAN", BOOLEAN)]

    def run(self, ctx, a, b, op):
        return bool(COMPARE_OPS[op](a, b))


@node(category=CATEGORY + "/logic")
class Switch:
    """Pass on_true or on_false through; only the chosen branch is ever computed."""
    inputs = [Boolean("switch", True), Input("on_true", ANY, lazy=True, optional=True),
              Input("on_false", ANY, lazy=True, optional=True)]
    outputs = [Output("output", ANY)]

    def check_lazy(self, ctx, switch, on_true=None, on_false=None):
        return ["on_true" if switch else "on_false"]

    def run(self, ctx, switch, on_true=None, on_false=None):
        return on_true if switch else on_false


@node(category=CATEGORY + "/text")
class StringConcatenate:
    """Join two strings with a delimiter."""
    inputs = [String("string_a", "", multiline=True), String("string_b", "", multiline=True), String("delimiter", "")]
    outputs = [Output("STRING", STRING)]

    def run(self, ctx, string_a, string_b, delimiter):
        return f"{string_a}{delimiter}{string_b}"


@node(category=CATEGORY, deterministic=False)
class RandomInt:
    """A fresh random integer in [min, max] on every run (never cached)."""
    inputs = [Int("min", 0), Int("max", 2**31 - 1)]
    outputs = [Output("INT", INT)]

    @classmethod
    def validate_inputs(cls, min, max):
        return None if min <= max else f"min ({min}) must not exceed max ({max})"

    def run(self, ctx, min, max):
        return random.randint(min, max)


@node(category=CATEGORY, output_node=True)
class PreviewAny:
    """Show any value as text in the editor / CLI summary."""
    inputs = [Input("source", ANY)]
    outputs = []

    def run(self, ctx, source):
        ctx.show(text=[_describe(source)])


def _describe(value) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"{type(value).__name__} of shape {list(shape)}"
    return str(value)
