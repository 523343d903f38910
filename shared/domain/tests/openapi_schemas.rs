//! With the `openapi` feature, the DTO schemas match their JSON: newtypes are strings or
//! integers, and renamed fields use their JSON names.

#![cfg(feature = "openapi")]
#![allow(clippy::unwrap_used)]

use quote_domain::{
    Accident, Deductible, DriverHistoryRetrieved, Money, Quote, QuoteRequest, QuoteRequestInput,
    QuoteStatus, RawVehicle, ValidationErrors, VehicleDecoded, Vin,
};
use serde_json::Value;
use utoipa::PartialSchema;

fn schema<T: PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).unwrap()
}

#[test]
fn value_types_have_scalar_schemas() {
    assert_eq!(schema::<Vin>()["type"], "string");
    assert_eq!(schema::<Deductible>()["type"], "integer");
    assert_eq!(schema::<Money>()["type"], "integer");
    assert_eq!(
        schema::<QuoteStatus>()["enum"],
        serde_json::json!(["pending", "quoted", "declined", "referred"])
    );
    assert_eq!(schema::<ValidationErrors>()["type"], "array");
}

#[test]
fn dto_schemas_use_json_names() {
    let vehicle = schema::<RawVehicle>();
    assert!(vehicle["properties"].get("use").is_some(), "{vehicle}");
    let input = schema::<QuoteRequestInput>();
    for field in [
        "customer_id",
        "contact",
        "vehicles",
        "drivers",
        "coverage",
        "notify",
    ] {
        assert!(input["properties"].get(field).is_some(), "{field}: {input}");
    }
    assert!(schema::<QuoteRequest>()["properties"]
        .get("notify")
        .is_some());
    assert!(schema::<Quote>()["properties"].get("valid_until").is_some());
}

#[test]
fn enrichment_schemas() {
    let quote = schema::<Quote>();
    for field in ["vehicles", "drivers"] {
        assert!(quote["properties"].get(field).is_some(), "{field}: {quote}");
    }
    let accident = schema::<Accident>();
    assert_eq!(
        accident["properties"]["date"]["type"], "string",
        "{accident}"
    );
    let decoded = schema::<VehicleDecoded>();
    assert_eq!(
        decoded["required"],
        serde_json::json!(["vin", "make", "model", "source"]),
        "{decoded}"
    );
    assert_eq!(
        decoded["properties"]["vin"]["$ref"],
        "#/components/schemas/Vin"
    );
    let history = schema::<DriverHistoryRetrieved>();
    assert!(
        history["properties"].get("violations").is_some(),
        "{history}"
    );
}
