"""Every endpoint and credential, read from environment variables.

Endpoints default to the providers' real public URLs and secrets have no default: a deployment
sets its secrets, and the code location refuses to load while one is missing, naming them all
(`require`). Only `evpipeline demo`, `dev` and `simulate` (and the tests) fill in the simulators'
development values (`apply_dev_defaults`). The README documents each variable.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path

# Fixed loopback ports the simulators use in `evpipeline simulate` / `make dev`. Tests never use
# them: they start simulators on free ports and pass the URLs explicitly.
SIMULATOR_PORTS: dict[str, int] = {
    "evroam": 8701,
    "greenflux": 8702,
    "zaptec": 8703,
    "tomtom": 8704,
    "ndw": 8705,
    "datex2": 8706,
}
WEBHOOK_PORT = 8710
OCPI_SERVER_PORT = 8720


def _sim(name: str, path: str = "") -> str:
    return f"http://127.0.0.1:{SIMULATOR_PORTS[name]}{path}"


# name -> (default, is_secret, description). Defaults are what a real deployment would use; secrets
# have none.
ENVIRONMENT: dict[str, tuple[str, bool, str]] = {
    "EVPIPELINE_DATA_DIR": ("data", False, "Directory for the warehouse, snapshots, exports and push inbox."),
    "EVPIPELINE_WAREHOUSE": (
        "",
        False,
        "The warehouse: a DuckDB file path (default: $EVPIPELINE_DATA_DIR/warehouse.duckdb; "
        "`md:` for MotherDuck) or a DuckLake attach string (`ducklake:postgres:dbname=NAME host=HOST`, "
        "`ducklake:sqlite:PATH`, `ducklake:PATH`); docs/warehouse.md.",
    ),
    "EVPIPELINE_LAKE_DATA": (
        "",
        False,
        "Where a DuckLake warehouse keeps its Parquet files (default: $EVPIPELINE_DATA_DIR/lake/; "
        "shared storage when runs are on several machines).",
    ),
    "EVPIPELINE_REFERENCE_FILE": (
        "",
        False,
        "Operator reference data (tariffs, opening times, energy mix, parking restrictions; YAML) (default: "
        "the demo CPOs' file in the package).",
    ),
    "EVPIPELINE_NAP_COUNTRIES": (
        "NLD",
        False,
        "Countries (ISO 3166 alpha-3, comma list) whose public locations are delivered to the national "
        "access point (NDW: NLD).",
    ),
    "EVPIPELINE_BI_PUBLISH_CRON": (
        "*/15 * * * *",
        False,
        "How often (at most) the BI snapshot is republished after mart changed (UTC cron).",
    ),
    "EVPIPELINE_HISTORY_KEEP_DAYS": (
        "90",
        False,
        "Whole UTC days of ops.status_history, ops.ndw_pushes and ops.runs kept in DuckDB; "
        "older days move to the Parquet archive.",
    ),
    "EVPIPELINE_SNAPSHOTS_KEEP_DAYS": (
        "14",
        False,
        "Whole UTC days of tomtom.availability_snapshots kept in DuckDB.",
    ),
    "EVPIPELINE_LAKE_KEEP_DAYS": (
        "30",
        False,
        "DuckLake snapshots kept (days): how far back deliveries can be rebuilt (`evpipeline "
        "rebuild-export`); older ones are expired by ops/lake_maintenance.",
    ),
    "EVPIPELINE_LAKE_MAINTENANCE_CRON": (
        "45 4 * * *",
        False,
        "When ops/lake_maintenance merges small files and expires old snapshots of a DuckLake warehouse "
        "(UTC).",
    ),
    "EVPIPELINE_ARCHIVE_DIR": (
        "",
        False,
        "Parquet archive of trimmed history (default: $EVPIPELINE_DATA_DIR/archive).",
    ),
    "EVPIPELINE_RETENTION_CRON": (
        "15 4 * * *",
        False,
        "When the ops/history_retention asset moves old history to the archive (UTC).",
    ),
    "EVPIPELINE_OWNERS": (
        "team:data-engineering",
        False,
        "Owners of every asset in the Dagster catalog (comma list of `team:name` or e-mail addresses).",
    ),
    "EVPIPELINE_PROGRESS_SECONDS": (
        "5",
        False,
        "Long pulls, polls and writes log pages/rows done, rate and ETA at most this often (seconds; "
        "run log and terminal).",
    ),
    "EVROAM_BASE_URL": ("https://evroam.azure-api.net/consumer/api", False, "EVRoam Consumer API base URL."),
    "EVROAM_SUBSCRIPTION_KEY": ("", True, "EVRoam APIM subscription key (Ocp-Apim-Subscription-Key)."),
    "EVROAM_PUSH_ALLOWED_HOSTS": (
        "https://evroamstore.blob.core.windows.net",
        False,
        "Origins (scheme://host[:port], comma list) push-notification files may be downloaded from; "
        "https unless an entry says http.",
    ),
    "EVROAM_WEBHOOK_KEY": ("", True, "Key the EVRoam webhook receiver requires as `?code=` on deliveries."),
    "EVROAM_WEBHOOK_PUBLIC_URL": ("", False, "Public URL of our webhook receiver, registered with EVRoam."),
    "EVROAM_DELTA_CRON": ("*/5 * * * *", False, "EVRoam delta-sync schedule."),
    "EVROAM_REPAIR_CRON": ("30 3 * * *", False, "EVRoam daily full (repair) pull."),
    "GREENFLUX_BASE_URL": (
        "https://platform.greenflux.com",
        False,
        "GreenFlux platform base URL (CLM API under /api/2.0).",
    ),
    "GREENFLUX_TOKEN": ("", True, "GreenFlux API token (Authorization: Token ...)."),
    "GREENFLUX_CRON": ("*/15 * * * *", False, "GreenFlux delta sync (date_from) schedule."),
    "GREENFLUX_FULL_CRON": (
        "45 2 * * *",
        False,
        "GreenFlux daily full pull (heals anything a date_from delta cannot see).",
    ),
    "ZAPTEC_BASE_URL": ("https://api.zaptec.com", False, "Zaptec API base URL."),
    "ZAPTEC_USERNAME": ("", True, "Zaptec portal username (OAuth2 password grant)."),
    "ZAPTEC_PASSWORD": ("", True, "Zaptec portal password."),
    "ZAPTEC_USER_GROUP_ID": (
        "",
        False,
        "Zaptec user group whose Service Bus messaging to consume (empty: "
        "first installation with messaging).",
    ),
    "ZAPTEC_COUNTRY_IDS": (
        "",
        False,
        "Pinned `<CountryId>=<ISO alpha-3>` pairs (comma list) over the Countries of Zaptec's "
        "/api/constants.",
    ),
    "ZAPTEC_STATE_CRON": ("*/15 * * * *", False, "Zaptec charger-state poll (fallback to pushed messages)."),
    "ZAPTEC_STATIC_CRON": ("0 * * * *", False, "Zaptec static refresh (installations, circuits, chargers)."),
    "TOMTOM_BASE_URL": ("https://api.tomtom.com", False, "TomTom API base URL."),
    "TOMTOM_API_KEY": ("", True, "TomTom API key (query parameter `key`)."),
    "TOMTOM_QPS": ("20", False, "Queries per second allowed by the TomTom key."),
    "TOMTOM_CRON": ("*/5 * * * *", False, "TomTom availability poll (and location mapping) schedule."),
    "NDW_PUSH_BASE_URL": ("", False, "NDW DOT-NL push API base URL (NDW hands it out on onboarding)."),
    "NDW_TOKEN_URL": (
        "",
        False,
        "NDW IAM token endpoint (OAuth2 client credentials; from NDW on onboarding).",
    ),
    "NDW_CLIENT_ID": ("", True, "Our NDW service-account client id."),
    "NDW_CLIENT_SECRET": ("", True, "Our NDW service-account client secret."),
    "DATEX2_PUSH_URL": (
        "",
        False,
        "Base URL of the national access point's DATEX II receiver (AFIR static and status publications are "
        "POSTed to {base}/static and {base}/status; from the access point on onboarding).",
    ),
    "DATEX2_PUSH_TOKEN": ("", True, "Bearer token for the DATEX II receiver (Authorization: Bearer ...)."),
    "DATEX2_PUBLICATION_CREATOR": (
        "",
        False,
        "Who publishes the DATEX II documents (publicationCreator), as CC:identifier: "
        "the identifier the access point gave us (e.g. NL:<id>).",
    ),
    "DATEX2_STATIC_CRON": (
        "*/15 * * * *",
        False,
        "How often the DATEX II static table is pushed when it changed (UTC cron; AFIR allows 24 h).",
    ),
    "DATEX2_SNAPSHOT_CRON": (
        "15 3 * * *",
        False,
        "When every status is pushed as a DATEX II snapshotPush (UTC cron; "
        "the profile wants one at least every 24 h).",
    ),
    "OCPI_TOKEN": ("", True, "Token NDW presents to our OCPI pull server (Authorization: Token ...)."),
    "OCPI_CLIENT_ID": ("", True, "OAuth2 client id NDW uses against our pull server's token endpoint."),
    "OCPI_CLIENT_SECRET": ("", True, "OAuth2 client secret for the pull server's token endpoint."),
    "OCPI_JWT_SECRET": (
        "",
        True,
        "HMAC key signing the pull server's JWTs (default: derived from OCPI_CLIENT_SECRET).",
    ),
    "OCPI_PUBLIC_URL": (
        "",
        False,
        "Public base URL of our OCPI pull server for Link headers and version details (default: "
        "the request's own base URL).",
    ),
}


# The bundled simulators' values: what `demo`, `dev`, `simulate` and the tests run against. The keys
# guard nothing real.
DEV: dict[str, str] = {
    "EVROAM_BASE_URL": _sim("evroam", "/consumer/api"),
    "EVROAM_SUBSCRIPTION_KEY": "sim-evroam-key",
    "EVROAM_PUSH_ALLOWED_HOSTS": f"http://127.0.0.1:{SIMULATOR_PORTS['evroam']}",
    "EVROAM_WEBHOOK_KEY": "sim-webhook-key",
    "EVROAM_WEBHOOK_PUBLIC_URL": f"http://127.0.0.1:{WEBHOOK_PORT}/api/evroam_listener",
    "GREENFLUX_BASE_URL": _sim("greenflux"),
    "GREENFLUX_TOKEN": "sim-greenflux-token",
    "ZAPTEC_BASE_URL": _sim("zaptec"),
    "ZAPTEC_USERNAME": "sim-user@example.com",
    "ZAPTEC_PASSWORD": "sim-password",
    "ZAPTEC_USER_GROUP_ID": "3c1f7a52-8d4e-4b6a-9f21-6e0d5b7c9a84",
    "TOMTOM_BASE_URL": _sim("tomtom"),
    "TOMTOM_API_KEY": "sim-tomtom-key",
    "NDW_PUSH_BASE_URL": _sim("ndw", "/ocpi/2.2.1"),
    "NDW_TOKEN_URL": _sim("ndw", "/auth/realms/ndw/protocol/openid-connect/token"),
    "NDW_CLIENT_ID": "sim-ndw-client",
    "NDW_CLIENT_SECRET": "sim-ndw-secret",
    "DATEX2_PUSH_URL": _sim("datex2", "/datex2"),
    "DATEX2_PUSH_TOKEN": "sim-datex2-token",
    "DATEX2_PUBLICATION_CREATOR": "NL:evpipeline-dev",
    "OCPI_TOKEN": "sim-ocpi-token",
    "OCPI_CLIENT_ID": "ndw-puller",
    "OCPI_CLIENT_SECRET": "sim-ocpi-client-secret",
}


class MissingSettings(RuntimeError):
    """Settings a deployment must provide are unset; the message names them and what each is (one line
    per setting, as a code location that does not load shows it); `one_line` is the CLI's form."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        lines = [f"  {name}: {ENVIRONMENT[name][2] if name in ENVIRONMENT else ''}" for name in names]
        super().__init__(
            "evpipeline cannot start: set these environment variables (the README lists them all):\n"
            + "\n".join(lines)
        )

    def one_line(self) -> str:
        return (
            f'missing settings: set {", ".join(self.names)} (environment variables; README "Configuration" '
            "says what each is, --verbose lists them here)"
        )


def apply_defaults(environ: MutableMapping[str, str] | None = None) -> None:
    """Fill unset variables with their documented defaults (never a secret: those have none)."""
    env = os.environ if environ is None else environ
    for name, (default, _secret, _doc) in ENVIRONMENT.items():
        if default and not env.get(name):
            env[name] = default
    # Resolve the data directory once, so every process (code server, runs, receivers) agrees.
    env["EVPIPELINE_DATA_DIR"] = str(Path(env["EVPIPELINE_DATA_DIR"]).expanduser().resolve())
    if not env.get("EVPIPELINE_WAREHOUSE"):
        env["EVPIPELINE_WAREHOUSE"] = str(Path(env["EVPIPELINE_DATA_DIR"]) / "warehouse.duckdb")


def apply_dev_defaults(environ: MutableMapping[str, str] | None = None) -> None:
    """Point every unset endpoint and secret at the bundled simulators (demo, dev, tests only)."""
    env = os.environ if environ is None else environ
    for name, value in DEV.items():
        if not env.get(name):
            env[name] = value
    apply_defaults(env)


def require(names: Iterable[str], environ: Mapping[str, str] | None = None) -> None:
    """Raise `MissingSettings` naming every one of `names` that is unset."""
    env = os.environ if environ is None else environ
    missing = sorted({name for name in names if not env.get(name)})
    if missing:
        raise MissingSettings(missing)


def dev_value(name: str) -> bool:
    """Whether a setting holds the simulators' development value (a warning sign outside dev)."""
    return name in DEV and os.environ.get(name) == DEV[name]


def get(name: str) -> str:
    """One setting: the environment's value, else its documented default."""
    value = os.environ.get(name)
    return value if value else ENVIRONMENT[name][0]


def data_dir() -> Path:
    return Path(get("EVPIPELINE_DATA_DIR"))


def warehouse_path() -> str:
    return get("EVPIPELINE_WAREHOUSE") or str(data_dir() / "warehouse.duckdb")


def secret_names() -> list[str]:
    return [name for name, (_d, secret, _doc) in ENVIRONMENT.items() if secret]
