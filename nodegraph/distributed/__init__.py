"""The Ray back end (issue 16): jobs run on Ray actors, one per GPU (or N CPU actors), each with
its own Executor so models stay warm. Ray is the transport and the process supervisor; the
server's SQLite queue stays the record. Optional: `pip install nodegraph[ray]`; nothing here is
imported unless `--ray` is given."""
from .affinity import model_files_of
from .backend import RayBackend

__all__ = ["RayBackend", "model_files_of"]
