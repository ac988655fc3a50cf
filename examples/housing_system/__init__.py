"""A council housing repairs system that carries MARAC flags as property markers."""

from examples.housing_system.markers import MarkerAction, PropertyMarkers
from examples.housing_system.run import consume

__all__ = ["MarkerAction", "PropertyMarkers", "consume"]
