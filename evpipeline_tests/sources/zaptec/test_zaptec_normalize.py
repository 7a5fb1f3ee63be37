"""Pure parsing rules of the Zaptec normalizer: strings, zone-less times, public/private, message bodies."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from evpipeline.sources.zaptec.client import ConnectionDetails, decode_body
from evpipeline.sources.zaptec.normalize import (
    EMPTY_CHARGER_ID,
    classify,
    decode,
    installations,
    observations,
)


@pytest.mark.parametrize(
    ("state_id", "text", "expected"),
    [
        (710, "3", (3.0, None, "Connected_Charging", None)),
        (710, "5", (5.0, None, "Connected_Finished", None)),
        (513, "7360.000", (7360.0, None, None, None)),
        (553, "4.812", (4.812, None, None, None)),
        (-2, "1", (1.0, True, None, None)),
        (718, "0", (0.0, False, None, None)),
        (150, "Wifi", (None, None, None, None)),  # text observations stay text
        (554, 'OCMF|{"FV":"1.0"}', (None, None, None, None)),
        (12345, "anything", (None, None, None, None)),  # unknown ids are data, not errors
    ],
)
def test_values_are_decoded_by_observation_type(
    state_id: int, text: str, expected: tuple[object, ...]
) -> None:
    assert decode(state_id, text) == expected


@pytest.mark.parametrize(
    ("state_id", "text"), [(710, "4"), (710, "charging"), (513, "n/a"), (-2, "yes"), (553, "inf")]
)
def test_values_that_do_not_parse_are_problems(state_id: int, text: str) -> None:
    *_, problem = decode(state_id, text)
    assert problem is not None and repr(text) in problem


def test_observations_parse_zoneless_timestamps_as_utc_and_skip_what_integrations_skip() -> None:
    rows = observations(
        [
            {"ChargerId": "c1", "StateId": 710, "Timestamp": "2023-06-09T13:02:11.4", "ValueAsString": "3"},
            {
                "ChargerId": "c1",
                "StateId": -1,
                "Timestamp": "2023-06-09T13:40:01.12",
            },  # Pulse: no value at all
            {
                "ChargerId": "c1",
                "StateId": "513",
                "Timestamp": "2023-06-09T13:39:55",
                "ValueAsString": "7360.000",
            },
            {
                "ChargerId": "c1",
                "StateId": 980,
                "Timestamp": "2023-06-09T13:39:55",
                "ValueAsString": "x" * 5000,
            },
            {
                "ChargerId": EMPTY_CHARGER_ID,
                "StateId": 800,
                "Timestamp": "2023-06-09T13:39:55",
                "ValueAsString": "i",
            },
        ]
    )
    frame = rows.frame
    assert list(frame["state_id"]) == [710, -1, 513] and "_invalid" not in frame.columns
    assert list(frame["last_updated"]) == [
        pd.Timestamp(datetime(2023, 6, 9, 13, 2, 11, 400000, tzinfo=UTC)),
        pd.Timestamp(datetime(2023, 6, 9, 13, 40, 1, 120000, tzinfo=UTC)),
        pd.Timestamp(datetime(2023, 6, 9, 13, 39, 55, tzinfo=UTC)),
    ]
    assert frame.loc[2, "value_number"] == 7360.0 and frame.loc[2, "unit"] == "W"
    assert frame["value_as_string"].iloc[1] is None and len(rows.raw) == 3


def test_public_only_when_positively_a_business_site() -> None:
    assert classify({"InstallationType": 0, "IsRequiredAuthentication": True})[0] is True
    assert classify({"InstallationType": 1, "IsRequiredAuthentication": True})[0] is False  # Home/Smart
    assert (
        classify({"InstallationType": 0, "IsRequiredAuthentication": False})[0] is False
    )  # anyone may charge: a home
    assert classify({})[0] is False  # unknown is private
    frame = installations(
        [{"Id": "i1", "TimeZoneIanaName": "Europe/Oslo"}, {"Id": "i2", "TimeZoneIanaName": "Asia/Tokyo"}],
        datetime(2026, 1, 1, tzinfo=UTC),
    ).frame
    assert list(frame["country"]) == ["NOR", None] and list(frame["is_public"]) == [False, False]


def test_message_bodies_plain_or_wrapped() -> None:
    text = b'{"ChargerId":"c1","StateId":710,"Timestamp":"2024-05-01T10:00:00.123","ValueAsString":"3"}'
    assert decode_body(text)["StateId"] == 710
    assert decode_body(b"@\x06string\x98" + bytes([len(text)]) + text + b"\x01")["ValueAsString"] == "3"
    assert decode_body(b"\x98{" + text + b"\x01")["ChargerId"] == "c1"  # a length byte that reads as "{"
    assert decode_body(b"\x00\x01 no json here") is None


def test_connection_descriptor_maps_amqp_port_to_rest_over_https() -> None:
    real = ConnectionDetails.from_descriptor(
        {
            "Type": 0,
            "Host": "zapcloud-messaging.servicebus.windows.net",
            "Port": 5671,
            "UseSSL": True,
            "Username": "listen",
            "Password": "k",
            "Topic": "t",
            "Subscription": "s",
        }
    )
    assert real.base_url == "https://zapcloud-messaging.servicebus.windows.net"
    assert "k" not in repr(real)
    with pytest.raises(ValueError, match="Topic"):
        ConnectionDetails.from_descriptor(
            {"Host": "h", "Port": 1, "UseSSL": False, "Username": "u", "Password": "p", "Subscription": "s"}
        )
