"""CityVeil: on-premise anonymization of smart-city camera video."""

__version__ = "0.1.0"
