"""A large, valid canonical model generated in SQL (for the export and pull-server benchmarks)."""

from __future__ import annotations

import duckdb

import evpipeline.model  # registers the mart migrations
import evpipeline.model.reference  # noqa: F401  (registers reference.operators, which mart.operators reads)

_STD = (
    "false, NULL, TIMESTAMPTZ '2026-11-01 08:00:00+00' + to_minutes(CAST(i % 600 AS BIGINT)), "
    "TIMESTAMPTZ '2026-11-01 08:00:00+00', 0, now(), 'bench', NULL, 'insert', NULL"
)
# Column lists: the table's own columns, then the standard ones (later migrations append columns).
_OWN = (
    "is_deleted, deleted_at, last_updated, _observed_at, _row_hash, _ingested_at, _run_id, _lineage, "
    "_change, _prev_status"
)


def populate_mart(
    con: duckdb.DuckDBPyConnection, locations: int, evses_per_location: int = 3, connectors_per_evse: int = 2
) -> None:
    """Fill the mart with `locations` public Dutch locations, all exportable (AFIR-complete): ad hoc
    tariffs, the CPO's operator entry, a NUTS-1 region, stations of two EVSEs."""
    con.execute(f"""
        DELETE FROM mart.connectors; DELETE FROM mart.evses; DELETE FROM mart.locations;
        DELETE FROM mart.tariffs;
        DELETE FROM reference.operators;
        INSERT INTO reference.operators (country_code, party_id, operator_id, name, legal_name, website,
                                         helpdesk_phone, helpdesk_email, helpdesk_name, staffed,
                                         payment_means, nuts_code, position, reference_file,
                                         {_OWN})
        VALUES ('NL', 'BEN', 'NL*BEN', 'Bench CPO', 'Bench CPO B.V.', 'https://bench.example',
                '+31 30 000 0000', NULL, NULL,
                false, '["paymentCreditCard", "nfc"]', 'NL3', 0, 'bench', {_STD.replace("i % 600", "0")});
        INSERT INTO mart.tariffs (country_code, party_id, tariff_id, currency, type, tariff_alt_text,
            tariff_alt_url, min_price, max_price, elements, start_date_time, end_date_time, energy_mix,
            source, source_id, source_last_updated, {_OWN})
        SELECT 'NL', 'BEN', 'T-' || i, 'EUR', 'AD_HOC_PAYMENT', '[{{"language":"nl","text":"0,35 EUR/kWh"}}]',
               NULL, NULL, NULL,
               '[{{"price_components":[{{"type":"ENERGY","price":0.35,"vat":21.0,"step_size":1}}]}}]',
               NULL, NULL, NULL,
               'bench', 'T-' || i, TIMESTAMPTZ '2026-11-01 08:00:00+00', {_STD}
        FROM range(10) r(i);
        INSERT INTO mart.locations (country_code, party_id, location_id, publish, name, address, city,
            postal_code, state, country, latitude, longitude, parking_type, time_zone, opening_times,
            charging_when_closed, energy_mix, facilities, directions, operator, suboperator, owner, images,
            nuts_code, source, source_id, source_last_updated, {_OWN})
        SELECT 'NL', 'BEN', 'LOC-' || lpad(i::VARCHAR, 8, '0'), true, 'Laadplein ' || i,
               'Kerkstraat ' || (i % 300 + 1), 'Utrecht', '3511 AB', NULL, 'NLD',
               52.0 + (i % 1000) / 10000.0, 5.0 + (i // 1000) / 10000.0, 'ON_STREET',
               'Europe/Amsterdam', '{{"twentyfourseven": true}}', true,
               '{{"is_green_energy": true, "energy_sources": [{{"source": "WIND", "percentage": 100}}]}}',
               '["SUPERMARKET"]', NULL, '{{"name": "Bench CPO"}}', NULL, NULL, NULL, 'NL3',
               'bench', 'LOC-' || i, TIMESTAMPTZ '2026-11-01 08:00:00+00', {_STD}
        FROM range({locations}) r(i);
        INSERT INTO mart.evses (country_code, party_id, location_id, evse_uid, evse_id, status, capabilities,
            floor_level, latitude, longitude, physical_reference, parking_restrictions, directions, images,
            station_id, source, source_id, source_last_updated, {_OWN})
        SELECT 'NL', 'BEN', 'LOC-' || lpad((i // {evses_per_location})::VARCHAR, 8, '0'), 'EVSE-' || i,
               'NL*BEN*E' || i, CASE WHEN i % 5 = 0 THEN 'CHARGING' ELSE 'AVAILABLE' END,
               '["RFID_READER"]', '0', 52.0, 5.0, NULL, '["EV_ONLY"]', NULL, NULL, 'CS-' || (i // 2),
               'bench', 'EVSE-' || i, TIMESTAMPTZ '2026-11-01 08:00:00+00', {_STD}
        FROM range({locations * evses_per_location}) r(i);
        INSERT INTO mart.connectors (country_code, party_id, location_id, evse_uid, connector_id, standard,
            format, power_type, max_voltage, max_amperage, max_electric_power, tariff_ids,
            terms_and_conditions, source, source_id, source_last_updated, {_OWN})
        SELECT 'NL', 'BEN',
               'LOC-' || lpad((i // {evses_per_location * connectors_per_evse})::VARCHAR, 8, '0'),
               'EVSE-' || (i // {connectors_per_evse}), ((i % {connectors_per_evse}) + 1)::VARCHAR,
               'IEC_62196_T2', 'SOCKET', 'AC_3_PHASE', 230, 32, 22000, '["T-' || (i % 10) || '"]', NULL,
               'bench', 'C-' || i, TIMESTAMPTZ '2026-11-01 08:00:00+00', {_STD}
        FROM range({locations * evses_per_location * connectors_per_evse}) r(i);
        CHECKPOINT;
    """)
