"""What the AFIR DATEX II publications say: every object declared once, in the profile's terms.

The static publication (`EnergyInfrastructureTablePublication`) is a table of sites (one per OCPI
location) holding stations (the physical chargers, `mart.evses.station_id`) holding charging points
(one per EVSE) holding connectors. The status publication (`EnergyInfrastructureStatusPublication`)
references the same sites, stations and points by id and version and carries each point's status
and, with `energyRateUpdate`, its current ad hoc price.

Each declaration reads the columns the publication's render queries put in scope
(`evpipeline.datex2.publication`); `encoding` turns it into SQL for the profile's JSON and for DATEX
II 3.7 XML. Lambda variables start with `_` so they never shadow a column.
"""

from __future__ import annotations

from evpipeline.datex2 import rules
from evpipeline.datex2.encoding import (
    Attr,
    Boolean,
    Choice,
    Enum,
    Extended,
    ListOf,
    Multilingual,
    Node,
    Number,
    Obj,
    One,
    Prop,
    Raw,
    Rendered,
    Text,
    When,
    ids,
    literal,
)

# The extended values the profile allows for ExternalIdentifier.typeOfIdentifier.
TYPES_OF_IDENTIFIER = ("evseId", "stationIdBNetzA", "operatorIdBNetzA", "operatorId", "providerId")


class Declarations:
    """The declarations of one document language (`lang`: an ISO 639-1 code)."""

    def __init__(self, lang: str) -> None:
        self.lang_code = lang
        self.lang = literal(lang)

    def ml(self, expr: str) -> Multilingual:
        return Multilingual(expr, self.lang)

    # -- shared pieces -------------------------------------------------------------------------

    @staticmethod
    def identifier(expr: str, kind: str) -> Node:
        """A one-element `externalIdentifier` list: `expr` typed as `kind`. The profile's own types
        (`TYPES_OF_IDENTIFIER`, extended values of an enumeration that has none) go in
        `typeOfIdentifier`, any other in `otherTypeOfIdentifier`."""
        kind_prop = (
            Prop("typeOfIdentifier", Extended(literal(kind)))
            if kind in TYPES_OF_IDENTIFIER
            else Prop("otherTypeOfIdentifier", Text(literal(kind)))
        )
        return One(When(f"{expr} IS NOT NULL", Obj([Prop("identifier", Text(expr)), kind_prop])))

    @staticmethod
    def reference(target_class: str, id_expr: str, version_expr: str | None = None) -> Obj:
        """A (versioned) reference: `targetClass`, `idG`, `versionG` (XML attributes)."""
        attrs = [Attr("targetClass", "targetClass", literal(target_class)), *ids(id_expr, version_expr)]
        return Obj(attrs, keep_empty=True)

    @staticmethod
    def period(var: str) -> Obj:
        """A com:Period from a struct `var` {start_of, end_of, tstart, tend, days}
        (NULL/empty parts absent)."""
        return Obj(
            [
                Prop("startOfPeriod", Text(f"{var}.start_of"), "com:startOfPeriod"),
                Prop("endOfPeriod", Text(f"{var}.end_of"), "com:endOfPeriod"),
                Prop(
                    "recurringTimePeriodOfDay",
                    One(
                        Obj(
                            [
                                Prop("startTimeOfPeriod", Text(f"{var}.tstart"), "com:startTimeOfPeriod"),
                                Prop("endTimeOfPeriod", Text(f"{var}.tend"), "com:endTimeOfPeriod"),
                            ]
                        )
                    ),
                    "com:recurringTimePeriodOfDay",
                ),
                Prop(
                    "recurringDayWeekMonthPeriod",
                    One(
                        When(
                            f"len({var}.days) > 0",
                            Choice(
                                "comDayWeekMonth",
                                "com:DayWeekMonth",
                                Obj(
                                    [
                                        Prop(
                                            "applicableDay",
                                            ListOf(f"{var}.days", "_d", Enum("_d")),
                                            "com:applicableDay",
                                        ),
                                    ]
                                ),
                            ),
                        )
                    ),
                    "com:recurringDayWeekMonthPeriod",
                ),
            ]
        )

    @staticmethod
    def overall_period(start: str, end: str | None, valid: str, exceptions: str) -> Obj:
        """A com:OverallPeriod; `valid`/`exceptions`: its periods, rendered beforehand (`period`)."""
        props = [Prop("overallStartTime", Text(start), "com:overallStartTime")]
        if end:
            props.append(Prop("overallEndTime", Text(end), "com:overallEndTime"))
        props += [
            Prop("validPeriod", Rendered(valid), "com:validPeriod"),
            Prop("exceptionPeriod", Rendered(exceptions), "com:exceptionPeriod"),
        ]
        return Obj(props, ext="com:_overallPeriodExtension")

    def facility_location(self) -> Node:
        """The site's facility location (a point location's `locLocationExtensionG`): time zone,
        address (street and house number lines), NUTS-1 area. Columns: address_lines, postal_code,
        city, country2, tz_offset, nuts_code. Rendered once per site (`facility`): the site and each of
        its stations carry it."""
        address = Obj(
            [
                Prop("postcode", Text("postal_code"), "locx:postcode"),
                Prop("city", self.ml("city"), "locx:city"),
                Prop("countryCode", Text("country2"), "locx:countryCode"),
                Prop(
                    "addressLine",
                    ListOf(
                        "address_lines",
                        "_al",
                        Obj(
                            [
                                Attr("order", "order", "_al.line_order", number=True),
                                Prop("type", Enum("_al.line_type"), "locx:type"),
                                Prop("text", self.ml("_al.line_text"), "locx:text"),
                            ],
                            ext="locx:_addressLineExtension",
                        ),
                    ),
                    "locx:addressLine",
                ),
            ],
            ext="locx:_addressExtension",
        )
        return FacilityLocation(
            Obj(
                [
                    Prop("timeZone", Text("tz_offset"), "locx:timeZone"),
                    Prop("address", address, "locx:address"),
                ]
            ),
            Prop(
                "nutsArea",
                One(
                    When(
                        "nuts_code IS NOT NULL",
                        Obj(
                            [
                                Prop("nutsCodeType", Enum("'nuts1Code'")),
                                Prop("nutsCode", Text("nuts_code")),
                            ]
                        ),
                    )
                ),
            ),
        )

    def location(self, lat: str, lon: str, floors: str | None = None) -> Node:
        """A point location (WGS84, full precision) with the site's facility location (column `facility`,
        rendered by `facility_location`); `floors`: the floor level(s) as a positional description."""
        description = []
        if floors is not None:
            lang = self.lang_code if self.lang_code in rules.FLOOR_LABELS else "en"
            text = f"{literal(rules.FLOOR_LABELS[lang] + ' ')} || {floors}"
            description = [
                Prop(
                    "supplementaryPositionalDescription",
                    Obj(
                        [
                            Prop("locationDescription", Multilingual(text, literal(lang))),
                        ]
                    ),
                )
            ]
        return Choice(
            "locPointLocation",
            "loc:PointLocation",
            Obj(
                [
                    Prop("locLocationExtensionG", Raw("facility"), "loc:_locationReferenceExtension"),
                    Prop(
                        "pointByCoordinates",
                        Obj(
                            [
                                Prop(
                                    "pointCoordinates",
                                    Obj(
                                        [
                                            Prop("latitude", Number(lat), "loc:latitude"),
                                            Prop("longitude", Number(lon), "loc:longitude"),
                                        ],
                                        ext="loc:_pointCoordinatesExtension",
                                    ),
                                    "loc:pointCoordinates",
                                ),
                            ],
                            ext="loc:_pointByCoordinatesExtension",
                        ),
                        "loc:pointByCoordinates",
                    ),
                    *description,
                ],
                ext="loc:_pointLocationExtension",
            ),
        )

    # -- static: organisations ------------------------------------------------------------------

    @staticmethod
    def organisation(definition: Obj) -> Node:
        """An organisation as defined once per document (at the first site that names it)."""
        return Choice("afacReferenceableOrganisation", "afir:ReferenceableOrganisation", definition)

    def organisation_reference(self, ref_id: str, ref_version: str) -> Node:
        """An organisation defined elsewhere in the document, referenced by id and version."""
        return Choice(
            "afacOrganisationByReference",
            "afir:OrganisationByReference",
            Obj(
                [
                    Prop(
                        "organisationReference",
                        self.reference("ReferenceableOrganisation", ref_id, ref_version),
                    ),
                ]
            ),
        )

    def operator(self) -> Obj:
        """The CPO (operator reference data: commercial and legal name, eMI3 operator id). Columns op_*."""
        return Obj(
            [
                *ids("op_id", "op_version"),
                Prop("name", self.ml("op_name")),
                Prop("legalName", self.ml("op_legal_name")),
                Prop("linkToGeneralInformation", Text("op_website")),
                Prop("externalIdentifier", self.identifier("op_operator_id", "operatorId")),
            ]
        )

    def helpdesk(self) -> Obj:
        """The operator's helpdesk (AFIR: telephone number, shown at the station). Columns hd_*."""
        return Obj(
            [
                *ids("hd_id", "hd_version"),
                Prop("name", self.ml("hd_name")),
                Prop(
                    "organisationUnit",
                    One(
                        Obj(
                            [
                                Prop(
                                    "contactInformation",
                                    One(
                                        Choice(
                                            "afacContactInformation",
                                            "afir:ContactInformation",
                                            Obj(
                                                [
                                                    Prop("telephoneNumber", Text("hd_phone")),
                                                    Prop("eMail", Text("hd_email")),
                                                ]
                                            ),
                                        )
                                    ),
                                ),
                            ]
                        )
                    ),
                ),
            ]
        )

    # -- static: prices -------------------------------------------------------------------------

    def energy_price(self, var: str) -> Obj:
        """An energyPrice from a price struct (`evpipeline.datex2.rates.Price`); its periods rendered
        beforehand in columns `valid` and `exceptions`."""
        return Obj(
            [
                Prop("priceType", Enum(f"{var}.price_type")),
                Prop("value", Number(f"{var}.value")),
                Prop("taxIncluded", Boolean(f"{var}.tax_included")),
                Prop("taxRate", Number(f"{var}.tax_rate")),
                Prop(
                    "overallPeriod",
                    When(
                        f"{var}.overall_start IS NOT NULL",
                        self.overall_period(
                            f"{var}.overall_start", f"{var}.overall_end", "valid", "exceptions"
                        ),
                    ),
                ),
                Prop(
                    "timeBasedApplicability",
                    Obj(
                        [
                            Prop("fromMinute", Number(f"{var}.from_minute")),
                            Prop("toMinute", Number(f"{var}.to_minute")),
                        ]
                    ),
                ),
                Prop(
                    "energyBasedApplicability",
                    Obj([Prop("fromKWh", Number(f"{var}.from_kwh")), Prop("toKWh", Number(f"{var}.to_kwh"))]),
                ),
            ]
        )

    def energy_rate(self, var: str) -> Obj:
        """The ad hoc energy rate of a tariff (a rates struct), with the operator's ad hoc payment means;
        its prices rendered beforehand in column `prices_rendered`."""
        return Obj(
            [
                *ids(f"{var}.rate_id"),
                Prop("ratePolicy", Enum("'adHoc'")),
                Prop("lastUpdated", Text(f"{var}.last_updated")),
                Prop("applicableCurrency", One(Text(f"{var}.currency"))),
                Prop("rateName", self.ml(f"{var}.name")),
                Prop("combinationWithParkingFee", Boolean(f"nullif({var}.with_parking_fee, false)")),
                Prop("maximumDeliveryFee", Number(f"{var}.max_fee")),
                Prop("minimumDeliveryFee", Number(f"{var}.min_fee")),
                Prop(
                    "payment", Obj([Prop("paymentMeans", ListOf(f"{var}.payment_means", "_pm", Enum("_pm")))])
                ),
                Prop("energyPrice", Rendered("prices_rendered")),
                Prop(
                    "overallPeriod",
                    When(
                        f"{var}.valid_from IS NOT NULL",
                        Obj(
                            [
                                Prop("overallStartTime", Text(f"{var}.valid_from")),
                                Prop("overallEndTime", Text(f"{var}.valid_until")),
                            ]
                        ),
                    ),
                ),
            ]
        )

    # -- static: site, station, charging point, connector ---------------------------------------

    @staticmethod
    def connector() -> Obj:
        """A connector (a struct `_k` of the point's `connectors`)."""
        return Obj(
            [
                Prop("connectorType", Enum("_k.connector_type"), "egi:connectorType"),
                Prop("connectorFormat", Enum("_k.connector_format"), "egi:connectorFormat"),
                Prop("maxPowerAtSocket", Number("_k.power"), "egi:maxPowerAtSocket"),
                Prop("voltage", Number("_k.voltage"), "egi:voltage"),
                Prop("maximumCurrent", Number("_k.current"), "egi:maximumCurrent"),
                Prop("externalIdentifier", Declarations.identifier("_k.connector_ref", "connectorId")),
            ],
            ext="egi:_connectorExtension",
        )

    def charging_point(self) -> Choice:
        """A charging point (one OCPI EVSE), from the point columns in scope."""
        return Choice(
            "aegiElectricChargingPoint",
            "egi:ElectricChargingPoint",
            Obj(
                [
                    *ids("point_id", "point_version"),
                    Prop("lastUpdated", Text("point_updated"), "fac:lastUpdated"),
                    Prop(
                        "operatingHours",
                        When(
                            "removed",
                            Choice(
                                "afacUnknownOperatingHours",
                                "fac:UnknownOperatingHours",
                                Obj(
                                    [
                                        Prop(
                                            "closureInformation",
                                            Obj(
                                                [
                                                    Prop(
                                                        "permananentlyClosed",
                                                        Boolean("true"),
                                                        "fac:permananentlyClosed",
                                                    )
                                                ],
                                                ext="fac:_closureInformationExtension",
                                            ),
                                            "fac:closureInformation",
                                        ),
                                    ],
                                    ext="fac:_unknownOperatingHoursExtension",
                                ),
                            ),
                        ),
                        "fac:operatingHours",
                    ),
                    Prop("externalIdentifier", self.identifier("evse_id", "evseId")),
                    Prop("deliveryUnit", Enum("'kWh'")),
                    Prop("currentType", Enum("current_type")),
                    Prop("numberOfConnectors", Number("len(connectors)")),
                    Prop("availableVoltage", ListOf("voltages", "_v", Number("_v")), "egi:availableVoltage"),
                    Prop(
                        "availableChargingPower",
                        ListOf("powers", "_w", Number("_w")),
                        "egi:availableChargingPower",
                    ),
                    Prop("chargingMode", Enum("charging_mode")),
                    Prop("connector", ListOf("connectors", "_k", self.connector()), "egi:connector"),
                    Prop(
                        "electricEnergy",
                        One(
                            Obj(
                                [
                                    Prop("energyProductName", self.ml("product_name")),
                                    Prop("isGreenEnergy", Boolean("green")),
                                    Prop("carbonDioxideImpact", Number("co2")),
                                    Prop("nuclearWasteImpact", Number("nuclear_waste")),
                                    Prop(
                                        "energyRateByReference",
                                        ListOf("rate_refs", "_rr", self.reference("EnergyRate", "_rr")),
                                    ),
                                    Prop("energyRate", Rendered("rate_defs")),
                                ]
                            )
                        ),
                    ),
                ],
                ext="egi:_electricChargingPointExtension",
            ),
        )

    def station(self) -> Obj:
        """A station (a physical charger holding charging points), from the station columns in scope;
        `points`: its charging points, rendered."""
        return Obj(
            [
                *ids("station_id", "station_version"),
                Prop("lastUpdated", Text("station_updated"), "fac:lastUpdated"),
                Prop(
                    "locationReference",
                    self.location("station_lat", "station_lon", "floor_levels"),
                    "fac:locationReference",
                ),
                Prop("externalIdentifier", self.identifier("station_ref", "stationId")),
                Prop(
                    "applicableForVehicles",
                    One(
                        Obj(
                            [
                                Prop("fuelType", ListOf("fuel_types", "_ft", Enum("_ft"))),
                                Prop("vehicleType", ListOf("vehicle_types", "_vt", Enum("_vt"))),
                            ]
                        )
                    ),
                ),
                Prop(
                    "dedicatedParkingSpaces",
                    ListOf(
                        "parking_spaces",
                        "_ps",
                        Obj(
                            [
                                *ids("_ps.id", "station_version"),
                                Prop("numberOfSpaces", Number("_ps.spaces")),
                                Prop("userSpecific", One(Enum("_ps.user"))),
                            ]
                        ),
                    ),
                ),
                Prop("totalMaximumPower", Number("total_power")),
                Prop(
                    "authenticationAndIdentificationMethods",
                    ListOf("auth_methods", "_am", Enum("_am")),
                    "egi:authenticationAndIdentificationMethods",
                ),
                Prop("numberOfRefillPoints", Number("n_points")),
                Prop(
                    "serviceType",
                    One(
                        Obj(
                            [
                                Prop(
                                    "serviceType",
                                    Enum("CASE WHEN staffed THEN 'physicalAttendance' ELSE 'unattended' END"),
                                ),
                            ]
                        )
                    ),
                ),
                Prop("refillPoint", Rendered("points"), "egi:refillPoint"),
            ],
            ext="egi:_energyInfrastructureStationExtension",
        )

    def opening_hours(self) -> Node:
        """The site's opening hours (columns hours_*): open all hours, or a specification."""
        specification = Obj(
            [
                *ids("hours_id", "hours_version"),
                Prop("lastUpdated", Text("hours_updated"), "fac:lastUpdated"),
                Prop(
                    "overallPeriod",
                    self.overall_period(
                        "hours_updated", None, "hours_valid_rendered", "hours_exceptions_rendered"
                    ),
                    "fac:overallPeriod",
                ),
            ],
            ext="fac:_operatingHoursSpecificationExtension",
        )
        return When(
            "hours_open_all",
            Choice("afacOpenAllHours", "fac:OpenAllHours", Obj([], keep_empty=True)),
            When(
                "hours_id IS NOT NULL",
                Choice("afacOperatingHoursSpecification", "fac:OperatingHoursSpecification", specification),
            ),
        )

    @staticmethod
    def supplemental_facility(var: str) -> Node:
        """A supplemental facility of the site (a struct {kind, value, id}: a service facility or a
        piece of equipment, `rules.SERVICE_FACILITIES`/`EQUIPMENT_FACILITIES`), versioned with the site."""

        def facility(type_key: str) -> Obj:
            return Obj([*ids(f"{var}.id", "site_version"), Prop(type_key, Enum(f"{var}.value"))])

        return When(
            f"{var}.kind = 'service'",
            Choice(
                "afacSupplementalServiceFacility",
                "afir:SupplementalServiceFacility",
                facility("serviceFacilityType"),
            ),
            Choice("afacSupplementalEquipment", "afir:SupplementalEquipment", facility("equipmentType")),
        )

    def site(self) -> Obj:
        """A site (one OCPI location), from the site columns in scope; `stations`: its stations, rendered."""
        return Obj(
            [
                *ids("site_id", "site_version"),
                Prop("name", self.ml("name"), "fac:name"),
                Prop("lastUpdated", Text("site_updated"), "fac:lastUpdated"),
                Prop("operatingHours", self.opening_hours(), "fac:operatingHours"),
                Prop("locationReference", self.location("lat", "lon"), "fac:locationReference"),
                Prop("externalIdentifier", self.identifier("location_id", "locationId")),
                Prop("operator", Raw("CASE WHEN defines_orgs THEN op_definition ELSE op_reference END")),
                Prop("helpdesk", Raw("CASE WHEN defines_orgs THEN hd_definition ELSE hd_reference END")),
                Prop("supplementalFacility", ListOf("facilities", "_sf", self.supplemental_facility("_sf"))),
                Prop("energyInfrastructureStation", Rendered("stations"), "egi:energyInfrastructureStation"),
            ],
            ext="egi:_energyInfrastructureSiteExtension",
        )

    # -- status ---------------------------------------------------------------------------------

    def rate_update(self, var: str) -> Obj:
        """The current ad hoc price of a rate (a rates struct), its prices rendered beforehand in
        `prices_rendered`."""
        return Obj(
            [
                Prop("lastUpdated", Text(f"{var}.last_updated")),
                Prop("energyRateReference", self.reference("EnergyRate", f"{var}.rate_id")),
                Prop("energyPrice", Rendered("prices_rendered")),
            ]
        )

    def point_status(self) -> Choice:
        """A charging point's status and ad hoc prices (columns point_id, point_version, status,
        status_updated; `rate_updates` its rates' energyRateUpdates, rendered)."""
        return Choice(
            "aegiElectricChargingPointStatus",
            "afir:ElectricChargingPointStatus",
            Obj(
                [
                    Prop("reference", self.reference("FacilityObject", "point_id", "point_version")),
                    Prop("lastUpdated", Text("status_updated")),
                    Prop("status", Enum("status")),
                    Prop("energyRateUpdate", Rendered("rate_updates")),
                ]
            ),
        )

    def station_status(self) -> Obj:
        return Obj(
            [
                Prop("reference", self.reference("FacilityObject", "station_id", "station_version")),
                Prop("lastUpdated", Text("station_status_updated")),
                Prop("refillPointStatus", Rendered("points")),
            ]
        )

    def site_status(self) -> Obj:
        return Obj(
            [
                Prop("reference", self.reference("FacilityObject", "site_id", "site_version")),
                Prop("lastUpdated", Text("site_status_updated")),
                Prop("energyInfrastructureStationStatus", Rendered("stations")),
            ]
        )


class FacilityLocation(Node):
    """A point location's `locLocationExtensionG` (JSON) / `_locationReferenceExtension` (XML).

    The one place where the two encodings nest differently: the profile's FacilityLocation has
    `nutsArea`, 3.7's `locx:FacilityLocation` has no room for it (and no extension element), so XML
    writes it beside `loc:facilityLocation` inside the same extension, which 3.7 leaves open."""

    def __init__(self, facility: Obj, nuts: Prop) -> None:
        self.facility, self.nuts = facility, nuts

    def json(self) -> str:
        inner = Obj([*self.facility.props, self.nuts])
        return f"""'{{"FacilityLocation":' || {inner.json()} || '}}'"""

    def xml(self, tag: str, native: bool) -> str:
        facility = self.facility.xml("loc:facilityLocation", native)
        nuts = self.nuts.node.xml("afir:nutsArea", True)
        return f"'<{tag}>' || {facility} || coalesce({nuts}, '') || '</{tag}>'"
