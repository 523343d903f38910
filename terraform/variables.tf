# ---------------------------------------------------------------------------------------------
# General
# ---------------------------------------------------------------------------------------------

variable "name_prefix" {
  description = "Prefix of every resource name (e.g. `staging-`). Empty: the tables and the stream get the names the code uses by default."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[a-z0-9-]{0,16}$", var.name_prefix))
    error_message = "name_prefix is at most 16 lowercase letters, digits or hyphens (load balancer names are limited to 32 characters)."
  }
}

variable "region" {
  description = "AWS region of the deployment."
  type        = string
  default     = "us-east-1"
}

variable "tags" {
  description = "Tags added to every resource (provider default tags)."
  type        = map(string)
  default = {
    Project = "quote-platform"
  }
}

# ---------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------

variable "create_vpc" {
  description = "Create a VPC with public and private subnets (true) or use the VPC given by `vpc_id` (false)."
  type        = bool
  default     = true
}

variable "vpc_id" {
  description = "Existing VPC to deploy into (with `create_vpc = false`)."
  type        = string
  default     = null
}

variable "private_subnet_ids" {
  description = "Private subnets of the existing VPC for the tasks (with `create_vpc = false`)."
  type        = list(string)
  default     = []
}

variable "public_subnet_ids" {
  description = "Public subnets of the existing VPC for the internet-facing load balancer (with `create_vpc = false`)."
  type        = list(string)
  default     = []
}

variable "private_route_table_ids" {
  description = "Route tables of the existing private subnets, for the DynamoDB and S3 gateway endpoints (with `create_vpc = false`)."
  type        = list(string)
  default     = []
}

variable "vpc_cidr" {
  description = "CIDR block of the created VPC."
  type        = string
  default     = "10.40.0.0/16"
}

variable "az_count" {
  description = "Availability zones of the created VPC."
  type        = number
  default     = 2
}

variable "availability_zones" {
  description = "Zones of the created VPC, pinned by name; empty: the first `az_count` zones of the region."
  type        = list(string)
  default     = []
}

variable "enable_nat_gateway" {
  description = "Internet egress for the created private subnets. AWS traffic uses the VPC endpoints; NAT is for vPIC (vehicle-enricher), a JWKS URL, an HTTP driver-record provider and the SES API."
  type        = bool
  default     = true
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones instead of one per zone."
  type        = bool
  default     = true
}

variable "create_vpc_endpoints" {
  description = "Create VPC endpoints (gateway: DynamoDB, S3; interface: `interface_endpoints`) so tasks reach AWS without NAT."
  type        = bool
  default     = true
}

variable "interface_endpoints" {
  description = "Interface endpoints to create (service names after `com.amazonaws.<region>.`)."
  type        = list(string)
  default     = ["kinesis-streams", "ecr.api", "ecr.dkr", "logs", "xray", "secretsmanager", "sns"]
}

# ---------------------------------------------------------------------------------------------
# Images and tasks
# ---------------------------------------------------------------------------------------------

variable "image_tag" {
  description = "Tag of the `quotes` image in the ECR repository created here (tags are immutable: use a release or commit id)."
  type        = string
}

variable "image_uri" {
  description = "Full URI of the `quotes` image every service runs, overriding `<repository>:<image_tag>` (e.g. an image pinned by digest, or one published elsewhere)."
  type        = string
  default     = null
}

variable "cpu_architecture" {
  description = "CPU architecture the images were built for: X86_64 or ARM64."
  type        = string
  default     = "X86_64"
}

variable "task_sizes" {
  description = "Fargate CPU units and memory (MiB) per service task, collector sidecar included."
  type = map(object({
    cpu    = number
    memory = number
  }))
  default = {
    "event-source"     = { cpu = 512, memory = 1024 }
    "vehicle-enricher" = { cpu = 512, memory = 1024 }
    "driver-history"   = { cpu = 512, memory = 1024 }
    "fulfillment"      = { cpu = 512, memory = 1024 }
    "projector"        = { cpu = 512, memory = 1024 }
    "notifier"         = { cpu = 512, memory = 1024 }
    "archiver"         = { cpu = 512, memory = 1024 }
  }

  validation {
    condition     = length(setsubtract(["event-source", "vehicle-enricher", "driver-history", "fulfillment", "projector", "notifier", "archiver"], keys(var.task_sizes))) == 0
    error_message = "task_sizes needs an entry for each of the seven services."
  }
}

variable "stop_timeout" {
  description = "Seconds between SIGTERM and SIGKILL for every service: the API finishes requests and publishes what is queued, consumers release leases and checkpoint, the archiver first stores and commits each shard's open segment (60–120)."
  type        = number
  default     = 90

  validation {
    condition     = var.stop_timeout >= 60 && var.stop_timeout <= 120
    error_message = "stop_timeout must be between 60 and 120 seconds."
  }
}

variable "adot_image" {
  description = "Image of the AWS Distro for OpenTelemetry collector sidecar. Null: the public image through an ECR pull-through cache created here (no NAT needed)."
  type        = string
  default     = null
}

variable "adot_version" {
  description = "Version (tag) of the public collector image pulled through the cache."
  type        = string
  default     = "v0.43.3"
}

variable "rust_log" {
  description = "RUST_LOG of every service (log filter)."
  type        = string
  default     = "info"
}

# ---------------------------------------------------------------------------------------------
# API: load balancer and auth
# ---------------------------------------------------------------------------------------------

variable "certificate_arn" {
  description = "ACM certificate (in `region`) served by the HTTPS listener (production). Null: trial mode, a plain-HTTP listener reachable only from `trial_http_cidrs`."
  type        = string
  default     = null
}

variable "trial_http_cidrs" {
  description = "Trial mode only (no `certificate_arn`): the CIDR blocks allowed to reach the plain-HTTP listener on port 80, e.g. your own address as `203.0.113.7/32`. Bearer tokens cross the network in clear text: never for production. Must be empty with a certificate."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.trial_http_cidrs : can(cidrhost(cidr, 0)) && !can(regex("/0$", cidr))])
    error_message = "trial_http_cidrs holds CIDR blocks (a.b.c.d/n), none of them /0: the trial listener is plain HTTP and must not be open to the internet."
  }
}

variable "alb_internal" {
  description = "Make the load balancer internal (private subnets) instead of internet-facing."
  type        = bool
  default     = false
}

variable "alb_ingress_cidrs" {
  description = "CIDR blocks allowed to reach the HTTPS listener (production mode)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "alb_ssl_policy" {
  description = "TLS policy of the HTTPS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "alb_deletion_protection" {
  description = "Deletion protection of the load balancer. A teardown switch: set false and apply before `terraform destroy`."
  type        = bool
  default     = true
}

variable "waf_rate_limit" {
  description = "Requests per 5 minutes from one IP address above which the WAF blocks it."
  type        = number
  default     = 2000
}

variable "auth_hs256_secret_arn" {
  description = "Secrets Manager secret (ARN) holding the HS256 token secret (AUTH_HS256_SECRET, at least 16 bytes). Exactly one of this and `auth_jwks_url`."
  type        = string
  default     = null
}

variable "auth_jwks_url" {
  description = "JWKS URL of the token issuer (AUTH_JWKS_URL, e.g. a Cognito user pool's). Exactly one of this and `auth_hs256_secret_arn`."
  type        = string
  default     = null
}

variable "auth_issuer" {
  description = "Required `iss` of tokens (AUTH_ISSUER); required with `auth_jwks_url`, else null."
  type        = string
  default     = null
}

variable "auth_audience" {
  description = "Required `aud` of tokens (AUTH_AUDIENCE, a string or one entry of an array); required with `auth_jwks_url`, else null."
  type        = string
  default     = null
}

variable "secrets_kms_key_arns" {
  description = "Customer managed KMS keys encrypting the secrets passed to the services (the execution roles may decrypt with them)."
  type        = list(string)
  default     = []
}

variable "event_source_scaling" {
  description = "Task count of the API: CPU target tracking between min and max tasks."
  type = object({
    min_tasks          = number
    max_tasks          = number
    cpu_target_percent = optional(number, 60)
  })
  default = {
    min_tasks = 2
    max_tasks = 6
  }
}

variable "idempotency_ttl_secs" {
  description = "IDEMPOTENCY_TTL_SECS of the API, or null for the code's default (a day)."
  type        = number
  default     = null
}

variable "request_timeout_ms" {
  description = "REQUEST_TIMEOUT_MS of the API, or null for the code's default."
  type        = number
  default     = null
}

variable "max_concurrent_requests" {
  description = "MAX_CONCURRENT_REQUESTS per API task, or null for the code's default."
  type        = number
  default     = null
}

# ---------------------------------------------------------------------------------------------
# Stream and consumers
# ---------------------------------------------------------------------------------------------

variable "stream_mode" {
  description = "Capacity mode of the Kinesis stream: PROVISIONED (`stream_shard_count` shards) or ON_DEMAND."
  type        = string
  default     = "PROVISIONED"

  validation {
    condition     = contains(["PROVISIONED", "ON_DEMAND"], var.stream_mode)
    error_message = "stream_mode is PROVISIONED or ON_DEMAND."
  }
}

variable "stream_shard_count" {
  description = "Shards of a PROVISIONED stream; for ON_DEMAND, the shard count you expect (an on-demand stream starts with 4). Consumer services never run more tasks than this."
  type        = number
  default     = 4

  validation {
    condition     = var.stream_shard_count >= 1
    error_message = "stream_shard_count must be at least 1."
  }
}

variable "stream_retention_hours" {
  description = "How long the stream keeps records (24–8760 hours): the time a stopped consumer has to catch up."
  type        = number
  default     = 168

  validation {
    condition     = var.stream_retention_hours >= 24 && var.stream_retention_hours <= 8760
    error_message = "stream_retention_hours must be between 24 and 8760."
  }
}

variable "stream_shard_level_metrics" {
  description = "Enhanced (per-shard, billed) Kinesis metrics, e.g. [\"IteratorAgeMilliseconds\"]."
  type        = list(string)
  default     = []
}

variable "consumer_source" {
  description = "How consumer services read the stream: `polling` (shared 2 MB/s per shard) or `fanout` (enhanced fan-out, a dedicated pipe per service; the consumers are registered here)."
  type        = string
  default     = "polling"

  validation {
    condition     = contains(["polling", "fanout"], var.consumer_source)
    error_message = "consumer_source is polling or fanout."
  }
}

variable "consumer_initial_position" {
  description = "CONSUMER_INITIAL_POSITION of the consumer services: where a shard without a checkpoint starts (TRIM_HORIZON, LATEST, AT_TIMESTAMP:<RFC 3339>), or null for the default (TRIM_HORIZON). ARCHIVE (catch-up): the consumer services that handle events read such a shard's archived records first, then the stream after the last of them; they get ARCHIVE_BUCKET, ARCHIVE_MANIFEST_TABLE and read-only grants on the archive (Query on the manifest table, s3:GetObject on `<archive bucket>/<archive_prefix>*`, the platform key's kms:Decrypt through S3). The archiver, which writes the archive, keeps its default (TRIM_HORIZON)."
  type        = string
  default     = null

  validation {
    condition     = var.consumer_initial_position == null || can(regex("^(TRIM_HORIZON|LATEST|ARCHIVE|AT_TIMESTAMP:.+)$", var.consumer_initial_position))
    error_message = "Use TRIM_HORIZON, LATEST, AT_TIMESTAMP:<RFC 3339> or ARCHIVE (catch-up from the archive)."
  }
}

variable "enable_autoscaling" {
  description = "Application Auto Scaling of the services: the API on CPU (`event_source_scaling`), the consumer services on their lag (`consumer_scaling`). False: each service keeps its `min_tasks` tasks, with no scaling targets, policies or lag alarms (e.g. on an emulator without Application Auto Scaling)."
  type        = bool
  default     = true
}

variable "consumer_scaling" {
  description = "Task count range per consumer service; scaled on lag between them. `max_tasks` must not exceed `stream_shard_count`."
  type = map(object({
    min_tasks = number
    max_tasks = number
  }))
  default = {
    "vehicle-enricher" = { min_tasks = 1, max_tasks = 4 }
    "driver-history"   = { min_tasks = 1, max_tasks = 4 }
    "fulfillment"      = { min_tasks = 1, max_tasks = 4 }
    "projector"        = { min_tasks = 1, max_tasks = 4 }
    "notifier"         = { min_tasks = 1, max_tasks = 4 }
    "archiver"         = { min_tasks = 1, max_tasks = 4 }
  }

  validation {
    condition     = length(setsubtract(["vehicle-enricher", "driver-history", "fulfillment", "projector", "notifier", "archiver"], keys(var.consumer_scaling))) == 0
    error_message = "consumer_scaling needs an entry for each of the six consumer services."
  }

  validation {
    condition     = alltrue([for s in values(var.consumer_scaling) : s.min_tasks >= 1 && s.min_tasks <= s.max_tasks])
    error_message = "Each consumer needs 1 <= min_tasks <= max_tasks."
  }
}

variable "scale_out_lag_ms" {
  description = "Consumer services add a task while their lag stays above this (milliseconds)."
  type        = number
  default     = 60000
}

variable "scale_in_lag_ms" {
  description = "Consumer services remove a task while their lag stays below this (milliseconds)."
  type        = number
  default     = 5000
}

variable "lease_duration_ms" {
  description = "LEASE_DURATION_MS of the consumer services (crash failover time), or null for the default."
  type        = number
  default     = null
}

variable "checkpoint_every_records" {
  description = "CHECKPOINT_EVERY_RECORDS of the consumer services that handle events (the archiver checkpoints each segment it commits), or null for the default."
  type        = number
  default     = null
}

variable "checkpoint_every_ms" {
  description = "CHECKPOINT_EVERY_MS of the consumer services that handle events (the archiver checkpoints each segment it commits), or null for the default."
  type        = number
  default     = null
}

variable "max_processing_attempts" {
  description = "MAX_PROCESSING_ATTEMPTS of a permanently failing record before it is dead-lettered (transient failures are retried until they pass; the archiver dead-letters nothing), or null for the default."
  type        = number
  default     = null
}

# ---------------------------------------------------------------------------------------------
# Service-specific settings
# ---------------------------------------------------------------------------------------------

variable "vpic_base_url" {
  description = "VPIC_BASE_URL of vehicle-enricher: null for the public vPIC API (needs NAT), `off` for offline decoding."
  type        = string
  default     = null
}

variable "driver_history_provider" {
  description = "DRIVER_HISTORY_PROVIDER of driver-history: `http` (a real provider at `driver_history_url`) or `simulated`."
  type        = string

  validation {
    condition     = contains(["http", "simulated"], var.driver_history_provider)
    error_message = "driver_history_provider is http or simulated."
  }
}

variable "driver_history_url" {
  description = "DRIVER_HISTORY_URL (base URL of the http provider); required with `driver_history_provider = http`."
  type        = string
  default     = null
}

variable "driver_history_token_secret_arn" {
  description = "Secrets Manager secret (ARN) holding DRIVER_HISTORY_TOKEN, the http provider's bearer token, or null."
  type        = string
  default     = null
}

variable "rating_tables_path" {
  description = "RATING_TABLES_PATH of fulfillment (a file in the image), or null for the embedded tables."
  type        = string
  default     = null
}

variable "quote_deadline_secs" {
  description = "QUOTE_DEADLINE_SECS of fulfillment: seconds a quote may stay pending after its request (an enrichment dead-lettered, a provider down for long) before fulfillment refers it (1–2592000, 30 days); the read model's `pending` index lists the pending quotes."
  type        = number
  default     = 300

  validation {
    condition     = var.quote_deadline_secs >= 1 && var.quote_deadline_secs <= 2592000 && floor(var.quote_deadline_secs) == var.quote_deadline_secs
    error_message = "quote_deadline_secs must be a whole number of seconds between 1 and 2592000 (30 days)."
  }
}

variable "notify_from_email" {
  description = "NOTIFY_FROM_EMAIL: the notifier's sender address."
  type        = string
}

variable "ses_identity" {
  description = "SES identity to create for the sender: the address itself (null) or its domain (publish the DKIM records from the outputs)."
  type        = string
  default     = null
}

variable "notify_claim_timeout_secs" {
  description = "NOTIFY_CLAIM_TIMEOUT_SECS of the notifier, or null for the default."
  type        = number
  default     = null
}

variable "manage_sms_preferences" {
  description = "Set the account's SNS SMS preferences (transactional by default, monthly spend limit). Account-wide: leave false if something else manages them."
  type        = bool
  default     = false
}

variable "sms_monthly_spend_limit" {
  description = "Monthly SMS spend limit in USD (with `manage_sms_preferences`)."
  type        = number
  default     = 1
}

# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

variable "deletion_protection" {
  description = "Deletion protection of the DynamoDB tables. A teardown switch: set false and apply before `terraform destroy`."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the archive and access-log buckets with every object version in them, and the image repository with its images. Off: destroy fails on a bucket or repository that is not empty (empty them first). A teardown switch: set true and apply before `terraform destroy`."
  type        = bool
  default     = false
}

variable "dynamodb_replicas" {
  description = "Global Tables replicas of the durable tables (events, idempotency, read model, notifications, dead letters): region and a KMS key in that region. Lease tables and the archive manifest stay regional (they track this region's stream; the manifest describes this region's archive bucket)."
  type = list(object({
    region_name = string
    kms_key_arn = string
  }))
  default = []
}

variable "archive_prefix" {
  description = "ARCHIVE_PREFIX of the archiver: the key prefix of every segment in the archive bucket (`<prefix>stream=<name>/shard=<id>/<first>-<last>.jsonl.gz`); the archiver's object grants are limited to it."
  type        = string
  default     = "events/"

  validation {
    condition     = length(var.archive_prefix) <= 256 && !startswith(var.archive_prefix, "/") && can(regex("^[!-~]*$", var.archive_prefix))
    error_message = "archive_prefix: at most 256 printable ASCII characters without spaces, not starting with /."
  }
}

variable "archive_segment_bytes" {
  description = "ARCHIVE_SEGMENT_BYTES of the archiver: a segment closes once its JSON Lines (before compression) reach this many bytes (1 KiB–512 MiB); one open segment per shard is held in memory, compressed."
  type        = number
  default     = 8388608

  validation {
    condition     = var.archive_segment_bytes >= 1024 && var.archive_segment_bytes <= 536870912
    error_message = "archive_segment_bytes must be between 1024 and 536870912."
  }
}

variable "archive_segment_secs" {
  description = "ARCHIVE_SEGMENT_SECS of the archiver: a segment closes once it is this many seconds old (1–3600), so each shard with traffic costs at most one S3 PUT and one manifest commit per this many seconds (more when segments fill up first)."
  type        = number
  default     = 60

  validation {
    condition     = var.archive_segment_secs >= 1 && var.archive_segment_secs <= 3600
    error_message = "archive_segment_secs must be between 1 and 3600."
  }
}

variable "archive_glacier_after_days" {
  description = "Days after which archive objects move to S3 Glacier Flexible Retrieval."
  type        = number
  default     = 30
}

variable "archive_noncurrent_expiration_days" {
  description = "Days after which replaced (noncurrent) archive object versions are deleted."
  type        = number
  default     = 365
}

variable "access_log_expiration_days" {
  description = "Days the load balancer and S3 access logs are kept."
  type        = number
  default     = 365
}

# ---------------------------------------------------------------------------------------------
# Observability
# ---------------------------------------------------------------------------------------------

variable "log_retention_days" {
  description = "Retention of the CloudWatch log groups, in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the services' own metrics (EMF from the collector), e.g. `kinesis_consumer.dead_lettered` by `application`."
  type        = string
  default     = "QuotePlatform"
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic, or null."
  type        = string
  default     = null
}

variable "iterator_age_alarm_ms" {
  description = "Alarm when the stream's oldest unread record (GetRecords.IteratorAgeMilliseconds) is older than this."
  type        = number
  default     = 300000
}

variable "outbox_age_alarm_secs" {
  description = "Alarm when a relay reports a commit unpublished for longer than this (event_relay.outbox_oldest_age; quotes outbox status shows the backlog)."
  type        = number
  default     = 120

  validation {
    condition     = var.outbox_age_alarm_secs >= 30
    error_message = "The relays measure the outbox every 30 s: use 30 s or more."
  }
}

variable "api_5xx_alarm_percent" {
  description = "Alarm when more than this percentage of API requests end in a 5xx (load balancer or target)."
  type        = number
  default     = 1
}

variable "kinesis_read_throttle_alarm_threshold" {
  description = "Alarm when GetRecords calls throttled per minute exceed this (polling consumers share 5 calls/s per shard, so some throttling is normal)."
  type        = number
  default     = 60
}
