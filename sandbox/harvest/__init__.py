"""A local Harvest API v2 server with a deterministic data generator, so nothing needs a real account."""

from sandbox.harvest.data import Dataset, EntryRow, generate_dataset
from sandbox.harvest.server import HarvestSandbox

__all__ = ["Dataset", "EntryRow", "HarvestSandbox", "generate_dataset"]
