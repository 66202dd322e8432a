"""Run LocalStack's Lambda functions as host Python processes (`LAMBDA_RUNTIME_EXECUTOR=host`), without Docker."""
