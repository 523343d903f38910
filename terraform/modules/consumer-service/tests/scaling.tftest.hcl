# `terraform test` of the module with a mocked AWS provider (no account needed).

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = {
      name = "us-east-1"
    }
  }

  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
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

  mock_resource "aws_ecs_task_definition" {
    defaults = {
      arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/mock:1"
    }
  }

  mock_resource "aws_appautoscaling_policy" {
    defaults = {
      arn = "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:00000000-0000-0000-0000-000000000000:resource/ecs/service/quote-platform/projector:policyName/x"
    }
  }

  mock_resource "aws_kinesis_stream_consumer" {
    defaults = {
      arn = "arn:aws:kinesis:us-east-1:123456789012:stream/quote-events/consumer/projector:1700000000"
    }
  }
}

variables {
  service                = "projector"
  cluster_arn            = "arn:aws:ecs:us-east-1:123456789012:cluster/quote-platform"
  image                  = "123456789012.dkr.ecr.us-east-1.amazonaws.com/quote-platform/projector:test"
  ecr_repository_arns    = ["arn:aws:ecr:us-east-1:123456789012:repository/quote-platform/projector"]
  data_kms_key_arn       = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  log_kms_key_arn        = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  vpc_id                 = "vpc-0123456789abcdef0"
  subnet_ids             = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
  adot_image             = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"
  metrics_namespace      = "QuotePlatform"
  metrics_log_group_name = "/quote-platform/metrics"
  metrics_log_group_arn  = "arn:aws:logs:us-east-1:123456789012:log-group:/quote-platform/metrics"
  stream_name            = "quote-events"
  stream_arn             = "arn:aws:kinesis:us-east-1:123456789012:stream/quote-events"
  shard_count            = 4
  max_tasks              = 4
}

run "polling" {
  assert {
    condition     = length(aws_kinesis_stream_consumer.this) == 0
    error_message = "A polling consumer registers no enhanced fan-out consumer."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.lag_high[0].metric_name == "GetRecords.IteratorAgeMilliseconds"
    error_message = "Polling consumers scale on the stream's iterator age."
  }

  assert {
    condition     = aws_appautoscaling_target.this[0].max_capacity == 4 && aws_appautoscaling_target.this[0].resource_id == "service/quote-platform/projector"
    error_message = "The scaling target is the service, up to max_tasks."
  }
}

run "fanout" {
  variables {
    consumer_source = "fanout"
  }

  assert {
    condition     = aws_kinesis_stream_consumer.this[0].name == "projector"
    error_message = "The fan-out consumer is named after the service (its EFO_CONSUMER_NAME default)."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.lag_high[0].metric_name == "SubscribeToShardEvent.MillisBehindLatest" && aws_cloudwatch_metric_alarm.lag_high[0].dimensions["ConsumerName"] == "projector"
    error_message = "Fan-out consumers scale on their own MillisBehindLatest."
  }
}

run "fixed_task_count" {
  variables {
    autoscaling = false
  }

  assert {
    condition     = length(aws_appautoscaling_target.this) == 0 && length(aws_appautoscaling_policy.scale_out) == 0 && length(aws_cloudwatch_metric_alarm.lag_high) == 0
    error_message = "Without autoscaling there is no scaling target, policy or lag alarm."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.dead_letters[0].alarm_name == "projector-dead-letters" && aws_cloudwatch_metric_alarm.blocked_shard.alarm_name == "projector-blocked-shard"
    error_message = "The alarms for people stay."
  }
}

run "record_service_dead_letters_nothing" {
  variables {
    service           = "archiver"
    dead_letter_alarm = false
    s3_buckets = {
      ARCHIVE_BUCKET = {
        arn            = "arn:aws:s3:::quote-archive"
        prefix         = "events/"
        bucket_actions = ["s3:ListBucket"]
        object_actions = ["s3:DeleteObject", "s3:PutObject"]
        kms_key_arn    = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
      }
    }
  }

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.dead_letters) == 0 && output.dead_letter_alarm_arn == null
    error_message = "A service that dead-letters nothing has no dead-letter alarm."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.blocked_shard.alarm_name == "archiver-blocked-shard"
    error_message = "A shard waiting out a transient failure still alarms."
  }
}


run "more_tasks_than_shards" {
  command = plan

  variables {
    shard_count = 2
  }

  expect_failures = [aws_appautoscaling_target.this]
}

run "stop_timeout_bounds" {
  command = plan

  variables {
    stop_timeout = 30
  }

  expect_failures = [var.stop_timeout]
}
