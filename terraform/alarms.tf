# Alarms on the shared resources; each table has its throttle alarm (modules/dynamodb-table)
# and each consumer service its blocked-shard alarm, a dead-letter alarm if it dead-letters (not
# the archiver) and, with enhanced fan-out, a lag alarm (modules/consumer-service); every
# service's relay has its dead-letter and sweep alarms (below). All notify the alarm topic.

# How old the oldest record read by GetRecords is: polling consumers falling behind.
resource "aws_cloudwatch_metric_alarm" "stream_iterator_age" {
  count = var.consumer_source == "polling" ? 1 : 0

  alarm_name          = "${local.names.event_stream}-iterator-age"
  alarm_description   = "A consumer service of ${local.names.event_stream} is more than ${var.iterator_age_alarm_ms} ms behind (records near the end of their retention are lost)."
  namespace           = "AWS/Kinesis"
  metric_name         = "GetRecords.IteratorAgeMilliseconds"
  dimensions          = { StreamName = aws_kinesis_stream.events.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.iterator_age_alarm_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Writes refused by the stream: the relay retries them, but publication slows down.
resource "aws_cloudwatch_metric_alarm" "stream_write_throttles" {
  alarm_name          = "${local.names.event_stream}-write-throttles"
  alarm_description   = "PutRecords to ${local.names.event_stream} is throttled: add shards (or switch to ON_DEMAND)."
  namespace           = "AWS/Kinesis"
  metric_name         = "WriteProvisionedThroughputExceeded"
  dimensions          = { StreamName = aws_kinesis_stream.events.name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "stream_read_throttles" {
  alarm_name          = "${local.names.event_stream}-read-throttles"
  alarm_description   = "GetRecords on ${local.names.event_stream} is throttled more than ${var.kinesis_read_throttle_alarm_threshold} times a minute: polling consumers share 5 calls/s per shard, consider consumer_source = fanout."
  namespace           = "AWS/Kinesis"
  metric_name         = "ReadProvisionedThroughputExceeded"
  dimensions          = { StreamName = aws_kinesis_stream.events.name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = var.kinesis_read_throttle_alarm_threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Share of API requests answered with a 5xx, by the load balancer itself (no healthy target,
# timeouts) or by the tasks.
resource "aws_cloudwatch_metric_alarm" "api_5xx_rate" {
  alarm_name          = "${local.names.api}-5xx-rate"
  alarm_description   = "More than ${var.api_5xx_alarm_percent}% of requests to ${local.names.api} failed with a 5xx."
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = var.api_5xx_alarm_percent
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "rate"
    expression  = "IF(requests > 0, 100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests, 0)"
    label       = "5xx rate (%)"
    return_data = true
  }

  metric_query {
    id = "requests"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCount"
      period      = 60
      stat        = "Sum"
      dimensions  = { LoadBalancer = aws_lb.api.arn_suffix }
    }
  }

  metric_query {
    id = "target5xx"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_Target_5XX_Count"
      period      = 60
      stat        = "Sum"
      dimensions  = { LoadBalancer = aws_lb.api.arn_suffix }
    }
  }

  metric_query {
    id = "elb5xx"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_ELB_5XX_Count"
      period      = 60
      stat        = "Sum"
      dimensions  = { LoadBalancer = aws_lb.api.arn_suffix }
    }
  }
}

# Every process that appends events runs a relay (shared/event-relay): event-source and the
# consumer services that handle events (not the archiver). The collector writes its
# `event_relay.*` counters to CloudWatch by `application` (modules/fargate-service).
locals {
  relay_services = toset(concat(["event-source"], [for service, consumer in local.consumers : service if consumer.event_handler]))
}

# A record Kinesis can never accept was set aside (see `quotes relay-dead-letters`): its
# event is in the store but was not published; the stream's later events were.
resource "aws_cloudwatch_metric_alarm" "relay_dead_letters" {
  for_each = local.relay_services

  alarm_name          = "${var.name_prefix}${each.key}-relay-dead-letters"
  alarm_description   = "The relay of ${each.key} set aside a record Kinesis can never accept (quotes relay-dead-letters lists them; table ${local.names.relay_dead_letter_table})."
  namespace           = var.metrics_namespace
  metric_name         = "event_relay.dead_lettered"
  dimensions          = { application = each.key }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# A commit has waited too long to be published (Kinesis down or throttling for long, every relay
# stopped, a stream failing every sweep): consumers do not see it, the customer waits.
resource "aws_cloudwatch_metric_alarm" "relay_outbox_age" {
  for_each = local.relay_services

  alarm_name          = "${var.name_prefix}${each.key}-outbox-age"
  alarm_description   = "A commit has waited more than ${var.outbox_age_alarm_secs} s to be published to ${local.names.event_stream} (quotes outbox status shows the backlog and the oldest commit)."
  namespace           = var.metrics_namespace
  metric_name         = "event_relay.outbox_oldest_age"
  dimensions          = { application = each.key }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  threshold           = var.outbox_age_alarm_secs
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Outbox sweeps keep failing: streams stay unpublished (target down, unreadable events) and are
# retried with backoff; consumers do not see those events until they publish.
resource "aws_cloudwatch_metric_alarm" "relay_sweep_failures" {
  for_each = local.relay_services

  alarm_name          = "${var.name_prefix}${each.key}-relay-sweep-failures"
  alarm_description   = "Outbox sweeps of the relay of ${each.key} keep failing: events stay unpublished (see the service's error logs, `outbox sweep failed`)."
  namespace           = var.metrics_namespace
  metric_name         = "event_relay.sweeps_failed"
  dimensions          = { application = each.key }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}
