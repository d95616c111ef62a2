import sys

from dify_lambda.cli import main

sys.exit(main())
