"""OCPI tariff -> DATEX II ad hoc energy rate (`evpipeline.datex2.rates`), rule by rule of its docstring.
Pure logic: tariffs as mart rows, expected rates written out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from evpipeline.datex2.rates import InexpressibleTariff, Period, Price, Rate, convert, is_ad_hoc, rate_id

UPDATED = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def tariff(*elements: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A mart.tariffs row (JSON columns as text, as the publisher reads them)."""
    row: dict[str, Any] = {
        "country_code": "NL",
        "party_id": "ALF",
        "tariff_id": "T1",
        "currency": "EUR",
        "elements": json.dumps(list(elements)),
        "min_price": None,
        "max_price": None,
        "tariff_alt_text": None,
        "start_date_time": None,
        "last_updated": UPDATED,
    }
    row.update(overrides)
    return row


def element(*components: tuple[str, float, float | None], **restrictions: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "price_components": [
            {"type": t, "price": p, "step_size": 1, **({"vat": v} if v is not None else {})}
            for t, p, v in components
        ]
    }
    if restrictions:
        found["restrictions"] = restrictions
    return found


def rate(*prices: Price, **fields: Any) -> Rate:
    return Rate(
        **{
            "rate_id": "NL:ALF:rate:T1",
            "currency": "EUR",
            "last_updated": "2026-11-01T08:00:00Z",
            "prices": prices,
            **fields,
        }
    )


# -- which tariffs are ad hoc prices ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("tariff_type", "ad_hoc"),
    [
        (None, True),
        ("AD_HOC_PAYMENT", True),
        ("REGULAR", False),
        ("PROFILE_CHEAP", False),
        ("PROFILE_FAST", False),
        ("PROFILE_GREEN", False),
    ],
)
def test_ad_hoc_tariffs_are_the_untyped_and_ad_hoc_payment_ones(
    tariff_type: str | None, ad_hoc: bool
) -> None:
    assert is_ad_hoc(tariff_type) is ad_hoc


def test_the_rate_id_is_stable_and_names_the_tariff() -> None:
    assert rate_id("NL", "ALF", "T-STD") == "NL:ALF:rate:T-STD"


# -- units -------------------------------------------------------------------------------------------


def test_energy_per_kwh_time_per_minute_flat_per_session() -> None:
    got = convert(
        tariff(element(("ENERGY", 0.35, 21.0), ("TIME", 3.0, 21.0), ("FLAT", 0.5, 21.0))), lang="nl"
    )
    assert got == rate(
        Price("pricePerKWh", 0.35, tax_included=False, tax_rate=21.0),
        Price("pricePerMinute", 0.05, tax_included=False, tax_rate=21.0),  # 3.00 per hour in OCPI
        Price("basePrice", 0.5, tax_included=False, tax_rate=21.0),
    )


def test_a_time_price_per_hour_becomes_a_price_per_minute_rounded_to_six_decimals() -> None:
    assert convert(tariff(element(("TIME", 1.0, 9.0))), lang="nl").prices == (
        Price("pricePerMinute", 0.016667, tax_included=False, tax_rate=9.0),
    )


def test_without_vat_the_price_is_published_tax_included() -> None:
    """OCPI prices are excl. VAT: taxIncluded false with the VAT as taxRate; no VAT: what is paid."""
    assert convert(tariff(element(("ENERGY", 0.3, None))), lang="nl").prices == (
        Price("pricePerKWh", 0.3, tax_included=True),
    )


def test_a_parking_fee_has_no_price_type_it_is_flagged_and_reported() -> None:
    got = convert(tariff(element(("ENERGY", 0.3, 21.0), ("PARKING_TIME", 6.0, 21.0))), lang="nl")
    assert got == rate(
        Price("pricePerKWh", 0.3, tax_included=False, tax_rate=21.0),
        with_parking_fee=True,
        losses=("PARKING_TIME price (no DATEX II price type; combinationWithParkingFee set)",),
    )


def test_a_tariff_with_only_a_parking_fee_has_no_datex_ii_form() -> None:
    with pytest.raises(InexpressibleTariff, match=r"^no ENERGY, TIME or FLAT price component$"):
        convert(tariff(element(("PARKING_TIME", 6.0, 21.0))), lang="nl")
    with pytest.raises(InexpressibleTariff, match=r"^no ENERGY, TIME or FLAT price component$"):
        convert(tariff(), lang="nl")


# -- OCPI's first matching element as DATEX II's parallel prices ---------------------------------------


def test_a_later_element_carries_the_earlier_ones_times_and_days_as_exceptions() -> None:
    got = convert(
        tariff(
            element(
                ("ENERGY", 0.25, 21.0),
                start_time="22:00",
                end_time="06:00",
                day_of_week=["SATURDAY", "SUNDAY"],
            ),
            element(("ENERGY", 0.40, 21.0)),
        ),
        lang="nl",
    )
    night = Period("22:00:00Z", "06:00:00Z", ("saturday", "sunday"))
    assert got == rate(
        Price(
            "pricePerKWh",
            0.25,
            tax_included=False,
            tax_rate=21.0,
            overall_start="2026-11-01T08:00:00Z",
            valid=(night,),
        ),
        Price(
            "pricePerKWh",
            0.4,
            tax_included=False,
            tax_rate=21.0,
            overall_start="2026-11-01T08:00:00Z",
            exceptions=(night,),
        ),
    )


def test_exceptions_are_per_dimension() -> None:
    """A TIME element after an ENERGY element with a restriction is not an exception to it."""
    got = convert(
        tariff(element(("ENERGY", 0.25, 21.0), day_of_week=["MONDAY"]), element(("TIME", 6.0, 21.0))),
        lang="nl",
    )
    assert got.prices == (
        Price(
            "pricePerKWh",
            0.25,
            tax_included=False,
            tax_rate=21.0,
            overall_start="2026-11-01T08:00:00Z",
            valid=(Period(days=("monday",)),),
        ),
        Price("pricePerMinute", 0.1, tax_included=False, tax_rate=21.0),
    )


def test_an_element_after_an_unrestricted_one_never_applies_and_is_left_out() -> None:
    got = convert(
        tariff(element(("ENERGY", 0.35, 21.0)), element(("ENERGY", 0.99, 21.0), start_time="08:00")),
        lang="nl",
    )
    assert got.prices == (Price("pricePerKWh", 0.35, tax_included=False, tax_rate=21.0),)


@pytest.mark.parametrize(
    "restriction", [{"min_kwh": 10.0}, {"max_duration": 3600}, {"start_date": "2026-12-01"}]
)
def test_an_element_after_an_energy_duration_or_date_restricted_one_is_inexpressible(
    restriction: dict[str, Any],
) -> None:
    with pytest.raises(
        InexpressibleTariff,
        match=r"^element 2 \(ENERGY\) follows an element restricted by energy, duration or date",
    ):
        convert(
            tariff(element(("ENERGY", 0.3, 21.0), **restriction), element(("ENERGY", 0.4, 21.0))), lang="nl"
        )


@pytest.mark.parametrize(
    ("restrictions", "named"),
    [
        ({"max_power": 11.0}, "max_power"),
        ({"min_current": 6.0}, "min_current"),
        ({"max_current": 16.0}, "max_current"),
        ({"min_power": 3.0}, "min_power"),
        ({"reservation": "RESERVATION"}, "reservation"),
        ({"min_current": 6.0, "max_power": 11.0}, "min_current, max_power"),
    ],
)
def test_restrictions_without_a_datex_ii_form_make_the_tariff_inexpressible(
    restrictions: dict[str, Any], named: str
) -> None:
    with pytest.raises(InexpressibleTariff) as caught:
        convert(
            tariff(element(("ENERGY", 0.3, 21.0)), element(("ENERGY", 0.3, 21.0), **restrictions)), lang="nl"
        )
    assert str(caught.value) == f"element 2 is restricted by {named}, which DATEX II prices cannot express"


# -- restrictions DATEX II has a form for -------------------------------------------------------------


def test_energy_and_duration_bounds_are_applicabilities() -> None:
    got = convert(
        tariff(
            element(("ENERGY", 0.3, 21.0), min_kwh=5.0, max_kwh=20.0),
            element(("TIME", 2.4, 21.0), min_duration=3600, max_duration=7200),
        ),
        lang="nl",
    )
    assert got.prices == (
        Price("pricePerKWh", 0.3, tax_included=False, tax_rate=21.0, from_kwh=5.0, to_kwh=20.0),
        Price("pricePerMinute", 0.04, tax_included=False, tax_rate=21.0, from_minute=60, to_minute=120),
    )


def test_a_duration_that_is_not_whole_minutes_makes_the_tariff_inexpressible() -> None:
    """Rounding 90 s to 1 or 2 minutes would make the price apply earlier or later than the tariff says."""
    with pytest.raises(InexpressibleTariff) as caught:
        convert(tariff(element(("TIME", 2.4, 21.0), min_duration=90)), lang="nl")
    assert str(caught.value) == "element 1 is restricted to 90 s of charging, not a whole number of minutes"


def test_a_tariff_with_start_and_end_gives_its_rate_an_overall_period() -> None:
    got = convert(
        tariff(
            element(("ENERGY", 0.3, 21.0)),
            start_date_time="2026-12-01T00:00:00Z",
            end_date_time="2027-01-01T00:00:00Z",
        ),
        lang="nl",
    )
    assert (got.valid_from, got.valid_until) == ("2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z")
    open_ended = convert(tariff(element(("ENERGY", 0.3, 21.0))), lang="nl")
    assert (open_ended.valid_from, open_ended.valid_until) == (None, None)


def test_times_of_day_are_local_with_the_technical_z_open_ends_filled() -> None:
    got = convert(
        tariff(
            element(("ENERGY", 0.3, 21.0), start_time="07:30"),
            element(("ENERGY", 0.2, 21.0), end_time="07:30"),
        ),
        lang="nl",
    )
    assert [(p.valid, p.exceptions) for p in got.prices] == [
        ((Period("07:30:00Z", "23:59:59Z"),), ()),
        ((Period("00:00:00Z", "07:30:00Z"),), (Period("07:30:00Z", "23:59:59Z"),)),
    ]


def test_dates_bound_the_overall_period_and_a_dated_price_starts_with_the_tariff() -> None:
    got = convert(
        tariff(
            element(("ENERGY", 0.3, 21.0), start_date="2026-12-01", end_date="2026-12-31"),
            start_date_time=datetime(2026, 11, 15, 0, 0, tzinfo=UTC),
        ),
        lang="nl",
    )
    assert got.prices == (
        Price(
            "pricePerKWh",
            0.3,
            tax_included=False,
            tax_rate=21.0,
            overall_start="2026-12-01T00:00:00Z",
            overall_end="2026-12-31T23:59:59Z",
        ),
    )
    weekdays = convert(
        tariff(
            element(("ENERGY", 0.3, 21.0), day_of_week=["FRIDAY"]),
            start_date_time=datetime(2026, 11, 15, 0, 0, tzinfo=UTC),
        ),
        lang="nl",
    )
    assert weekdays.prices[0].overall_start == "2026-11-15T00:00:00Z"


# -- the rate around the prices -----------------------------------------------------------------------


def test_min_and_max_price_are_the_delivery_fees_excl_vat_and_the_name_is_in_the_documents_language() -> None:
    got = convert(
        tariff(
            element(("ENERGY", 0.5, 21.0)),
            min_price=json.dumps({"excl_vat": 1.0, "incl_vat": 1.21}),
            max_price={"excl_vat": 25.0, "incl_vat": 30.25},
            currency="NOK",
            tariff_alt_text=json.dumps(
                [{"language": "en", "text": "Standard"}, {"language": "nl", "text": "Standaard"}]
            ),
            last_updated="2026-11-01T09:15:00+00:00",
        ),
        lang="nl",
    )
    assert got == Rate(
        "NL:ALF:rate:T1",
        "NOK",
        "2026-11-01T09:15:00Z",
        (Price("pricePerKWh", 0.5, tax_included=False, tax_rate=21.0),),
        name="Standaard",
        min_fee=1.0,
        max_fee=25.0,
    )
    other = convert(
        tariff(element(("ENERGY", 0.5, 21.0)), tariff_alt_text=[{"language": "en", "text": "Standard"}]),
        lang="de",
    )
    assert other.name == "Standard"  # no text in the language: the first one
