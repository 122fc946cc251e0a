"""Every artifact a person or a later task opens, in one configurable location (docs/artifacts.md)."""

from closeout.artifacts.store import (
    CONN_ID,
    PUBLIC_URL_ENV,
    URL_ENV,
    ArtifactError,
    base,
    exists,
    filesystem,
    link,
    listing,
    path,
    read,
    remove,
    storage_options,
    upload_folder,
    url,
    write,
)

__all__ = ["CONN_ID", "PUBLIC_URL_ENV", "URL_ENV", "ArtifactError", "base", "exists", "filesystem", "link", "listing",
           "path", "read", "remove", "storage_options", "upload_folder", "url", "write"]  # fmt: skip
