"""Splitting and building Lambda function ARNs, as ``greengrasssdk.Lambda`` needs.

``arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]``; system functions
such as ``arn:aws:lambda:::function:GGRouter`` have an empty region and account.
"""

from __future__ import annotations

import re

_PATTERN = re.compile(
    r"^arn:(?P<partition>[^:]+):lambda:(?P<region>[^:]*):(?P<account_id>[^:]*):function:"
    r"(?P<name>[^:]+)(?::(?P<qualifier>[^:]+))?$"
)


class FunctionArnFields:
    """The fields of a function ARN: ``partition``, ``region``, ``account_id``, ``name``,
    ``qualifier`` ('' when unqualified) and ``unqualified_arn``."""

    def __init__(self, function_arn):
        match = _PATTERN.match(function_arn or "")
        if match is None:
            raise ValueError(
                f"Cannot parse given string as a function ARN: {function_arn!r} (expected "
                "arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>])")
        self.partition = match.group("partition")
        self.region = match.group("region")
        self.account_id = match.group("account_id")
        self.name = match.group("name")
        self.qualifier = match.group("qualifier") or ""
        self.unqualified_arn = FunctionArnFields.build_arn_string(
            self.partition, self.region, self.account_id, self.name)
        self.arn = function_arn

    @staticmethod
    def build_arn_string(partition, region, account_id, name, qualifier=""):
        arn = f"arn:{partition}:lambda:{region}:{account_id}:function:{name}"
        return f"{arn}:{qualifier}" if qualifier else arn

    @staticmethod
    def build_function_arn(unqualified_arn, qualifier=None):
        """``unqualified_arn`` with ``:qualifier`` appended when a qualifier is given."""
        return f"{unqualified_arn}:{qualifier}" if qualifier else unqualified_arn
