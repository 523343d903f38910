# `terraform test` with a mocked AWS provider: plans and applies the whole configuration in
# memory (no account, no credentials) and checks what the services get.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }

  mock_data "aws_region" {
    defaults = {
      name = "us-east-1"
    }
  }

  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }

  mock_data "aws_availability_zones" {
    defaults = {
      names = ["us-east-1c", "us-east-1a", "us-east-1b"]
    }
  }

  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }

  mock_resource "aws_ecs_cluster" {
    defaults = {
      arn = "arn:aws:ecs:us-east-1:123456789012:cluster/quote-platform"
    }
  }

  mock_resource "aws_sns_topic" {
    defaults = {
      arn = "arn:aws:sns:us-east-1:123456789012:quote-platform-alarms"
    }
  }

  mock_resource "aws_kms_key" {
    defaults = {
      arn = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    }
  }

  mock_resource "aws_appautoscaling_policy" {
    defaults = {
      arn = "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:00000000-0000-0000-0000-000000000000:resource/ecs/service/quote-platform/x:policyName/x"
    }
  }

  mock_resource "aws_lb" {
    defaults = {
      arn        = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/quote-api/0123456789abcdef"
      arn_suffix = "app/quote-api/0123456789abcdef"
    }
  }

  mock_resource "aws_lb_target_group" {
    defaults = {
      arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/quote-api/0123456789abcdef"
    }
  }

  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/mock"
    }
  }

  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock"
    }
  }

  mock_resource "aws_ecr_repository" {
    defaults = {
      arn            = "arn:aws:ecr:us-east-1:123456789012:repository/mock"
      repository_url = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mock"
    }
  }

  mock_resource "aws_dynamodb_table" {
    defaults = {
      arn = "arn:aws:dynamodb:us-east-1:123456789012:table/mock"
    }
  }

  mock_resource "aws_wafv2_web_acl" {
    defaults = {
      arn = "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/quote-api/00000000-0000-0000-0000-000000000000"
    }
  }

  mock_resource "aws_sesv2_email_identity" {
    defaults = {
      arn = "arn:aws:ses:us-east-1:123456789012:identity/quotes@example.com"
    }
  }

  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::mock-bucket"
    }
  }

  mock_resource "aws_kinesis_stream_consumer" {
    defaults = {
      arn = "arn:aws:kinesis:us-east-1:123456789012:stream/quote-events/consumer/mock:1700000000"
    }
  }

  mock_resource "aws_ecs_task_definition" {
    defaults = {
      arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/mock:1"
    }
  }

  mock_resource "aws_ecs_service" {
    defaults = {
      id = "arn:aws:ecs:us-east-1:123456789012:service/quote-platform/mock"
    }
  }

  mock_resource "aws_kinesis_stream" {
    defaults = {
      arn = "arn:aws:kinesis:us-east-1:123456789012:stream/quote-events"
    }
  }
}

variables {
  image_tag               = "test"
  certificate_arn         = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
  auth_jwks_url           = "https://issuer.example.com/.well-known/jwks.json"
  auth_issuer             = "https://issuer.example.com"
  auth_audience           = "quotes-api"
  driver_history_provider = "simulated"
  notify_from_email       = "quotes@example.com"
}

run "defaults" {
  assert {
    condition     = aws_kinesis_stream.events.name == "quote-events"
    error_message = "With no prefix the stream has the code's default name."
  }

  assert {
    condition     = module.events_table.name == "quote-events" && module.idempotency_table.name == "quote-idempotency" && module.read_model_table.name == "customer-quotes" && module.dead_letter_table.name == "quote-dead-letters" && module.notifications_table.name == "quote-notifications"
    error_message = "With no prefix the tables have the code's default names."
  }

  assert {
    condition     = module.lease_tables["projector"].name == "projector-leases"
    error_message = "Lease tables are named <service>-leases."
  }

  assert {
    condition     = module.archive_manifest_table.name == "quote-archive-manifest" && module.lease_tables["archiver"].name == "archiver-leases"
    error_message = "The archive manifest and the archiver's lease table have the code's default names."
  }

  assert {
    condition     = module.consumer["archiver"].dead_letter_alarm_arn == null && module.consumer["projector"].dead_letter_alarm_arn != null
    error_message = "The archiver dead-letters nothing: no dead-letter alarm (the event handlers keep theirs)."
  }

  assert {
    condition     = !contains(keys(aws_cloudwatch_metric_alarm.relay_dead_letters), "archiver") && contains(keys(aws_cloudwatch_metric_alarm.relay_sweep_failures), "notifier") && contains(keys(aws_cloudwatch_metric_alarm.relay_outbox_age), "event-source") && !contains(keys(aws_cloudwatch_metric_alarm.relay_outbox_age), "archiver")
    error_message = "The archiver runs no relay: no relay alarms."
  }

  assert {
    condition     = output.archive_manifest_table == "quote-archive-manifest" && output.archive_prefix == "events/" && output.table_names["ARCHIVE_MANIFEST_TABLE"] == "quote-archive-manifest"
    error_message = "The outputs name the archive's manifest and prefix."
  }

  assert {
    condition     = local.consumers["fulfillment"].environment.READ_MODEL_TABLE == "customer-quotes" && local.consumers["fulfillment"].environment.QUOTE_DEADLINE_SECS == 300 && contains(module.read_model_table.index_names, "pending")
    error_message = "Fulfillment finds the quotes past their deadline (QUOTE_DEADLINE_SECS, 300 s by default) in the read model's pending index (READ_MODEL_TABLE)."
  }

  assert {
    condition     = local.consumers["fulfillment"].dynamodb_tables.READ_MODEL_TABLE.actions == ["dynamodb:DescribeTable", "dynamodb:GetItem"] && local.consumers["fulfillment"].dynamodb_tables.READ_MODEL_TABLE.index_actions == ["dynamodb:Query"]
    error_message = "Fulfillment describes the read model, reads its routing document (GetItem) and queries its indexes: it never reads or writes the quotes' items."
  }

  assert {
    condition     = local.consumers["fulfillment"].dynamodb_tables.READ_MODEL_TABLE.suffixed_tables.actions == ["dynamodb:DescribeTable"] && local.consumers["fulfillment"].dynamodb_tables.READ_MODEL_TABLE.suffixed_tables.index_actions == ["dynamodb:Query"]
    error_message = "On the read model's blue/green tables (<READ_MODEL_TABLE>-<suffix>) fulfillment only describes them and queries their indexes: the routing document is in the home table."
  }

  assert {
    condition     = local.consumers["projector"].dynamodb_tables.READ_MODEL_TABLE.suffixed_tables.actions == local.consumers["projector"].dynamodb_tables.READ_MODEL_TABLE.actions
    error_message = "The projector writes (and reads back) the blue/green read-model tables as it does the home table."
  }

  assert {
    condition     = length(module.network.private_subnet_ids) == 2
    error_message = "The created VPC has two private subnets by default."
  }

  assert {
    condition     = !local.archive_catch_up
    error_message = "By default the consumer services do not catch up from the archive (no archive names or grants but the archiver's)."
  }

  assert {
    condition     = local.ops_applications == ["vehicle-enricher", "driver-history", "fulfillment", "projector", "notifier", "archiver"]
    error_message = "event-source's operations view watches every consumer service deployed, in pipeline order (OPS_APPLICATIONS)."
  }
}

run "prefixed_fanout_on_demand" {
  variables {
    name_prefix     = "stg-"
    consumer_source = "fanout"
    stream_mode     = "ON_DEMAND"
    auth_jwks_url   = null

    auth_hs256_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:quote-auth-AbCdEf"
  }

  assert {
    condition     = aws_kinesis_stream.events.name == "stg-quote-events" && module.lease_tables["notifier"].name == "stg-notifier-leases"
    error_message = "The prefix applies to every name."
  }

  assert {
    condition     = module.consumer["projector"].efo_consumer_arn != null
    error_message = "Enhanced fan-out consumers are registered with consumer_source = fanout."
  }
}

run "trial_mode" {
  variables {
    certificate_arn    = null
    trial_http_cidrs   = ["203.0.113.7/32"]
    enable_autoscaling = false
  }

  assert {
    condition     = length(aws_lb_listener.https) == 0 && aws_lb_listener.http_trial[0].port == 80 && aws_lb_listener.http_trial[0].protocol == "HTTP"
    error_message = "Trial mode serves plain HTTP on port 80 and has no HTTPS listener."
  }

  assert {
    condition     = one(aws_security_group.alb.ingress).from_port == 80 && one(aws_security_group.alb.ingress).cidr_blocks == tolist(["203.0.113.7/32"])
    error_message = "Only the trial CIDR blocks reach the trial listener."
  }

  assert {
    condition     = startswith(output.api_url, "http://") && output.trial_mode
    error_message = "The trial API URL is plain HTTP."
  }
}

run "production_mode_is_https_only" {
  assert {
    condition     = length(aws_lb_listener.http_trial) == 0 && aws_lb_listener.https[0].port == 443
    error_message = "With a certificate there is an HTTPS listener and no plain-HTTP one."
  }

  assert {
    condition     = one(aws_security_group.alb.ingress).from_port == 443 && startswith(output.api_url, "https://") && !output.trial_mode
    error_message = "Production mode is reached over HTTPS only."
  }
}

run "trial_mode_refuses_the_internet" {
  command = plan

  variables {
    certificate_arn  = null
    trial_http_cidrs = ["0.0.0.0/0"]
  }

  expect_failures = [var.trial_http_cidrs]
}

run "trial_cidrs_are_cidr_blocks" {
  command = plan

  variables {
    certificate_arn  = null
    trial_http_cidrs = ["203.0.113.7"]
  }

  expect_failures = [var.trial_http_cidrs]
}

# Catch-up (CONSUMER_INITIAL_POSITION=ARCHIVE): the consumer services that handle events get
# the archive's names and read-only grants (tests/deploy/test_terraform.py checks them per
# service against what the code calls).
run "catch_up_from_the_archive" {
  variables {
    consumer_initial_position = "ARCHIVE"
  }

  assert {
    condition     = local.archive_catch_up
    error_message = "consumer_initial_position = ARCHIVE turns catch-up on."
  }

  assert {
    condition     = local.catch_up.environment.ARCHIVE_BUCKET == aws_s3_bucket.archive.id && local.catch_up.environment.ARCHIVE_MANIFEST_TABLE == "quote-archive-manifest" && length(local.catch_up.environment) == 2
    error_message = "Catching up takes ARCHIVE_BUCKET and ARCHIVE_MANIFEST_TABLE (the segments' keys come from the manifest: no ARCHIVE_PREFIX)."
  }

  assert {
    condition     = local.catch_up.dynamodb_tables.ARCHIVE_MANIFEST_TABLE.arn == module.archive_manifest_table.arn && local.catch_up.dynamodb_tables.ARCHIVE_MANIFEST_TABLE.actions == ["dynamodb:Query"]
    error_message = "The catch-up queries the manifest (shard heads and segments) and does nothing else with it."
  }

  assert {
    condition     = local.catch_up.s3_buckets.ARCHIVE_BUCKET.arn == aws_s3_bucket.archive.arn && local.catch_up.s3_buckets.ARCHIVE_BUCKET.prefix == "events/" && local.catch_up.s3_buckets.ARCHIVE_BUCKET.object_actions == ["s3:GetObject"] && !can(local.catch_up.s3_buckets.ARCHIVE_BUCKET.bucket_actions) && local.catch_up.s3_buckets.ARCHIVE_BUCKET.kms_key_arn == aws_kms_key.platform.arn
    error_message = "The catch-up reads the segments under archive_prefix (GetObject, the bucket's key through S3), and never lists the bucket."
  }
}

run "initial_position_is_one_the_code_parses" {
  command = plan

  variables {
    consumer_initial_position = "archive"
  }

  expect_failures = [var.consumer_initial_position]
}

run "quote_deadline_is_bounded" {
  command = plan

  variables {
    quote_deadline_secs = 0
  }

  expect_failures = [var.quote_deadline_secs]
}

run "quote_deadline_is_at_most_30_days" {
  command = plan

  variables {
    quote_deadline_secs = 2592001
  }

  expect_failures = [var.quote_deadline_secs]
}

run "certificate_or_trial_not_both" {
  command = plan

  variables {
    trial_http_cidrs = ["203.0.113.7/32"]
  }

  expect_failures = [terraform_data.configuration_checks]
}

run "certificate_or_trial_not_neither" {
  command = plan

  variables {
    certificate_arn = null
  }

  expect_failures = [terraform_data.configuration_checks]
}

# (max_tasks > shard_count is refused here too, and by the consumer-service module itself: see
# modules/consumer-service/tests.)
run "auth_needs_exactly_one_method" {
  command = plan

  variables {
    auth_hs256_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:quote-auth-AbCdEf"
  }

  expect_failures = [terraform_data.configuration_checks]
}

run "jwks_needs_issuer_and_audience" {
  command = plan

  variables {
    auth_audience = null
  }

  expect_failures = [terraform_data.configuration_checks]
}
