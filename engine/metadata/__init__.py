"""Metadata: YAML configuration in, validated immutable Model out."""

from engine.metadata.errors import ConfigError, ConfigErrors, SourceLoc
from engine.metadata.loader import load_model
from engine.metadata.model import Entity, Field, Label, Model

__all__ = [
    "ConfigError",
    "ConfigErrors",
    "Entity",
    "Field",
    "Label",
    "Model",
    "SourceLoc",
    "load_model",
]
