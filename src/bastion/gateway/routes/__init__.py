"""The gateway's API routers, one module per area, each a module-level ``APIRouter`` that ``create_app``
includes: ``health`` (``/healthz``, ``/readyz``, ``/metrics``), ``predict``, ``admin`` (models, clients),
``audit``. ``common`` holds what they share (the service and principal dependencies, the scoped route
decorator, the error body); ``errors`` the exception handlers. The dashboard's router is
``bastion.gateway.ui.routes``."""
