"""HTTP routes, one module per API. Each module has `router` (its FastAPI routes that run no
model: status, metadata, health) and `predict_routes` (`table.PredictRoute`, served by
FastAPI and by the fast path alike). Adding a protocol is a module here, listed below.
"""

from app.http_api.routes import ops, tfdeploy, tfserving, uploads, v2

# matched in this order: tfdeploy's catch-all /{signature}/predict last
PROTOCOLS = (tfserving, v2, uploads, tfdeploy)
PREDICT_ROUTES = [route for module in PROTOCOLS for route in module.predict_routes]

__all__ = ["PREDICT_ROUTES", "PROTOCOLS", "ops", "v2"]
