"""Opening an example puts the pictures it names into the input folder, so it validates as shipped
(issue 19: the ControlNet example failed with "'controlnet-shape.png' is not one of the choices"
until the user uploaded the picture that ships next to it in workflows/)."""
from __future__ import annotations

import json
from pathlib import Path

from nodegraph.server.examples import example_inputs, provide_inputs
from nodegraph.workflow import Workflow

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def wf(inputs: dict) -> Workflow:
    return Workflow.model_validate({"version": 1, "nodes": {"1": {"type": "LoadImage", "inputs": inputs}}})


def test_the_controlnet_examples_name_their_control_image():
    for name in ("controlnet", "controlnet-lora"):
        doc = Workflow.model_validate_json((WORKFLOWS / f"{name}.json").read_text())
        assert [p.name for p in example_inputs(doc, WORKFLOWS)] == ["controlnet-shape.png"], name
    doc = Workflow.model_validate_json((WORKFLOWS / "txt2img.json").read_text())
    assert example_inputs(doc, WORKFLOWS) == []


def test_only_plain_file_names_next_to_the_example_count(tmp_path):
    (tmp_path / "pic.png").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.png").write_bytes(b"x")
    (tmp_path / "other.json").write_text("{}")
    doc = wf({"image": "pic.png", "a": "sub/deep.png", "b": "../pic.png", "c": "other.json", "d": "missing.png",
              "e": 3, "f": {"node": "2", "output": "IMAGE"}})
    assert [p.name for p in example_inputs(doc, tmp_path)] == ["pic.png"]


def test_a_users_file_of_the_same_name_is_kept(tmp_path):
    src, inp = tmp_path / "ex", tmp_path / "input"
    src.mkdir()
    (src / "pic.png").write_bytes(b"shipped")
    assert provide_inputs(wf({"image": "pic.png"}), src, inp) == ["pic.png"]
    assert (inp / "pic.png").read_bytes() == b"shipped"
    (inp / "pic.png").write_bytes(b"mine")
    provide_inputs(wf({"image": "pic.png"}), src, inp)
    assert (inp / "pic.png").read_bytes() == b"mine"


def test_opening_the_controlnet_example_copies_its_picture_and_it_validates(server, http):
    input_dir = server.state.env.folders.input
    assert not (input_dir / "controlnet-shape.png").exists()
    doc = http.get("/v1/workflows/controlnet").json()
    assert (input_dir / "controlnet-shape.png").read_bytes() == (WORKFLOWS / "controlnet-shape.png").read_bytes()
    assert "controlnet-shape.png" in json.dumps(http.get("/v1/nodes").json()["LoadImage"])
    errors = http.post("/v1/validate", json={"workflow": doc}).json()["errors"]
    # this test server has no model files (those errors are expected); the picture is found
    assert errors and all(e["node_type"] != "LoadImage" for e in errors), errors
