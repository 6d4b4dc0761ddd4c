"""The HTTP edge: FastAPI app over the park service."""

from park.api.app import ApiSettings, create_app

__all__ = ["ApiSettings", "create_app"]
