"""Call one node's run() directly, outside a workflow (for unit tests of single nodes)."""
from nodegraph.node import Context


def run(env, name, **inputs):
    ctx = Context(env, node_type=name)
    out = env.registry.get(name).cls().run(ctx, **inputs)
    return out[0] if isinstance(out, tuple) and len(out) == 1 else out
