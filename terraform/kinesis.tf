# The stream every committed event is published to, partitioned by stream id (per-quote order).
resource "aws_kinesis_stream" "events" {
  name             = local.names.event_stream
  shard_count      = var.stream_mode == "PROVISIONED" ? var.stream_shard_count : null
  retention_period = var.stream_retention_hours
  encryption_type  = "KMS"
  kms_key_id       = aws_kms_key.platform.arn

  # Enhanced fan-out consumers are registered by the consumer-service module; deleting the
  # stream takes them along.
  enforce_consumer_deletion = true
  shard_level_metrics       = var.stream_shard_level_metrics

  stream_mode_details {
    stream_mode = var.stream_mode
  }
}
