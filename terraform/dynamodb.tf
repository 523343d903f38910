# The tables exactly as the code's create functions (and `quotes bootstrap`) make them: same
# keys, same indexes, same TTL; on-demand, with point-in-time recovery, KMS and deletion
# protection on top.

# Events and stream heads (shared/event-store/src/dynamodb/schema.rs).
module "events_table" {
  source = "./modules/dynamodb-table"

  name      = local.names.events_table
  hash_key  = "stream_id"
  range_key = "version"
  attributes = [
    { name = "stream_id", type = "S" },
    { name = "version", type = "N" },
    { name = "customer_id", type = "S" },
    { name = "recorded_at", type = "S" },
    { name = "pending_bucket", type = "S" },
    { name = "pending_since", type = "N" },
  ]
  global_secondary_indexes = [
    { name = "by-customer", hash_key = "customer_id", range_key = "recorded_at", projection_type = "ALL" },
    { name = "unpublished", hash_key = "pending_bucket", range_key = "pending_since", projection_type = "ALL" },
  ]

  kms_key_arn         = aws_kms_key.platform.arn
  deletion_protection = var.deletion_protection
  replicas            = var.dynamodb_replicas
  alarm_actions       = local.alarm_actions
}

# Idempotency records, expired by TTL (shared/event-store/src/dynamodb/schema.rs).
module "idempotency_table" {
  source = "./modules/dynamodb-table"

  name          = local.names.idempotency_table
  hash_key      = "idempotency_key"
  attributes    = [{ name = "idempotency_key", type = "S" }]
  ttl_attribute = "expires_at"

  kms_key_arn         = aws_kms_key.platform.arn
  deletion_protection = var.deletion_protection
  replicas            = var.dynamodb_replicas
  alarm_actions       = local.alarm_actions
}

# The customer-quotes read model (shared/read-model/src/dynamodb.rs). `pending` is sparse: only
# a pending quote's item has `pending_bucket` and `pending_since` (its request time, sortable
# UTC), so the index lists exactly the quotes fulfillment refers at their deadline.
module "read_model_table" {
  source = "./modules/dynamodb-table"

  name      = local.names.read_model_table
  hash_key  = "customer_id"
  range_key = "quote_id"
  attributes = [
    { name = "customer_id", type = "S" },
    { name = "quote_id", type = "S" },
    { name = "pending_bucket", type = "S" },
    { name = "pending_since", type = "S" },
  ]
  global_secondary_indexes = [
    { name = "by-quote", hash_key = "quote_id", projection_type = "ALL" },
    { name = "pending", hash_key = "pending_bucket", range_key = "pending_since", projection_type = "KEYS_ONLY" },
  ]

  kms_key_arn         = aws_kms_key.platform.arn
  deletion_protection = var.deletion_protection
  replicas            = var.dynamodb_replicas
  alarm_actions       = local.alarm_actions
}

# Records the consumer services gave up on (shared/kinesis-consumer/src/dead_letter.rs).
module "dead_letter_table" {
  source = "./modules/dynamodb-table"

  name      = local.names.dead_letter_table
  hash_key  = "source"
  range_key = "sequence_number"
  attributes = [
    { name = "source", type = "S" },
    { name = "sequence_number", type = "S" },
    { name = "application_key", type = "S" },
  ]
  # "Is this partition key set aside?": the consumers look up `<application>#<partition key>`
  # before processing a key, so a dead-lettered quote's later records wait behind it.
  global_secondary_indexes = [
    { name = "by-key", hash_key = "application_key", range_key = "sequence_number", projection_type = "ALL" },
  ]

  kms_key_arn         = aws_kms_key.platform.arn
  deletion_protection = var.deletion_protection
  replicas            = var.dynamodb_replicas
  alarm_actions       = local.alarm_actions
}

# Records a relay set aside because Kinesis can never accept them
# (shared/event-relay/src/dead_letter.rs); listed by `quotes relay-dead-letters`.
module "relay_dead_letter_table" {
  source = "./modules/dynamodb-table"

  name      = local.names.relay_dead_letter_table
  hash_key  = "stream_id"
  range_key = "version"
  attributes = [
    { name = "stream_id", type = "S" },
    { name = "version", type = "N" },
  ]

  kms_key_arn         = aws_kms_key.platform.arn
  deletion_protection = var.deletion_protection
  replicas            = var.dynamodb_replicas
  alarm_actions       = local.alarm_actions
}

# The notifier's ledger (services/notifier/src/ledger.rs); no TTL: a record is what prevents a
# second send.
module "notifications_table" {
  source = "./modules/dynamodb-table"

  name       = local.names.notifications_table
  hash_key   = "notification_id"
  attributes = [{ name = "notification_id", type = "S" }]

  kms_key_arn         = aws_kms_key.platform.arn
  deletion_protection = var.deletion_protection
  replicas            = var.dynamodb_replicas
  alarm_actions       = local.alarm_actions
}

# The archive's manifest (shared/archive/src/dynamodb.rs): per shard of the stream, its head
# (how far it is archived, by which lease owner) and its committed segments, in the archive
# bucket (s3.tf). Not replicated, like the bucket: shards and fencing tokens are this region's.
module "archive_manifest_table" {
  source = "./modules/dynamodb-table"

  name      = local.names.archive_manifest_table
  hash_key  = "stream"
  range_key = "entry"
  attributes = [
    { name = "stream", type = "S" },
    { name = "entry", type = "S" },
  ]

  kms_key_arn         = aws_kms_key.platform.arn
  deletion_protection = var.deletion_protection
  alarm_actions       = local.alarm_actions
}

# One lease table per consumer application
# (shared/kinesis-consumer/src/lease_table/dynamodb/schema.rs). Not replicated: leases and
# checkpoints refer to this region's stream.
module "lease_tables" {
  source   = "./modules/dynamodb-table"
  for_each = local.names.lease_tables

  name       = each.value
  hash_key   = "leaseKey"
  attributes = [{ name = "leaseKey", type = "S" }]

  kms_key_arn         = aws_kms_key.platform.arn
  deletion_protection = var.deletion_protection
  alarm_actions       = local.alarm_actions
}
