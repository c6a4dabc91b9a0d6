"""The operator dashboard at ``/ui``: server-rendered pages behind the gateway's own auth."""

from bastion.gateway.ui.routes import add_ui_routes

__all__ = ["add_ui_routes"]
