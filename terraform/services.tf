# The seven services: event-source in its own module block, the six consumer services in one
# `module "consumer"` over `local.consumers`. Together they spell out each service's environment
# and its task role's grants: tests/deploy/test_terraform.py checks them against what the code
# reads and calls (tests/deploy/code_facts.py).
#
# The read model's blue/green tables: `quotes rebuild read-model --into TABLE` rebuilds the read
# model into a new table and `quotes read-model switch` makes it live without a restart. The
# services follow the routing document in the home table (the one READ_MODEL_TABLE names: item
# customer_id = "#control", quote_id = "routing", read with GetItem), which names the `active`
# table and the `standby` ones. Those tables are named `<READ_MODEL_TABLE>-<suffix>` (e.g.
# `quotes-prod-customer-quotes-v2`; the CLI refuses any other name), so the services reading
# READ_MODEL_TABLE get them as `suffixed_tables`: `<arn>-*` and `<arn>-*/index/*`, never `<arn>*`,
# which would also match another deployment's `customer-quotes2`.

# The consumer applications event-source's operations view (`GET /v1/ops`) watches,
# OPS_APPLICATIONS: every consumer service deployed, in pipeline order, each with its lease table.
locals {
  ops_applications = [for service in local.services : service if contains(keys(local.consumers), service)]
}

# The REST API (and its relay, which publishes committed events to the stream), and the
# operations view, which reads the consumer applications' lease tables and dead letters, the
# outbox and the relay's dead letters.
module "event_source" {
  source = "./modules/fargate-service"

  service                          = "event-source"
  name_prefix                      = var.name_prefix
  cluster_arn                      = aws_ecs_cluster.this.arn
  image                            = local.image
  ecr_repository_arns              = local.ecr_repository_arns
  ecr_pull_through_repository_arns = local.ecr_pull_through_repository_arns
  cpu                              = var.task_sizes["event-source"].cpu
  memory                           = var.task_sizes["event-source"].memory
  cpu_architecture                 = var.cpu_architecture
  stop_timeout                     = var.stop_timeout
  data_kms_key_arn                 = aws_kms_key.platform.arn
  secrets_kms_key_arns             = var.secrets_kms_key_arns
  vpc_id                           = module.network.vpc_id
  subnet_ids                       = module.network.private_subnet_ids
  log_retention_days               = var.log_retention_days
  log_kms_key_arn                  = aws_kms_key.platform.arn
  adot_image                       = local.adot_image
  metrics_namespace                = var.metrics_namespace
  metrics_log_group_name           = aws_cloudwatch_log_group.metrics.name
  metrics_log_group_arn            = aws_cloudwatch_log_group.metrics.arn

  desired_count = var.event_source_scaling.min_tasks
  autoscaling   = var.enable_autoscaling ? var.event_source_scaling : null
  load_balancer = {
    target_group_arn  = aws_lb_target_group.api.arn
    security_group_id = aws_security_group.alb.id
  }

  environment = {
    LISTEN_ADDR                 = "0.0.0.0:${local.container_port}"
    EVENTS_TABLE                = module.events_table.name
    IDEMPOTENCY_TABLE           = module.idempotency_table.name
    READ_MODEL_TABLE            = module.read_model_table.name
    RELAY_DEAD_LETTER_TABLE     = module.relay_dead_letter_table.name
    DEAD_LETTER_TABLE           = module.dead_letter_table.name
    OPS_APPLICATIONS            = join(",", [for application in local.ops_applications : "${application}=${module.lease_tables[application].name}"])
    EVENT_STREAM                = aws_kinesis_stream.events.name
    AUTH_JWKS_URL               = var.auth_jwks_url
    AUTH_ISSUER                 = var.auth_issuer
    AUTH_AUDIENCE               = var.auth_audience
    IDEMPOTENCY_TTL_SECS        = var.idempotency_ttl_secs
    REQUEST_TIMEOUT_MS          = var.request_timeout_ms
    MAX_CONCURRENT_REQUESTS     = var.max_concurrent_requests
    OTEL_EXPORTER_OTLP_ENDPOINT = local.otlp_endpoint
    OTEL_SERVICE_NAME           = "event-source"
    LOG_FORMAT                  = "json"
    RUST_LOG                    = var.rust_log
  }
  secrets = {
    AUTH_HS256_SECRET = var.auth_hs256_secret_arn
  }

  # The operations view only reads (Scan, consistent) what the consumers and the relays write:
  # each watched application's lease table (keyed `OPS_APPLICATIONS[<application>]`), the
  # consumers' dead letters (the table itself, never its `by-key` index) and the relay's; the
  # outbox is the events table's `unpublished` index.
  dynamodb_tables = merge({
    EVENTS_TABLE = {
      arn           = module.events_table.arn
      actions       = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"]
      index_actions = ["dynamodb:Query"]
    }
    IDEMPOTENCY_TABLE = {
      arn     = module.idempotency_table.arn
      actions = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem"]
    }
    # GetItem is the routing document's, in the home table only; the API lists and reads quotes
    # (Query on the table and its `by-quote` index) and pings (DescribeTable) the active table.
    READ_MODEL_TABLE = {
      arn           = module.read_model_table.arn
      actions       = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query"]
      index_actions = ["dynamodb:Query"]
      suffixed_tables = {
        actions       = ["dynamodb:DescribeTable", "dynamodb:Query"]
        index_actions = ["dynamodb:Query"]
      }
    }
    RELAY_DEAD_LETTER_TABLE = {
      arn     = module.relay_dead_letter_table.arn
      actions = ["dynamodb:DescribeTable", "dynamodb:PutItem", "dynamodb:Scan"]
    }
    DEAD_LETTER_TABLE = {
      arn     = module.dead_letter_table.arn
      actions = ["dynamodb:Scan"]
    }
  }, { for application in local.ops_applications : "OPS_APPLICATIONS[${application}]" => { arn = module.lease_tables[application].arn, actions = ["dynamodb:Scan"] } })
  stream_arn     = aws_kinesis_stream.events.arn
  stream_actions = ["kinesis:DescribeStreamSummary", "kinesis:PutRecords"]

  # The service registers in the target group once a listener forwards to it (and after the
  # configuration checks). Only the ECS service waits for these: see fargate-service's
  # `service_dependencies`.
  service_dependencies = concat(aws_lb_listener.https[*].arn, aws_lb_listener.http_trial[*].arn, [terraform_data.configuration_checks.id])
}

# ---------------------------------------------------------------------------------------------
# The consumer services
# ---------------------------------------------------------------------------------------------

# What is specific to each consumer service: whether it handles events (`event_handler`: it
# then gets `local.event_handler` below), its environment besides what every consumer gets
# (`module "consumer"` below), its secrets, its grants on tables besides its lease table and
# those of `local.event_handler` (keyed by the variable naming the table), on S3 buckets (keyed
# by the variable naming the bucket), and SES/SNS. No consumer gets a grant on the idempotency
# table: handlers append without idempotency records.
locals {
  consumers = {
    # Decodes VINs (vPIC over the internet, or offline with VPIC_BASE_URL=off).
    "vehicle-enricher" = {
      event_handler = true
      environment = {
        VPIC_BASE_URL = var.vpic_base_url
      }
    }

    # Fetches driving records (an HTTP provider, or the simulated one).
    "driver-history" = {
      event_handler = true
      environment = {
        DRIVER_HISTORY_PROVIDER = var.driver_history_provider
        DRIVER_HISTORY_URL      = var.driver_history_url
      }
      secrets = {
        DRIVER_HISTORY_TOKEN = var.driver_history_token_secret_arn
      }
    }

    # Rates quotes and decides their outcome; refers the quotes still pending
    # QUOTE_DEADLINE_SECS after their request, which it lists on the active read-model table's
    # `pending` index (keys only; it never reads or writes the quotes' items: its GetItem is the
    # routing document's, in the home table only).
    "fulfillment" = {
      event_handler = true
      environment = {
        RATING_TABLES_PATH  = var.rating_tables_path
        READ_MODEL_TABLE    = module.read_model_table.name
        QUOTE_DEADLINE_SECS = var.quote_deadline_secs
      }
      dynamodb_tables = {
        READ_MODEL_TABLE = {
          arn           = module.read_model_table.arn
          actions       = ["dynamodb:DescribeTable", "dynamodb:GetItem"]
          index_actions = ["dynamodb:Query"]
          suffixed_tables = {
            actions       = ["dynamodb:DescribeTable"]
            index_actions = ["dynamodb:Query"]
          }
        }
      }
    }

    # Keeps the customer-quotes read model: writes the active table and every standby one
    # (version-guarded PutItem, read back with GetItem), and reads the routing document.
    "projector" = {
      event_handler = true
      environment = {
        READ_MODEL_TABLE = module.read_model_table.name
      }
      dynamodb_tables = {
        READ_MODEL_TABLE = {
          arn     = module.read_model_table.arn
          actions = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem"]
          suffixed_tables = {
            actions = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem"]
          }
        }
      }
    }

    # Sends quote notifications: e-mail through SES, SMS through SNS.
    "notifier" = {
      event_handler = true
      environment = {
        NOTIFICATIONS_TABLE       = module.notifications_table.name
        NOTIFY_FROM_EMAIL         = var.notify_from_email
        NOTIFY_CLAIM_TIMEOUT_SECS = var.notify_claim_timeout_secs
      }
      dynamodb_tables = {
        NOTIFICATIONS_TABLE = {
          arn     = module.notifications_table.arn
          actions = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
        }
      }
      ses_send          = true
      ses_identity_arns = [aws_sesv2_email_identity.notifier.arn]
      ses_from_address  = var.notify_from_email
      sns_publish       = true
    }

    # Writes every record of the stream to the archive bucket, one gzip JSON Lines segment per
    # shard at a time, each committed to the manifest before the shard is checkpointed. A record
    # service, not an event handler: no event store, relay or dead letters (its failures are
    # retried until they pass), and it checkpoints by itself. On SIGTERM it stores and commits
    # each shard's open segment within `stop_timeout`; what it cannot is read again by the next
    # owner from the last checkpoint.
    "archiver" = {
      event_handler = false
      environment = {
        ARCHIVE_BUCKET         = aws_s3_bucket.archive.id
        ARCHIVE_PREFIX         = var.archive_prefix
        ARCHIVE_SEGMENT_BYTES  = var.archive_segment_bytes
        ARCHIVE_SEGMENT_SECS   = var.archive_segment_secs
        ARCHIVE_MANIFEST_TABLE = module.archive_manifest_table.name
      }
      dynamodb_tables = {
        # Segment commits are TransactWriteItems of a PutItem and an UpdateItem.
        ARCHIVE_MANIFEST_TABLE = {
          arn     = module.archive_manifest_table.arn
          actions = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"]
        }
      }
      s3_buckets = {
        # Segments are written, listed and (uncommitted ones, after a crash) deleted, never
        # read back; `quotes run` checks with HeadBucket (s3:ListBucket) that the bucket exists.
        ARCHIVE_BUCKET = {
          arn            = aws_s3_bucket.archive.arn
          prefix         = var.archive_prefix
          bucket_actions = ["s3:ListBucket"]
          object_actions = ["s3:DeleteObject", "s3:PutObject"]
          kms_key_arn    = aws_kms_key.platform.arn
        }
      }
    }
  }

  # What a consumer service that handles events (`event_handler = true`) gets besides what every
  # consumer gets: the event store it reads and appends derived events to, the relay that
  # publishes them (PutRecords, its dead letters), the dead letters of the records it gives up
  # on, and the library's checkpoint and dead-letter settings.
  event_handler = {
    environment = {
      EVENTS_TABLE             = module.events_table.name
      IDEMPOTENCY_TABLE        = module.idempotency_table.name
      DEAD_LETTER_TABLE        = module.dead_letter_table.name
      RELAY_DEAD_LETTER_TABLE  = module.relay_dead_letter_table.name
      CHECKPOINT_EVERY_RECORDS = var.checkpoint_every_records
      CHECKPOINT_EVERY_MS      = var.checkpoint_every_ms
      MAX_PROCESSING_ATTEMPTS  = var.max_processing_attempts
    }
    dynamodb_tables = {
      EVENTS_TABLE = {
        arn           = module.events_table.arn
        actions       = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"]
        index_actions = ["dynamodb:Query"]
      }
      DEAD_LETTER_TABLE = {
        arn           = module.dead_letter_table.arn
        actions       = ["dynamodb:DescribeTable", "dynamodb:PutItem", "dynamodb:Query"]
        index_actions = ["dynamodb:Query"]
      }
      RELAY_DEAD_LETTER_TABLE = {
        arn     = module.relay_dead_letter_table.arn
        actions = ["dynamodb:DescribeTable", "dynamodb:PutItem"]
      }
    }
    stream_actions = ["kinesis:PutRecords"]
  }

  # Catch-up subscriptions (`consumer_initial_position = "ARCHIVE"`, CONSUMER_INITIAL_POSITION=
  # ARCHIVE; shared/archive/src/catch_up.rs): a shard without a checkpoint is read from the
  # archive first, then from the stream after the last archived record. Only then, the consumer
  # services that handle events get what reading the archive takes, besides what they get
  # anyway: the bucket and the manifest table by name, and read-only grants. The reader lists
  # the manifest's shard heads and a shard's segments (Query, consistent reads: no GetItem) and
  # reads each segment by the key the manifest gives (GetObject; it never lists the bucket). The
  # segments are under `archive_prefix`, where the archiver writes them (and `quotes archive
  # backfill` with the same ARCHIVE_PREFIX); the bucket is encrypted with the platform key, so
  # reading takes `kms:Decrypt` through S3 (the module derives it from `s3:GetObject`); the
  # manifest table's key is already granted through DynamoDB. The archiver writes the archive
  # and never catches up from it: it keeps its default initial position (TRIM_HORIZON).
  archive_catch_up = var.consumer_initial_position == "ARCHIVE"
  catch_up = {
    environment = {
      ARCHIVE_BUCKET         = aws_s3_bucket.archive.id
      ARCHIVE_MANIFEST_TABLE = module.archive_manifest_table.name
    }
    dynamodb_tables = {
      ARCHIVE_MANIFEST_TABLE = {
        arn     = module.archive_manifest_table.arn
        actions = ["dynamodb:Query"]
      }
    }
    s3_buckets = {
      ARCHIVE_BUCKET = {
        arn            = aws_s3_bucket.archive.arn
        prefix         = var.archive_prefix
        object_actions = ["s3:GetObject"]
        kms_key_arn    = aws_kms_key.platform.arn
      }
    }
  }
}

# Every consumer service: the arguments, environment and grants they all share, those of
# `local.event_handler` for the services that handle events, and the service's entry in
# `local.consumers` (which adds to them, never overrides them).
module "consumer" {
  source   = "./modules/consumer-service"
  for_each = local.consumers

  service                          = each.key
  name_prefix                      = var.name_prefix
  cluster_arn                      = aws_ecs_cluster.this.arn
  image                            = local.image
  ecr_repository_arns              = local.ecr_repository_arns
  ecr_pull_through_repository_arns = local.ecr_pull_through_repository_arns
  cpu                              = var.task_sizes[each.key].cpu
  memory                           = var.task_sizes[each.key].memory
  cpu_architecture                 = var.cpu_architecture
  stop_timeout                     = var.stop_timeout
  data_kms_key_arn                 = aws_kms_key.platform.arn
  secrets_kms_key_arns             = var.secrets_kms_key_arns
  vpc_id                           = module.network.vpc_id
  subnet_ids                       = module.network.private_subnet_ids
  log_retention_days               = var.log_retention_days
  log_kms_key_arn                  = aws_kms_key.platform.arn
  adot_image                       = local.adot_image
  metrics_namespace                = var.metrics_namespace
  metrics_log_group_name           = aws_cloudwatch_log_group.metrics.name
  metrics_log_group_arn            = aws_cloudwatch_log_group.metrics.arn

  stream_name     = aws_kinesis_stream.events.name
  stream_arn      = aws_kinesis_stream.events.arn
  consumer_source = var.consumer_source
  shard_count     = var.stream_shard_count
  min_tasks       = var.consumer_scaling[each.key].min_tasks
  max_tasks       = var.consumer_scaling[each.key].max_tasks
  autoscaling     = var.enable_autoscaling

  scale_out_lag_ms  = var.scale_out_lag_ms
  scale_in_lag_ms   = var.scale_in_lag_ms
  dead_letter_alarm = each.value.event_handler
  alarm_actions     = local.alarm_actions

  # CONSUMER_INITIAL_POSITION: with ARCHIVE, null (the code's default, TRIM_HORIZON) for the
  # archiver, which writes the archive and never catches up from it (see local.catch_up).
  environment = merge({
    EVENT_STREAM                = aws_kinesis_stream.events.name
    LEASE_TABLE                 = module.lease_tables[each.key].name
    CONSUMER_SOURCE             = var.consumer_source
    CONSUMER_INITIAL_POSITION   = local.archive_catch_up && !each.value.event_handler ? null : var.consumer_initial_position
    LEASE_DURATION_MS           = var.lease_duration_ms
    OTEL_EXPORTER_OTLP_ENDPOINT = local.otlp_endpoint
    OTEL_SERVICE_NAME           = each.key
    LOG_FORMAT                  = "json"
    RUST_LOG                    = var.rust_log
  }, { for name, value in local.event_handler.environment : name => value if each.value.event_handler }, { for name, value in local.catch_up.environment : name => value if local.archive_catch_up && each.value.event_handler }, each.value.environment)
  secrets = try(each.value.secrets, {})

  dynamodb_tables = merge({
    LEASE_TABLE = {
      arn     = module.lease_tables[each.key].arn
      actions = ["dynamodb:DeleteItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan", "dynamodb:UpdateItem"]
    }
  }, { for name, table in local.event_handler.dynamodb_tables : name => table if each.value.event_handler }, { for name, table in local.catch_up.dynamodb_tables : name => table if local.archive_catch_up && each.value.event_handler }, try(each.value.dynamodb_tables, {}))
  s3_buckets             = merge({ for name, bucket in local.catch_up.s3_buckets : name => bucket if local.archive_catch_up && each.value.event_handler }, try(each.value.s3_buckets, {}))
  stream_actions         = concat(["kinesis:ListShards"], each.value.event_handler ? local.event_handler.stream_actions : [])
  stream_polling_actions = ["kinesis:GetRecords", "kinesis:GetShardIterator"]
  stream_fanout_actions  = ["kinesis:DescribeStreamSummary", "kinesis:RegisterStreamConsumer"]
  efo_consumer_actions   = ["kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"]
  ses_send               = try(each.value.ses_send, false)
  ses_identity_arns      = try(each.value.ses_identity_arns, [])
  ses_from_address       = try(each.value.ses_from_address, null)
  sns_publish            = try(each.value.sns_publish, false)
}
