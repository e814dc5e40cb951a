"""``sprig lambda import``: turn an AWS Lambda function into a deployable Greengrass-style
component (recipe + ``lambda-artifact.zip``), offline, from what a user can export from AWS.

Modules: ``checks`` (primitive validators), ``model`` (values, defaults, ranges), ``documents``
(the lambdaFunction document and the function configuration), ``params`` (flags and
precedence), ``recipe`` (the generated recipe), ``artifact`` (zip/dir/jar), ``importer``
(validate, then write atomically), ``export`` (configuration back to parameters).
"""

from __future__ import annotations
