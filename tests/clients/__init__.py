"""The Open Inference Protocol's official gRPC clients, each run in a process of its own.

tritonclient.grpc and kserve both register the `inference.*` messages in protobuf's default
descriptor pool, so one Python process cannot import both (`duplicate symbol
'inference.ServerLiveRequest'`); the suite imports kserve already. Each module here is run as
`python -m tests.clients.<module> HOST:PORT INPUTS.json` and prints one JSON object, which the
tests read and check against the REST routes.
"""
