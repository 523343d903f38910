locals {
  global_table = length(var.replicas) > 0
}

resource "aws_dynamodb_table" "this" {
  name         = var.name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = var.hash_key
  range_key    = var.range_key

  deletion_protection_enabled = var.deletion_protection

  # Global Tables replicate through the table's stream.
  stream_enabled   = local.global_table
  stream_view_type = local.global_table ? "NEW_AND_OLD_IMAGES" : null

  dynamic "attribute" {
    for_each = var.attributes
    content {
      name = attribute.value.name
      type = attribute.value.type
    }
  }

  dynamic "global_secondary_index" {
    for_each = var.global_secondary_indexes
    content {
      name               = global_secondary_index.value.name
      hash_key           = global_secondary_index.value.hash_key
      range_key          = global_secondary_index.value.range_key
      projection_type    = global_secondary_index.value.projection_type
      non_key_attributes = global_secondary_index.value.non_key_attributes
    }
  }

  dynamic "ttl" {
    for_each = var.ttl_attribute == null ? [] : [var.ttl_attribute]
    content {
      attribute_name = ttl.value
      enabled        = true
    }
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  dynamic "replica" {
    for_each = var.replicas
    content {
      region_name            = replica.value.region_name
      kms_key_arn            = replica.value.kms_key_arn
      point_in_time_recovery = true
      propagate_tags         = true
    }
  }

  tags = merge(var.tags, { Name = var.name })
}

# Throttling: on-demand tables still throttle past their partition limits or a sudden
# doubling of traffic. `ThrottledRequests` needs the Operation dimension, so the alarm sums
# the table-level read and write throttle events instead.
resource "aws_cloudwatch_metric_alarm" "throttles" {
  alarm_name          = "${var.name}-throttles"
  alarm_description   = "DynamoDB table ${var.name} throttled read or write requests."
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 1
  threshold           = var.throttle_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  metric_query {
    id          = "throttles"
    expression  = "FILL(reads, 0) + FILL(writes, 0)"
    label       = "Throttle events"
    return_data = true
  }

  metric_query {
    id = "reads"
    metric {
      namespace   = "AWS/DynamoDB"
      metric_name = "ReadThrottleEvents"
      period      = var.alarm_period_seconds
      stat        = "Sum"
      dimensions = {
        TableName = aws_dynamodb_table.this.name
      }
    }
  }

  metric_query {
    id = "writes"
    metric {
      namespace   = "AWS/DynamoDB"
      metric_name = "WriteThrottleEvents"
      period      = var.alarm_period_seconds
      stat        = "Sum"
      dimensions = {
        TableName = aws_dynamodb_table.this.name
      }
    }
  }

  tags = var.tags
}
