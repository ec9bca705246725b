"""HTTP routers, one module per API: tfdeploy, tfserving, uploads, ops."""
