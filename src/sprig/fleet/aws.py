"""AWS credentials, region and S3 endpoint from the ordinary AWS configuration, as botocore
finds them, for the device's component store client (which must not import botocore: it
costs the core tens of megabytes).

Order (botocore's, the parts a device uses):

* credentials: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, else
  the shared credentials file (``AWS_SHARED_CREDENTIALS_FILE``, default ``~/.aws/credentials``)
  under the profile (``fleet.store.profile``, else ``AWS_PROFILE``, else ``default``), else the
  config file (``AWS_CONFIG_FILE``, default ``~/.aws/config``, section ``profile NAME``);
* region: ``fleet.store.region``, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else the
  profile's ``region`` in the config file, else the core's ``awsRegion``;
* endpoint: ``fleet.store.endpoint``, else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, else
  AWS S3 in the region.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sprig.errors import SprigError
from sprig.fleet_settings import StoreSettings


class NoCredentials(SprigError):
    """No AWS credentials found for the component store."""


@dataclass(frozen=True)
class AwsCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    source: str = ""


@dataclass(frozen=True)
class StoreAccess:
    """Everything needed to sign requests to the store."""

    endpoint: str           # scheme://host[:port], no trailing slash
    region: str
    credentials: AwsCredentials
    path_style: bool


def _read(path: Path) -> configparser.ConfigParser | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open() as f:
            parser.read_file(f)
    except (OSError, configparser.Error):
        return None
    return parser


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def resolve_access(store: StoreSettings, default_region: str,
                   env: Mapping[str, str] | None = None) -> StoreAccess:
    env = os.environ if env is None else env
    profile = store.profile or env.get("AWS_PROFILE") or "default"
    config_path = Path(env.get("AWS_CONFIG_FILE") or _home() / ".aws" / "config")
    config = _read(config_path.expanduser())
    section = profile if profile == "default" else f"profile {profile}"
    prof = config[section] if config is not None and config.has_section(section) else {}
    region = (store.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
              or prof.get("region") or default_region)
    credentials = _credentials(env, profile, prof, config_path)
    endpoint = (store.endpoint or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
                or f"https://s3.{region}.amazonaws.com")
    path_style = store.path_style if (store.endpoint or store.addressing) else (
        bool(env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")))
    return StoreAccess(endpoint.rstrip("/"), region, credentials, path_style)


def _credentials(env: Mapping[str, str], profile: str, prof: Mapping[str, str],
                 config_path: Path) -> AwsCredentials:
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return AwsCredentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"],
                              env.get("AWS_SESSION_TOKEN") or None, "environment")
    cred_path = Path(env.get("AWS_SHARED_CREDENTIALS_FILE")
                     or _home() / ".aws" / "credentials").expanduser()
    creds = _read(cred_path)
    if creds is not None and creds.has_section(profile):
        sec = creds[profile]
        if sec.get("aws_access_key_id") and sec.get("aws_secret_access_key"):
            return AwsCredentials(sec["aws_access_key_id"], sec["aws_secret_access_key"],
                                  sec.get("aws_session_token") or None,
                                  f"{cred_path} [{profile}]")
    if prof.get("aws_access_key_id") and prof.get("aws_secret_access_key"):
        return AwsCredentials(prof["aws_access_key_id"], prof["aws_secret_access_key"],
                              prof.get("aws_session_token") or None,
                              f"{config_path} [{profile}]")
    raise NoCredentials(
        f"no AWS credentials for the component store: none in the environment "
        f"(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), none for profile {profile!r} in "
        f"{cred_path} or {config_path}; allowed: either, as for the AWS CLI (the profile is "
        "fleet.store.profile in config.yaml, else AWS_PROFILE, else default)")
