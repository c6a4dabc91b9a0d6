"""The secure inference gateway (FastAPI).

``create_app(config)`` (``bastion.gateway.app``) builds the service; ``bastion.gateway.control``
holds the calls playbooks use (rollback, revoke_client, throttle_client, set_output_policy);
``app.state.observers`` receives a ``PredictEvent`` after each answered request, off the request
path.
"""
