#!/bin/sh
# AWS_LAMBDA_EXEC_WRAPPER: Lambda runs this with the managed runtime's command line as "$@".
# DIFY_LAMBDA_STREAMING=0 hands over to the managed runtime (buffered handler); anything else
# replaces it with dify-lambda's streaming Runtime API loop on the same interpreter.
if [ "${DIFY_LAMBDA_STREAMING:-1}" = "0" ]; then
    exec "$@"
fi
exec "${DIFY_LAMBDA_PYTHON:-/var/lang/bin/python3}" -m dify_lambda.handlers.stream
