"""Metadata: YAML configuration in, validated immutable Model out."""

from engine.metadata.errors import ConfigError, ConfigErrors, SourceLoc
from engine.metadata.labels import Label
from engine.metadata.loader import load_model
from engine.metadata.model import Entity, Field, Model, Rollup

__all__ = [
    "ConfigError",
    "ConfigErrors",
    "Entity",
    "Field",
    "Label",
    "Model",
    "Rollup",
    "SourceLoc",
    "load_model",
]
