"""The shapes the editor reads besides plain request/response bodies: node schemas (GET /v1/nodes)
and websocket events (/v1/ws), plus the native workflow document. They join the OpenAPI document's components, from which the
editor's TypeScript types are generated (ui/scripts/gen-types.mjs), so these classes are the one
source of truth. extra="forbid": a key sent but not declared here fails the tests that check real
responses and events against these models, instead of reaching the editor untyped.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model
from pydantic.json_schema import SkipJsonSchema

from ..workflow import Workflow


# optional keys are left out rather than sent as null: the schema shows no null for them
Absent = SkipJsonSchema[None]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- node schemas: NodeSpec.schema() ------------------------------------------------------------
SOCKET_COLOR = "the editor colour of the socket's type, where the engine or a pack declares one"


class NodeInputSchema(_Strict):
    """One input: a link of `type`, or for widget types (INT, FLOAT, STRING, BOOLEAN, COMBO) a literal."""
    name: str
    type: str = Field(description='socket type name; unions are comma-separated ("IMAGE,MASK"), "*" is any')
    required: bool
    widget: bool = Field(description="can hold a literal value (every widget input also accepts a link)")
    default: Any = None
    min: int | float | Absent = None
    max: int | float | Absent = None
    step: int | float | Absent = None
    choices: list[str] | Absent = Field(None, description="COMBO inputs: the allowed values")
    multiline: bool | Absent = None
    control_after_generate: bool | Absent = None
    lazy: bool | Absent = None
    is_list: bool | Absent = None
    force_input: bool | Absent = None
    display: str | Absent = Field(None, description='editor hint: "slider", "number", "color", "image_upload" ...')
    folder: str | Absent = Field(None, description="the model folder kind whose files are the choices")
    tooltip: str | Absent = None
    color: str | Absent = Field(None, description=SOCKET_COLOR)


class NodeOutputSchema(_Strict):
    name: str
    type: str
    is_list: bool = False
    tooltip: str | Absent = None
    color: str | Absent = Field(None, description=SOCKET_COLOR)


class NodeSchema(_Strict):
    """A node type as the editor draws it (NodeSpec.schema)."""
    name: str
    display_name: str
    category: str
    description: str
    inputs: list[NodeInputSchema]
    outputs: list[NodeOutputSchema]
    output_node: bool
    version: int
    deterministic: bool
    module: str


# --- websocket events: text frames {"type": event, "data": {...}} ------------------------------
class StatusData(_Strict):
    """Queue size; sent to everyone when it changes, and first on every new connection (with sid)."""
    queue_remaining: int = Field(description="pending + running jobs")
    paused: bool
    sid: str | None = Field(None, description="this connection's client id (the greeting only)")


class JobEventData(_Strict):
    prompt_id: str = Field(description="the job id")
    timestamp: int = Field(description="milliseconds since the epoch")


class ExecutionStartData(JobEventData):
    """The job started running."""


class ExecutionCachedData(JobEventData):
    """Nodes whose results came from the cache (they will not run)."""
    nodes: list[str]


class ExecutingData(JobEventData):
    """A node starts running; node null: the job is over and its history entry is stored."""
    node: str | None
    display_node: str | None = None


class ProgressData(JobEventData):
    node: str
    value: int
    max: int


class ExecutedData(JobEventData):
    """A node finished and has UI outputs, e.g. {images: [{filename, subfolder, type}]}."""
    node: str
    display_node: str | None = None
    output: dict[str, list[Any]]


class ExecutionErrorData(JobEventData):
    node_id: str | None
    node_type: str | None
    exception_message: str
    exception_type: str
    traceback: list[str]
    executed: list[str] = []
    current_inputs: dict[str, Any] = {}  # input name -> its values (ComfyUI's format_value)
    current_outputs: list[str] = []  # the nodes whose results were cached when the run began


class ExecutionInterruptedData(JobEventData):
    node_id: str | None
    node_type: str | None
    executed: list[str] = []


class ExecutionSuccessData(JobEventData):
    """Every requested output ran."""


class WarningData(JobEventData):
    """Something the user should know that did not stop the node (ctx.warn)."""
    node: str
    node_type: str
    message: str


EVENTS: dict[str, type[BaseModel]] = {
    "status": StatusData, "execution_start": ExecutionStartData, "execution_cached": ExecutionCachedData,
    "executing": ExecutingData, "progress": ProgressData, "executed": ExecutedData,
    "execution_error": ExecutionErrorData, "execution_interrupted": ExecutionInterruptedData,
    "execution_success": ExecutionSuccessData, "warning": WarningData,
}


def _frame(event: str, data: type[BaseModel]) -> type[BaseModel]:
    """{"type": event, "data": data}, named after the data model (ExecutingData -> ExecutingEvent)."""
    return create_model(data.__name__.removesuffix("Data") + "Event", __base__=_Strict,
                        type=(Literal[event], ...), data=(data, ...))


FRAMES = [_frame(event, data) for event, data in EVENTS.items()]
ServerEvent = Annotated[Union[tuple(FRAMES)], Field(discriminator="type")]


class PreviewFrame(_Strict):
    """A binary websocket frame, msgpack-encoded: a node's live preview as PNG or JPEG bytes."""
    type: Literal["preview"]
    prompt_id: str | None
    node: str | None
    image: bytes
    image_type: Literal["image/png", "image/jpeg"] = "image/png"


def extra_component_schemas(ref_template: str = "#/components/schemas/{model}") -> dict[str, dict]:
    """JSON schemas that no HTTP route names but the editor needs, keyed by name, with references in
    the OpenAPI components layout: every event model, ServerEvent (the union of text frames),
    PreviewFrame, and the native Workflow document (routes take any format, so they declare a dict)."""
    out = {}
    for name, kind in (("ServerEvent", ServerEvent), ("PreviewFrame", PreviewFrame), ("Workflow", Workflow)):
        schema = TypeAdapter(kind).json_schema(ref_template=ref_template)
        out.update(schema.pop("$defs", {}))
        out[name] = schema
    return out
