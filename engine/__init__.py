"""MetaCRM: a low-code CRM engine compiled from YAML metadata."""

__version__ = "0.1.0"
