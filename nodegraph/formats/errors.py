"""The error every format adapter raises for a document it cannot read."""


class WorkflowFormatError(ValueError):
    """Not a workflow, or a document of a known format that is malformed."""
