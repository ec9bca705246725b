"""tfserve: serves the SavedModels of a model repository over HTTP/JSON (see DESIGN.md)."""
