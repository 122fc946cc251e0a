"""Every artifact a person or a later task opens, in one configurable location (docs/artifacts.md)."""

from closeout.artifacts.store import (
    CONN_ID,
    LINK_SECONDS_ENV,
    PUBLIC_URL_ENV,
    URL_ENV,
    ArtifactError,
    StoredPath,
    base,
    exists,
    filesystem,
    link,
    link_text,
    listing,
    path,
    read,
    remove,
    storage_options,
    stored_path,
    upload_folder,
    url,
    write,
)

__all__ = ["CONN_ID", "LINK_SECONDS_ENV", "PUBLIC_URL_ENV", "URL_ENV", "ArtifactError", "StoredPath", "base", "exists",
           "filesystem", "link", "link_text", "listing", "path", "read", "remove", "storage_options", "stored_path",
           "upload_folder", "url", "write"]  # fmt: skip
