"""Protocol codecs: request and answer formats to numpy and back, per protocol."""
