"""A TF Serving compatible model server (REST + gRPC) for development and tests.

Modules: `model_manager` (versions under a base path, polling, hot swap), `tensor_codec` (JSON and
TensorProto <-> numpy), `warmup` (assets.extra warmup records), `responses` (status/metadata), `rest`
(aiohttp front end), `grpc_service` (tensorflow-serving-api servicers), `app` (runs both), `errors`.
"""
