"""NUTS-1 facts the model relies on, written down with their source; nothing here is guessed.

AFIR (Implementing Regulation (EU) 2025/655) asks for each charging point's NUTS-1 region. A region
comes from the operator (a reference rule, or the `nuts_code` of its `operators` entry) or, for a
country that is a single NUTS-1 region, from the country itself.

Source: the NUTS classification, Regulation (EC) No 1059/2003 as amended by Commission Delegated
Regulation (EU) 2019/1755 (NUTS 2021) and (EU) 2023/674 (NUTS 2024, which left these NUTS-1 regions
unchanged), and Eurostat's statistical regions of the EFTA countries (same codes, same levels).
Only EU and EFTA countries (AFIR's area, with the EEA) are listed.
"""

from __future__ import annotations

import pandas as pd

# ISO 3166 alpha-3 -> NUTS country code: the ISO alpha-2 code, except Greece (EL).
NUTS_COUNTRIES: dict[str, str] = {
    "AUT": "AT", "BEL": "BE", "BGR": "BG", "HRV": "HR", "CYP": "CY", "CZE": "CZ", "DNK": "DK", "EST": "EE",
    "FIN": "FI", "FRA": "FR", "DEU": "DE", "GRC": "EL", "HUN": "HU", "IRL": "IE", "ITA": "IT", "LVA": "LV",
    "LTU": "LT", "LUX": "LU", "MLT": "MT", "NLD": "NL", "POL": "PL", "PRT": "PT", "ROU": "RO", "SVK": "SK",
    "SVN": "SI", "ESP": "ES", "SWE": "SE",
    "ISL": "IS", "LIE": "LI", "NOR": "NO", "CHE": "CH",  # EFTA
}  # fmt: skip

# NUTS country code -> its only NUTS-1 region, for the countries that are one region.
SINGLE_REGION: dict[str, str] = {
    "CY": "CY0", "CZ": "CZ0", "DK": "DK0", "EE": "EE0", "HR": "HR0", "IE": "IE0", "LT": "LT0", "LU": "LU0",
    "LV": "LV0", "MT": "MT0", "SI": "SI0", "SK": "SK0",
    "IS": "IS0", "LI": "LI0", "NO": "NO0", "CH": "CH0",  # EFTA
}  # fmt: skip

NUTS1_PATTERN = r"^[A-Z]{2}[A-Z0-9]$"


def nuts_country(country_code: str) -> str:
    """The NUTS country code of an ISO 3166 alpha-2 code (GR -> EL; otherwise the same)."""
    return "EL" if country_code == "GR" else country_code


def frame() -> pd.DataFrame:
    """`rules_nuts_countries`: country (alpha-3), nuts_country, single_region (NULL for several regions)."""
    rows = [(alpha3, code, SINGLE_REGION.get(code)) for alpha3, code in sorted(NUTS_COUNTRIES.items())]
    return pd.DataFrame(rows, columns=["country", "nuts_country", "single_region"])
