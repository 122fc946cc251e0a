"""A local Clockify REST API v1 + Reports API server with a deterministic data generator, so nothing needs a real
workspace."""

from sandbox.clockify.data import Dataset, EntryRow, generate_dataset
from sandbox.clockify.server import ClockifySandbox

__all__ = ["ClockifySandbox", "Dataset", "EntryRow", "generate_dataset"]
