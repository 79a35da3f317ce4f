"""XMP sidecars for photo-management apps: objsearch's keywords, caption and image regions.

``entries`` builds objsearch's share of a sidecar from the store's records, ``packet``
merges it into (or takes it out of) an existing XMP packet with exiv2, ``write`` replaces
files atomically, ``naming`` says where a photo's sidecar lives and ``export`` runs it all
over an index (``objsearch export --xmp``).
"""

from .export import SidecarSummary, export_sidecars
from .naming import APPEND, NAMINGS, REPLACE, sidecar_path

__all__ = ["APPEND", "NAMINGS", "REPLACE", "SidecarSummary", "export_sidecars", "sidecar_path"]
