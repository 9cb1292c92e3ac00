"""The component's entry point (componentize-py's app module)."""

from featherflow_sdk import export
from session_stats import SessionStats

WitWorld = export(SessionStats())
