locals {
  # Every name the services read from their environment. With an empty `name_prefix` they are
  # the code's defaults (what `quotes bootstrap` creates), so a deployment and a bootstrapped
  # emulator agree.
  names = {
    events_table            = "${var.name_prefix}quote-events"
    idempotency_table       = "${var.name_prefix}quote-idempotency"
    read_model_table        = "${var.name_prefix}customer-quotes"
    dead_letter_table       = "${var.name_prefix}quote-dead-letters"
    relay_dead_letter_table = "${var.name_prefix}quote-relay-dead-letters"
    notifications_table     = "${var.name_prefix}quote-notifications"
    archive_manifest_table  = "${var.name_prefix}quote-archive-manifest"
    event_stream            = "${var.name_prefix}quote-events"
    lease_tables = {
      "vehicle-enricher" = "${var.name_prefix}vehicle-enricher-leases"
      "driver-history"   = "${var.name_prefix}driver-history-leases"
      "fulfillment"      = "${var.name_prefix}fulfillment-leases"
      "projector"        = "${var.name_prefix}projector-leases"
      "notifier"         = "${var.name_prefix}notifier-leases"
      "archiver"         = "${var.name_prefix}archiver-leases"
    }

    platform         = "${var.name_prefix}quote-platform"
    cluster          = "${var.name_prefix}quote-platform"
    ecr_namespace    = "${var.name_prefix}quote-platform"
    ecr_public_cache = "${var.name_prefix}ecr-public"
    api              = "${var.name_prefix}quote-api"
    metrics_logs     = "/${var.name_prefix}quote-platform/metrics"
    waf_logs         = "aws-waf-logs-${var.name_prefix}quote-api"
    alarm_topic      = "${var.name_prefix}quote-platform-alarms"
    archive_bucket   = "${var.name_prefix}quote-archive-${local.account_id}-${local.region}"
    logs_bucket      = "${var.name_prefix}quote-logs-${local.account_id}-${local.region}"
  }

  services = ["event-source", "vehicle-enricher", "driver-history", "fulfillment", "projector", "notifier", "archiver"]

  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  container_port = 8080
  # The collector sidecar's OTLP/HTTP receiver, on the task's loopback.
  otlp_endpoint = "http://localhost:4318"

  # Every service runs from this image, with its own command (`run SERVICE`).
  image               = coalesce(var.image_uri, "${aws_ecr_repository.quotes.repository_url}:${var.image_tag}")
  ecr_repository_arns = [aws_ecr_repository.quotes.arn]

  adot_image = coalesce(
    var.adot_image,
    "${local.account_id}.dkr.ecr.${local.region}.amazonaws.com/${local.names.ecr_public_cache}/aws-observability/aws-otel-collector:${var.adot_version}",
  )
  # Repositories the pull-through cache creates on the first pull of the collector image.
  ecr_pull_through_repository_arns = var.adot_image == null ? ["arn:${local.partition}:ecr:${local.region}:${local.account_id}:repository/${local.names.ecr_public_cache}/*"] : []

  alarm_actions = [aws_sns_topic.alarms.arn]
}
