//! The OpenAPI document, generated from the handlers and types, served at `/openapi.json`.
//!
//! Each handler documents the answers particular to it; [`CommonProblems`] adds those every
//! operation can give (401 to the authenticated ones; 408, 500 and 503 to all), so that every
//! status the server can answer is in the document. `scripts/api-fuzz.sh` checks the server
//! against it (schemathesis).

use axum::Json;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{dev_sign_in, health, ops, problem, quotes, stream};

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

/// Adds the problem answers every operation can give.
#[derive(Debug)]
struct CommonProblems;

fn problem_response(description: &str, authenticate: bool) -> utoipa::openapi::Response {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build();
    let mut builder = ResponseBuilder::new()
        .description(description)
        .content("application/problem+json", content);
    if authenticate {
        builder = builder.header(
            "WWW-Authenticate",
            HeaderBuilder::new().description(Some("`Bearer`")).build(),
        );
    }
    builder.build()
}

fn add_common(operation: &mut Operation) {
    let secured = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());
    let responses = &mut operation.responses.responses;
    if secured {
        responses
            .entry("401".into())
            .or_insert_with(|| problem_response("Missing or invalid bearer token", true).into());
    }
    for (status, description) in [
        ("408", "The request took longer than the server's timeout"),
        ("500", "An unexpected error (details are logged, not sent)"),
        (
            "503",
            "Overloaded, or a dependency is unavailable; retry with backoff",
        ),
    ] {
        responses
            .entry(status.into())
            .or_insert_with(|| problem_response(description, false).into());
    }
}

impl Modify for CommonProblems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
            {
                add_common(operation);
            }
        }
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Quote platform: event-source API", description = "Request auto-insurance quotes and read them back; every change is an event."),
    paths(quotes::request_quote, quotes::get_quote, quotes::list_events, stream::quote_stream, quotes::list_customer_quotes, stream::customer_stream, ops::ops_view, ops::ops_stream, dev_sign_in::sign_in, health::healthz, health::readyz),
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
        dev_sign_in::SignInRequest,
        dev_sign_in::SignedIn,
        crate::ops::OpsView,
        crate::ops::ApplicationView,
        crate::ops::ShardView,
        crate::ops::DeadLetterView,
        crate::ops::LetterView,
        crate::ops::OutboxView,
    )),
    modifiers(&BearerAuth, &CommonProblems),
    tags((name = "quotes", description = "Quote requests and their state"), (name = "operations", description = "Probes and the operations view"), (name = "development", description = "Embedded mode only"))
)]
#[derive(Debug)]
pub struct ApiDoc;

/// Serves the document.
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
