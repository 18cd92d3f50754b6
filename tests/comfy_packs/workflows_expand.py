"""The workflows of the expansion test packs (loop_pack, subflow_pack), in ComfyUI's API format as a
ComfyUI frontend would submit them, with the values they must give."""
from __future__ import annotations

ITERATIONS = 5

# a while loop: counter i and total run i+1 and total+(i+1) while i+1 < 5; an image gets 0.1 brighter
# each round through a lazy switch whose other branch (node 9) must never run
LOOP = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 4, "batch_size": 1, "color": 0}},
    "3": {"class_type": "PrimitiveInt", "inputs": {"value": 0}},
    "4": {"class_type": "PrimitiveInt", "inputs": {"value": 0}},
    "2": {"class_type": "TestWhileLoopOpen", "inputs": {"condition": True, "initial_value0": ["3", 0],
                                                       "initial_value1": ["4", 0], "initial_value2": ["1", 0]}},
    "5": {"class_type": "TestIntAdd", "inputs": {"a": ["2", 1], "b": 1}},
    "6": {"class_type": "TestIntAdd", "inputs": {"a": ["2", 2], "b": ["5", 0]}},
    "7": {"class_type": "TestImageAddConstant", "inputs": {"image": ["2", 3], "amount": 0.1}},
    "9": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 4, "batch_size": 1, "color": 0xFFFFFF}},
    "8": {"class_type": "TestLazySwitch", "inputs": {"select_a": True, "a": ["7", 0], "b": ["9", 0]}},
    "10": {"class_type": "TestIntLess", "inputs": {"a": ["5", 0], "b": ITERATIONS}},
    "11": {"class_type": "TestWhileLoopClose", "inputs": {"flow_control": ["2", 0], "condition": ["10", 0],
                                                         "initial_value0": ["5", 0], "initial_value1": ["6", 0],
                                                         "initial_value2": ["8", 0]}},
    "12": {"class_type": "TestShowInt", "inputs": {"value": ["11", 0]}},
    "13": {"class_type": "TestShowInt", "inputs": {"value": ["11", 1]}},
    "14": {"class_type": "SaveImage", "inputs": {"images": ["11", 2], "filename_prefix": "loop"}},
}
LOOP_COUNTER, LOOP_TOTAL = ITERATIONS, sum(range(1, ITERATIONS + 1))
LOOP_PIXEL = int(0.1 * ITERATIONS * 255)  # SaveImage truncates as ComfyUI does: 127

# a subflow: colour 0x336699 blended 25% with its inverse, saved inside the expansion, and doubled
SUBFLOW = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 3, "height": 2, "batch_size": 1, "color": 0x336699}},
    "2": {"class_type": "TestSubflowInvertBlend", "inputs": {"image": ["1", 0], "factor": 0.25,
                                                            "filename_prefix": "subflow"}},
    "3": {"class_type": "TestSubflowV3Invert", "inputs": {"image": ["2", 0]}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "doubled"}},
}


def blended(channel: float, factor: float = 0.25) -> float:
    """ComfyUI's ImageBlend "normal": image1 * (1 - f) + image2 * f, image2 the inverse here."""
    return channel * (1 - factor) + (1 - channel) * factor


SUBFLOW_BLEND = [blended(c / 255) for c in (0x33, 0x66, 0x99)]
SUBFLOW_DOUBLED_INVERTED = [1 - v for v in SUBFLOW_BLEND]
