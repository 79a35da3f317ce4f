"""``objsearch serve``: a JSON API and a web page over one index, with the model kept warm."""

from .app import create_app
from .run import serve

__all__ = ["create_app", "serve"]
