"""The model side: the repository on disk, the config, loading, versions."""
