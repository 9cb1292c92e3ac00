"""The component's entry point (componentize-py's app module)."""

from featherflow_sdk import export
from user_activity import UserActivity

WitWorld = export(UserActivity())
