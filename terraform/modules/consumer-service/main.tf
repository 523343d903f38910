locals {
  name              = "${var.name_prefix}${var.service}"
  fanout            = var.consumer_source == "fanout"
  efo_consumer_name = coalesce(var.efo_consumer_name, var.service)

  # A consumer's ARN is `<stream ARN>/consumer/<name>:<creation timestamp>`.
  efo_consumer_arn_pattern = "${var.stream_arn}/consumer/${local.efo_consumer_name}:*"

  # What the service's lag looks like in CloudWatch: the stream's iterator age for polling
  # consumers (shared by every polling consumer of the stream), the consumer's own
  # MillisBehindLatest with enhanced fan-out.
  lag_metric = local.fanout ? {
    name       = "SubscribeToShardEvent.MillisBehindLatest"
    dimensions = { StreamName = var.stream_name, ConsumerName = local.efo_consumer_name }
    } : {
    name       = "GetRecords.IteratorAgeMilliseconds"
    dimensions = { StreamName = var.stream_name }
  }
}

# Registered here so that Terraform owns it (and deregisters it on destroy); the service's own
# RegisterStreamConsumer then finds it in use and looks it up.
resource "aws_kinesis_stream_consumer" "this" {
  count = local.fanout ? 1 : 0

  name       = local.efo_consumer_name
  stream_arn = var.stream_arn
}

module "service" {
  source = "../fargate-service"

  name_prefix                      = var.name_prefix
  service                          = var.service
  cluster_arn                      = var.cluster_arn
  image                            = var.image
  ecr_repository_arns              = var.ecr_repository_arns
  ecr_pull_through_repository_arns = var.ecr_pull_through_repository_arns
  cpu                              = var.cpu
  memory                           = var.memory
  cpu_architecture                 = var.cpu_architecture
  desired_count                    = var.min_tasks
  environment                      = var.environment
  secrets                          = var.secrets
  secrets_kms_key_arns             = var.secrets_kms_key_arns
  stop_timeout                     = var.stop_timeout

  dynamodb_tables      = var.dynamodb_tables
  s3_buckets           = var.s3_buckets
  stream_arn           = var.stream_arn
  stream_actions       = distinct(concat(var.stream_actions, local.fanout ? var.stream_fanout_actions : var.stream_polling_actions))
  efo_consumer_arn     = local.efo_consumer_arn_pattern
  efo_consumer_actions = local.fanout ? var.efo_consumer_actions : []
  ses_send             = var.ses_send
  ses_identity_arns    = var.ses_identity_arns
  ses_from_address     = var.ses_from_address
  sns_publish          = var.sns_publish
  data_kms_key_arn     = var.data_kms_key_arn

  vpc_id     = var.vpc_id
  subnet_ids = var.subnet_ids

  log_retention_days     = var.log_retention_days
  log_kms_key_arn        = var.log_kms_key_arn
  adot_image             = var.adot_image
  metrics_namespace      = var.metrics_namespace
  metrics_log_group_name = var.metrics_log_group_name
  metrics_log_group_arn  = var.metrics_log_group_arn

  # The ECS service starts once its fan-out consumer is registered; only the service waits
  # (a `depends_on` on this module block would defer the inner module's data sources whenever
  # the stream, the key or a table changes, and so replace the task definition).
  service_dependencies = aws_kinesis_stream_consumer.this[*].arn

  tags = var.tags
}

# ---------------------------------------------------------------------------------------------
# Autoscaling on lag: one task more while records wait, one fewer while the stream is idle
# (`autoscaling = false`: a fixed `min_tasks`, and no scaling alarms)
# ---------------------------------------------------------------------------------------------

resource "aws_appautoscaling_target" "this" {
  count = var.autoscaling ? 1 : 0

  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = module.service.autoscaling_resource_id
  min_capacity       = var.min_tasks
  max_capacity       = var.max_tasks

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.max_tasks <= var.shard_count
      error_message = "max_tasks must not exceed shard_count: a task without a shard lease only idles."
    }
    precondition {
      condition     = var.min_tasks <= var.max_tasks
      error_message = "min_tasks must not exceed max_tasks."
    }
  }
}

resource "aws_appautoscaling_policy" "scale_out" {
  count = var.autoscaling ? 1 : 0

  name               = "${local.name}-lag-scale-out"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.this[0].service_namespace
  scalable_dimension = aws_appautoscaling_target.this[0].scalable_dimension
  resource_id        = aws_appautoscaling_target.this[0].resource_id

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 120
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_lower_bound = 0
      scaling_adjustment          = 1
    }
  }
}

resource "aws_appautoscaling_policy" "scale_in" {
  count = var.autoscaling ? 1 : 0

  name               = "${local.name}-lag-scale-in"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.this[0].service_namespace
  scalable_dimension = aws_appautoscaling_target.this[0].scalable_dimension
  resource_id        = aws_appautoscaling_target.this[0].resource_id

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 300
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_upper_bound = 0
      scaling_adjustment          = -1
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "lag_high" {
  count = var.autoscaling ? 1 : 0

  alarm_name          = "${local.name}-lag-high"
  alarm_description   = "Scale ${local.name} out: ${local.lag_metric.name} above ${var.scale_out_lag_ms} ms."
  namespace           = "AWS/Kinesis"
  metric_name         = local.lag_metric.name
  dimensions          = local.lag_metric.dimensions
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  threshold           = var.scale_out_lag_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_appautoscaling_policy.scale_out[0].arn]

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "lag_low" {
  count = var.autoscaling ? 1 : 0

  alarm_name          = "${local.name}-lag-low"
  alarm_description   = "Scale ${local.name} in: ${local.lag_metric.name} below ${var.scale_in_lag_ms} ms (or no reads at all)."
  namespace           = "AWS/Kinesis"
  metric_name         = local.lag_metric.name
  dimensions          = local.lag_metric.dimensions
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  threshold           = var.scale_in_lag_ms
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_appautoscaling_policy.scale_in[0].arn]

  tags = var.tags
}

# ---------------------------------------------------------------------------------------------
# Alarms for people
# ---------------------------------------------------------------------------------------------

# The consumer library counts dead-lettered records (`kinesis_consumer.dead_lettered`, per
# application); the collector sidecar writes it to CloudWatch as EMF in `metrics_namespace`.
resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  count = var.dead_letter_alarm ? 1 : 0

  alarm_name          = "${local.name}-dead-letters"
  alarm_description   = "${local.name} dead-lettered records (see the dead-letter table, source ${var.service}#<shard>)."
  namespace           = var.metrics_namespace
  metric_name         = "kinesis_consumer.dead_lettered"
  dimensions          = { application = var.service }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.dead_letter_alarm_threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  tags = var.tags
}

# A transient failure (throttling, 5xx, a dependency down) is never dead-lettered: the shard
# waits and retries until it passes, so its lag grows and the library exports how long it has
# been waiting (`kinesis_consumer.shard_blocked_seconds`, per application and shard).
resource "aws_cloudwatch_metric_alarm" "blocked_shard" {
  alarm_name          = "${local.name}-blocked-shard"
  alarm_description   = "A shard of ${local.name} has been waiting out a transient failure (throttling, 5xx, a dependency down) for more than ${var.blocked_shard_alarm_seconds} s; see kinesis_consumer.retries (kind transient) and the service's logs."
  namespace           = var.metrics_namespace
  metric_name         = "kinesis_consumer.shard_blocked_seconds"
  dimensions          = { application = var.service }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  threshold           = var.blocked_shard_alarm_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "fanout_lag" {
  count = local.fanout ? 1 : 0

  alarm_name          = "${local.name}-fanout-lag"
  alarm_description   = "${local.name} is more than ${var.lag_alarm_ms} ms behind the stream."
  namespace           = "AWS/Kinesis"
  metric_name         = "SubscribeToShardEvent.MillisBehindLatest"
  dimensions          = { StreamName = var.stream_name, ConsumerName = local.efo_consumer_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.lag_alarm_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  tags = var.tags
}
