//! The OpenAPI document, generated from the handlers and types, served at `/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{health, problem, quotes};

/// Adds the bearer-token security scheme.
#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Quote platform: event-source API", description = "Request auto-insurance quotes and read them back; every change is an event."),
    paths(quotes::request_quote, quotes::get_quote, quotes::list_events, quotes::list_customer_quotes, health::healthz, health::readyz),
    components(schemas(
        quote_domain::request::QuoteRequestInput,
        quotes::QuoteAccepted,
        quote_read_model::QuoteSummary,
        quote_read_model::VehicleSummary,
        quotes::QuoteList,
        quotes::EventList,
        problem::Problem,
        problem::ProblemField,
        health::Health,
    )),
    modifiers(&BearerAuth),
    tags((name = "quotes", description = "Quote requests and their state"), (name = "operations", description = "Probes"))
)]
#[derive(Debug)]
pub struct ApiDoc;

/// Serves the document.
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
