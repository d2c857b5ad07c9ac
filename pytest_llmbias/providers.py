"""What differs between the services the plugin talks to: Azure OpenAI (the classic resource endpoint
and the v1 API), OpenAI-compatible servers and Databricks Model Serving. Each is a `Provider`: where
its settings come from (variables, credentials) and which SDK client speaks to it. The rest of the
plugin sees only `Settings` and the client a provider builds."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from .wire import RunStopped

# The newest GA data-plane version at the time of writing; the lab's "2023-03-15-preview" still works.
DEFAULT_API_VERSION = "2024-06-01"
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")  # the classic endpoint's dated versions
# Replay never reaches the network; the SDK still needs a syntactically valid endpoint and key.
REPLAY_ENDPOINT = "https://replay.invalid/"
REPLAY_KEY = "replay-no-key"


class ConfigError(Exception):
    """A setting the user has to fix (missing variable, bad value); shown as one line."""


class EndpointError(ConfigError):
    """The endpoint itself is missing or not understood (unlike a credential, which a conftest hook may give)."""


class Provider(Protocol):
    name: str

    def detected(self, env: Any) -> bool:
        """Whether the environment's variables point at this provider."""

    def settings(self, env: Any, *, api_key: str | None, api_version: str, token_scope: str | None) -> Settings:
        """Endpoint and credential from the environment; raises ConfigError naming what to set."""

    def client(self, openai: Any, settings: Settings, common: dict[str, Any]) -> Any:
        """The SDK client for these settings (`common`: timeout, retries, HTTP client)."""


PROVIDERS = ("azure", "openai", "databricks")
# Entra ID scope of Azure OpenAI in the public cloud; other clouds have their own (ini llmbias_token_scope).
DEFAULT_TOKEN_SCOPE = "https://cognitiveservices.azure.com/.default"
# A callable api_key (a token provider for the plain OpenAI client) arrived in openai 1.106.0.
CALLABLE_API_KEY_OPENAI = (1, 106)
# Local OpenAI-compatible servers take any key; the SDK insists on one.
NO_KEY = "no-key"
KEYLESS_HOW = ("sign in with Entra ID instead: unset AZURE_OPENAI_API_KEY and install pytest-llmbias[azure] "
                "(DefaultAzureCredential: az login, a managed identity or a service principal), or set "
                "AZURE_OPENAI_AD_TOKEN; the identity needs the role Cognitive Services OpenAI User")


@dataclass(frozen=True)
class Settings:
    """Where requests go and with which credential; repr never shows a secret."""

    endpoint: str                     # azure_endpoint (classic) or the base URL (every other shape)
    api_key: str = field(repr=False)  # "" when a token authenticates
    api_version: str | None           # None: the v1, OpenAI and Databricks shapes take none
    timeout: float = 300.0            # seconds per request (--llm-timeout): reasoning models take minutes
    shape: str = "classic"            # "classic", "v1" (Azure), "openai", "databricks"
    auth: str = "key"                 # "key", "token" (static Entra ID), "entra" (DefaultAzureCredential)
    ad_token: str = field(default="", repr=False)
    token_provider: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_env(cls, *, needs_network: bool, environ: dict[str, str] | None = None,
                 api_key: str | None = None, provider: str | None = None,
                 token_scope: str | None = None) -> Settings:
        """Settings from each provider's own variables; `api_key`, when given (the
        pytest_llmbias_api_key hook), wins over the provider's key variable."""
        env = os.environ if environ is None else environ
        api_version = env.get("AZURE_OPENAI_API_VERSION", "").strip() or DEFAULT_API_VERSION
        if not needs_network:
            # Replay: a cassette miss must never fall through to a real resource.
            return cls(REPLAY_ENDPOINT, REPLAY_KEY, api_version)
        chosen = REGISTRY[provider_from_env(env, provider)]
        return chosen.settings(env, api_key=api_key, api_version=api_version, token_scope=token_scope)


def provider_from_env(env: Any, provider: str | None = None) -> str:
    """The provider named (ini llmbias_provider / --llm-provider), else the one whose variables are set."""
    if provider:
        if provider not in PROVIDERS:
            raise ConfigError(f"llmbias_provider must be one of {', '.join(PROVIDERS)} (got {provider!r})")
        return provider
    return next((name for name, candidate in REGISTRY.items() if candidate.detected(env)), "azure")


# What each variable's URL looks like, for the error that says it is not one.
_LIKE = {"OPENAI_BASE_URL": "https://api.openai.com/v1 or https://my-gateway.example.com/v1",
         "DATABRICKS_HOST": "https://adb-1234567890123456.7.azuredatabricks.net"}


def _check_url(name: str, value: str, *, api_version_query: bool = False) -> Any:
    from urllib.parse import parse_qs, urlsplit

    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("https", "http") and bool(parts.hostname) and (parts.port or 0) >= 0
        # The portal's Target URI ends in ?api-version=...: a query of that alone carries no credential
        query_ok = not parts.query or (api_version_query and set(parse_qs(parts.query)) == {"api-version"})
    except ValueError:  # unbalanced brackets, a port that is not a number
        valid = query_ok = False
    if valid and not query_ok and api_version_query and not (parts.fragment or parts.username or parts.password):
        # a query beyond api-version (a key pasted in?): its values are not shown, its names and the host are
        # a name only when written with "=" and short and word-like: a bare pasted key would otherwise show
        names = sorted({field.split("=", 1)[0] for field in parts.query.split("&") if "=" in field}
                       - {"api-version"})
        names = [key for key in names if re.fullmatch(r"[A-Za-z][A-Za-z_.-]{0,19}", key)]
        origin = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}/"
        raise EndpointError(f"{name} has query fields beyond api-version ({', '.join(names) or 'not shown'}), which may "
                            f"carry a credential: give the resource, {origin}, with the key in "
                            f"AZURE_OPENAI_API_KEY and the version in AZURE_OPENAI_API_VERSION")
    if not valid or not query_ok or parts.fragment or parts.username or parts.password:
        # The value may carry credentials: show its scheme and length only.
        raise EndpointError(f"{name} is not a URL like {_LIKE.get(name, 'https://my-resource.openai.azure.com/')} "
                            f"({len(value)} characters, starting {value[:8]!r})")
    return parts


def azure_shape(endpoint: str) -> tuple[str, str]:
    """("classic", resource URL) or ("v1", base URL ending /openai/v1/) for AZURE_OPENAI_ENDPOINT."""
    from urllib.parse import parse_qs

    parts = _check_url("AZURE_OPENAI_ENDPOINT", endpoint, api_version_query=True)
    origin = f"{parts.scheme}://{parts.netloc}/"
    path = "/" + "/".join(segment for segment in parts.path.split("/") if segment)
    if path in ("/", "/openai") and not parts.query:
        return "classic", origin
    if path == "/openai/v1" and not parts.query:
        return "v1", origin + "openai/v1/"
    if path in ("/", "/openai", "/openai/v1"):  # with ?api-version=...
        base = origin + ("openai/v1/" if path == "/openai/v1" else "")
        raise EndpointError(f"AZURE_OPENAI_ENDPOINT ends in an api-version query: give {base} without it"
                            + (" (the v1 API takes no api-version)" if path == "/openai/v1" else
                               " and the version in AZURE_OPENAI_API_VERSION"))
    deployment = re.fullmatch(r"/openai/deployments/([^/]+)(?:/chat/completions)?", path)
    if deployment:  # the portal's Target URI: a deployment's full URL
        version = parse_qs(parts.query).get("api-version", [""])[0]
        # shown only when it looks like a version: anything else in the query may be a credential
        version = version if re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?|preview|latest", version) else ""
        name = deployment.group(1) if re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", deployment.group(1)) else "its name"
        raise EndpointError(f"AZURE_OPENAI_ENDPOINT is a deployment's full URL: give its resource, {origin}, with "
                            f"AZURE_OPENAI_API_VERSION={version or 'its api-version'}, and the deployment "
                            f"({name}) in --llm-deployment or the YAML's deployment; or the v1 API, {origin}openai/v1/")
    shown = path if len(path) <= 60 else path[:57] + "..."
    raise EndpointError(f"AZURE_OPENAI_ENDPOINT has a path this tool does not understand ({shown}): give the "
                        "resource, https://RESOURCE.openai.azure.com/ (with AZURE_OPENAI_API_VERSION), or the v1 "
                        "API, https://RESOURCE.openai.azure.com/openai/v1/; the deployment goes in "
                        "--llm-deployment or the YAML's deployment")


def _azure_settings(env: Any, api_key: str | None, api_version: str, token_scope: str | None) -> Settings:
    endpoint = env.get("AZURE_OPENAI_ENDPOINT", "").strip()
    if not endpoint:
        raise EndpointError("AZURE_OPENAI_ENDPOINT not set: --llm-record and --llm-live call the deployment "
                            "(see README, 'Recording against your deployment')")
    shape, url = azure_shape(endpoint)
    key = (api_key or env.get("AZURE_OPENAI_API_KEY", "")).strip()
    token = env.get("AZURE_OPENAI_AD_TOKEN", "").strip()
    version = api_version if shape == "classic" else None  # the v1 path refuses a dated api-version
    if version is not None and not _API_VERSION.fullmatch(version):
        # said here, not as the 404 "deployment not found" Azure answers to an unknown version
        # shown only when it looks like a version gone wrong: a key pasted into the wrong variable is not shown
        shown = (f"{version!r}" if re.fullmatch(r"\d{4}-\d{2}(-\d{2})?[\w-]{0,12}|[a-z]{1,12}", version)
                 else f"a value of {len(version)} characters")
        raise ConfigError(f"AZURE_OPENAI_API_VERSION is {shown}, not an API version like {DEFAULT_API_VERSION} or "
                          "2025-04-01-preview")
    if key and token:
        raise ConfigError("both a key (AZURE_OPENAI_API_KEY or the key hook) and AZURE_OPENAI_AD_TOKEN are set: "
                          "keep one (the token for a resource whose key authentication is disabled)")
    if key:
        return Settings(url, key, version, shape=shape)
    if token:
        return Settings(url, "", version, shape=shape, auth="token", ad_token=token)
    provider = entra_token_provider(token_scope or env.get("LLMBIAS_TOKEN_SCOPE", "").strip() or DEFAULT_TOKEN_SCOPE)
    if provider is None:
        raise ConfigError("no credential for AZURE_OPENAI_ENDPOINT: set AZURE_OPENAI_API_KEY, or "
                          "AZURE_OPENAI_AD_TOKEN (an Entra ID token: az account get-access-token --resource "
                          "https://cognitiveservices.azure.com), or install pytest-llmbias[azure] to sign in "
                          "with DefaultAzureCredential")
    if shape == "v1" and not callable_api_key_supported():
        import openai

        raise ConfigError(f"the v1 endpoint with DefaultAzureCredential needs openai >= 1.106 (installed: "
                          f"{openai.__version__}): upgrade openai, set AZURE_OPENAI_AD_TOKEN, or use the "
                          "classic endpoint https://RESOURCE.openai.azure.com/ with AZURE_OPENAI_API_VERSION")
    return Settings(url, "", version, shape=shape, auth="entra", token_provider=provider)


def callable_api_key_supported() -> bool:
    import openai

    try:
        version = tuple(int(part) for part in openai.__version__.split(".")[:2])
    except ValueError:
        return True
    return version >= CALLABLE_API_KEY_OPENAI


def entra_token_provider(scope: str) -> Any:
    """DefaultAzureCredential's bearer-token provider for `scope` (it caches and refreshes the token);
    None without azure-identity. A failure to get a token stops the run with one line."""
    try:
        from azure.identity import DefaultAzureCredential, get_bearer_token_provider
    except ImportError:
        return None
    inner = get_bearer_token_provider(DefaultAzureCredential(exclude_interactive_browser_credential=True), scope)

    def provide() -> str:
        try:
            return inner()
        except Exception as error:  # azure-identity's messages span many lines and name every credential tried
            first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise RunStopped(f"DefaultAzureCredential got no token for {scope}: {first} (sign in with az login, "
                             "or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET for a service "
                             "principal; on a cluster, a managed identity)") from None

    return provide


def _openai_settings(env: Any, api_key: str | None) -> Settings:
    base_url = env.get("OPENAI_BASE_URL", "").strip()
    key = (api_key or env.get("OPENAI_API_KEY", "")).strip()
    if base_url:
        _check_url("OPENAI_BASE_URL", base_url)
    if not key and not base_url:
        raise ConfigError("OPENAI_API_KEY not set (or OPENAI_BASE_URL for a local OpenAI-compatible server): "
                          "--llm-record and --llm-live call the model")
    return Settings(base_url or "https://api.openai.com/v1", key or NO_KEY, None, shape="openai")


def _databricks_settings(env: Any, api_key: str | None) -> Settings:
    host = env.get("DATABRICKS_HOST", "").strip()
    token = (api_key or env.get("DATABRICKS_TOKEN", "")).strip()
    if (not host or not token) and env.get("DATABRICKS_RUNTIME_VERSION", "").strip():
        host, token = _databricks_notebook_credentials(host, token)  # on a cluster: the notebook's own
    if not host or not token:
        missing = " and ".join(name for name, value in (("DATABRICKS_HOST", host), ("DATABRICKS_TOKEN", token))
                               if not value)
        # the host is the endpoint (the xdist controller says so at once); a token may come from a conftest's hook
        raise (EndpointError if not host else ConfigError)(
            f"{missing} not set: --llm-record and --llm-live call the serving endpoint "
            "(https://WORKSPACE/serving-endpoints); in a notebook the cluster's own credentials are used")
    if "://" not in host:
        host = "https://" + host  # the Databricks CLI and SDK accept a bare workspace host
    parts = _check_url("DATABRICKS_HOST", host)
    return Settings(f"{parts.scheme}://{parts.netloc}/serving-endpoints", token, None, shape="databricks")


def _databricks_notebook_credentials(host: str, token: str) -> tuple[str, str]:
    """The workspace and a token from databricks-sdk's unified authentication (a notebook's own)."""
    try:
        from databricks.sdk.core import Config
    except ImportError:
        raise ConfigError("DATABRICKS_HOST and DATABRICKS_TOKEN not set (or install databricks-sdk to use "
                          "the notebook's own credentials)") from None
    try:
        config = Config(**({"host": host} if host else {}))
        header = config.authenticate().get("Authorization", "")
    except Exception as error:
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ConfigError(f"no Databricks credentials (set DATABRICKS_HOST and DATABRICKS_TOKEN): {first}") from None
    return host or config.host or "", token or header.removeprefix("Bearer ").strip()


def _plain_client(openai: Any, settings: Settings, common: dict[str, Any]) -> Any:
    """The plain OpenAI client (Azure v1, OpenAI-compatible, Databricks): the deployment or serving
    endpoint goes as `model`."""
    api_key = {"key": settings.api_key, "token": settings.ad_token}.get(settings.auth, settings.token_provider)
    return openai.OpenAI(base_url=settings.endpoint, api_key=api_key, **common)


class Azure:
    name = "azure"

    def detected(self, env: Any) -> bool:
        return bool(env.get("AZURE_OPENAI_ENDPOINT", "").strip())

    def settings(self, env: Any, *, api_key: str | None, api_version: str, token_scope: str | None) -> Settings:
        return _azure_settings(env, api_key, api_version, token_scope)

    def client(self, openai: Any, settings: Settings, common: dict[str, Any]) -> Any:
        if settings.shape != "classic":  # the v1 API: the plain client
            return _plain_client(openai, settings, common)
        credential: dict[str, Any] = {"api_key": settings.api_key}
        if settings.auth == "token":
            credential = {"azure_ad_token": settings.ad_token}
        elif settings.auth == "entra":
            credential = {"azure_ad_token_provider": settings.token_provider}
        return openai.AzureOpenAI(azure_endpoint=settings.endpoint, api_version=settings.api_version,
                                  **credential, **common)


@dataclass(frozen=True)
class PlainProvider:
    """A service the plain OpenAI client speaks to: detected by any of its variables; its settings read by
    `read(env, api_key)`."""

    name: str
    variables: tuple[str, ...]
    read: Any

    def detected(self, env: Any) -> bool:
        return any(env.get(variable, "").strip() for variable in self.variables)

    def settings(self, env: Any, *, api_key: str | None, api_version: str, token_scope: str | None) -> Settings:
        return self.read(env, api_key)

    def client(self, openai: Any, settings: Settings, common: dict[str, Any]) -> Any:
        return _plain_client(openai, settings, common)


OPENAI_COMPATIBLE = PlainProvider("openai", ("OPENAI_API_KEY", "OPENAI_BASE_URL"), _openai_settings)
DATABRICKS_SERVING = PlainProvider("databricks", ("DATABRICKS_HOST", "DATABRICKS_RUNTIME_VERSION"), _databricks_settings)


# In the order the environment is read when no provider is named: Azure first, as the lab has it.
REGISTRY: dict[str, Provider] = {provider.name: provider for provider in (Azure(), DATABRICKS_SERVING, OPENAI_COMPATIBLE)}
_OF_SHAPE = {"classic": "azure", "v1": "azure", "openai": "openai", "databricks": "databricks"}


def provider_for(settings: Settings) -> Provider:
    return REGISTRY[_OF_SHAPE[settings.shape]]
