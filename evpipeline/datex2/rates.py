"""The ad hoc price of a charging point as a DATEX II energy rate, from its OCPI 2.2.1 tariff.

AFIR makes the ad hoc price mandatory (static data, and dynamic data when it changes). A connector's
tariffs of type `AD_HOC_PAYMENT`, or without a type (OCPI: a tariff without type applies to every
session, ad hoc ones included), are its ad hoc prices; `REGULAR` and `PROFILE_*` tariffs are
contract prices, not published here.

OCPI and DATEX II read a tariff differently, so the conversion keeps OCPI's meaning or refuses:

- OCPI: per dimension (ENERGY, TIME, FLAT, PARKING_TIME) the *first* element whose restrictions
  match is used. DATEX II: all `energyPrice`s of a rate apply in parallel, each within its own
  applicability. An element is therefore published with the restrictions of the earlier elements
  of the same dimension as exception periods; that is only expressible when those earlier
  restrictions are times of day and weekdays. Anything else (or a restriction DATEX II has no form
  for: current, power, reservation) makes the tariff inexpressible: the point is rejected with the
  reason rather than published with a price that means something else.
- Units: ENERGY per kWh (`pricePerKWh`); TIME is per hour in OCPI and per minute in DATEX II
  (`pricePerMinute`, price / 60); FLAT per session (`basePrice`). PARKING_TIME (a fee for time not
  charging) has no DATEX II price type: `combinationWithParkingFee` says a parking fee applies, and
  the component is reported as a loss.
- Prices are excl. VAT in OCPI: published as such with `taxIncluded` false and `taxRate` the VAT
  percentage; a component without VAT (none applies) is published with `taxIncluded` true.
- Times of day are local time at the charging point, written with the profile's technical `Z`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

AD_HOC_TYPES = (None, "AD_HOC_PAYMENT")
# OCPI TariffDimensionType -> (DATEX II PriceTypeEnum, factor from OCPI's unit to DATEX II's).
PRICE_TYPES: dict[str, tuple[str, float]] = {
    "ENERGY": ("pricePerKWh", 1.0),
    "TIME": ("pricePerMinute", 1 / 60),
    "FLAT": ("basePrice", 1.0),
}
PARKING = "PARKING_TIME"
WEEKDAYS = {
    "MONDAY": "monday",
    "TUESDAY": "tuesday",
    "WEDNESDAY": "wednesday",
    "THURSDAY": "thursday",
    "FRIDAY": "friday",
    "SATURDAY": "saturday",
    "SUNDAY": "sunday",
}
# Restrictions a later element can be told apart from (as exception periods of its price).
_PERIOD_KEYS = frozenset({"start_time", "end_time", "day_of_week"})
_UNEXPRESSIBLE = ("min_current", "max_current", "min_power", "max_power", "reservation")


class InexpressibleTariff(ValueError):
    """The tariff's meaning has no DATEX II form (the reason names what)."""


@dataclass(frozen=True)
class Period:
    """A recurring validity: times of day (local, HH:MM:SS) and weekdays (DATEX II DayEnum)."""

    start: str | None = None
    end: str | None = None
    days: tuple[str, ...] = ()


@dataclass(frozen=True)
class Price:
    """One DATEX II energyPrice."""

    price_type: str
    value: float
    tax_included: bool
    tax_rate: float | None = None
    overall_start: str | None = None  # set when the price has a validity (periods, dates)
    overall_end: str | None = None
    valid: tuple[Period, ...] = ()
    exceptions: tuple[Period, ...] = ()
    from_minute: int | None = None
    to_minute: int | None = None
    from_kwh: float | None = None
    to_kwh: float | None = None


@dataclass(frozen=True)
class Rate:
    """The ad hoc energy rate of one tariff."""

    rate_id: str
    currency: str
    last_updated: str  # DATEX II DateTime (UTC)
    prices: tuple[Price, ...]
    name: str | None = None
    min_fee: float | None = None
    max_fee: float | None = None
    with_parking_fee: bool = False
    valid_from: str | None = None  # the tariff's start_date_time/end_date_time: the rate's overallPeriod
    valid_until: str | None = None
    losses: tuple[str, ...] = field(default=())


def rate_id(country_code: str, party_id: str, tariff_id: str) -> str:
    """The stable id of a tariff's ad hoc energy rate."""
    return f"{country_code}:{party_id}:rate:{tariff_id}"


def is_ad_hoc(tariff_type: str | None) -> bool:
    return tariff_type in AD_HOC_TYPES


def _time(hhmm: str | None, default: str) -> str:
    return f"{hhmm}:00Z" if hhmm else default


def _period(restrictions: Mapping[str, Any]) -> Period | None:
    start, end, days = (
        restrictions.get("start_time"),
        restrictions.get("end_time"),
        restrictions.get("day_of_week"),
    )
    if not start and not end and not days:
        return None
    times = (start or end) is not None
    return Period(
        start=_time(start, "00:00:00Z") if times else None,
        end=_time(end, "23:59:59Z") if times else None,
        days=tuple(WEEKDAYS[d] for d in days or ()),
    )


def _date(day: str | None, *, end: bool) -> str | None:
    return f"{day}T{'23:59:59' if end else '00:00:00'}Z" if day else None


def convert(tariff: Mapping[str, Any], *, lang: str) -> Rate:
    """The DATEX II ad hoc energy rate of an OCPI tariff row (mart.tariffs columns; JSON columns as
    text or parsed); raises InexpressibleTariff with the reason when its meaning has no DATEX II form."""
    elements = _parsed(tariff["elements"]) or []
    losses: list[str] = []
    prices: list[Price] = []
    earlier: dict[str, list[dict[str, Any]]] = {}  # dimension -> restrictions of the elements before
    start = tariff.get("start_date_time")
    fallback_start = start or tariff["last_updated"]
    for number, element in enumerate(elements, start=1):
        restrictions = {k: v for k, v in (element.get("restrictions") or {}).items() if v is not None}
        if bad := [k for k in _UNEXPRESSIBLE if k in restrictions]:
            raise InexpressibleTariff(
                f"element {number} is restricted by {', '.join(bad)}, which DATEX II prices cannot express"
            )
        own = _period(restrictions)
        for component in element["price_components"]:
            dimension = component["type"]
            before = earlier.setdefault(dimension, [])
            if dimension == PARKING:
                losses.append("PARKING_TIME price (no DATEX II price type; combinationWithParkingFee set)")
                before.append(restrictions)
                continue
            if any(not r for r in before):  # an unrestricted earlier element of this dimension always wins
                continue
            if any(set(r) - _PERIOD_KEYS for r in before):
                raise InexpressibleTariff(
                    f"element {number} ({dimension}) follows an element restricted by energy, "
                    "duration or date: DATEX II cannot express 'only when the earlier one does not apply'"
                )
            exceptions = tuple(p for p in (_period(r) for r in before) if p is not None)
            before.append(restrictions)
            price_type, factor = PRICE_TYPES[dimension]
            vat = component.get("vat")
            dated = (
                own is not None or exceptions or "start_date" in restrictions or "end_date" in restrictions
            )
            prices.append(
                Price(
                    price_type=price_type,
                    value=round(float(component["price"]) * factor, 6),
                    tax_included=vat is None,
                    tax_rate=float(vat) if vat is not None else None,
                    overall_start=(_date(restrictions.get("start_date"), end=False) or _utc(fallback_start))
                    if dated
                    else None,
                    overall_end=_date(restrictions.get("end_date"), end=True) if dated else None,
                    valid=(own,) if own else (),
                    exceptions=exceptions,
                    from_minute=_minutes(restrictions.get("min_duration"), number),
                    to_minute=_minutes(restrictions.get("max_duration"), number),
                    from_kwh=restrictions.get("min_kwh"),
                    to_kwh=restrictions.get("max_kwh"),
                )
            )
    if not prices:
        raise InexpressibleTariff("no ENERGY, TIME or FLAT price component")
    min_price, max_price = _parsed(tariff.get("min_price")), _parsed(tariff.get("max_price"))
    return Rate(
        rate_id=rate_id(tariff["country_code"], tariff["party_id"], tariff["tariff_id"]),
        currency=tariff["currency"],
        last_updated=_utc(tariff["last_updated"]),
        prices=tuple(prices),
        name=_text_in(_parsed(tariff.get("tariff_alt_text")), lang),
        min_fee=min_price["excl_vat"] if min_price else None,
        max_fee=max_price["excl_vat"] if max_price else None,
        with_parking_fee=bool(losses),
        losses=tuple(dict.fromkeys(losses)),
        # A tariff that starts or ends says so: the rate's overall period (it needs a start).
        valid_from=_utc(start or tariff["last_updated"]) if start or tariff.get("end_date_time") else None,
        valid_until=_utc(tariff["end_date_time"]) if tariff.get("end_date_time") else None,
    )


def _minutes(seconds: int | None, number: int) -> int | None:
    """A duration restriction in whole minutes (DATEX II's unit); any other is not expressible: rounding
    would make the price apply earlier or later than the tariff says."""
    if seconds is None:
        return None
    if int(seconds) % 60:
        raise InexpressibleTariff(
            f"element {number} is restricted to {seconds} s of charging, not a whole number of minutes"
        )
    return int(seconds) // 60


def _parsed(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _text_in(texts: list[dict[str, str]] | None, lang: str) -> str | None:
    """The tariff's alternative text in `lang`, else its first one."""
    if not texts:
        return None
    return next((t["text"] for t in texts if t.get("language") == lang), texts[0]["text"])


def _utc(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value).replace("+00:00", "Z")
