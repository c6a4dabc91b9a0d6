"""The operator dashboard at ``/ui``: server-rendered pages behind the gateway's own auth."""

from bastion.gateway.ui.routes import install_ui, router

__all__ = ["install_ui", "router"]
