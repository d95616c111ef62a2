#!/bin/sh
# AWS_LAMBDA_EXEC_WRAPPER: Lambda runs this with the managed runtime's command line as "$@"
# (its first word is the runtime's interpreter, e.g. /var/lang/bin/python3.12).
# DIFY_LAMBDA_STREAMING=0 hands over to the managed runtime (buffered handler); anything else
# replaces it with dify-lambda's streaming Runtime API loop, on the first of: $DIFY_LAMBDA_PYTHON,
# the runtime's own interpreter when "$1" is an executable python, /var/lang/bin/python3.
if [ "${DIFY_LAMBDA_STREAMING:-1}" = "0" ]; then
    exec "$@"
fi
python="${DIFY_LAMBDA_PYTHON:-}"
if [ -z "$python" ] && [ "$#" -gt 0 ] && [ -x "$1" ]; then
    case "${1##*/}" in
        python | python3 | python3.*) python="$1" ;;
    esac
fi
exec "${python:-/var/lang/bin/python3}" -m dify_lambda.handlers.stream
