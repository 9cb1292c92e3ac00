"""The component's entry point (componentize-py's app module)."""

from featherflow_sdk import export
from plugin import Plugin

WitWorld = export(Plugin())
