"""A local Toggl Track API v9 + Reports API v3 server with a deterministic data generator."""

from sandbox.toggl.data import Dataset, EntryRow, generate_dataset
from sandbox.toggl.server import TogglSandbox

__all__ = ["Dataset", "EntryRow", "TogglSandbox", "generate_dataset"]
