"""Package list for the wheel (metadata is in pyproject.toml).

``closeout`` is found under ``plugins/``; its resources (``include/``: SQL, templates, default configs) are
added as the data-only package ``closeout._include`` (one entry per folder, as setuptools wants) so the installed
package carries them. Computed here because pyproject's ``packages.find`` cannot combine two source roots.
"""

from pathlib import Path

from setuptools import find_packages, setup

RESOURCE_PACKAGES = [
    ".".join(("closeout._include", *folder.relative_to("include").parts)).rstrip(".")
    for folder in sorted([Path("include"), *Path("include").rglob("*")])
    if folder.is_dir() and folder.name != "__pycache__"
]

setup(
    packages=[*find_packages("plugins", include=["closeout", "closeout.*"]), *RESOURCE_PACKAGES],
    package_dir={"": "plugins", **{name: "include/" + "/".join(name.split(".")[2:]) for name in RESOURCE_PACKAGES}},
    package_data={name: ["*"] for name in RESOURCE_PACKAGES},
    exclude_package_data={"": ["*.pyc"]},
)
