"""The web shell: the FastAPI app, the JSON API under /api/v1 and the server-rendered pages."""

from .app import create_app

__all__ = ["create_app"]
