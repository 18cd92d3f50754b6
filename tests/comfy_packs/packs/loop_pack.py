"""Test pack (a single file): a while loop through node expansion, as loop packs build one
(BadCafeCode's execution-inversion-demo, ComfyUI-Easy-Use, Impact): the open node passes values
through; the close node, while its condition holds, expands into a copy of every node between open
and close (found through DYNPROMPT and the rawLink of flow_control) with the open node's initial
values set to this round's values, and answers with links to the copied close node's outputs."""
from comfy_execution.graph_utils import GraphBuilder, is_link

SLOTS = 3


class TestWhileLoopOpen:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"condition": ("BOOLEAN", {"default": True})},
                "optional": {f"initial_value{i}": ("*",) for i in range(SLOTS)}}

    RETURN_TYPES = ("FLOW_CONTROL",) + ("*",) * SLOTS
    RETURN_NAMES = ("FLOW_CONTROL",) + tuple(f"value{i}" for i in range(SLOTS))
    FUNCTION = "open"
    CATEGORY = "test_pack/loops"

    def open(self, condition, **values):
        return ("stub",) + tuple(values.get(f"initial_value{i}") for i in range(SLOTS))


class TestWhileLoopClose:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"flow_control": ("FLOW_CONTROL", {"rawLink": True}),
                             "condition": ("BOOLEAN", {"forceInput": True})},
                "optional": {f"initial_value{i}": ("*",) for i in range(SLOTS)},
                "hidden": {"dynprompt": "DYNPROMPT", "unique_id": "UNIQUE_ID"}}

    RETURN_TYPES = ("*",) * SLOTS
    RETURN_NAMES = tuple(f"value{i}" for i in range(SLOTS))
    FUNCTION = "close"
    CATEGORY = "test_pack/loops"

    @staticmethod
    def _between(dynprompt, close_id, open_id) -> list:
        """The nodes on some path from the open node to the close node (both included)."""
        users: dict[str, set] = {}  # node -> nodes that take one of its outputs
        stack, seen = [close_id], {close_id}
        while stack:
            node_id = stack.pop()
            for value in dynprompt.get_node(node_id)["inputs"].values():
                if is_link(value):
                    users.setdefault(value[0], set()).add(node_id)
                    if value[0] not in seen:
                        seen.add(value[0])
                        stack.append(value[0])
        inside, stack = {open_id, close_id}, [open_id]
        while stack:
            for user in users.get(stack.pop(), ()):
                if user not in inside:
                    inside.add(user)
                    stack.append(user)
        return sorted(inside)

    def close(self, flow_control, condition, dynprompt=None, unique_id=None, **values):
        current = [values.get(f"initial_value{i}") for i in range(SLOTS)]
        if not condition:
            return tuple(current)
        open_id = flow_control[0]
        graph = GraphBuilder()
        inside = self._between(dynprompt, unique_id, open_id)
        local = {node_id: ("Recurse" if node_id == unique_id else node_id) for node_id in inside}
        for node_id in inside:
            copy = graph.node(dynprompt.get_node(node_id)["class_type"], local[node_id])
            copy.set_override_display_id(node_id)
        for node_id in inside:
            copy = graph.lookup_node(local[node_id])
            for name, value in dynprompt.get_node(node_id)["inputs"].items():
                if is_link(value) and value[0] in local:
                    value = graph.lookup_node(local[value[0]]).out(value[1])
                copy.set_input(name, value)
        opened = graph.lookup_node(local[open_id])
        for i, value in enumerate(current):
            opened.set_input(f"initial_value{i}", value)
        again = graph.lookup_node("Recurse")
        return {"result": tuple(again.out(i) for i in range(SLOTS)), "expand": graph.finalize()}


class TestIntAdd:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"default": 0, "forceInput": True}),
                             "b": ("INT", {"default": 1, "min": -1000, "max": 1000})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "add"
    CATEGORY = "test_pack/loops"

    def add(self, a, b):
        return (a + b,)


class TestIntLess:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"forceInput": True}), "b": ("INT", {"default": 5, "min": 0, "max": 1000})}}

    RETURN_TYPES = ("BOOLEAN",)
    FUNCTION = "less"
    CATEGORY = "test_pack/loops"

    def less(self, a, b):
        return (a < b,)


class TestImageAddConstant:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "amount": ("FLOAT", {"default": 0.1, "min": -1.0, "max": 1.0,
                                                                       "step": 0.05})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "add"
    CATEGORY = "test_pack/loops"

    def add(self, image, amount):
        return ((image + amount).clamp(0, 1),)


class TestShowInt:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True})}}

    RETURN_TYPES = ()
    FUNCTION = "show"
    OUTPUT_NODE = True
    CATEGORY = "test_pack/loops"

    def show(self, value):
        return {"ui": {"text": [str(value)]}}


class TestForLoopOpen:
    """A for-loop head as loop packs write one: a hidden initial_value0 (set by the copies a loop makes)
    overrides `remaining`, and the expansion passes the INT as the while-open's BOOLEAN condition
    (ComfyUI validates no node an expansion adds, so the truthy INT goes through as it is)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"remaining": ("INT", {"default": 1, "min": 0, "max": 1000})},
                "hidden": {"initial_value0": ("*",)}}

    RETURN_TYPES = ("FLOW_CONTROL", "INT", "BOOLEAN")
    FUNCTION = "open"
    CATEGORY = "test_pack/loops"

    def open(self, remaining, **kwargs):
        remaining = kwargs.get("initial_value0", remaining)
        graph = GraphBuilder()
        head = graph.node("TestWhileLoopOpen", condition=remaining, initial_value0=remaining)
        return {"result": (head.out(0), head.out(1), remaining > 0), "expand": graph.finalize()}


NODE_CLASS_MAPPINGS = {"TestForLoopOpen": TestForLoopOpen,
                       "TestWhileLoopOpen": TestWhileLoopOpen, "TestWhileLoopClose": TestWhileLoopClose,
                       "TestIntAdd": TestIntAdd, "TestIntLess": TestIntLess,
                       "TestImageAddConstant": TestImageAddConstant, "TestShowInt": TestShowInt}
